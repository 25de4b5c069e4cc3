"""ONNX export of a bundle's network, and an ONNX Runtime forward with the torch one's interface.

The export has a fixed spatial size (the model's patch size: whole images in fit mode,
windows otherwise) and a dynamic batch axis, so the sliding window runs unchanged on
either backend. The exported file goes into the bundle (``model.onnx``, hashed like the
weights), so ``--backend onnx`` needs nothing else.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from radseg.errors import MissingExtraError, RadsegError
from radseg.models.bundle import ModelBundle

__all__ = ["export_onnx", "OnnxForward", "onnx_available"]

OPSET = 18


def onnx_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def export_onnx(bundle: ModelBundle, *, store: bool = True) -> bytes:
    """Export the bundle's network to ONNX; with ``store`` add it to the saved bundle."""
    net = bundle.build_network()
    example = torch.zeros(2, bundle.in_channels, *bundle.preprocessing.patch_size)
    data = _export(net, example)
    if store:
        bundle.add_onnx(data)
    return data


def _export(net: torch.nn.Module, example: torch.Tensor) -> bytes:
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


class OnnxForward:
    """``forward(tensor [B, 1, *patch]) -> logits tensor`` through ONNX Runtime.

    Session: every graph optimisation (constant folding, conv + norm + activation fusion,
    layout transforms), ``threads`` intra-op threads (default: all cores), sequential
    execution (a U-Net is a chain: parallel branches would only compete for the same
    cores). ``spinning``: worker threads busy-wait between operators. That shaves a little
    latency on an idle machine, but on a shared CPU the spinning threads steal time from the
    ones doing work (measured in benchmarks/results/onnx_inference.md), so it is off by
    default.
    """

    def __init__(self, onnx_bytes: bytes, *, device: str = "cpu", threads: int | None = None,
                 spinning: bool = False) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise MissingExtraError("onnxruntime", "onnx") from None
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.intra_op_num_threads = threads or os.cpu_count() or 1
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        options.log_severity_level = 3
        providers = ["CPUExecutionProvider"]
        if device.startswith("cuda"):
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise RadsegError("--device cuda with --backend onnx needs onnxruntime-gpu")
            providers.insert(0, "CUDAExecutionProvider")
        self.session = ort.InferenceSession(onnx_bytes, options, providers=providers)
        self.input_name = self.session.get_inputs()[0].name
        self.input_shape = self.session.get_inputs()[0].shape

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
        (logits,) = self.session.run(None, {self.input_name: array})
        return torch.from_numpy(logits).to(x.device)
