"""Small helpers over pydicom datasets: typed tag access, pixel decoding, safe metadata."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

# Acquisition metadata that is useful downstream and carries no patient identity.
# An allow-list (not a block-list) so a new private or identifying tag never leaks.
SAFE_TAGS = (
    "Modality",
    "Manufacturer",
    "ManufacturerModelName",
    "SoftwareVersions",
    "BodyPartExamined",
    "SeriesDescription",
    "ProtocolName",
    "SeriesNumber",
    "ImageType",
    "ScanOptions",
    "SliceThickness",
    "SpacingBetweenSlices",
    "KVP",
    "XRayTubeCurrent",
    "Exposure",
    "ExposureTime",
    "ConvolutionKernel",
    "ReconstructionDiameter",
    "GantryDetectorTilt",
    "PatientPosition",
    "ViewPosition",
    "ImageLaterality",
    "Laterality",
    "PhotometricInterpretation",
    "BitsAllocated",
    "BitsStored",
    "PixelRepresentation",
    "RescaleSlope",
    "RescaleIntercept",
    "RescaleType",
    "WindowCenter",
    "WindowWidth",
    "PixelSpacing",
    "ImagerPixelSpacing",
    "EstimatedRadiographicMagnificationFactor",
    "DistanceSourceToDetector",
    "DistanceSourceToPatient",
    "PresentationIntentType",
    "MagneticFieldStrength",
    "RepetitionTime",
    "EchoTime",
    "FlipAngle",
)

# Modalities that make 2D projection images (no patient position per pixel).
PROJECTION_MODALITIES = {"CR", "DX", "MG", "IO", "PX", "RF", "XA", "RG", "DF"}
# Objects with no image to read here (segmentations, reports, structures ...).
NON_IMAGE_MODALITIES = {"SR", "SEG", "RTSTRUCT", "RTPLAN", "RTRECORD", "PR", "KO", "REG", "DOC", "FID"}
ENHANCED_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.2.1",  # Enhanced CT
    "1.2.840.10008.5.1.4.1.1.4.1",  # Enhanced MR
    "1.2.840.10008.5.1.4.1.1.130",  # Enhanced PET
    "1.2.840.10008.5.1.4.1.1.2.2",  # Legacy converted enhanced CT
    "1.2.840.10008.5.1.4.1.1.4.4",  # Legacy converted enhanced MR
}


def get_floats(ds: Dataset, keyword: str, count: int | None = None) -> np.ndarray | None:
    """A numeric (multi-)value as floats, or None when absent, empty or malformed."""
    value = ds.get(keyword)
    if value is None or value == "":
        return None
    items = [value] if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__") else value
    try:
        values = np.array([float(v) for v in items], dtype=float)  # a flat list: the array is 1D
    except (TypeError, ValueError):
        return None
    if count is not None and values.size != count:
        return None
    return values


def get_float(ds: Dataset, keyword: str, default: float | None = None) -> float | None:
    value = ds.get(keyword)
    if isinstance(value, (int, float)):  # one number (DS, IS, US ...): what the array below gives, without it
        return float(value)
    values = get_floats(ds, keyword)
    return float(values[0]) if values is not None and values.size else default


def image_type(ds: Dataset) -> list[str]:
    value = ds.get("ImageType") or []
    if isinstance(value, str):
        value = value.split("\\")
    return [str(v).upper() for v in value]


def safe_metadata(ds: Dataset) -> dict[str, Any]:
    """Allow-listed, JSON-ready acquisition metadata of one dataset (no identifiers, no dates)."""
    out: dict[str, Any] = {}
    for keyword in SAFE_TAGS:
        value = ds.get(keyword)
        if value is None or value == "":
            continue
        out[keyword] = _jsonable(value)
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return [_jsonable(v) for v in value]
    if isinstance(value, (int, float, str, bool)):
        # pydicom's DS/IS subclass float/int; give plain Python numbers.
        if isinstance(value, bool):
            return value
        if isinstance(value, int):
            return int(value)
        if isinstance(value, float):
            return float(value)
        return str(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def decode_pixels(ds: Dataset) -> np.ndarray:
    """The stored pixel values (before any rescale) of a single- or multi-frame dataset.

    Uses pydicom's decoders; compressed transfer syntaxes go through the installed
    pylibjpeg plugins (JPEG baseline/lossless, JPEG-LS, JPEG 2000, RLE).
    """
    if hasattr(ds, "read_pixels"):  # a FastHeader (radseg.io.dicom_header): plain pixels straight from the file
        return ds.read_pixels()
    fast = _read_native_pixels(ds)
    if fast is not None:
        return fast
    # The pixel element was deferred at scan time; put the deferred (empty) element back
    # after decoding so a batch over many series does not keep every file's pixels alive.
    raw = ds._dict.get(0x7FE00010)
    try:
        return ds.pixel_array
    finally:
        ds._pixel_array = None
        ds._pixel_id = {}
        if raw is not None and getattr(raw, "value", b"") is None:
            ds._dict[0x7FE00010] = raw


_NATIVE_LITTLE_ENDIAN = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1"}


def _read_native_pixels(ds: Dataset) -> np.ndarray | None:
    """Uncompressed single-frame greyscale pixels read straight from the file.

    pydicom's general decoder costs about as much as parsing the header; for the common
    case (native little-endian, one sample, whole bytes, no sign extension needed) the
    bytes on disk are the array. Anything else returns None and goes through pydicom.
    """
    raw = ds._dict.get(0x7FE00010)
    meta = getattr(ds, "file_meta", None)
    if raw is None or getattr(raw, "value", b"") is not None or meta is None or not getattr(ds, "filename", None):
        return None
    if str(meta.get("TransferSyntaxUID", "")) not in _NATIVE_LITTLE_ENDIAN:
        return None
    bits = int(ds.get("BitsAllocated", 0) or 0)
    stored = int(ds.get("BitsStored", bits) or bits)
    signed = int(ds.get("PixelRepresentation", 0) or 0) == 1
    if bits not in (8, 16) or int(ds.get("SamplesPerPixel", 1) or 1) != 1 or int(ds.get("NumberOfFrames", 1) or 1) != 1:
        return None
    if signed and stored != bits:
        return None  # needs sign extension from BitsStored: leave it to pydicom
    rows, columns = int(ds.Rows), int(ds.Columns)
    dtype = np.dtype(f"<{'i' if signed else 'u'}{bits // 8}")
    if raw.length != rows * columns * dtype.itemsize:
        return None
    pixels = np.fromfile(ds.filename, dtype=dtype, count=rows * columns, offset=raw.value_tell)
    if pixels.size != rows * columns:
        raise ValueError(f"pixel data truncated: {pixels.size} of {rows * columns} values in the file")
    if not signed and stored < bits and pixels.max(initial=0) >= (1 << stored):
        return None  # bits above BitsStored are set (overlays): let pydicom decide
    return pixels.reshape(rows, columns).astype(dtype.newbyteorder("="), copy=False)
