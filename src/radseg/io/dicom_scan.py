"""Find the DICOM series in files and folders, ignoring what is not DICOM.

A folder may hold several studies and series, localizers, derived images, non-image
objects (SEG, SR), non-DICOM files (DICOMDIR listings, notes, thumbnails) and corrupt
files. ``scan`` groups what is readable and reports everything else, so a batch can
convert the good series and name the bad files.

Grouping: classic cross-sectional slices by SeriesInstanceUID, then split by
orientation and image size (a series holding both axial and sagittal planes becomes two
volumes). Enhanced multi-frame objects, multi-frame grids (RT dose) and projection
radiographs (or frames without patient geometry) are one item per file.

Only regular files are opened (a FIFO or device would block forever); others are named in
``skipped``. A file named like DICOM (``.dcm``) that is empty or not DICOM is ``unreadable``.
A broken file that still names its series (no pixel data, no ImagePositionPatient) is
attached to that series as ``broken``, so reading the series fails naming it instead of
seeing a gap.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Literal

from radseg.io.atomic import not_regular
from radseg.io.dicom_header import fast_headers
from radseg.io.dicom_tags import (
    ENHANCED_SOP_CLASSES,
    NON_IMAGE_MODALITIES,
    PROJECTION_MODALITIES,
    get_floats,
    image_type,
)

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

Kind = Literal["slices", "enhanced", "multiframe", "radiograph"]
_PIXEL_TAGS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_DICOM_SUFFIXES = (".dcm", ".dicom", ".ima")


@dataclass
class DicomSeries:
    """One readable volume or image: the files (headers loaded, pixels deferred) that make it."""

    uid: str
    kind: Kind
    headers: list[tuple[Path, Dataset]]
    part: int = 0  # > 0 when one SeriesInstanceUID was split by orientation/size
    problems: list[str] = field(default_factory=list)
    broken: list[tuple[Path, str]] = field(default_factory=list)  # files of this series that cannot be read
    suspects: list[tuple[Path, str]] = field(default_factory=list)  # unreadable files of unknown series, same folder

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

    def __reduce__(self):
        # Headers hold deferred pixel reads and parser state that do not survive pickling: a series sent
        # to another process (a Ray worker) travels as its files and re-reads their headers there.
        return _series_from_files, (self.uid, self.kind, self.files, self.part, self.problems, self.broken,
                                    self.suspects)

    def matches(self, selector: str) -> bool:
        """True when ``selector`` is this series' UID (or key) or a case-insensitive part of its description."""
        return selector in (self.uid, self.key) or (
            bool(self.description) and selector.lower() in self.description.lower()
        )


def _series_from_files(uid: str, kind: Kind, files: list[Path], part: int, problems: list[str],
                       broken: list[tuple[Path, str]], suspects: list[tuple[Path, str]]) -> DicomSeries:
    """A series rebuilt from its files (see DicomSeries.__reduce__)."""
    parsed = fast_headers(files)
    headers = []
    for path in files:
        ds = parsed.get(path) or read_header(path)
        headers.append((path, ds.full() if kind != "slices" and hasattr(ds, "full") else ds))
    return DicomSeries(uid, kind, headers, part, problems, broken, suspects)


@dataclass
class DicomScan:
    """What ``scan`` found."""

    series: list[DicomSeries] = field(default_factory=list)
    unreadable: list[tuple[Path, str]] = field(default_factory=list)  # DICOM-looking but broken
    non_dicom: list[Path] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # readable but not wanted, or not a regular file

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
            parts.append(f"{len(self.non_dicom)} non-DICOM file(s), e.g. {self.non_dicom[0].name}")
        return f" ({'; '.join(parts)})" if parts else ""


def iter_files(root: Path) -> Iterable[Path]:
    """All regular files below ``root`` (or ``root`` itself), in a stable order, hidden files skipped."""
    if not root.is_dir():
        yield root  # a file, or something that is not a folder (scan names it)
        return
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        base = Path(folder)
        for name in sorted(files):
            if not name.startswith("."):
                yield base / name


def _not_dicom_reason(path: Path) -> str | None:
    """A file named like DICOM that is empty or not DICOM: the problem, else None (a plain non-DICOM file)."""
    if path.suffix.lower() not in _DICOM_SUFFIXES:
        return None
    try:
        size = path.stat().st_size
    except OSError:
        size = -1
    if size == 0:
        return "empty file (0 bytes)"
    return f"not a DICOM file despite its {path.suffix} name (no DICM preamble, no DICOM header)"


def _missing_image_tags(ds: Dataset) -> str | None:
    missing = [k for k in ("Rows", "Columns") if not isinstance(ds.get(k), int)]
    if "PixelData" in ds and "BitsAllocated" not in ds:
        missing.append("BitsAllocated")
    if not missing:
        return None
    return f"pixel data without {', '.join(missing)}: not a valid image"


