"""The prepared-dataset folder: every adapter writes it; this module is its only reader.

::

    OUT/
      dataset.json     label table, splits (train/val/test case lists), modality, window, per-case files
      metadata.csv     case, patient, split and the subgroup columns (sex, age_group, body_part ...)
      report.json      what the adapter found, skipped, missed and wrote
      images/<case>.<ext>    the image: the source JPEG/PNG unchanged, else NIfTI (.nii.gz, 2D or 3D)
      labels/<case>.<ext>    label map on the image grid (0 = background, names inside), or a
                             multi-label mask (``labels/<case>.npz``, ``dataset.json`` says ``multilabel``)
      instances/<case>.npz   per-object masks where the source has objects (masks [N, ...] bool,
                             values [N] label value, source_ids [N])

``dataset.json`` is nnU-Net-like (``labels`` name -> value, ``channel_names``, ``numTraining``,
``file_ending``) plus ``label_names`` (value -> name, authoritative), ``splits``, ``cases``
(files of each case), ``modality`` (``XR`` or ``CT``), ``dims``, ``window``, ``preset``,
``source`` and ``no_pixel_size`` (cases whose image has no physical pixel size: their image
and labels are read with ``metadata["spacing_known"] = False`` even when stored as NIfTI).

Hand-made folders are read by the same rules: ``dataset.json`` is optional (without a
``cases`` table, images and labels pair by file name without the format suffix, so
``case.nii.gz`` with ``case.png`` is fine; nnU-Net's ``imagesTr``/``labelsTr`` and ``_0000``
channel suffix are accepted; a DICOM series may be a sub-folder ``images/<case>/``); the
label table is ``label_names`` (value -> name), else ``labels`` in either orientation
(``{"1": "bone"}`` or nnU-Net v2's ``{"bone": 1}``). Cases listed in no split get
``split=None``. Files without a partner land in :attr:`PreparedDataset.problems`.

:func:`open_prepared` yields lazy :class:`radseg.case.Case` objects: role ``"image"``
and ``"labels"`` are read on first access; labels are put on their image's grid by
:func:`radseg.datasets.base.labels_on_grid` (same grid, reordered axes, or same shape
without trustworthy geometry; anything else is an error naming the file).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from radseg.case import Case
from radseg.errors import ReadError
from radseg.image import Image
from radseg.io.atomic import atomic_path, strip_suffix

__all__ = ["FORMAT", "IMAGE", "LABELS", "PreparedDataset", "open_prepared", "parse_label_table",
           "read_instances", "write_instances"]

FORMAT = "radseg-prepared"
FORMAT_VERSION = 1
IMAGE, LABELS = "image", "labels"  # the roles of a prepared case's image and label map

_IMAGE_DIRS = ("images", "imagesTr")
_LABEL_DIRS = ("labels", "labelsTr")


@dataclass
class PreparedDataset:
    """A prepared folder, opened: its ``dataset.json`` (``info``), label table and lazy cases."""

    root: Path
    info: dict[str, Any]
    label_names: dict[int, str]
    cases: list[Case]
    problems: list[tuple[str, str]] = field(default_factory=list)

    @property
    def dims(self) -> int:
        return int(self.info.get("dims", 2))

    @property
    def splits(self) -> dict[str, list[str]]:
        return {k: [str(c) for c in v] for k, v in (self.info.get("splits") or {}).items()}

    def split(self, name: str) -> list[Case]:
        return [case for case in self.cases if case.split == name]

    def read_instances(self, case: Case):
        path = case.sources.get("instances")
        return read_instances(path) if path else None


def open_prepared(path: str | Path, *, strict_grid: bool = False) -> PreparedDataset:
    """Open a prepared dataset folder (error naming the folder or file when it is not one).

    ``strict_grid``: a label map with the image's shape but another geometry is an error
    when loaded (training's rule) instead of being taken on the image's grid with a warning.
    """
    root = Path(path)
    if not root.is_dir():
        raise ReadError(root, "no such dataset folder")
    spec = root / "dataset.json"
    info: dict[str, Any] = {}
    if spec.exists():
        try:
            info = json.loads(spec.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ReadError(spec, f"unreadable dataset.json ({exc})") from None
    label_names = parse_label_table(info.get("label_names"), info.get("labels"))
    files, problems = _case_files(root, info)
    split_of = {str(c): split for split, ids in (info.get("splits") or {}).items() for c in ids}
    listed = [c for c in split_of if c in files]
    missing = [c for c in split_of if c not in files]
    if missing and info.get("cases"):
        raise ReadError(spec, f"splits name cases without files: {', '.join(missing[:5])}")
    meta = _metadata_rows(root / "metadata.csv")
    order = listed + [c for c in files if c not in split_of]
    unknown = {str(c) for c in info.get("no_pixel_size") or []}
    cases = [_lazy_case(case_id, split_of.get(case_id), files[case_id], meta.get(case_id, {}), label_names,
                        strict_grid, known=case_id not in unknown) for case_id in order]
    if not cases:
        detail = "; ".join(f"{Path(p).name}: {m}" for p, m in problems[:3])
        raise ReadError(root, "no image/label pair found; make a dataset with `radseg datasets prepare`"
                        + (f" ({detail})" if detail else ""))
    return PreparedDataset(root=root, info=info, label_names=label_names, cases=cases, problems=problems)


def parse_label_table(label_names: Any = None, labels: Any = None) -> dict[int, str]:
    """value -> name from ``label_names`` (authoritative), else ``labels`` in either orientation."""
    if label_names:
        return {int(k): str(v) for k, v in dict(label_names).items() if int(k) != 0}
    table = {}
    for key, value in dict(labels or {}).items():
        if isinstance(value, (int, float)) and not str(key).lstrip("-").isdigit():
            key, value = value, key  # nnU-Net v2: {"name": value}
        if int(key) != 0:
            table[int(key)] = str(value)
    return table


def _lazy_case(case_id: str, split: str | None, files: dict[str, Path], row: dict[str, Any],
               label_names: dict[int, str], strict_grid: bool, known: bool = True) -> Case:
    from radseg.datasets.base import labels_on_grid

    def image() -> Image:
        from radseg.io import read

        loaded = read(files[IMAGE])
        if not known:  # recorded by the preparation: NIfTI states a spacing, the source had none
            loaded.metadata["spacing_known"] = False
        return loaded

    case = Case(case_id, split=split, label_names=label_names, sources=dict(files),
                subject={"patient": row.get("patient")},
                metadata={k: v for k, v in row.items() if k not in ("case", "patient", "split")})

    def labels() -> Image:
        from radseg.io import read_labels

        labels = labels_on_grid(read_labels(files[LABELS]), case.image, name=str(files[LABELS]), strict=strict_grid)
        if not known:
            labels.metadata = {**labels.metadata, "spacing_known": False}
        return labels

    case.images[IMAGE] = image
    case.labels[LABELS] = labels
    return case


def _stem(path: Path) -> str:
    name = strip_suffix(path) if path.is_file() else path.name
    return name[:-5] if name.endswith("_0000") else name


def _listing(root: Path, names: tuple[str, ...]) -> dict[str, Path]:
    folder = next((root / d for d in names if (root / d).is_dir()), None)
    if folder is None:
        return {}
    return {_stem(p): p for p in sorted(folder.iterdir()) if not p.name.startswith(".")}


def _case_files(root: Path, info: dict[str, Any]) -> tuple[dict[str, dict[str, Path]], list[tuple[str, str]]]:
    """case -> {"image", "labels"[, "instances"]} paths, from the ``cases`` table or by file name."""
    table = info.get("cases") or {}
    if table:
        return {str(c): {k: root / v for k, v in entry.items() if v} for c, entry in table.items()}, []
    images, labels = _listing(root, _IMAGE_DIRS), _listing(root, _LABEL_DIRS)
    if not images or not labels:
        what = "a prepared dataset needs images/ and labels/ folders" if info else \
            "not a prepared dataset (no dataset.json) and no images/ and labels/ folders to pair"
        raise ReadError(root, f"{what}; make one with `radseg datasets prepare`")
    instances = _listing(root, ("instances",))
    files, problems = {}, []
    for case_id, path in images.items():
        if case_id not in labels:
            problems.append((str(path), "no label file with the same name in labels/"))
            continue
        files[case_id] = {IMAGE: path, LABELS: labels[case_id]}
        if case_id in instances:
            files[case_id]["instances"] = instances[case_id]
    problems += [(str(p), "no image with the same name in images/") for c, p in labels.items() if c not in images]
    return files, problems


def _metadata_rows(path: Path) -> dict[str, dict[str, Any]]:
    if not path.exists():
        return {}
    import pandas as pd

    table = pd.read_csv(path, dtype={"case": str, "patient": str})
    table = table.astype(object).where(table.notna(), None)
    return {str(row["case"]): row for row in table.to_dict("records")}


def write_instances(path: Path, instances, affine: np.ndarray, shape: tuple[int, ...]) -> Path:
    """Per-object masks as one compressed NPZ (atomic); ``shape`` keeps an empty list's image size."""
    masks = np.stack([i.mask.astype(bool) for i in instances]) if instances else np.zeros((0, *shape), bool)
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(
            handle, masks=masks, values=np.array([i.value for i in instances], np.int32),
            source_ids=np.array([str(i.source_id) for i in instances], dtype=str), affine=np.asarray(affine))
    return path


def read_instances(path: str | Path):
    from radseg.datasets.base import Instance

    path = Path(path)
    try:
        with np.load(path) as data:
            masks, values, ids = data["masks"], data["values"], data["source_ids"]
    except (OSError, KeyError, ValueError) as exc:
        raise ReadError(path, f"not a radseg instances file ({exc})") from None
    return [Instance(int(v), m, str(s)) for m, v, s in zip(masks, values, ids)]
