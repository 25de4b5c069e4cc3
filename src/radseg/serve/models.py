"""The models a server offers: a bundle, or every bundle in a folder, loaded once and reused.

``--model`` may name one model bundle (folder or ``.zip``, see :mod:`radseg.models.bundle`) or
a folder holding several; each becomes a choice on the page, named by its folder or zip
name. Without ``--model`` the page offers only :data:`LABELS_CHOICE`: the upload is taken
as a label map and measured as it is.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from radseg.errors import RadsegError
from radseg.image import Image
from radseg.models.bundle import model_path

__all__ = ["LABELS_CHOICE", "ModelCache", "ModelCard", "find_models", "model_card"]

#: The choice that runs no model: the upload is a label map.
LABELS_CHOICE = "none: the upload is a label map"
_CONFIG = "model.json"


def _is_bundle(path: Path) -> bool:
    if path.is_dir():
        return (path / _CONFIG).is_file()
    if path.suffix.lower() == ".zip" and path.is_file():
        import zipfile

        try:
            with zipfile.ZipFile(path) as archive:
                return _CONFIG in archive.namelist()
        except (zipfile.BadZipFile, OSError):
            return False
    return False


def find_models(path: str | Path | None) -> dict[str, Path]:
    """``{name: bundle path}`` for ``path`` (one bundle, or a folder of bundles one level down)."""
    if path is None:
        return {}
    path = model_path(path)  # a ReadError (a RadsegError) names the path and the shipped names
    if _is_bundle(path):
        return {_name(path): path}
    if path.is_dir():
        found = {}
        for child in sorted(path.iterdir()):
            if _is_bundle(child):
                found[_unique(_name(child), found)] = child
            elif child.is_dir() and (child / "model" / _CONFIG).is_file():  # a training run folder
                found[_unique(child.name, found)] = child / "model"
        if found:
            return found
    raise RadsegError(f"{path}: not a model bundle (folder with model.json, or .zip) nor a folder holding any")


def _name(path: Path) -> str:
    name = path.name[:-4] if path.suffix.lower() == ".zip" else path.name
    if name == "model" and path.parent.name:  # runs/<name>/model
        name = path.parent.name
    return name


def _unique(name: str, taken: dict) -> str:
    candidate, n = name, 2
    while candidate in taken:
        candidate, n = f"{name}-{n}", n + 1
    return candidate


class ModelCache:
    """Loads each model on first use (checked against its hashes) and runs one prediction at a time."""

    def __init__(self, models: dict[str, Path], *, device: str = "auto", threads: int | None = None) -> None:
        self.models = dict(models)
        self.device, self.threads = device, threads
        self._loaded: dict[str, object] = {}
        self._lock = threading.Lock()

    @property
    def names(self) -> list[str]:
        return list(self.models)

    def describe(self, name: str) -> str:
        predictor = self.get(name)
        bundle = predictor.bundle
        labels = ", ".join(f"{v}={n}" for v, n in bundle.label_names.items())
        return f"{name}: {bundle.spatial_dims}D {bundle.kind}, {bundle.head}, labels {labels}"

    def get(self, name: str):
        from radseg.infer.predictor import Predictor

        if name not in self.models:
            raise RadsegError(f"unknown model {name!r}; this server offers: {', '.join(self.models) or 'none'}")
        with self._lock:
            if name not in self._loaded:
                self._loaded[name] = Predictor.load(self.models[name], device=self.device, threads=self.threads)
            return self._loaded[name]

    def tta_default(self, name: str) -> bool:
        """Whether the page ticks flip TTA for model ``name``: as its operating point was chosen, so the
        image-score threshold it shows applies; False for any other name. The loaded model's manifest when it
        is loaded, else the bundle read without its weights (their files are still hashed)."""
        from radseg.evaluate.operating_point import operating_point_tta
        from radseg.models.bundle import load_bundle

        if name not in self.models:
            return False
        if name in self._loaded:
            return operating_point_tta(self._loaded[name].bundle.manifest)
        try:
            return operating_point_tta(load_bundle(self.models[name], weights=False).manifest)
        except (RadsegError, OSError):  # an unreadable bundle fails with its own message when it is run
            return False

    def card(self, name: str) -> "ModelCard":
        """What the page says about model ``name``'s results (see :func:`model_card`)."""
        predictor = self.get(name)
        return model_card(predictor.bundle.manifest or {}, predictor.bundle)

    def predict(self, name: str, image: Image, *, tta: bool = False) -> Image:
        """The label map of ``image`` by model ``name`` (TTA: left-right flip, sides swapped back)."""
        return self.predict_scored(name, image, tta=tta)[0]

    def predict_scored(self, name: str, image: Image, *, tta: bool = False) -> tuple[Image, float | None]:
        """``(label map, image score)``: the score (:func:`radseg.evaluate.detection.image_score` of the
        foreground probability, as ``radseg evaluate-detection`` and ``radseg segment`` score images,
        computed by :meth:`Predictor.predict`) for a detection-like model (see :func:`model_card`), else None."""
        predictor = self.get(name)
        card = self.card(name)
        if image.ndim != predictor.spatial_dims:
            kind = "radiograph (2D)" if image.ndim == 2 else "volume (3D)"
            raise RadsegError(f"model {name!r} segments {predictor.spatial_dims}D images; the upload is a {kind}")
        with self._lock:  # one prediction at a time: the machine's cores are shared
            predictor.tta = bool(tta)
            try:
                labels = predictor.predict(image)
            except RadsegError:
                raise
            except (ValueError, RuntimeError) as exc:
                raise RadsegError(f"model {name!r} could not segment this image ({type(exc).__name__}: {exc})") from None
        score = labels.metadata.get("image_score") if card.detection else None
        return labels, score


