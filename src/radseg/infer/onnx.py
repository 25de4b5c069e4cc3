"""ONNX export of a bundle's network, and an ONNX Runtime forward that needs neither torch nor MONAI.

The export has a fixed spatial size (the model's patch size: whole images in fit mode,
windows otherwise) and a dynamic batch axis, so the sliding window runs unchanged on
either backend. The exported file goes into the bundle (``model.onnx``, hashed like the
weights), so ``--backend onnx`` needs nothing else.

Weights are stored once: every weight tensor of the graph that is stored byte for byte in
``weights.pt`` (a zip whose tensor files are stored uncompressed) becomes an ONNX *external
data* reference (``location=weights.pt``, offset, length) and :class:`OnnxForward` hands
ONNX Runtime the bundle's ``weights.pt`` bytes in memory. A shipped 0.84 M-parameter U-Net's
graph is then about 0.2 MB instead of 3.5 MB. The graph records the SHA-256 of the
``weights.pt`` it points into; a session over other weights is refused.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import struct
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from radseg.errors import MissingExtraError, RadsegError
from radseg.models.bundle import ModelBundle
from radseg.system import usable_cores

__all__ = ["export_onnx", "OnnxForward", "onnx_available", "onnx_device", "share_weights", "WEIGHTS_FILE"]

OPSET = 18
WEIGHTS_FILE = "weights.pt"
_DIGEST_KEY = "radseg.weights_sha256"
_MIN_SHARED = 256  # bytes: smaller tensors stay in the graph


def onnx_available() -> bool:
    """True when onnxruntime can be imported (checked without importing it)."""
    from importlib.util import find_spec

    return find_spec("onnxruntime") is not None


def onnx_device(device: str) -> str:
    """``auto`` -> ``cuda`` when onnxruntime has its CUDA provider, else ``cpu``; others as given."""
    if device == "auto":
        try:
            import onnxruntime as ort
        except ImportError:
            return "cpu"
        return "cuda" if "CUDAExecutionProvider" in ort.get_available_providers() else "cpu"
    if device != "cpu" and not device.startswith("cuda"):
        raise RadsegError(f"device must be cpu, cuda or auto, got {device!r}")
    return device


def export_onnx(bundle: ModelBundle, *, store: bool = True) -> bytes:
    """Export the bundle's network to ONNX (weights shared with weights.pt); with ``store`` add it to the saved bundle."""
    import torch

    net = bundle.build_network()
    example = torch.zeros(2, bundle.in_channels, *bundle.preprocessing.patch_size)
    data = share_weights(_export(net, example), bundle.weights_payload())
    if store:
        bundle.add_onnx(data)
    return data


def _export(net, example) -> bytes:
    import torch

    # torch.export's exporter (dynamo) is the maintained path; the TorchScript one is the fallback.
    errors = []
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            import onnxscript  # noqa: F401

            batch = torch.export.Dim("batch", min=1, max=1024)
            program = torch.onnx.export(net, (example,), input_names=["image"], output_names=["logits"],
                                        dynamo=True, dynamic_shapes={"x": {0: batch}}, opset_version=OPSET,
                                        verbose=False, optimize=True)
            with tempfile.TemporaryDirectory() as tmp:
                target = Path(tmp) / "model.onnx"
                program.save(str(target))
                return target.read_bytes()
        except Exception as exc:  # noqa: BLE001 - try the other exporter, report both if it fails too
            errors.append(f"dynamo: {exc}")
        try:
            buffer = io.BytesIO()
            torch.onnx.export(net, (example,), buffer, input_names=["image"], output_names=["logits"], dynamo=False,
                              dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}}, opset_version=17)
            return buffer.getvalue()
        except Exception as exc:  # noqa: BLE001
            errors.append(f"torchscript: {exc}")
    raise RadsegError("ONNX export failed: " + " | ".join(errors))


def _stored_tensors(weights: bytes) -> dict[bytes, tuple[int, int]]:
    """``{SHA-256 of a tensor file's bytes: (offset in weights.pt, length)}`` for the uncompressed ones."""
    spans = {}
    with zipfile.ZipFile(io.BytesIO(weights)) as archive:
        for info in archive.infolist():
            if "/data/" not in info.filename or info.compress_type != zipfile.ZIP_STORED:
                continue
            header = info.header_offset
            name_len, extra_len = struct.unpack("<HH", weights[header + 26:header + 30])
            start = header + 30 + name_len + extra_len
            spans[hashlib.sha256(weights[start:start + info.file_size]).digest()] = (start, info.file_size)
    return spans


