"""Find the DICOM series in files and folders, ignoring what is not DICOM.

A folder may hold several studies and series, localizers, derived images, non-image
objects (SEG, SR), non-DICOM files (DICOMDIR listings, notes, thumbnails) and corrupt
files. ``scan`` groups what is readable and reports everything else, so a batch can
convert the good series and name the bad files.

Grouping: classic cross-sectional slices by SeriesInstanceUID, then split by
orientation and image size (a series holding both axial and sagittal planes becomes two
volumes). Enhanced multi-frame objects and projection radiographs are one item per file.
"""

from __future__ import annotations

import hashlib
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Literal

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from radseg.io.dicom_tags import (
    ENHANCED_SOP_CLASSES,
    NON_IMAGE_MODALITIES,
    PROJECTION_MODALITIES,
    get_floats,
    image_type,
)

Kind = Literal["slices", "enhanced", "radiograph"]
_PIXEL_TAGS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


@dataclass
class DicomSeries:
    """One readable volume or image: the files (headers loaded, pixels deferred) that make it."""

    uid: str
    kind: Kind
    headers: list[tuple[Path, Dataset]]
    part: int = 0  # > 0 when one SeriesInstanceUID was split by orientation/size
    problems: list[str] = field(default_factory=list)

    @property
    def first(self) -> Dataset:
        return self.headers[0][1]

    @property
    def key(self) -> str:
        """Unique name of this item: the UID, with ``.partN`` for a split series and the SOP UID of a single-file object."""
        if self.kind != "slices":
            return str(self.first.get("SOPInstanceUID", "") or "") or f"{self.uid}:{self.files[0].name}"
        return self.uid if self.part == 0 else f"{self.uid}.part{self.part}"

    @property
    def description(self) -> str:
        return str(self.first.get("SeriesDescription", "") or "")

    @property
    def modality(self) -> str:
        return str(self.first.get("Modality", "") or "")

    @property
    def number(self) -> int | None:
        value = self.first.get("SeriesNumber")
        try:
            return int(value) if value not in (None, "") else None
        except (TypeError, ValueError):
            return None

    @property
    def files(self) -> list[Path]:
        return [path for path, _ in self.headers]

    def matches(self, selector: str) -> bool:
        """True when ``selector`` is this series' UID (or key) or a case-insensitive part of its description."""
        return selector in (self.uid, self.key) or (
            bool(self.description) and selector.lower() in self.description.lower()
        )


@dataclass
class DicomScan:
    """What ``scan`` found."""

    series: list[DicomSeries] = field(default_factory=list)
    unreadable: list[tuple[Path, str]] = field(default_factory=list)  # DICOM-looking but broken
    non_dicom: list[Path] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # readable but not wanted

    def select(self, selector: str | None, *, origin: str | Path) -> DicomSeries:
        """The one series to read: the only one, or the one ``selector`` names."""
        from radseg.errors import ReadError

        if not self.series:
            detail = self.describe_failures()
            raise ReadError(origin, f"no readable DICOM image series found{detail}")
        if selector is None:
            if len(self.series) == 1:
                return self.series[0]
            raise ReadError(
                origin,
                f"{len(self.series)} series found; choose one with series=UID or part of its "
                f"description: {self.listing()}",
            )
        chosen = [s for s in self.series if s.matches(selector)]
        exact = [s for s in chosen if selector in (s.uid, s.key)]
        chosen = exact or chosen
        if len(chosen) != 1:
            what = "no series matches" if not chosen else f"{len(chosen)} series match"
            raise ReadError(origin, f"{what} {selector!r}; series found: {self.listing()}")
        return chosen[0]

    def listing(self) -> str:
        return "; ".join(
            f"{s.key} ({s.modality}, {s.description or 'no description'}, {len(s.headers)} file(s))"
            for s in self.series
        )

    def describe_failures(self) -> str:
        parts = []
        if self.unreadable:
            parts.append(f"{len(self.unreadable)} unreadable file(s), e.g. {self.unreadable[0][0]}: {self.unreadable[0][1]}")
        if self.skipped:
            parts.append(f"{len(self.skipped)} skipped, e.g. {self.skipped[0][0].name}: {self.skipped[0][1]}")
        if self.non_dicom:
            parts.append(f"{len(self.non_dicom)} non-DICOM file(s)")
        return f" ({'; '.join(parts)})" if parts else ""


def iter_files(root: Path) -> Iterable[Path]:
    """All regular files below ``root`` (or ``root`` itself), in a stable order, hidden files skipped."""
    if root.is_file():
        yield root
        return
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith("."):
                yield Path(folder) / name


def read_header(path: Path) -> Dataset:
    """Parse a DICOM file with its pixel data deferred (read from disk only when decoded).

    Raises InvalidDicomError for files that are not DICOM at all.
    """
    try:
        return pydicom.dcmread(path, defer_size="4 KB")
    except InvalidDicomError:
        # Files without the 128-byte preamble (old or raw dumps): accept them only if they
        # parse into something that looks like an image.
        if path.suffix.lower() not in (".dcm", ".dicom", ""):
            raise
        ds = pydicom.dcmread(path, defer_size="4 KB", force=True)
        if "SOPClassUID" not in ds and not any(t in ds for t in _PIXEL_TAGS):
            raise
        return ds


