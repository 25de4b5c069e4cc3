"""Label maps and multi-label masks as NumPy files: ``.npy`` with a JSON sidecar, or ``.npz``.

A multi-label mask is stored as a bool array with the classes first, ``[C, ...]``, as
CXAS stores its masks; a label map as its integer array. Everything else (kind, class
names and values, the affine, whether the spacing is known) goes in

* ``<stem>.json`` next to ``<stem>.npy`` (a ``.npy`` file holds one array and nothing else);
* the ``.npz`` itself: arrays ``masks`` or ``labels``, ``class_names``, ``class_values``,
  ``affine``, ``spacing_known``.

Files are read with ``allow_pickle=False``: names are stored as fixed-width unicode
arrays, never as Python objects, so reading a file cannot run code.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from radseg.errors import ReadError, WriteError
from radseg.image import Image
from radseg.io.atomic import atomic_path, full_suffix, strip_suffix, write_text_atomic
from radseg.labels import is_multilabel, label_names, make_label_map, make_multilabel, require_label_map

__all__ = ["write_npy", "read_npy", "write_npz", "read_npz", "sidecar_path"]

_FORMAT = "radseg-labels"


def sidecar_path(path: str | Path) -> Path:
    """``<stem>.json`` beside ``<stem>.npy``: where :func:`write_npy` keeps names and geometry."""
    path = Path(path)
    return path.with_name(strip_suffix(path) + ".json")


def _split(labels: Image, path: Path) -> tuple[str, np.ndarray, list[str], list[int]]:
    """(kind, array as stored, class names, class values)."""
    if is_multilabel(labels):
        names = [str(n) for n in labels.metadata["class_names"]]
        stack = np.moveaxis(labels.array.astype(bool), -1, 0)  # classes first, as CXAS
        return "multilabel", np.ascontiguousarray(stack), names, list(range(1, len(names) + 1))
    label_map = require_label_map(labels, path)
    table = label_names(label_map)
    return "label_map", label_map.array, list(table.values()), list(table)


def _check_suffix(path: Path, suffix: str) -> None:
    if full_suffix(path) != suffix:
        raise WriteError(path, f"expected a {suffix} file name, got {full_suffix(path) or '(no suffix)'}")


def write_npy(labels: Image, path: str | Path) -> list[Path]:
    """Write the label array to ``path`` (.npy) and its description to ``<stem>.json``.

    Returns ``[npy, json]``. The array is written first and the sidecar last, each
    atomically, so a sidecar always describes a complete array.
    """
    path = Path(path)
    _check_suffix(path, ".npy")
    kind, array, names, values = _split(labels, path)
    sidecar = {
        "format": _FORMAT, "version": 1, "kind": kind,
        "axes": "classes first [C, ...]" if kind == "multilabel" else "[row, col] or [slice, row, col]",
        "class_names": names, "class_values": [int(v) for v in values],
        "affine": labels.affine.tolist(), "spacing_known": bool(labels.metadata.get("spacing_known", True)),
    }
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.save(handle, array, allow_pickle=False)  # a handle: numpy must not pick the file name
    json_path = sidecar_path(path)
    write_text_atomic(json_path, json.dumps(sidecar, indent=1, ensure_ascii=False))
    return [path, json_path]


def _build(kind: str, array: np.ndarray, names: list[str], values: list[int], affine: Any,
           spacing_known: bool, path: Path, fmt: str) -> Image:
    meta = {"format": fmt, "source_files": [str(path)], "spacing_known": spacing_known, "problems": []}
    if kind == "multilabel":
        if array.ndim < 3 or array.shape[0] != len(names):
            raise ReadError(path, f"{len(names)} class names for an array of shape {array.shape} (classes first)")
        if array.dtype != bool and not np.isin(array, (0, 1)).all():
            raise ReadError(path, "a multi-label mask must hold 0/1 values")
        like = Image(np.broadcast_to(np.zeros((), bool), array.shape[1:]), affine=affine, metadata=meta)
        image = make_multilabel(array, names, like=like)
        image.metadata["class_values"] = [int(v) for v in values]
        return image
    if kind != "label_map":
        raise ReadError(path, f"unknown label kind {kind!r}")
    if len(names) != len(values):
        raise ReadError(path, f"{len(names)} class names but {len(values)} class values")
    if array.dtype.kind not in "uib":
        raise ReadError(path, f"a label map must be integer, got {array.dtype}")
    return make_label_map(Image(array, affine=affine, metadata=meta), dict(zip(values, names)))


def _build_checked(kind, array, names, values, affine, spacing_known, path: Path, fmt: str) -> Image:
    """:func:`_build`, with any inconsistency reported as a ReadError naming the file."""
    try:
        return _build(kind, array, names, values, affine, spacing_known, path, fmt)
    except ReadError:
        raise
    except ValueError as exc:
        raise ReadError(path, f"array and class table disagree ({exc})") from None


def read_npy(path: str | Path) -> Image:
    """Read a ``.npy`` written by :func:`write_npy`, restoring kind, names and geometry.

    Without its sidecar the array comes back as a plain Image with radseg's default 1 mm
    geometry and ``spacing_known`` False (a CXAS ``[C, H, W]`` file cannot say its names).
    """
    path = Path(path)
    try:
        array = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise ReadError(path, "no such file") from None
    except (OSError, ValueError) as exc:
        raise ReadError(path, f"not a readable .npy file ({exc})") from None
    json_path = sidecar_path(path)
    if not json_path.is_file():
        if array.ndim not in (2, 3, 4):
            raise ReadError(path, f"array of shape {array.shape} is not an image (no sidecar {json_path.name})")
        meta = {"format": "npy", "source_files": [str(path)],
                "problems": [f"no sidecar {json_path.name}: no class names, 1 mm geometry assumed"]}
        return Image(array, metadata=meta)  # Image without spacing sets spacing_known False
    try:
        side = json.loads(json_path.read_text(encoding="utf-8"))
        if side.get("format") != _FORMAT:
            raise ValueError(f"format is {side.get('format')!r}, not {_FORMAT!r}")
        kind, names, values = side["kind"], [str(n) for n in side["class_names"]], [int(v) for v in side["class_values"]]
        affine, spacing_known = np.asarray(side["affine"], float), bool(side.get("spacing_known", True))
    except (ValueError, KeyError, TypeError) as exc:
        raise ReadError(json_path, f"not a radseg label sidecar ({exc})") from None
    return _build_checked(kind, array, names, values, affine, spacing_known, path, "npy")


def write_npz(labels: Image, path: str | Path) -> Path:
    """Write labels, class names and values, and the affine into one compressed ``.npz``."""
    path = Path(path)
    _check_suffix(path, ".npz")
    kind, array, names, values = _split(labels, path)
    arrays = {
        "masks" if kind == "multilabel" else "labels": array,
        "class_names": np.array(names, dtype=str) if names else np.zeros(0, dtype="<U1"),
        "class_values": np.asarray(values, dtype=np.int64),
        "affine": np.asarray(labels.affine, dtype=np.float64),
        "spacing_known": np.array(bool(labels.metadata.get("spacing_known", True))),
    }
    buffer = io.BytesIO()  # compress in memory first: an error while compressing touches no file
    np.savez_compressed(buffer, **arrays)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getvalue())
    return path


def read_npz(path: str | Path) -> Image:
    """Read a ``.npz`` written by :func:`write_npz` (a label map or a multi-label mask)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            contents = {key: data[key] for key in data.files}
    except FileNotFoundError:
        raise ReadError(path, "no such file") from None
    except (OSError, ValueError) as exc:
        raise ReadError(path, f"not a readable .npz file ({exc})") from None
    if ("masks" in contents) == ("labels" in contents):
        raise ReadError(path, f"expected one array named 'masks' or 'labels', found {sorted(contents)}")
    kind = "multilabel" if "masks" in contents else "label_map"
    array = contents["masks" if kind == "multilabel" else "labels"]
    spatial = array.ndim - (1 if kind == "multilabel" else 0)
    affine = contents.get("affine")
    if affine is None:
        affine = Image(np.broadcast_to(np.zeros((), bool), array.shape[-spatial:])).affine
    names = [str(n) for n in contents.get("class_names", np.zeros(0, str)).tolist()]
    values = [int(v) for v in contents.get("class_values", np.zeros(0, int)).tolist()]
    spacing_known = bool(contents["spacing_known"]) if "spacing_known" in contents else "affine" in contents
    return _build_checked(kind, array, names, values, affine, spacing_known, path, "npz")
