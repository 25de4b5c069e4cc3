"""What every dataset adapter returns: case records, a report, patient-level splits, a leakage check.

An adapter reads a public layout *lazily*: :class:`DatasetScan` lists one :class:`CaseRecord`
per case (ids, patient, given split, subgroup metadata, source files) and each record
loads its pixels only when :func:`radseg.datasets.preparation.prepare` writes it. Everything
the adapter found, skipped or missed goes into the :class:`DatasetReport`, so nothing is
dropped silently.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from radseg.errors import RadsegError, ReadError
from radseg.image import Image, align_axes
from radseg.io.atomic import strip_suffix

__all__ = [
    "SPLITS",
    "CaseRecord",
    "DatasetReport",
    "DatasetScan",
    "Instance",
    "LeakageError",
    "Loaded",
    "MissingFilesError",
    "assign_splits",
    "check_label_values",
    "check_leakage",
    "labels_on_grid",
    "normalise_split",
]

SPLITS = ("train", "val", "test")
_SPLIT_ALIASES = {
    "train": "train", "training": "train", "tr": "train",
    "val": "val", "valid": "val", "validation": "val", "va": "val",
    "test": "test", "testing": "test", "ts": "test",
}


class LeakageError(RadsegError, ValueError):
    """One patient's cases sit in more than one split (or one case id appears twice)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        shown = "; ".join(problems[:10]) + (f"; ... ({len(problems)} in all)" if len(problems) > 10 else "")
        super().__init__(f"split leakage: {shown}")


class MissingFilesError(RadsegError, ValueError):
    """Files the dataset lists are absent; ``missing`` holds (name, why it is needed)."""

    def __init__(self, root: Path, missing: list[tuple[str, str]]) -> None:
        self.root = Path(root)
        self.missing = missing
        names = ", ".join(name for name, _ in missing[:8]) + (" ..." if len(missing) > 8 else "")
        super().__init__(f"{root}: {len(missing)} listed file(s) are missing ({names}); "
                         "rerun with --allow-missing to prepare the dataset without them")


@dataclass
class Instance:
    """One annotated object (e.g. one fracture polygon): label value, mask, source id."""

    value: int
    mask: np.ndarray
    source_id: Any = None


@dataclass
class Loaded:
    """A case's pixels: the image, its label map on the image grid, optional instances.

    ``image_file`` names a source file that can be copied unchanged into the prepared
    dataset (a JPEG/PNG radiograph) instead of re-encoding ``image``.
    """

    image: Image
    labels: Image
    instances: list[Instance] | None = None
    image_file: Path | None = None
    warnings: list[str] = field(default_factory=list)


@dataclass
class CaseRecord:
    """One case as the adapter found it; ``load()`` reads the pixels (may raise RadsegError)."""

    case_id: str
    patient: str
    load: Callable[[], Loaded]
    split: str | None = None  # as the dataset gives it, else None (generated later)
    #: the adapter chose ``split`` (FracAtlas ``negative_split=nearest``), the dataset did not publish it:
    #: prepare may move the case to keep it with an identical picture
    split_derived: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)


@dataclass
class DatasetReport:
    """What an adapter found, skipped and missed, and what preparing did."""

    dataset: str
    root: str
    found: dict[str, int] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (item, reason)
    missing: list[tuple[str, str]] = field(default_factory=list)  # (file, why it was expected)
    warnings: list[str] = field(default_factory=list)
    split_source: str = ""
    splits: dict[str, int] = field(default_factory=dict)
    written: int = 0
    kept: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (case, reason) at load/write time

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset, "root": self.root, "found": dict(self.found),
            "skipped": [{"item": i, "reason": r} for i, r in self.skipped],
            "missing": [{"file": f, "why": w} for f, w in self.missing],
            "warnings": list(self.warnings), "split_source": self.split_source,
            "splits": dict(self.splits), "written": self.written, "kept": self.kept,
            "failed": [{"case": c, "reason": r} for c, r in self.failed],
        }

    def format_text(self, *, limit: int = 20) -> str:
        """A human summary; long lists are cut at ``limit`` lines (report.json has them all)."""
        lines = [f"{self.dataset} at {self.root}"]
        if self.found:
            lines.append("found: " + ", ".join(f"{v} {k}" for k, v in self.found.items()))
        for title, items in (("missing", [f"{f} ({w})" for f, w in self.missing]),
                             ("skipped", [f"{i}: {r}" for i, r in self.skipped]),
                             ("failed", [f"{c}: {r}" for c, r in self.failed]),
                             ("warnings", list(self.warnings))):
            if items:
                lines.append(f"{title} ({len(items)}):")
                lines.extend(f"  {item}" for item in items[:limit])
                if len(items) > limit:
                    lines.append(f"  ... {len(items) - limit} more (see report.json)")
        if self.splits:
            lines.append(f"splits ({self.split_source}): " + ", ".join(f"{k} {v}" for k, v in self.splits.items()))
        return "\n".join(lines)


