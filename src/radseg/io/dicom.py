"""Read DICOM: classic series, enhanced multi-frame objects and projection radiographs.

* Series (CT/MR/PT ... one plane per file) -> 3D ``Image`` ``[slice, row, col]`` in LPS,
  rescaled to real-world values (CT in HU), sorted by position along the slice normal.
* Enhanced multi-frame (Enhanced CT/MR, legacy converted) -> 3D ``Image`` the same way,
  from the per-frame functional groups.
* Multi-frame grids (RT dose: frames at GridFrameOffsetVector along the normal) -> 3D
  ``Image`` the same way, scaled by DoseGridScaling.
* Radiographs (CR/DX/MG/IO/PX/RF/XA, or any image without patient geometry) -> 2D
  ``Image`` ``[row, col]`` with the full stored bit depth; several frames without per-frame
  positions -> ``[frame, row, col]`` (frame axis not in mm), colour keeps a channel axis.
  Without a physical pixel size ``metadata["spacing_known"]`` is False (lengths in px).
* A RescaleSlope of 0 (or not finite) is refused, naming the file. MONOCHROME1 images are kept as
  stored (``metadata["photometric"] == "MONOCHROME1"``: low values display white) unless
  ``invert_monochrome1=True`` maps them to MONOCHROME2.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from radseg.errors import ReadError, SeriesError
from radseg.image import Image
from radseg.io.atomic import not_regular
from radseg.io.dicom_scan import DicomSeries, classify, frame_count, header_problem, read_header, scan, series_uid
from radseg.io.dicom_stack import GapPolicy, Plane, Sink, TiltPolicy, plan_stack, stack_planes
from radseg.io.dicom_tags import decode_pixels, get_float, get_floats, safe_metadata

if TYPE_CHECKING:
    from pydicom.dataset import Dataset


def read_dicom(
    path: str | Path,
    *,
    series: str | None = None,
    on_gap: GapPolicy = "error",
    tilt: TiltPolicy = "resample",
    include_derived: bool = False,
    invert_monochrome1: bool = False,
    sink: Sink | None = None,
) -> Image:
    """Read a DICOM file, or the one series of a folder (``series`` picks by UID or description).

    ``sink``: see :func:`read_series`.
    """
    path = Path(path)
    options: dict[str, Any] = dict(on_gap=on_gap, tilt=tilt, invert_monochrome1=invert_monochrome1, sink=sink)
    if path.is_dir():
        found = scan(path, include_derived=include_derived)
        return read_series(found.select(series, origin=path), **options)
    why = not_regular(path)
    if why:
        raise ReadError(path, why)
    from pydicom.errors import InvalidDicomError

    try:
        ds = read_header(path)
    except InvalidDicomError:
        raise ReadError(path, "not a DICOM file (no DICM preamble)") from None
    except Exception as exc:
        raise ReadError(path, f"not a readable DICOM file ({type(exc).__name__}: {exc})") from exc
    why = header_problem(ds)
    if why:
        raise ReadError(path, why)
    kind = classify(ds, include_derived=include_derived)
    if kind not in ("slices", "enhanced", "multiframe", "radiograph"):
        raise ReadError(path, f"cannot read as an image: {kind}")
    uid = series_uid(ds, path)
    return read_series(DicomSeries(uid=uid, kind=kind, headers=[(path, ds)]), **options)  # type: ignore[arg-type]


def read_series(
    series: DicomSeries,
    *,
    on_gap: GapPolicy = "error",
    tilt: TiltPolicy = "resample",
    invert_monochrome1: bool = False,
    sink: Sink | None = None,
) -> Image:
    """Read one item found by :func:`radseg.io.dicom_scan.scan`.

    ``sink`` (a :class:`radseg.io.nifti.NiftiSink`) may take a series' volume slice by slice and
    write it, instead of the whole volume being held in memory; see
    :func:`radseg.io.dicom_stack.stack_planes`. The image returned has the same values either way
    (when the sink wrote it, its array is mapped read-only from the file written).
    """
    meta = base_metadata(series)
    if series.kind == "radiograph":
        path, ds = series.headers[0]
        return read_radiograph(path, ds, invert_monochrome1=invert_monochrome1, metadata=meta)
    name = series.files[0].parent if series.kind == "slices" and len(series.files) > 1 else series.files[0]
    name = f"{name} [series {series.key}]"
    if series.broken:
        shown = "; ".join(f"{path.name}: {why}" for path, why in series.broken[:3])
        more = f" and {len(series.broken) - 3} more" if len(series.broken) > 3 else ""
        raise SeriesError(name, f"{len(series.broken)} file(s) of this series cannot be read ({shown}{more}); "
                                "fix or remove them (a broken slice is not a gap)")
    planes = series_planes(series)
    if series.suspects:
        plan = plan_stack(planes, name=name)
        if plan.irregular:
            shown = ", ".join(path.name for path, _ in series.suspects[:5])
            raise SeriesError(name, f"slice spacing is not regular ({plan.irregular}) and unreadable file(s) in the "
                                    f"same folder may be the missing slice(s): {shown}; fix or remove them")
        meta["problems"] += [f"unreadable file in the series folder: {path.name} ({why})" for path, why in series.suspects]
    meta["source_files"] = [str(path) for path in series.files]
    image = stack_planes(planes, name=name, on_gap=on_gap, tilt=tilt, metadata=meta, sink=sink)
    if series.kind == "slices":
        # Keep source files in slice order (DICOM-SEG needs the referenced instances).
        image.metadata["source_files"] = image.metadata.pop("slice_sources")
    return image


def series_planes(series: DicomSeries) -> list[Plane]:
    """The planes of a slices or enhanced item (headers only; pixels are decoded later)."""
    if series.kind == "enhanced":
        path, ds = series.headers[0]
        return enhanced_planes(path, ds)
    if series.kind == "multiframe":
        path, ds = series.headers[0]
        return grid_planes(path, ds)
    return [slice_plane(path, ds) for path, ds in series.headers]


def base_metadata(series: DicomSeries) -> dict[str, Any]:
    ds = series.first
    return {
        "format": "dicom",
        "kind": series.kind,
        "modality": series.modality,
        "series_uid": series.uid,
        "series_key": series.key,
        "series_description": series.description,
        "study_uid": str(ds.get("StudyInstanceUID", "")),
        "frame_of_reference_uid": str(ds.get("FrameOfReferenceUID", "")),
        "dicom": safe_metadata(ds),
        "problems": list(series.problems),
    }


def slice_plane(path: Path, ds: Dataset) -> Plane:
    """One classic single-frame slice as a Plane (pixels decoded on demand)."""
    orientation = get_floats(ds, "ImageOrientationPatient", 6)
    position = get_floats(ds, "ImagePositionPatient", 3)
    if orientation is None or position is None:
        raise SeriesError(path, "ImagePositionPatient/ImageOrientationPatient missing or malformed")
    spacing = _pixel_spacing(ds, path)
    return Plane(
        source=str(path),
        position=position,
        row_cosine=_unit(orientation[:3], path),
        column_cosine=_unit(orientation[3:], path),
        pixel_spacing=spacing,
        shape=(int(ds.Rows), int(ds.Columns)),
        slope=rescale_slope(ds, path),
        intercept=get_float(ds, "RescaleIntercept", 0.0) or 0.0,
        load=lambda: decode_pixels(ds),
        thickness=get_float(ds, "SpacingBetweenSlices") or get_float(ds, "SliceThickness"),
        load_into=getattr(ds, "read_pixels", None),  # FastHeader: one readinto per slice, no copy
    )


def enhanced_planes(path: Path, ds: Dataset) -> list[Plane]:
    """The frames of an enhanced multi-frame object, from its functional groups."""
    from pydicom.dataset import Dataset

    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
    shared_seq = ds.get("SharedFunctionalGroupsSequence") or []
    shared = shared_seq[0] if len(shared_seq) else Dataset()
    frames_count = int(ds.get("NumberOfFrames", 1) or 1)
    if len(per_frame) != frames_count:
        raise SeriesError(path, f"{len(per_frame)} per-frame groups for {frames_count} frames")
    frame_loader = _frame_loaders(ds)
    planes = []
    for index, group in enumerate(per_frame):
        def item(sequence: str) -> Dataset:
            for source in (group, shared):
                seq = source.get(sequence)
                if seq is not None and len(seq):
                    return seq[0]
            return Dataset()

        position = get_floats(item("PlanePositionSequence"), "ImagePositionPatient", 3)
        orientation = get_floats(item("PlaneOrientationSequence"), "ImageOrientationPatient", 6)
        measures = item("PixelMeasuresSequence")
        if position is None or orientation is None:
            raise SeriesError(path, f"frame {index + 1} has no plane position/orientation")
        transform = item("PixelValueTransformationSequence")
        planes.append(Plane(
            source=f"{path}#frame{index + 1}",
            position=position,
            row_cosine=_unit(orientation[:3], path),
            column_cosine=_unit(orientation[3:], path),
            pixel_spacing=_pixel_spacing(measures, path),
            shape=(int(ds.Rows), int(ds.Columns)),
            slope=rescale_slope(transform, path) if "RescaleSlope" in transform else rescale_slope(ds, path),
            intercept=_first_not_none(get_float(transform, "RescaleIntercept"), get_float(ds, "RescaleIntercept"), 0.0),
            load=frame_loader(index),
            thickness=get_float(measures, "SpacingBetweenSlices") or get_float(measures, "SliceThickness"),
        ))
    return planes


def grid_planes(path: Path, ds: Dataset) -> list[Plane]:
    """Frames of a multi-frame grid (RT dose): one position, frames at GridFrameOffsetVector along the normal."""
    orientation = get_floats(ds, "ImageOrientationPatient", 6)
    position = get_floats(ds, "ImagePositionPatient", 3)
    offsets = get_floats(ds, "GridFrameOffsetVector")
    if orientation is None or position is None or offsets is None or offsets.size != frame_count(ds):
        raise SeriesError(path, "multi-frame image without a position, orientation and GridFrameOffsetVector per frame")
    row, column = _unit(orientation[:3], path), _unit(orientation[3:], path)
    normal = np.cross(row, column)
    # Offsets are relative to the first frame (first value 0) or absolute along the normal.
    relative = offsets - offsets[0]
    slope = rescale_slope(ds, path)
    if "DoseGridScaling" in ds:
        slope *= _positive(get_float(ds, "DoseGridScaling"), "DoseGridScaling", path)
    loader = _frame_loaders(ds)
    return [Plane(source=f"{path}#frame{index + 1}", position=position + d * normal, row_cosine=row,
                  column_cosine=column, pixel_spacing=_pixel_spacing(ds, path), shape=(int(ds.Rows), int(ds.Columns)),
                  slope=slope, intercept=get_float(ds, "RescaleIntercept", 0.0) or 0.0, load=loader(index))
            for index, d in enumerate(relative)]


def _frame_loaders(ds: Dataset):
    """``loader(index)`` -> a function giving that frame; all frames are decoded once, on first use."""
    cache: dict[str, np.ndarray] = {}

    def loader(index: int):
        def load() -> np.ndarray:
            if "all" not in cache:
                pixels = decode_pixels(ds)
                cache["all"] = pixels if pixels.ndim == 3 else pixels[np.newaxis]
            return cache["all"][index]
        return load
    return loader


def rescale_slope(ds: Dataset, path: Path) -> float:
    """RescaleSlope (1 when absent); 0 or a non-finite value is refused: it would erase or corrupt every value."""
    if ds.get("RescaleSlope") in (None, ""):
        return 1.0
    return _positive(get_float(ds, "RescaleSlope"), "RescaleSlope", path, allow_negative=True)


def _positive(value: float | None, keyword: str, path: Path, allow_negative: bool = False) -> float:
    if value is None or not math.isfinite(value) or value == 0 or (value < 0 and not allow_negative):
        raise ReadError(path, f"{keyword} is {value if value is not None else 'malformed'}: "
                              "the stored values cannot be turned into real-world values")
    return float(value)


def read_radiograph(
    path: Path, ds: Dataset, *, invert_monochrome1: bool = False, metadata: dict[str, Any] | None = None
) -> Image:
    """A projection image with its full stored bit depth and its pixel spacing in mm."""
    meta = dict(metadata or {})
    problems = meta.setdefault("problems", [])
    try:
        pixels = decode_pixels(ds)
    except Exception as exc:
        raise ReadError(path, f"cannot decode pixel data ({type(exc).__name__}: {exc})") from exc
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    if photometric == "MONOCHROME1" and invert_monochrome1:
        pixels = _invert_stored(pixels, ds)
        photometric = "MONOCHROME2"
        problems.append("MONOCHROME1 inverted to MONOCHROME2 on read")
    pixels = _apply_modality_lut(pixels, ds, path)
    spacing, source = radiograph_spacing(ds)
    if source is None:
        problems.append(NO_PIXEL_SIZE)
    meta.update(
        photometric=photometric,
        spacing_source=source,
        spacing_known=source is not None,
        bits_stored=int(ds.get("BitsStored", 0) or 0) or None,
        source_files=[str(path)],
    )
    for keyword, key in (("ImagePositionPatient", "image_position_patient"),
                         ("ImageOrientationPatient", "image_orientation_patient")):
        values = get_floats(ds, keyword)
        if values is not None:
            meta[key] = values.tolist()
    if ds.get("PatientOrientation"):
        meta["patient_orientation"] = [str(v) for v in ds.PatientOrientation]
    samples, frames = int(ds.get("SamplesPerPixel", 1) or 1), frame_count(ds)
    meta["frames"] = frames
    expected = ((frames,) if frames > 1 else ()) + (int(ds.Rows), int(ds.Columns)) + ((samples,) if samples > 1 else ())
    if pixels.shape != expected:
        raise ReadError(path, f"pixel data has shape {pixels.shape}, the header says {expected} "
                              f"({frames} frame(s) of {ds.Rows} x {ds.Columns}, {samples} sample(s) per pixel)")
    if frames > 1:
        problems.append(f"{frames} frames without patient geometry: frame axis spacing is 1 (not mm)")
        return Image(pixels, spacing=(1.0, *spacing), spatial_ndim=3, metadata=meta)
    return Image(pixels, spacing=spacing, spatial_ndim=2, metadata=meta)


#: The problem every image without a physical pixel size reports (lengths are then in pixels).
NO_PIXEL_SIZE = "no physical pixel size: lengths are in px"


def radiograph_spacing(ds: Dataset) -> tuple[tuple[float, float], str | None]:
    """Pixel spacing (row, column) in mm and the tag it came from (None when unknown).

    PixelSpacing (calibrated to the patient plane) wins; else ImagerPixelSpacing (at the
    detector) divided by EstimatedRadiographicMagnificationFactor when given; else
    NominalScannedPixelSpacing (digitised film). Zero or negative values count as absent.
    """
    for keyword in ("PixelSpacing", "ImagerPixelSpacing", "NominalScannedPixelSpacing"):
        values = get_floats(ds, keyword, 2)
        if values is None or np.any(values <= 0):
            continue
        if keyword == "ImagerPixelSpacing":
            magnification = get_float(ds, "EstimatedRadiographicMagnificationFactor")
            if magnification and magnification > 0:
                return (float(values[0] / magnification), float(values[1] / magnification)), (
                    "ImagerPixelSpacing/EstimatedRadiographicMagnificationFactor")
        return (float(values[0]), float(values[1])), keyword
    return (1.0, 1.0), None


def _invert_stored(pixels: np.ndarray, ds: Dataset) -> np.ndarray:
    """Mirror stored values within their declared range (so the darkest becomes brightest)."""
    bits = int(ds.get("BitsStored", pixels.dtype.itemsize * 8))
    if int(ds.get("PixelRepresentation", 0)) == 1:
        return (-1 - pixels.astype(np.int32)).astype(pixels.dtype)  # maps [-2^(b-1), 2^(b-1)-1] onto itself
    return ((1 << bits) - 1 - pixels.astype(np.int64)).astype(pixels.dtype)


def _apply_modality_lut(pixels: np.ndarray, ds: Dataset, path: Path) -> np.ndarray:
    if "ModalityLUTSequence" in ds:
        from pydicom.pixels import apply_modality_lut

        return apply_modality_lut(pixels, ds)
    slope = rescale_slope(ds, path)
    intercept = get_float(ds, "RescaleIntercept", 0.0) or 0.0
    if slope == 1.0 and intercept == 0.0:
        return pixels
    if slope == 1.0 and intercept == round(intercept):
        out = pixels.astype(np.int32) + int(intercept)
        return out.astype(np.int16) if out.min() >= -(2**15) and out.max() < 2**15 else out
    return pixels.astype(np.float32) * np.float32(slope) + np.float32(intercept)


def _pixel_spacing(ds: Dataset, path: Path) -> tuple[float, float]:
    values = get_floats(ds, "PixelSpacing", 2)
    row, column = values.tolist() if values is not None else (0.0, 0.0)
    if row <= 0 or column <= 0:  # NaN passes, as it did
        raise SeriesError(path, "PixelSpacing missing or not positive: cannot place the slice in mm")
    return row, column


def _unit(vector: np.ndarray, path: Path) -> np.ndarray:
    norm = math.sqrt(vector.dot(vector))  # np.linalg.norm's own formula for a real vector, at a tenth of its cost
    if not 0.9 < norm < 1.1:
        raise SeriesError(path, f"ImageOrientationPatient has a non-unit cosine {vector.tolist()}")
    return vector / norm


def _first_not_none(*values):
    return next(v for v in values if v is not None)