def _looks_truncated(ds: Dataset) -> bool:
    """An image object whose pixel data never arrives: the file was cut short."""
    if any(t in ds for t in _PIXEL_TAGS):
        return False
    sop_class = getattr(getattr(ds, "file_meta", None), "MediaStorageSOPClassUID", None) or ds.get("SOPClassUID")
    is_image_class = sop_class is not None and "Image Storage" in getattr(sop_class, "name", "")
    return "Rows" in ds or is_image_class


def classify(ds: Dataset, *, include_derived: bool) -> Kind | str:
    """The kind of image a dataset is, or the reason it is skipped."""
    modality = str(ds.get("Modality", "")).upper()
    if modality in NON_IMAGE_MODALITIES:
        return f"non-image object ({modality})"
    if not any(t in ds for t in _PIXEL_TAGS):
        return "no pixel data"
    if "PerFrameFunctionalGroupsSequence" in ds:
        return "enhanced"
    if str(ds.get("SOPClassUID", "")) in ENHANCED_SOP_CLASSES:
        return "radiograph"  # enhanced object stripped of its frame geometry: frames without positions
    has_geometry = (
        get_floats(ds, "ImagePositionPatient", 3) is not None
        and get_floats(ds, "ImageOrientationPatient", 6) is not None
    )
    if has_geometry and modality not in PROJECTION_MODALITIES:
        kinds = image_type(ds)
        if not include_derived:
            if "LOCALIZER" in kinds:
                return "localizer"
            if kinds[:2] == ["DERIVED", "SECONDARY"]:
                return "derived secondary image (reformat, MIP or screen capture)"
        return "slices"
    return "radiograph"


def scan(
    paths: str | Path | Iterable[str | Path],
    *,
    include_derived: bool = False,
    on_file: Callable[[Path], None] | None = None,
) -> DicomScan:
    """Scan files and folders (recursively) and group the DICOM images into series."""
    roots = [Path(paths)] if isinstance(paths, (str, Path)) else [Path(p) for p in paths]
    result = DicomScan()
    slices: dict[str, list[tuple[Path, Dataset]]] = defaultdict(list)
    for root in roots:
        for path in iter_files(root):
            if on_file:
                on_file(path)
            try:
                ds = read_header(path)
            except InvalidDicomError:
                result.non_dicom.append(path)
                continue
            except Exception as exc:  # truncated or malformed file: name it, keep going
                result.unreadable.append((path, f"not a readable DICOM file ({type(exc).__name__}: {exc})"))
                continue
            if _looks_truncated(ds):
                result.unreadable.append((path, "truncated or corrupt: an image header without pixel data"))
                continue
            kind = classify(ds, include_derived=include_derived)
            uid = series_uid(ds, path)
            if kind == "slices":
                slices[uid].append((path, ds))
            elif kind in ("enhanced", "radiograph"):
                result.series.append(DicomSeries(uid=uid, kind=kind, headers=[(path, ds)]))  # type: ignore[arg-type]
            else:
                result.skipped.append((path, kind))
    for uid, headers in slices.items():
        result.series.extend(_split_by_plane(uid, headers))
    result.series.sort(key=lambda s: (s.number if s.number is not None else 1 << 30, s.key))
    return result


def series_uid(ds: Dataset, path: Path) -> str:
    """SeriesInstanceUID, or for anonymised files that lost it a stable stand-in built from
    the folder, frame of reference, modality, series number and description."""
    uid = str(ds.get("SeriesInstanceUID", "") or "").strip()
    if uid:
        return uid
    parts = [str(path.parent.resolve())] + [
        str(ds.get(k, "") or "") for k in ("FrameOfReferenceUID", "Modality", "SeriesNumber", "SeriesDescription")
    ]
    return "no-uid-" + hashlib.sha1("|".join(parts).encode()).hexdigest()[:12]


def _split_by_plane(uid: str, headers: list[tuple[Path, Dataset]]) -> list[DicomSeries]:
    groups: dict[tuple, list[tuple[Path, Dataset]]] = defaultdict(list)
    for path, ds in headers:
        orientation = tuple(np.round(get_floats(ds, "ImageOrientationPatient", 6), 3))
        groups[(orientation, int(ds.get("Rows", 0)), int(ds.get("Columns", 0)))].append((path, ds))
    problems = []
    if uid.startswith("no-uid-"):
        problems.append("files have no SeriesInstanceUID: grouped by folder, frame of reference, "
                        "modality, series number and description")
    if len(groups) == 1:
        return [DicomSeries(uid=uid, kind="slices", headers=headers, problems=problems)]
    ordered = sorted(groups.values(), key=len, reverse=True)
    note = f"series {uid} mixes {len(ordered)} orientations or image sizes: split into {len(ordered)} volumes"
    return [
        DicomSeries(uid=uid, kind="slices", headers=group, part=i + 1, problems=problems + [note])
        for i, group in enumerate(ordered)
    ]