@dataclass
class DatasetScan:
    """An adapter's answer: the records, the label table and facts for ``dataset.json``.

    ``label_names`` None means "the values found in the masks" (folder adapter without
    ``labels=``); for a multi-label scan it numbers the classes (channel order) from 1. ``modality`` is a DICOM modality code (``XR``, ``CT``); ``window`` a
    normalisation window when the source uses one; ``preset`` the radseg task preset
    (:data:`radseg.models.presets.PRESETS`) that fits the data.
    """

    name: str
    records: list[CaseRecord]
    label_names: dict[int, str] | None
    report: DatasetReport
    modality: str
    dims: int
    window: tuple[float, float] | None = None
    preset: str | None = None
    description: str = ""
    source: dict[str, Any] = field(default_factory=dict)
    #: True: labels are multi-label masks (classes may overlap), stored as ``labels/<case>.npz``.
    multilabel: bool = False


def normalise_split(text: Any, *, where: str = "") -> str:
    """``train``/``val``/``test`` from the spellings datasets use (valid, validation, Tr, Ts ...)."""
    key = str(text).strip().lower()
    if key not in _SPLIT_ALIASES:
        raise ReadError(where or "split", f"unknown split {text!r} (expected train, val or test)")
    return _SPLIT_ALIASES[key]


def assign_splits(
    records: Sequence[CaseRecord],
    *,
    mode: str = "auto",
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    seed: int = 0,
) -> str:
    """Set ``record.split`` on every record, whole patients at a time; returns how.

    ``mode``: ``given`` (every record must have one), ``generate`` (ignore given splits) or
    ``auto`` (keep given splits; a patient with a given split puts all its cases there;
    the other patients are shuffled with ``seed`` and cut at ``fractions`` of the cases).
    """
    if mode not in ("auto", "given", "generate"):
        raise ValueError(f"split mode must be auto, given or generate, not {mode!r}")
    fractions = np.asarray(fractions, float)
    if fractions.shape != (3,) or np.any(fractions < 0) or not np.isclose(fractions.sum(), 1.0):
        raise ValueError(f"split fractions must be three non-negative numbers summing to 1, got {list(fractions)}")
    if mode == "generate":
        for record in records:
            record.split = None
    by_patient: dict[str, list[CaseRecord]] = defaultdict(list)
    for record in records:
        by_patient[record.patient].append(record)
    free = []
    for patient, cases in by_patient.items():
        given = sorted({c.split for c in cases if c.split})
        if len(given) == 1:  # follow the dataset for the patient's unlabelled cases too
            for case in cases:
                case.split = case.split or given[0]
        elif not given:
            free.append(patient)
    if mode == "given" and free:
        raise ValueError(f"{len(free)} patient(s) have no given split (e.g. {free[0]}); use split mode auto or generate")
    if free:
        order = np.random.default_rng(seed).permutation(len(free))
        total = sum(len(by_patient[p]) for p in free)
        bounds = np.cumsum(fractions)[:2] * total
        done = 0
        for index in order:
            cases = by_patient[free[index]]
            # The split is chosen by the middle of the patient's cases, so big patients land fairly.
            middle = done + len(cases) / 2
            split = SPLITS[int(np.searchsorted(bounds, middle, side="right"))]
            for case in cases:
                case.split = split
            done += len(cases)
    given_count = len(by_patient) - len(free)
    if not free:
        return "given by the dataset"
    generated = f"generated per patient (seed {seed}, fractions {'/'.join(f'{f:g}' for f in fractions)})"
    return generated if not given_count else f"given by the dataset where listed, else {generated}"