def read_header(path: Path) -> Dataset:
    """Parse a DICOM file with its pixel data deferred (read from disk only when decoded).

    Raises InvalidDicomError for files that are not DICOM at all.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

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


def header_problem(ds: Dataset) -> str | None:
    """Why a parsed DICOM image cannot be read (no pixel data, no image size), or None."""
    if _looks_truncated(ds):
        return "truncated or corrupt: an image header without pixel data"
    if any(t in ds for t in _PIXEL_TAGS):
        return _missing_image_tags(ds)
    return None


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
    if frame_count(ds) > 1:
        offsets = get_floats(ds, "GridFrameOffsetVector")
        if has_geometry and offsets is not None and offsets.size == frame_count(ds):
            return "multiframe"  # frames at known offsets along the normal (RT dose grids)
        return "radiograph"  # frames without per-frame positions: read as frames, not placed in mm
    if has_geometry and modality not in PROJECTION_MODALITIES:
        kinds = image_type(ds)
        if not include_derived:
            if "LOCALIZER" in kinds:
                return "localizer"
            if kinds[:2] == ["DERIVED", "SECONDARY"]:
                return "derived secondary image (reformat, MIP or screen capture)"
        return "slices"
    return "radiograph"


def frame_count(ds: Dataset) -> int:
    try:
        return max(int(ds.get("NumberOfFrames", 1) or 1), 1)
    except (TypeError, ValueError):
        return 1


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
    singles: list[tuple[str, str, Path, Dataset]] = []
    broken: dict[str, list[tuple[Path, str]]] = defaultdict(list)  # series UID -> its unreadable files
    orphans: list[tuple[Path, str]] = []  # unreadable files whose series is unknown
    files = []
    for root in roots:
        for path in iter_files(root):
            why = not_regular(path)
            if why:
                result.skipped.append((path, why))
                if on_file:
                    on_file(path)
            else:
                files.append(path)
    parsed = fast_headers(files)
    for path in files:
        if on_file:
            on_file(path)
        ds = parsed.get(path) or _read_slow(path, result, orphans)
        if ds is None:
            continue
        why = header_problem(ds)
        if why:
            result.unreadable.append((path, why))
            if "SeriesInstanceUID" in ds:
                broken[series_uid(ds, path)].append((path, why))
            else:
                orphans.append((path, why))
            continue
        kind = classify(ds, include_derived=include_derived)
        uid = series_uid(ds, path)
        if kind != "slices" and hasattr(ds, "full"):
            ds = ds.full()  # a single-file item: its readers want the whole pydicom dataset
        if kind == "slices":
            slices[uid].append((path, ds))
        elif kind in ("enhanced", "multiframe", "radiograph"):
            singles.append((kind, uid, path, ds))
        else:
            result.skipped.append((path, kind))
    for kind, uid, path, ds in singles:
        if kind == "radiograph" and uid in slices and _is_lost_slice(ds):
            broken[uid].append((path, "a slice of this series without ImagePositionPatient/ImageOrientationPatient: "
                                      "it cannot be placed"))
        else:
            result.series.append(DicomSeries(uid=uid, kind=kind, headers=[(path, ds)]))  # type: ignore[arg-type]
    for uid, headers in slices.items():
        result.series.extend(_split_by_plane(uid, headers))
    for series in result.series:
        if series.kind == "slices":
            series.broken = list(broken.get(series.uid, []))
            folders = {p.parent for p in series.files}
            series.suspects = [(p, why) for p, why in orphans if p.parent in folders]
    result.series.sort(key=lambda s: (s.number if s.number is not None else 1 << 30, s.key))
    return result


def _read_slow(path: Path, result: DicomScan, orphans: list[tuple[Path, str]]) -> Dataset | None:
    """pydicom's reading of a file the fast reader left; records a file that is not DICOM or broken (None)."""
    from pydicom.errors import InvalidDicomError

    try:
        return read_header(path)
    except InvalidDicomError:
        why = _not_dicom_reason(path)
        if why:
            result.unreadable.append((path, why))
            orphans.append((path, why))
        else:
            result.non_dicom.append(path)
    except Exception as exc:  # truncated or malformed file: name it, keep going
        why = _not_dicom_reason(path) if path.stat().st_size == 0 else None
        why = why or f"not a readable DICOM file ({type(exc).__name__}: {exc})"
        result.unreadable.append((path, why))
        orphans.append((path, why))
    return None


def _is_lost_slice(ds: Dataset) -> bool:
    """A single-frame cross-sectional image that lost its position: a broken slice, not a radiograph."""
    modality = str(ds.get("Modality", "")).upper()
    return modality not in PROJECTION_MODALITIES and frame_count(ds) == 1 and \
        str(ds.get("SOPClassUID", "")) not in ENHANCED_SOP_CLASSES


def series_uid(ds: Dataset, path: Path) -> str:
    """SeriesInstanceUID, or for anonymised files that lost it a stable stand-in built from
    the folder, frame of reference, modality, series number and description."""
    uid = str(ds.get("SeriesInstanceUID", "") or "").strip()
    if uid:
        return uid
    parts = [str(path.parent.resolve())] + [
        str(ds.get(k, "") or "") for k in ("FrameOfReferenceUID", "Modality", "SeriesNumber", "SeriesDescription")
    ]
    import hashlib  # here: OpenSSL's start-up (3-7 ms) is paid only by files without a series UID
    return "no-uid-" + hashlib.sha1("|".join(parts).encode()).hexdigest()[:12]


def _split_by_plane(uid: str, headers: list[tuple[Path, Dataset]]) -> list[DicomSeries]:
    import numpy as np

    groups: dict[tuple, list[tuple[Path, Dataset]]] = defaultdict(list)
    # One np.round for the whole series (per file it was a third of this function's time).
    orientations = np.round(np.array([get_floats(ds, "ImageOrientationPatient", 6) for _, ds in headers]), 3)
    for (path, ds), orientation in zip(headers, orientations.tolist()):
        groups[(tuple(orientation), int(ds.get("Rows", 0)), int(ds.get("Columns", 0)))].append((path, ds))
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