def share_weights(onnx_bytes: bytes, weights: bytes) -> bytes:
    """The graph with each weight tensor that ``weights`` (a weights.pt) holds as-is turned into a
    reference into it; unchanged (weights embedded) without the ``onnx`` package or a weights.pt zip."""
    try:
        import onnx
        from onnx import numpy_helper
        spans = _stored_tensors(weights)
    except (ImportError, zipfile.BadZipFile):
        return onnx_bytes
    model = onnx.load_from_string(onnx_bytes)
    shared = 0
    for tensor in model.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            continue
        array = numpy_helper.to_array(tensor)
        raw = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
        span = spans.get(hashlib.sha256(raw).digest()) if len(raw) >= _MIN_SHARED else None
        if span is None:
            continue
        name, dims, dtype = tensor.name, list(tensor.dims), tensor.data_type
        tensor.Clear()
        tensor.name, tensor.data_type = name, dtype
        tensor.dims.extend(dims)
        tensor.data_location = onnx.TensorProto.EXTERNAL
        for key, value in (("location", WEIGHTS_FILE), ("offset", str(span[0])), ("length", str(span[1]))):
            entry = tensor.external_data.add()
            entry.key, entry.value = key, value
        shared += 1
    if not shared:
        return onnx_bytes
    kept = [(p.key, p.value) for p in model.metadata_props if p.key != _DIGEST_KEY]
    del model.metadata_props[:]
    for key, value in kept:
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    entry = model.metadata_props.add()
    entry.key, entry.value = _DIGEST_KEY, hashlib.sha256(weights).hexdigest()
    return model.SerializeToString()


class OnnxForward:
    """``forward(x [B, 1, *patch]) -> logits [B, C, *patch]`` through ONNX Runtime (numpy in, numpy out;
    a torch tensor in gives a torch tensor out, for comparisons with the torch network).

    ``weights``: the bundle's weights.pt bytes, for a graph whose weights point into it.
    Session: every graph optimisation (constant folding, conv + norm + activation fusion,
    layout transforms), ``threads`` intra-op threads (default: all cores), sequential
    execution (a U-Net is a chain: parallel branches would only compete for the same
    cores). ``spinning``: worker threads busy-wait between operators. That shaves a little
    latency on an idle machine, but on a shared CPU the spinning threads steal time from the
    ones doing work (measured in benchmarks/results/onnx_inference.md), so it is off by
    default.
    """

    def __init__(self, onnx_bytes: bytes, *, weights: bytes | None = None, device: str = "cpu",
                 threads: int | None = None, spinning: bool = False) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise MissingExtraError("onnxruntime", "onnx") from None
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.intra_op_num_threads = threads or usable_cores()
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        options.log_severity_level = 3
        self._weights = None if weights is None else np.frombuffer(weights, np.uint8)  # kept alive with the session
        if self._weights is not None:
            options.add_external_initializers_from_files_in_memory([WEIGHTS_FILE], [self._weights],
                                                                  [len(self._weights)])
        digest = None if weights is None else hashlib.sha256(weights).hexdigest()
        if digest is not None and _DIGEST_KEY.encode() in onnx_bytes and digest.encode() not in onnx_bytes:
            # a quick look before the session: a graph pointing past the end of other weights fails to load at all
            raise _other_weights()
        providers = ["CPUExecutionProvider"]
        if device.startswith("cuda"):
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise RadsegError("--device cuda with --backend onnx needs onnxruntime-gpu")
            providers.insert(0, "CUDAExecutionProvider")
        try:
            self.session = ort.InferenceSession(onnx_bytes, options, providers=providers)
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
            raise RadsegError(f"ONNX Runtime cannot load the model's graph ({str(exc).splitlines()[0]})") from None
        expected = self.session.get_modelmeta().custom_metadata_map.get(_DIGEST_KEY)
        if expected is not None and digest != expected:  # the exact check, on the graph's own metadata
            raise _other_weights()
        self.input_name = self.session.get_inputs()[0].name
        self.input_shape = self.session.get_inputs()[0].shape

    def __call__(self, x: Any) -> Any:
        if isinstance(x, np.ndarray):
            (logits,) = self.session.run(None, {self.input_name: np.ascontiguousarray(x, dtype=np.float32)})
            return logits
        import torch

        array = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
        (logits,) = self.session.run(None, {self.input_name: array})
        return torch.from_numpy(logits).to(x.device)


def _other_weights() -> RadsegError:
    return RadsegError("the model's ONNX graph was exported from other weights than its weights.pt: "
                       "run `radseg export-onnx` on it again")