def check_leakage(records: Iterable[CaseRecord]) -> list[str]:
    """Problems that would leak information between splits (empty list when clean).

    A patient with cases in two splits, or a case id used twice.
    """
    splits: dict[str, set[str]] = defaultdict(set)
    seen: dict[str, int] = defaultdict(int)
    for record in records:
        splits[record.patient].add(str(record.split))
        seen[record.case_id] += 1
    problems = [f"patient {p} is in {' and '.join(sorted(s))}" for p, s in sorted(splits.items()) if len(s) > 1]
    problems += [f"case id {c} appears {n} times" for c, n in sorted(seen.items()) if n > 1]
    return problems


def labels_on_grid(labels: Image, image: Image, *, name: str, strict: bool = False) -> Image:
    """``labels`` on ``image``'s grid: same grid, reordered axes, or same shape without spacing.

    A mask whose shape differs from its image is an error naming ``name`` (no resampling).
    Same shape but other geometry (both with known spacing) is taken on the image's grid with
    a ``grid_warning``; ``strict`` (training) refuses it instead, since a shifted mask
    would teach the network the wrong boundary.
    """
    if labels.ndim == image.ndim and labels.same_geometry(image):
        return labels
    if labels.shape == image.shape and not labels.metadata.get("spacing_known", True):
        # A raster mask has no geometry of its own: its pixels are the image's, never flipped or reordered.
        return Image(labels.array, affine=image.affine, metadata=labels.metadata)
    if labels.ndim == image.ndim:
        try:
            return align_axes(labels, image)
        except ValueError:
            pass
    if labels.shape == image.shape:
        if strict and labels.ndim == image.ndim and image.metadata.get("spacing_known", True):
            raise ReadError(name, "labels are not on the image's grid (same shape, different geometry)")
        # Raster masks and many NIfTI masks carry no trustworthy geometry: the image's rules.
        meta = dict(labels.metadata)
        if labels.ndim == image.ndim and meta.get("spacing_known", True):
            gap = float(np.abs(labels.affine - image.affine).max())
            meta["grid_warning"] = (f"{name}: mask geometry differs from its image (affines up to {gap:.3g} mm apart); "
                                    "same voxel grid assumed, the image's geometry kept")
        return Image(labels.array, affine=image.affine, metadata=meta)
    raise ReadError(name, f"mask shape {tuple(labels.shape)} does not match image shape {tuple(image.shape)}")


def check_label_values(labels: Image, known: dict[int, str] | None, *, name: str) -> None:
    """Error naming ``name`` when the mask holds values outside the label table."""
    if known is None:
        return
    values = {int(v) for v in np.unique(labels.array)}
    unknown = sorted(values - set(known) - {0})
    if unknown:
        table = ", ".join(f"{k}={v}" for k, v in sorted(known.items()))
        raise ReadError(name, f"unknown label value(s) {', '.join(map(str, unknown))} (label table: 0=background, {table})")


def option_bool(value: Any, name: str) -> bool:
    """An adapter option given as text (true/false, yes/no, 1/0) or bool."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"option {name} must be true or false, not {value!r}")


def default_metadata_path(root: Path) -> Path | None:
    """The metadata table of a dataset root: its only CSV, else metadata.csv, else None."""
    candidates = sorted(root.glob("*.csv"))
    return candidates[0] if len(candidates) == 1 else (root / "metadata.csv" if (root / "metadata.csv").exists() else None)


def read_metadata_table(path: Path | None) -> dict[str, dict[str, Any]]:
    """case (file stem) -> row of a metadata CSV (all text; key column case, case_id, id or image)."""
    if path is None:
        return {}
    import pandas as pd

    try:
        frame = pd.read_csv(path, dtype=str)
    except FileNotFoundError:
        raise ReadError(path, "metadata file not found") from None
    except Exception as exc:
        raise ReadError(path, f"unreadable CSV ({exc})") from None
    key = next((c for c in ("case", "case_id", "id", "image") if c in frame.columns), frame.columns[0])
    frame = frame.astype(object).where(frame.notna(), None)
    rows = {}
    for row in frame.to_dict("records"):
        case = str(row.pop(key))
        rows[strip_suffix(case)] = row
    return rows