@dataclass
class ModelCard:
    """A model's intended use, validation figures and, for a detection-like model, the image-score threshold."""

    intended_use: str
    validation: str
    detection: bool = False
    threshold: float = 0.5
    finding: str = "finding"
    #: How the threshold was chosen, e.g. "for sensitivity 0.85 on the holdout split (...): specificity 0.62"
    operating_point: str = ""

    def lines(self) -> list[str]:
        lines = [f"Intended use: {self.intended_use}", f"Validation: {self.validation}"]
        if self.detection:
            lines.append(f"Image-score threshold {self.threshold:.3f}: "
                         + (self.operating_point or "not chosen on data (the default 0.5)"))
        return lines


_NOT_DIAGNOSTIC = "research model, not a diagnostic device"


def model_card(manifest: dict, bundle=None) -> ModelCard:
    """The card of a bundle from its manifest: ``intended_use`` (else the summary's "not a diagnostic
    device", else the default :data:`_NOT_DIAGNOSTIC`); validation figures from ``valid_scores`` /
    ``test_scores`` / ``metrics``; detection-like when the manifest has an image-level AUC or the
    model has one foreground class (a finding, as FracAtlas's ``fractured``), with the threshold of
    its ``operating_point`` (chosen on training data: ``radseg evaluate-detection --split holdout
    --save-operating-point``), else ``detection_threshold``, else 0.5."""
    use = str(manifest.get("intended_use") or "").strip()
    if not use:
        summary = str(manifest.get("summary") or "")
        use = _NOT_DIAGNOSTIC + (" (as its manifest says)" if "not a diagnostic device" in summary
                                 else " (its manifest states no intended use)")
    elif "diagnostic" not in use:
        use = f"{use}; {_NOT_DIAGNOSTIC}"
    figures = []
    for key, where in (("valid_scores", "validation split"), ("test_scores", "held-out test")):
        scores = manifest.get(key)
        if isinstance(scores, dict):
            items = [f"{k} {v:.3g}" for k, v in scores.items() if isinstance(v, (int, float))][:6]
            if items:
                figures.append(f"{where}: {', '.join(items)}")
    metrics = manifest.get("metrics") or {}
    if not figures and isinstance(metrics.get("best_val_dice"), (int, float)):
        figures.append(f"validation Dice {metrics['best_val_dice']:.3g} (checkpoint choice)")
    validation = "; ".join(figures) or "none recorded in the bundle's manifest"
    names = dict(getattr(bundle, "label_names", {}) or {})
    single = len(names) == 1 and getattr(bundle, "head", "") != "multilabel"
    has_auc = isinstance(manifest.get("valid_scores"), dict) and "auc" in manifest["valid_scores"]
    from radseg.evaluate.operating_point import model_operating_point

    point, described = model_operating_point(manifest), ""
    if point is not None:
        threshold = point["threshold"]
        described = (f"chosen for sensitivity {point.get('target_sensitivity', float('nan')):.2f} on "
                     f"{point.get('chosen_on', 'training data')}, where it gave sensitivity "
                     f"{point.get('sensitivity', float('nan')):.2f} and specificity {point.get('specificity', float('nan')):.2f}"
                     + (" (scores with flip TTA, ticked for this model: untick it and the threshold no longer applies)"
                        if point.get("tta") else ""))
    else:
        threshold = manifest.get("detection_threshold", 0.5)
        if isinstance(threshold, (int, float)) and "detection_threshold" in manifest:
            described = "from the model's manifest (detection_threshold)"
    return ModelCard(use, validation, detection=bool(single or has_auc),
                     threshold=float(threshold) if isinstance(threshold, (int, float)) else 0.5,
                     finding=next(iter(names.values()), "finding"), operating_point=described)
