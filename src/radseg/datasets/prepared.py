"""The prepared-dataset folder every adapter writes and every exporter (and ``radseg train``) reads.

::

    OUT/
      dataset.json     label table, splits (train/val/test case lists), modality, window, per-case files
      metadata.csv     case, patient, split and the subgroup columns (sex, age_group, body_part ...)
      report.json      what the adapter found, skipped, missed and wrote
      images/<case>.<ext>    the image: the source JPEG/PNG unchanged, else NIfTI (.nii.gz, 2D or 3D)
      labels/<case>.nii.gz   integer label map on the image grid (0 = background), names inside
      instances/<case>.npz   per-object masks where the source has objects (masks [N, ...] bool,
                             values [N] label value, source_ids [N])

``dataset.json`` is nnU-Net-like (``labels`` name -> value, ``channel_names``, ``numTraining``,
``file_ending``) plus ``label_names`` (value -> name, authoritative), ``splits``, ``cases``
(files of each case), ``modality`` (``XR`` or ``CT``), ``dims``, ``window``, ``preset`` and
``source``. This is the contract :func:`radseg.train.data.load_prepared` reads (it pairs
``images/`` and ``labels/`` by file stem and ignores ``instances/``), so ``radseg train
--data OUT`` works on it directly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from radseg.errors import ReadError
from radseg.image import Image
from radseg.io.atomic import atomic_path, strip_suffix

__all__ = ["FORMAT", "PreparedCase", "PreparedDataset", "open_prepared", "read_instances", "write_instances"]

FORMAT = "radseg-prepared"
FORMAT_VERSION = 1


@dataclass
class PreparedCase:
    case_id: str
    split: str
    image: Path
    labels: Path
    instances: Path | None = None
    patient: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class PreparedDataset:
    """A prepared folder, opened: its ``dataset.json`` (``info``), label table and cases."""

    root: Path
    info: dict[str, Any]
    label_names: dict[int, str]
    cases: list[PreparedCase]

    @property
    def dims(self) -> int:
        return int(self.info.get("dims", 2))

    def split(self, name: str) -> list[PreparedCase]:
        return [case for case in self.cases if case.split == name]

    def read_image(self, case: PreparedCase) -> Image:
        from radseg.io import read

        return read(case.image)

    def read_labels(self, case: PreparedCase, *, like: Image | None = None) -> Image:
        """The label map; with ``like`` (its image) it takes the image's geometry when the shapes agree."""
        from radseg.datasets.base import labels_on_grid
        from radseg.io import read_labels

        labels = read_labels(case.labels)
        return labels_on_grid(labels, like, name=str(case.labels)) if like is not None else labels

    def read_instances(self, case: PreparedCase):
        return read_instances(case.instances) if case.instances else None


def open_prepared(path: str | Path) -> PreparedDataset:
    """Open a prepared dataset folder (error naming the file when it is not one)."""
    root = Path(path)
    spec = root / "dataset.json"
    try:
        info = json.loads(spec.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReadError(root, "not a prepared dataset (no dataset.json); make one with `radseg datasets prepare`") from None
    except (OSError, ValueError) as exc:
        raise ReadError(spec, f"unreadable dataset.json ({exc})") from None
    names = info.get("label_names")
    if names is None:  # nnU-Net style only: name -> value
        names = {v: k for k, v in (info.get("labels") or {}).items() if int(v) != 0}
    label_names = {int(k): str(v) for k, v in names.items()}
    meta = _metadata_rows(root / "metadata.csv")
    files = info.get("cases") or {}
    cases = []
    for split, ids in (info.get("splits") or {}).items():
        for case_id in ids:
            entry = files.get(case_id) or _find_files(root, case_id)
            instances = entry.get("instances")
            row = meta.get(case_id, {})
            cases.append(PreparedCase(
                case_id=case_id, split=split, image=root / entry["image"], labels=root / entry["labels"],
                instances=root / instances if instances else None, patient=row.get("patient"),
                metadata={k: v for k, v in row.items() if k not in ("case", "patient", "split")}))
    if not cases:
        raise ReadError(spec, "no cases listed in splits")
    return PreparedDataset(root=root, info=info, label_names=label_names, cases=cases)


def _find_files(root: Path, case_id: str) -> dict[str, str]:
    """Files of a case by stem, for a dataset.json without a ``cases`` table."""
    found = {}
    for key, folder in (("image", "images"), ("labels", "labels"), ("instances", "instances")):
        matches = [p for p in (root / folder).glob(f"{case_id}.*") if strip_suffix(p) == case_id]
        if matches:
            found[key] = str(matches[0].relative_to(root))
    if "image" not in found or "labels" not in found:
        raise ReadError(root, f"case {case_id}: no images/{case_id}.* or labels/{case_id}.* file")
    return found


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
