"""Load a trained model once, segment many images: ``Predictor.load(path).predict(image)``.

Per image: preprocessing from the bundle (canonical axes, resampling, intensity), the
network on the whole image (fit mode) or by Gaussian-weighted sliding window, optional
left-right flip TTA, class probabilities resampled back to the input grid (linear, one
channel at a time so a large CT does not need all class volumes at once), argmax
(multi-class) or > threshold (multi-label, default 0.5), then optional clean-ups. The result is a label map
(or multi-label mask) on exactly the input's grid, carrying its metadata (so a DICOM
input's source files are there for the DICOM-SEG writer) and the model's label names.

Backends: ``torch`` (the network as a torch module; CPU or CUDA) and ``onnx`` (the bundle's
ONNX graph through ONNX Runtime). The onnx path imports neither torch nor MONAI: bundle
reading, preprocessing, the sliding window, TTA and the clean-ups are numpy/scipy code that
the torch path shares. ``auto`` picks onnx when the bundle carries a graph, onnxruntime is
installed and no GPU is asked for or present (a GPU machine keeps torch on CUDA), else torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from radseg.errors import RadsegError, ReadError
from radseg.image import Image
from radseg.models.bundle import ModelBundle, load_bundle
from radseg.models.mirror import LR_AXIS, mirror_permutation
from radseg.models.preprocess import prepare
from radseg.system import usable_cores

__all__ = ["Predictor", "choose_backend", "prepare_input", "BACKENDS"]

BACKENDS = ("auto", "torch", "onnx")


def _gpu_present() -> bool:
    """An NVIDIA GPU on this machine (device nodes of its driver), found without importing torch."""
    return Path("/dev/nvidia0").exists() or Path("/dev/nvidiactl").exists()


def choose_backend(bundle: ModelBundle, backend: str = "auto", device: str = "auto") -> str:
    """``backend`` itself unless ``auto``: then onnx when the bundle has a graph, onnxruntime is
    installed and the device is the CPU (``cpu``, or ``auto`` on a machine without a GPU), else torch."""
    if backend not in BACKENDS:
        raise RadsegError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend != "auto":
        return backend
    from radseg.infer.onnx import onnx_available

    cpu = device == "cpu" or (device == "auto" and not _gpu_present())
    return "onnx" if bundle.onnx_bytes is not None and cpu and onnx_available() else "torch"


def prepare_input(image: Image, preprocessing) -> tuple:
    """``(network input, GridMap)`` of ``image`` under a bundle's ``Preprocessing``; an image the
    preprocessing cannot take is a RadsegError."""
    try:
        return prepare(image, preprocessing)
    except ValueError as exc:
        raise RadsegError(str(exc)) from None


class Predictor:
    """A loaded model plus its inference options."""

    def __init__(self, bundle: ModelBundle, *, device: str = "auto", backend: str = "torch", tta: bool = False,
                 overlap: float = 0.5, sw_batch_size: int = 2, postprocess: dict[str, Any] | None = None,
                 threads: int | None = None, threshold: float = 0.5) -> None:
        backend = choose_backend(bundle, backend, device)
        if not 0.0 <= overlap < 1.0:
            raise RadsegError(f"overlap must be in [0, 1), got {overlap}")
        self.bundle, self.backend, self.tta = bundle, backend, tta
        if not 0.0 < threshold < 1.0:
            raise RadsegError(f"threshold must be in (0, 1), got {threshold}")
        self.overlap, self.sw_batch_size, self.threshold = overlap, sw_batch_size, float(threshold)
        self.postprocessing = {**bundle.postprocessing, **(postprocess or {})}
        if backend == "onnx":
            from radseg.infer.onnx import OnnxForward, onnx_device

            if bundle.onnx_bytes is None:
                raise RadsegError(f"{bundle.path}: the model has no ONNX export; run `radseg export-onnx {bundle.path}`")
            self.device = onnx_device(device)
            self.forward = OnnxForward(bundle.onnx_bytes, weights=bundle.weights_bytes, device=self.device,
                                       threads=threads)
        else:
            import torch

            from radseg.models.cpu import resolve_device

            torch.set_num_threads(threads or usable_cores())
            self.device = resolve_device(device)
            try:
                self.forward = bundle.build_network().to(self.device)
            except (RuntimeError, ValueError, KeyError) as exc:  # weights that do not fit, options the network refuses
                first = (str(exc).splitlines() or [type(exc).__name__])[0]
                raise ReadError(bundle.path or "model", f"the network cannot be built from this bundle ({first})") from None
        self.channel_perm = mirror_permutation(bundle.mirror_pairs, bundle.class_values,
                                               background=bundle.head == "multiclass")

    @classmethod
    def load(cls, model_path: str | Path, **options: Any) -> "Predictor":
        """Load (and verify) a model bundle folder or zip; options as for the constructor.

        The weights are loaded (with torch) only for the torch backend. The models shipped with
        radseg carry their ONNX graph; a shipped zip without one (an older install) gets one
        exported in memory for ``backend="onnx"`` (needs torch, a few seconds).
        """
        from radseg.models.bundle import SHIPPED_DIR

        bundle = load_bundle(model_path, weights=False)
        if options.get("backend", "torch") == "onnx" and bundle.onnx_bytes is None and bundle.path is not None \
                and bundle.path.resolve().parent == SHIPPED_DIR.resolve():
            from radseg.infer.onnx import export_onnx

            bundle.onnx_bytes = export_onnx(bundle, store=False)
        return cls(bundle, **options)

    @property
    def flips_allowed(self) -> bool:
        """False for a model trained without left-right flips (its manifest says flip_lr false)."""
        return (self.bundle.manifest or {}).get("config", {}).get("flip_lr") is not False

    @property
    def settings(self) -> dict[str, Any]:
        """Everything besides the weights that changes the output (a resumed batch must match it).

        The backend is here because ONNX Runtime's arithmetic differs from torch's in the last bits
        (a pixel on a class boundary may flip); the threshold cuts a multi-label model's probabilities.
        """
        return {"backend": self.backend, "tta": bool(self.tta), "overlap": float(self.overlap),
                "threshold": self.threshold,
                "postprocessing": {k: self.postprocessing[k] for k in sorted(self.postprocessing)}}

    @property
    def scores_images(self) -> bool:
        """Whether :meth:`predict` attaches an image score (``metadata["image_score"]``): a model of one finding."""
        return len(self.bundle.class_values) == 1

    @property
    def image_score_window(self) -> int:
        """The square (pixels) the image score averages over: the one the model's operating point was
        chosen with, else :data:`radseg.evaluate.detection.IMAGE_SCORE_WINDOW`."""
        from radseg.evaluate.detection import IMAGE_SCORE_WINDOW  # here, not at the top: keeps `segment`'s start light
        from radseg.evaluate.operating_point import model_operating_point

        point = model_operating_point(self.bundle.manifest) or {}  # a usable point's window is a whole number >= 1
        return int(point.get("window", IMAGE_SCORE_WINDOW))

    @property
    def label_names(self) -> dict[int, str]:
        return self.bundle.label_names

    @property
    def spatial_dims(self) -> int:
        return self.bundle.spatial_dims

    def prepare(self, image: Image):
        """``(network input, GridMap)``: the bundle's preprocessing of ``image`` (needs no network, so a
        batch may run it on other workers, :func:`prepare_input`, and hand the result to :meth:`predict`)."""
        return prepare_input(image, self.bundle.preprocessing)

    def probabilities(self, image: Image, prepared=None):
        """``(probabilities [C, *grid], GridMap)`` on the network grid: a numpy array (onnx backend)
        or a CPU torch tensor (torch backend). ``prepared``: :meth:`prepare`'s result, when done already."""
        from radseg.models.grid import grid_probabilities

        pre = self.bundle.preprocessing
        if self.tta and not self.flips_allowed:
            raise RadsegError("this model was trained without left-right flips (a mirrored PA chest is not a chest), "
                              "so flip test-time augmentation would feed it images it never saw: run it without --tta")
        x, grid = prepared if prepared is not None else self.prepare(image)
        if self.backend == "onnx":
            batch = x[None]
        else:
            import torch

            batch = torch.from_numpy(x)[None].to(self.device)
        probs = grid_probabilities(self.forward, batch, head=self.bundle.head, patch_size=pre.patch_size,
                                   whole=pre.mode == "fit", overlap=self.overlap, sw_batch_size=self.sw_batch_size,
                                   tta=self.tta, lr_axis=LR_AXIS[pre.spatial_dims], channel_perm=self.channel_perm,
                                   members=self.bundle.members)
        return (probs[0] if self.backend == "onnx" else probs[0].float().cpu()), grid

    def predict(self, image: Image, prepared=None) -> Image:
        """The label map (or multi-label mask) of ``image``, on its grid, with label names
        (``prepared``: :meth:`prepare`'s result for ``image``, when a reader made it already)."""
        from radseg.labels import make_label_map, make_multilabel

        probs, grid = self.probabilities(image, prepared)
        values = self.bundle.class_values
        if self.bundle.head == "multilabel":
            restored = [grid.restore_channel(probs[c]) for c in range(len(values))]
            stack = np.stack([self._clean((p > self.threshold).astype(np.uint8), [1]) > 0 for p in restored])
            out = make_multilabel(stack, self.bundle.class_names, like=image)
            out.metadata["class_values"] = list(values)
            out.metadata["model"] = self.bundle.digest
            # Mean probability inside each delivered mask: the quality checks read it.
            out.metadata["class_confidence"] = {
                n: float(p[m].mean()) if m.any() else 0.0 for n, p, m in zip(self.bundle.class_names, restored, stack)}
            if self.scores_images:  # one finding: the image's score, as evaluate-detection scores it
                from radseg.evaluate.detection import image_score

                out.metadata["image_score"] = image_score(restored[0], window=self.image_score_window)
            return out
        best = grid.restore_channel(probs[0])  # background
        index = np.zeros(grid.original_shape, np.uint8 if len(values) < 255 else np.uint16)
        for channel in range(1, probs.shape[0]):
            restored = grid.restore_channel(probs[channel])
            better = restored > best
            index[better] = channel
            best = np.where(better, restored, best)
            if self.scores_images:  # one finding (a fracture): the image's score, as evaluate-detection scores it
                from radseg.evaluate.detection import image_score

                score = image_score(restored, window=self.image_score_window)
        lut = np.array([0, *values], dtype=np.uint8 if max(values, default=0) < 256 else np.uint16)
        labels = self._clean(lut[index], values)
        base = Image(labels, affine=image.affine, metadata={**image.metadata, "model": self.bundle.digest})
        out = make_label_map(base, self.label_names)
        if self.scores_images:
            out.metadata["image_score"] = score
        return out

    def _clean(self, labels: np.ndarray, values) -> np.ndarray:
        from radseg.infer.postprocess import postprocess

        return postprocess(labels, largest=self.postprocessing.get("largest_component", False),
                           holes=self.postprocessing.get("fill_holes", False))
