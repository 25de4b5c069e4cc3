"""Training data: the prepared-dataset folder contract, and in-memory cases.

A **prepared dataset** is a folder::

    PREPARED/
      images/<case>.<ext>     any image radseg.io.read reads (NIfTI, DICOM file, PNG, MHA ...;
                              a DICOM series is a sub-folder images/<case>/)
      labels/<case>.<ext>     its label map, any format radseg.io.read_labels reads (NIfTI,
                              label PNG, NPY/NPZ, COCO JSON, DICOM-SEG, CXAS class folders)
      dataset.json            optional, nnU-Net-like:
        {"name": "hip-xray",
         "labels": {"1": "right acetabulum", ...}   (or nnU-Net's {"background": 0, "name": 1, ...}),
         "modality": "XR" | "CT",
         "preset": "hip-xray",                     (a radseg task preset, see `radseg models list`)
         "window": [low, high],                    (intensity window, e.g. HU; optional)
         "splits": {"train": [case, ...], "val": [...], "test": [...]}}

Cases pair by file name without the format suffix (``case.nii.gz`` with ``case.png`` is
fine); nnU-Net's ``imagesTr``/``labelsTr`` folders and ``_0000`` channel suffix are accepted
too. Labels must lie on their image's grid (same shape; affines within 1e-3 mm, or equal up
to axis order, which is reordered). A case that cannot be read is reported and skipped.
``test`` cases are never used for training or validation.

In Python, :func:`from_pairs` takes ``(image, labels)`` Image pairs (e.g. phantoms made in
memory) and returns the same :class:`TrainData`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from radseg.errors import ReadError
from radseg.image import Image, align_axes

__all__ = ["TrainCase", "TrainData", "load_prepared", "from_pairs", "split_cases", "data_hash"]

_IMAGE_DIRS = ("images", "imagesTr")
_LABEL_DIRS = ("labels", "labelsTr")


@dataclass
class TrainCase:
    case_id: str
    image: Image
    labels: Image


@dataclass
class TrainData:
    cases: list[TrainCase]
    label_names: dict[int, str]
    splits: dict[str, list[str]] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    problems: list[tuple[str, str]] = field(default_factory=list)
    root: Path | None = None

    @property
    def spatial_dims(self) -> int:
        return self.cases[0].image.ndim

    @property
    def multilabel(self) -> bool:
        from radseg.labels import is_multilabel

        return is_multilabel(self.cases[0].labels)


def _case_name(path: Path) -> str:
    from radseg.io.atomic import strip_suffix

    name = strip_suffix(path) if path.is_file() else path.name
    return name[:-5] if name.endswith("_0000") else name


def _parse_label_table(raw: Any) -> dict[int, str]:
    if not raw:
        return {}
    table = {}
    for key, value in dict(raw).items():
        if isinstance(value, (int, float)) and not str(key).lstrip("-").isdigit():
            key, value = value, key  # nnU-Net v2: {"name": value}
        if int(key) != 0:
            table[int(key)] = str(value)
    return table


def _check_pair(case_id: str, image: Image, labels: Image, label_path: Path) -> Image:
    if labels.ndim != image.ndim:
        raise ReadError(label_path, f"labels are {labels.ndim}D but the image is {image.ndim}D")
    if labels.shape == image.shape and np.allclose(labels.affine, image.affine, atol=1e-3):
        return labels
    if labels.shape == image.shape and not labels.metadata.get("spacing_known", True):
        return Image(labels.array, affine=image.affine, metadata=labels.metadata)  # PNG labels: take the image's grid
    try:
        return align_axes(labels, image)
    except ValueError as exc:
        if labels.shape == image.shape and not image.metadata.get("spacing_known", True):
            # An 8-bit PNG image (no pixel size) beside labels that know theirs (the chest phantom's
            # classes.json): same pixels, so the labels sit on the image as they are.
            return Image(labels.array, affine=image.affine, metadata={**labels.metadata, "spacing_known": False})
        raise ReadError(label_path, f"labels are not on the image's grid ({exc})") from None


def load_prepared(folder: str | Path) -> TrainData:
    """Read a prepared dataset folder (see the module docstring); bad cases land in ``problems``."""
    from radseg.io import read, read_labels
    from radseg.labels import label_names

    root = Path(folder)
    if not root.is_dir():
        raise ReadError(root, "no such dataset folder")
    image_dir = next((root / d for d in _IMAGE_DIRS if (root / d).is_dir()), None)
    label_dir = next((root / d for d in _LABEL_DIRS if (root / d).is_dir()), None)
    if image_dir is None or label_dir is None:
        raise ReadError(root, "a prepared dataset needs images/ and labels/ folders (see radseg.train.data)")
    info: dict[str, Any] = {}
    if (root / "dataset.json").exists():
        try:
            info = json.loads((root / "dataset.json").read_text())
        except ValueError as exc:
            raise ReadError(root / "dataset.json", f"not valid JSON ({exc})") from None
    labels_by_case = {_case_name(p): p for p in sorted(label_dir.iterdir()) if not p.name.startswith(".")}
    splits = {k: [str(c) for c in v] for k, v in (info.get("splits") or {}).items()}
    test = set(splits.get("test", []))
    cases, problems, names = [], [], _parse_label_table(info.get("labels"))
    for image_path in sorted(image_dir.iterdir()):
        if image_path.name.startswith("."):
            continue
        case_id = _case_name(image_path)
        if case_id in test:
            continue
        if case_id not in labels_by_case:
            problems.append((str(image_path), "no label file with the same name in labels/"))
            continue
        try:
            image = read(image_path)
            labels = _check_pair(case_id, image, read_labels(labels_by_case[case_id], like=None), labels_by_case[case_id])
        except (ReadError, ValueError, OSError) as exc:
            problems.append((str(image_path), str(exc)))
            continue
        cases.append(TrainCase(case_id, image, labels))
        if not info.get("labels"):
            names.update({k: v for k, v in label_names(labels).items() if k not in names})
    for case_id, path in labels_by_case.items():
        if case_id not in {c.case_id for c in cases} and case_id not in test and \
                not any(_case_name(p) == case_id for p in image_dir.iterdir()):
            problems.append((str(path), "no image with the same name in images/"))
    if not cases:
        detail = "; ".join(f"{Path(p).name}: {m}" for p, m in problems[:3])
        raise ReadError(root, "no readable image/label pair" + (f" ({detail})" if detail else ""))
    return TrainData(cases=cases, label_names=names, splits=splits, info=info, problems=problems, root=root)


def from_pairs(pairs: Iterable[tuple[Image, Image] | TrainCase], *, label_names: dict[int, str] | None = None,
               case_ids: Sequence[str] | None = None, info: dict[str, Any] | None = None) -> TrainData:
    """TrainData from in-memory ``(image, labels)`` pairs (labels on the image's grid)."""
    from radseg.labels import is_multilabel, label_names as names_of

    cases = []
    for index, item in enumerate(pairs):
        if isinstance(item, TrainCase):
            cases.append(item)
            continue
        image, labels = item
        case_id = case_ids[index] if case_ids else f"case{index:04d}"
        cases.append(TrainCase(case_id, image, _check_pair(case_id, image, labels, Path(case_id))))
    if not cases:
        raise ValueError("no training cases given")
    if len({c.image.ndim for c in cases}) != 1:
        raise ValueError("cases mix 2D and 3D images")
    names = dict(label_names or {})
    if not names:
        for case in cases:
            if is_multilabel(case.labels):
                names = dict(zip(range(1, 1 + len(case.labels.metadata["class_names"])), case.labels.metadata["class_names"]))
                break
            names.update({k: v for k, v in names_of(case.labels).items() if k not in names})
    return TrainData(cases=cases, label_names=dict(sorted(names.items())), info=dict(info or {}))


def split_cases(data: TrainData, *, val_fraction: float, seed: int) -> tuple[list[TrainCase], list[TrainCase]]:
    """(train, val): the dataset's own split when it has one, else a seeded random one."""
    by_id = {c.case_id: c for c in data.cases}
    if data.splits.get("train") and data.splits.get("val"):
        missing = [c for c in data.splits["train"] + data.splits["val"] if c not in by_id]
        if missing:
            raise ValueError(f"dataset.json splits name cases that were not read: {', '.join(missing[:5])}")
        return [by_id[c] for c in data.splits["train"]], [by_id[c] for c in data.splits["val"]]
    order = np.random.default_rng(seed).permutation(len(data.cases))
    if len(data.cases) < 2:
        return list(data.cases), list(data.cases)  # nothing to hold out: validate on the training case
    n_val = min(len(data.cases) - 1, max(1, round(val_fraction * len(data.cases))))
    val = sorted(order[:n_val])
    return [data.cases[i] for i in sorted(order[n_val:])], [data.cases[i] for i in val]


def data_hash(cases: Sequence[TrainCase]) -> str:
    """SHA-256 over case ids, pixel data and geometry: names the exact data a model saw."""
    digest = hashlib.sha256()
    for case in sorted(cases, key=lambda c: c.case_id):
        digest.update(case.case_id.encode())
        for image in (case.image, case.labels):
            array = np.ascontiguousarray(image.array)
            digest.update(str((array.shape, array.dtype.str)).encode())
            digest.update(array.tobytes())
            digest.update(np.round(image.affine, 6).tobytes())
    return digest.hexdigest()
