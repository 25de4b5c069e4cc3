"""A trained model as one self-contained folder or zip, checked on load.

Layout (the same inside a ``.zip``)::

    model.json       format version, architecture + options, head, labels, preprocessing,
                     postprocessing, left/right pairs, and the SHA-256 of every file below
    weights.pt       the network's state_dict (loaded with ``weights_only=True``)
    manifest.json    how it was made: versions, data hash, training config, metrics
    model.onnx       optional, added by ``radseg export-onnx``: the network as an ONNX graph whose
                     weight tensors point into weights.pt (ONNX external data: offset and length
                     inside that file), so the weights are stored once (see radseg.infer.onnx)

An *ensemble* (``radseg models ensemble``, :mod:`radseg.models.ensemble`) is the same layout:
model.json says ``"members": K`` under its architecture, weights.pt holds the K networks' tensors
(keys ``members.<k>.``), and the network built returns their logits side by side, whose
probabilities the predictor averages. Such a bundle is
written as format 2, so a radseg that cannot run it says "upgrade" instead of failing on the weights.

Trained models that ship with radseg live in ``radseg/models/shipped/<name>.zip``; wherever a
model path is asked for, such a name (``-m fracatlas``) works too (:func:`model_path`).

Loading refuses a bundle whose files do not match their recorded hashes (a truncated copy,
an edited weight file) or whose format version is newer than this radseg understands.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from radseg.errors import ReadError, WriteError
from radseg.io.atomic import atomic_path, write_text_atomic
from radseg.models.preprocess import Preprocessing

__all__ = ["ModelBundle", "load_bundle", "model_path", "shipped_models", "FORMAT_VERSION", "HEADS"]

FORMAT = "radseg-model"
FORMAT_VERSION = 3  # the newest format this radseg reads
ENSEMBLE_FORMAT = 2  # what an ensemble is written as; a single network is still written as format 1
MIXED_FORMAT = 3  # an ensemble of one architecture with other options per member (older radseg refuses it)
HEADS = ("multiclass", "multilabel")
_CONFIG = "model.json"
_WEIGHTS = "weights.pt"
_MANIFEST = "manifest.json"
_ONNX = "model.onnx"
SHIPPED_DIR = Path(__file__).with_name("shipped")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class ModelBundle:
    """Everything needed to rebuild and run a trained network."""

    architecture: str
    spatial_dims: int
    in_channels: int
    arch_kwargs: dict[str, Any]
    head: str
    class_values: list[int]
    class_names: list[str]
    preprocessing: Preprocessing
    postprocessing: dict[str, Any] = field(default_factory=dict)
    mirror_pairs: list[tuple[int, int]] = field(default_factory=list)
    manifest: dict[str, Any] = field(default_factory=dict)
    state_dict: Any = None
    onnx_bytes: bytes | None = None
    #: weights.pt exactly as read or written (None until then); stands for ``state_dict`` while that is
    #: the dict it was read into or written from (assigning another dict makes a save serialise it anew)
    weights_bytes: bytes | None = None
    path: Path | None = None
    digest: str | None = None  # SHA-256 of the weights: identifies the model
    #: networks whose class probabilities are averaged (1: a plain network; see radseg.models.ensemble)
    members: int = 1
    #: an ensemble whose members are the same architecture with other options (widths): each member's;
    #: None when every member has ``arch_kwargs``
    member_kwargs: list[dict[str, Any]] | None = None

    def __post_init__(self) -> None:
        self._weights_of = self.state_dict if self.weights_bytes is not None else None
        if self.head not in HEADS:
            raise ValueError(f"head must be one of {', '.join(HEADS)}, got {self.head!r}")
        if len(self.class_values) != len(self.class_names):
            raise ValueError("class_values and class_names differ in length")
        if int(self.members) < 1:
            raise ValueError(f"members must be 1 or more, got {self.members}")
        if self.member_kwargs is not None and len(self.member_kwargs) != int(self.members):
            raise ValueError(f"{len(self.member_kwargs)} members' network options for {self.members} members")

    @property
    def out_channels(self) -> int:
        return len(self.class_values) + (1 if self.head == "multiclass" else 0)

    @property
    def kind(self) -> str:
        """The network in words: ``unet``, or ``ensemble of 3 unet`` (probabilities averaged)."""
        return f"ensemble of {self.members} {self.architecture}" if self.members > 1 else self.architecture

    @property
    def label_names(self) -> dict[int, str]:
        return dict(zip(self.class_values, self.class_names))

    def build_network(self, *, load_weights: bool = True):
        """The network in eval mode, with the bundle's weights (an ensemble: its members' logits stacked on the
        channel axis, :mod:`radseg.models.ensemble_network`; :func:`radseg.models.grid.activate` averages them)."""
        from radseg.models.registry import build

        def one(kwargs):
            return build(self.architecture, spatial_dims=self.spatial_dims, in_channels=self.in_channels,
                         out_channels=self.out_channels, patch_size=self.preprocessing.patch_size,
                         overrides=kwargs)

        if self.members > 1:
            from radseg.models.ensemble_network import EnsembleNetwork

            net = EnsembleNetwork([one(kwargs) for kwargs in self.member_kwargs or [self.arch_kwargs] * self.members])
        else:
            net = one(self.arch_kwargs)
        if load_weights:
            if self.load_weights() is None:
                raise ValueError("this bundle holds no weights")
            net.load_state_dict(self.state_dict)
        return net.eval()

    def config(self, files: dict[str, str]) -> dict[str, Any]:
        from radseg import __version__

        return {
            "format": FORMAT,
            "format_version": MIXED_FORMAT if self.member_kwargs else ENSEMBLE_FORMAT if self.members > 1 else 1,
            "radseg_version": __version__,
            "architecture": {"name": self.architecture, "spatial_dims": self.spatial_dims,
                             "in_channels": self.in_channels, "out_channels": self.out_channels,
                             "kwargs": self.arch_kwargs, **({"members": self.members} if self.members > 1 else {}),
                             **({"member_kwargs": self.member_kwargs} if self.member_kwargs else {})},
            "head": self.head,
            "labels": [{"value": int(v), "name": n} for v, n in zip(self.class_values, self.class_names)],
            "preprocessing": self.preprocessing.to_dict(),
            "postprocessing": self.postprocessing,
            "mirror_pairs": [list(p) for p in self.mirror_pairs],
            "files": files,
        }

    def load_weights(self) -> Any:
        """The state_dict (loaded from ``weights_bytes`` with torch when the bundle was read without it)."""
        if self.state_dict is None and self.weights_bytes is not None:
            self.state_dict = self._weights_of = _torch_load(self.weights_bytes, self.path)
        return self.state_dict

    # --- writing ------------------------------------------------------------------------
    def weights_payload(self) -> bytes:
        """weights.pt as it is (or will be) stored: the bytes read, else the state_dict serialised once.

        Kept byte for byte on a re-save, so the model's digest and the ONNX graph's references
        into weights.pt stay valid.
        """
        if self.weights_bytes is None or (self.state_dict is not None and self.state_dict is not self._weights_of):
            import torch

            buffer = io.BytesIO()
            torch.save({k: v.detach().cpu() for k, v in self.load_weights().items()}, buffer)
            self.weights_bytes, self._weights_of = buffer.getvalue(), self.state_dict
        return self.weights_bytes

    def _payload(self) -> dict[str, bytes]:
        files = {_WEIGHTS: self.weights_payload(),
                 _MANIFEST: json.dumps(self.manifest, indent=2, sort_keys=True, default=str).encode()}
        if self.onnx_bytes is not None:
            files[_ONNX] = self.onnx_bytes
        return files

    def save(self, path: str | Path) -> Path:
        """Write the bundle as a folder, or a zip when ``path`` ends in ``.zip`` (atomically)."""
        path = Path(path)
        files = self._payload()
        hashes = {name: sha256(data) for name, data in files.items()}
        config = json.dumps(self.config(hashes), indent=2).encode()
        if path.suffix.lower() == ".zip":
            with atomic_path(path) as tmp:
                with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
                    for name, data in files.items():
                        archive.writestr(name, data)
                    archive.writestr(_CONFIG, config)  # last: a zip without it is not a bundle
        else:
            if path.exists() and not path.is_dir():
                raise WriteError(path, "a model folder path exists and is a file")
            path.mkdir(parents=True, exist_ok=True)
            for name, data in files.items():
                with atomic_path(path / name) as tmp:
                    tmp.write_bytes(data)
            write_text_atomic(path / _CONFIG, config.decode())
        self.path, self.digest = path, hashes[_WEIGHTS]
        return path

    def add_onnx(self, onnx_bytes: bytes) -> Path:
        """Store an ONNX export in the bundle (rewrites model.json with its hash)."""
        if self.path is None:
            raise ValueError("save the bundle before adding an ONNX export")
        self.onnx_bytes = onnx_bytes
        return self.save(self.path)


def _read_members(path: Path) -> dict[str, bytes]:
    if path.is_dir():
        return {p.name: p.read_bytes() for p in path.iterdir()
                if p.is_file() and p.name in (_CONFIG, _WEIGHTS, _MANIFEST, _ONNX)}
    if not path.exists():
        raise ReadError(path, "no such model folder or zip")
    try:
        with zipfile.ZipFile(path) as archive:
            return {name: archive.read(name) for name in archive.namelist()
                    if name in (_CONFIG, _WEIGHTS, _MANIFEST, _ONNX)}
    except (zipfile.BadZipFile, OSError) as exc:
        raise ReadError(path, f"not a model folder or zip ({exc})") from None


def shipped_models() -> dict[str, Path]:
    """``{name: zip}`` of the trained models installed with radseg."""
    return {zip_path.stem: zip_path for zip_path in sorted(SHIPPED_DIR.glob("*.zip"))}


def model_path(value: str | Path) -> Path:
    """A bundle path as given, or the shipped model of that name when no such file exists."""
    path = Path(os.path.expanduser(str(value)))
    if path.exists():
        return path
    shipped = shipped_models()
    if str(value) in shipped:
        return shipped[str(value)]
    names = ", ".join(shipped) or "none"
    raise ReadError(path, f"no such model bundle (folder or .zip), nor a shipped model name (shipped: {names})")


def _torch_load(data: bytes, path: Path | None) -> Any:
    import torch

    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ReadError(path or "model", f"cannot load {_WEIGHTS} ({exc})") from None


def load_bundle(path: str | Path, *, weights: bool = True) -> ModelBundle:
    """Read and verify a bundle (a path or a shipped model's name): file hashes, format version, labels.

    ``weights=False`` leaves the state_dict unloaded (no torch import; the ONNX backend needs
    only the raw ``weights_bytes``); :meth:`ModelBundle.load_weights` loads it later.
    """
    path = model_path(path)
    members = _read_members(path)
    if _CONFIG not in members:
        raise ReadError(path, f"not a radseg model: no {_CONFIG} (train one with `radseg train`)")
    try:
        config = json.loads(members[_CONFIG])
    except ValueError as exc:
        raise ReadError(path, f"{_CONFIG} is not valid JSON ({exc})") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ReadError(path, f"{_CONFIG} is not a radseg model description")
    try:
        version = int(config.get("format_version", 0))
    except (TypeError, ValueError):
        raise ReadError(path, f"{_CONFIG}: format_version {config.get('format_version')!r} is not a number") from None
    if version > FORMAT_VERSION:
        raise ReadError(path, f"model format {version} is newer than this radseg understands "
                              f"({FORMAT_VERSION}); upgrade radseg")
    files = config.get("files") or {}
    if not isinstance(files, dict) or _WEIGHTS not in files:
        raise ReadError(path, "model.json lists no weights")
    if _WEIGHTS not in members:
        raise ReadError(path, f"{_WEIGHTS} is missing: the bundle holds no weights (copy the whole folder or zip)")
    for name, expected in files.items():
        if name not in members:
            raise ReadError(path, f"{name} is missing (listed in {_CONFIG})")
        if sha256(members[name]) != expected:
            raise ReadError(path, f"{name} does not match its recorded SHA-256: the file is damaged or was changed")
    arch = config.get("architecture")
    if not isinstance(arch, dict) or "name" not in arch:
        raise ReadError(path, f"{_CONFIG} names no architecture")
    from radseg.models.registry import ARCHITECTURES

    if arch["name"] not in ARCHITECTURES:
        raise ReadError(path, f"{ARCHITECTURES.unknown_message(str(arch['name']))} (made by a newer or other "
                              "radseg? upgrade radseg or retrain)")
    try:
        manifest = json.loads(members[_MANIFEST]) if _MANIFEST in members else {}
    except ValueError as exc:
        raise ReadError(path, f"{_MANIFEST} is not valid JSON ({exc})") from None
    state = _torch_load(members[_WEIGHTS], path) if weights else None
    try:
        bundle = ModelBundle(
            architecture=arch["name"], spatial_dims=int(arch["spatial_dims"]), in_channels=int(arch["in_channels"]),
            arch_kwargs=dict(arch.get("kwargs") or {}), head=config["head"],
            class_values=[int(c["value"]) for c in config["labels"]], class_names=[str(c["name"]) for c in config["labels"]],
            preprocessing=Preprocessing.from_dict(config["preprocessing"]),
            postprocessing=dict(config.get("postprocessing") or {}),
            mirror_pairs=[tuple(p) for p in config.get("mirror_pairs") or []],
            manifest=manifest if isinstance(manifest, dict) else {},
            state_dict=state, onnx_bytes=members.get(_ONNX), weights_bytes=members[_WEIGHTS], path=path,
            digest=files[_WEIGHTS], members=int(arch.get("members", 1)),
            member_kwargs=[dict(k) for k in arch["member_kwargs"]] if arch.get("member_kwargs") else None,
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ReadError(path, f"{_CONFIG} is incomplete or invalid ({exc})") from None
    if bundle.out_channels != int(arch.get("out_channels", bundle.out_channels)):
        raise ReadError(path, "the label table does not match the network's output channels")
    return bundle
