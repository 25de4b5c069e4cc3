"""The models a server offers: a bundle, or every bundle in a folder, loaded once and reused.

``--model`` may name one model bundle (folder or ``.zip``, see :mod:`radseg.models.bundle`) or
a folder holding several; each becomes a choice on the page, named by its folder or zip
name. Without ``--model`` the page offers only :data:`LABELS_CHOICE`: the upload is taken
as a label map and measured as it is.
"""

from __future__ import annotations

import threading
from pathlib import Path

from radseg.errors import RadsegError
from radseg.image import Image
from radseg.models.bundle import model_path

__all__ = ["LABELS_CHOICE", "ModelCache", "find_models"]

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
        return f"{name}: {bundle.spatial_dims}D {bundle.architecture}, {bundle.head}, labels {labels}"

    def get(self, name: str):
        from radseg.infer.predictor import Predictor

        if name not in self.models:
            raise RadsegError(f"unknown model {name!r}; this server offers: {', '.join(self.models) or 'none'}")
        with self._lock:
            if name not in self._loaded:
                self._loaded[name] = Predictor.load(self.models[name], device=self.device, threads=self.threads)
            return self._loaded[name]

    def predict(self, name: str, image: Image, *, tta: bool = False) -> Image:
        """The label map of ``image`` by model ``name`` (TTA: left-right flip, sides swapped back)."""
        predictor = self.get(name)
        if image.ndim != predictor.spatial_dims:
            kind = "radiograph (2D)" if image.ndim == 2 else "volume (3D)"
            raise RadsegError(f"model {name!r} segments {predictor.spatial_dims}D images; the upload is a {kind}")
        with self._lock:  # one prediction at a time: the machine's cores are shared
            predictor.tta = bool(tta)
            try:
                return predictor.predict(image)
            except RadsegError:
                raise
            except (ValueError, RuntimeError) as exc:
                raise RadsegError(f"model {name!r} could not segment this image ({type(exc).__name__}: {exc})") from None
