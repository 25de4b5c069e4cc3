"""Read DICOM: classic series, enhanced multi-frame objects and projection radiographs.

* Series (CT/MR/PT ... one plane per file) -> 3D ``Image`` ``[slice, row, col]`` in LPS,
  rescaled to real-world values (CT in HU), sorted by position along the slice normal.
* Enhanced multi-frame (Enhanced CT/MR, legacy converted) -> 3D ``Image`` the same way,
  from the per-frame functional groups.
* Radiographs (CR/DX/MG/IO/PX/RF/XA, or any image without patient geometry) -> 2D
  ``Image`` ``[row, col]`` with the full stored bit depth. MONOCHROME1 images are kept as
  stored (``metadata["photometric"] == "MONOCHROME1"``: low values display white) unless
  ``invert_monochrome1=True`` maps them to MONOCHROME2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from radseg.errors import ReadError, SeriesError
from radseg.image import Image
from radseg.io.dicom_scan import DicomSeries, classify, read_header, scan, series_uid
from radseg.io.dicom_stack import GapPolicy, Plane, TiltPolicy, stack_planes
from radseg.io.dicom_tags import decode_pixels, get_float, get_floats, safe_metadata


def read_dicom(
    path: str | Path,
    *,
    series: str | None = None,
    on_gap: GapPolicy = "error",
    tilt: TiltPolicy = "resample",
    include_derived: bool = False,
    invert_monochrome1: bool = False,
) -> Image:
    """Read a DICOM file, or the one series of a folder (``series`` picks by UID or description)."""
    path = Path(path)
    options: dict[str, Any] = dict(on_gap=on_gap, tilt=tilt, invert_monochrome1=invert_monochrome1)
    if path.is_dir():
        found = scan(path, include_derived=include_derived)
        return read_series(found.select(series, origin=path), **options)
    try:
        ds = read_header(path)
    except InvalidDicomError:
        raise ReadError(path, "not a DICOM file (no DICM preamble)") from None
    except Exception as exc:
        raise ReadError(path, f"not a readable DICOM file ({type(exc).__name__}: {exc})") from exc
    kind = classify(ds, include_derived=include_derived)
    if kind not in ("slices", "enhanced", "radiograph"):
        raise ReadError(path, f"cannot read as an image: {kind}")
    uid = series_uid(ds, path)
    return read_series(DicomSeries(uid=uid, kind=kind, headers=[(path, ds)]), **options)  # type: ignore[arg-type]


def read_series(
    series: DicomSeries,
    *,
    on_gap: GapPolicy = "error",
    tilt: TiltPolicy = "resample",
    invert_monochrome1: bool = False,
) -> Image:
    """Read one item found by :func:`radseg.io.dicom_scan.scan`."""
    meta = base_metadata(series)
    if series.kind == "radiograph":
        path, ds = series.headers[0]
        return read_radiograph(path, ds, invert_monochrome1=invert_monochrome1, metadata=meta)
    planes = series_planes(series)
    meta["source_files"] = [str(path) for path in series.files]
    name = series.files[0].parent if series.kind == "slices" and len(series.files) > 1 else series.files[0]
    image = stack_planes(planes, name=f"{name} [series {series.key}]", on_gap=on_gap, tilt=tilt, metadata=meta)
    if series.kind == "slices":
        # Keep source files in slice order (DICOM-SEG needs the referenced instances).
        image.metadata["source_files"] = image.metadata.pop("slice_sources")
    return image


def series_planes(series: DicomSeries) -> list[Plane]:
    """The planes of a slices or enhanced item (headers only; pixels are decoded later)."""
    if series.kind == "enhanced":
        path, ds = series.headers[0]
        return enhanced_planes(path, ds)
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
        slope=get_float(ds, "RescaleSlope", 1.0) or 1.0,
        intercept=get_float(ds, "RescaleIntercept", 0.0) or 0.0,
        load=lambda: decode_pixels(ds),
        thickness=get_float(ds, "SpacingBetweenSlices") or get_float(ds, "SliceThickness"),
    )


def enhanced_planes(path: Path, ds: Dataset) -> list[Plane]:
    """The frames of an enhanced multi-frame object, from its functional groups."""
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
    shared_seq = ds.get("SharedFunctionalGroupsSequence") or []
    shared = shared_seq[0] if len(shared_seq) else Dataset()
    frames_count = int(ds.get("NumberOfFrames", 1) or 1)
    if len(per_frame) != frames_count:
        raise SeriesError(path, f"{len(per_frame)} per-frame groups for {frames_count} frames")
    cache: dict[str, np.ndarray] = {}

    def frame_loader(index: int):
        def load() -> np.ndarray:
            if "all" not in cache:
                pixels = decode_pixels(ds)
                cache["all"] = pixels if pixels.ndim == 3 else pixels[np.newaxis]
            return cache["all"][index]
        return load

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
            slope=get_float(transform, "RescaleSlope", None) or get_float(ds, "RescaleSlope", 1.0) or 1.0,
            intercept=_first_not_none(get_float(transform, "RescaleIntercept"), get_float(ds, "RescaleIntercept"), 0.0),
            load=frame_loader(index),
            thickness=get_float(measures, "SpacingBetweenSlices") or get_float(measures, "SliceThickness"),
        ))
    return planes


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
    pixels = _apply_modality_lut(pixels, ds)
    spacing, source = radiograph_spacing(ds)
    if source is None:
        problems.append("no valid PixelSpacing or ImagerPixelSpacing: 1 mm pixels assumed")
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
    is_colour = pixels.ndim == 3 and pixels.shape[-1] in (3, 4) and int(ds.get("SamplesPerPixel", 1)) > 1
    if pixels.ndim == 3 and not is_colour:
        problems.append(f"{pixels.shape[0]} frames without patient geometry: frame axis spacing is 1 (not mm)")
        return Image(pixels, spacing=(1.0, *spacing), metadata=meta)
    return Image(pixels, spacing=spacing, spatial_ndim=2, metadata=meta)


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


def _apply_modality_lut(pixels: np.ndarray, ds: Dataset) -> np.ndarray:
    if "ModalityLUTSequence" in ds:
        from pydicom.pixels import apply_modality_lut

        return apply_modality_lut(pixels, ds)
    slope = get_float(ds, "RescaleSlope", 1.0) or 1.0
    intercept = get_float(ds, "RescaleIntercept", 0.0) or 0.0
    if slope == 1.0 and intercept == 0.0:
        return pixels
    if slope == 1.0 and intercept == round(intercept):
        out = pixels.astype(np.int32) + int(intercept)
        return out.astype(np.int16) if out.min() >= -(2**15) and out.max() < 2**15 else out
    return pixels.astype(np.float32) * np.float32(slope) + np.float32(intercept)


def _pixel_spacing(ds: Dataset, path: Path) -> tuple[float, float]:
    values = get_floats(ds, "PixelSpacing", 2)
    if values is None or np.any(values <= 0):
        raise SeriesError(path, "PixelSpacing missing or not positive: cannot place the slice in mm")
    return float(values[0]), float(values[1])


def _unit(vector: np.ndarray, path: Path) -> np.ndarray:
    norm = np.linalg.norm(vector)
    if not 0.9 < norm < 1.1:
        raise SeriesError(path, f"ImageOrientationPatient has a non-unit cosine {vector.tolist()}")
    return vector / norm


def _first_not_none(*values):
    return next(v for v in values if v is not None)
