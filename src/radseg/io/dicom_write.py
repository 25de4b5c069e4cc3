"""Write images as DICOM: a CT/MR series (one file per slice) or a single radiograph.

Used by the phantom generator (data in the layouts users have) and by the tests. The
files carry valid patient geometry (ImagePositionPatient per slice from the affine,
ImageOrientationPatient, PixelSpacing) and a rescale so stored values are unsigned.
Patient attributes are synthetic placeholders.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from radseg.errors import WriteError
from radseg.image import Image
from radseg.io.atomic import atomic_path

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
CR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.1"
DX_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.1.1"  # for presentation
_SOP_CLASS = {"CT": CT_IMAGE_STORAGE, "MR": MR_IMAGE_STORAGE, "CR": CR_IMAGE_STORAGE, "DX": DX_IMAGE_STORAGE}


def _base_dataset(modality: str, patient: dict[str, Any], study_uid: str, series_uid: str,
                  description: str, series_number: int) -> Dataset:
    today = _dt.date(2020, 1, 1).strftime("%Y%m%d")
    ds = Dataset()
    ds.PatientName = patient.get("name", "PHANTOM^RADSEG")
    ds.PatientID = patient.get("id", "PHANTOM")
    ds.PatientSex = patient.get("sex", "O")
    ds.PatientBirthDate = ""
    if patient.get("age") is not None:
        ds.PatientAge = f"{int(patient['age']):03d}Y"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = today
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = "120000"
    ds.StudyID = "1"
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    ds.Modality = modality
    ds.Manufacturer = "radseg"
    ds.SeriesDescription = description
    ds.SeriesNumber = series_number
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    return ds


# Fixed, so two runs with the same inputs write byte-identical files.
IMPLEMENTATION_CLASS_UID = "1.2.826.0.1.3680043.8.498.40411291452071211532811118116"
RADSEG_UID_PREFIX = "1.2.826.0.1.3680043.8.498."


def make_uid(seed: str | None, *parts: object) -> str:
    """A new random UID, or, with a ``seed``, a UID derived from seed and parts (reproducible)."""
    if seed is None:
        return generate_uid()
    return generate_uid(prefix=RADSEG_UID_PREFIX, entropy_srcs=[str(seed), *map(str, parts)])


def _file_meta(sop_class: str, sop_instance: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    return meta


def _save(ds: Dataset, path: Path) -> None:
    ds.file_meta = _file_meta(ds.SOPClassUID, ds.SOPInstanceUID)
    with atomic_path(path) as tmp:
        ds.save_as(tmp, enforce_file_format=True)


def write_dicom_series(
    image: Image,
    folder: str | Path,
    *,
    modality: str = "CT",
    description: str = "radseg phantom",
    series_number: int = 1,
    patient: dict[str, Any] | None = None,
    study_uid: str | None = None,
    series_uid: str | None = None,
    intercept: float = -1024.0,
    slope: float = 1.0,
    file_pattern: str = "IM{index:05d}.dcm",
    uid_seed: str | None = None,
) -> list[Path]:
    """Write a 3D LPS image as one DICOM file per slice; returns the paths in slice order.

    Stored values are ``round((value - intercept) / slope)`` as unsigned 16-bit; values
    that do not fit are refused. A sheared affine gives a gantry-tilted series.
    """
    if image.ndim != 3 or image.channels is not None:
        raise WriteError(folder, "a DICOM series needs a 3D scalar image")
    folder = Path(folder)
    stored = np.rint((image.array.astype(np.float64) - intercept) / slope)
    if stored.size and (stored.min() < 0 or stored.max() > 65535):
        raise WriteError(folder, f"values do not fit 16-bit storage with intercept {intercept} and slope {slope}")
    stored = stored.astype(np.uint16)
    study_uid = study_uid or make_uid(uid_seed, "study")
    series_uid = series_uid or make_uid(uid_seed, "series", series_number)
    frame_uid = make_uid(uid_seed, "frame", series_number)
    row_spacing, col_spacing = image.spacing[1], image.spacing[2]
    row_cosine = image.direction[:, 2]
    column_cosine = image.direction[:, 1]
    paths = []
    for k in range(image.shape[0]):
        ds = _base_dataset(modality, patient or {}, study_uid, series_uid, description, series_number)
        ds.SOPClassUID = _SOP_CLASS.get(modality, CT_IMAGE_STORAGE)
        ds.SOPInstanceUID = make_uid(uid_seed, "instance", series_number, k)
        ds.FrameOfReferenceUID = frame_uid
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.InstanceNumber = k + 1
        ds.PositionReferenceIndicator = ""
        ds.ImagePositionPatient = [f"{v:.6f}" for v in image.index_to_world([k, 0, 0])]
        ds.ImageOrientationPatient = [f"{v:.8f}" for v in (*row_cosine, *column_cosine)]
        ds.PixelSpacing = [f"{row_spacing:.6f}", f"{col_spacing:.6f}"]
        ds.SliceThickness = f"{image.spacing[0]:.6f}"
        ds.Rows, ds.Columns = image.shape[1], image.shape[2]
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 0
        ds.RescaleIntercept = f"{intercept:g}"
        ds.RescaleSlope = f"{slope:g}"
        if modality == "CT":
            ds.RescaleType = "HU"
            ds.KVP = "120"
        ds.PixelData = np.ascontiguousarray(stored[k]).tobytes()
        path = folder / file_pattern.format(index=k + 1, uid=ds.SOPInstanceUID)
        _save(ds, path)
        paths.append(path)
    return paths


def write_dicom_radiograph(
    image: Image,
    path: str | Path,
    *,
    modality: str = "DX",
    description: str = "radseg phantom radiograph",
    photometric: str = "MONOCHROME2",
    bits_stored: int = 16,
    spacing_tag: str = "ImagerPixelSpacing",
    magnification: float | None = None,
    patient: dict[str, Any] | None = None,
    view_position: str = "AP",
    uid_seed: str | None = None,
    laterality: str | None = None,
) -> Path:
    """Write a 2D image as a CR/DX file with its spacing in ``spacing_tag``.

    ``photometric="MONOCHROME1"`` stores the values as given and labels them MONOCHROME1
    (so a reader that inverts shows the inverse of the array). ``uid_seed`` as for
    :func:`write_dicom_series`. ``laterality``: ImageLaterality (R, L or B) when known.
    """
    if image.ndim != 2 or image.channels is not None:
        raise WriteError(path, "a radiograph needs a 2D scalar image")
    array = image.array
    if array.size and (array.min() < 0 or array.max() >= (1 << bits_stored)):
        raise WriteError(path, f"values do not fit {bits_stored} unsigned bits")
    path = Path(path)
    ds = _base_dataset(modality, patient or {}, make_uid(uid_seed, "study"), make_uid(uid_seed, "series"),
                       description, 1)
    ds.SOPClassUID = _SOP_CLASS.get(modality, DX_IMAGE_STORAGE)
    ds.SOPInstanceUID = make_uid(uid_seed, "instance")
    if laterality:
        ds.ImageLaterality = laterality
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.InstanceNumber = 1
    ds.PhotometricInterpretation = photometric
    ds.ViewPosition = view_position
    ds.PatientOrientation = ["L", "F"]
    ds.Rows, ds.Columns = image.shape
    ds.BitsAllocated = 16 if bits_stored > 8 else 8
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 0
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.BurnedInAnnotation = "NO"
    spacing = image.spacing
    if magnification is not None:
        ds.EstimatedRadiographicMagnificationFactor = f"{magnification:g}"
        spacing = spacing * magnification  # the detector sees the anatomy magnified
    setattr(ds, spacing_tag, [f"{spacing[0]:.6f}", f"{spacing[1]:.6f}"])
    dtype = np.uint16 if ds.BitsAllocated == 16 else np.uint8
    ds.PixelData = np.ascontiguousarray(array.astype(dtype)).tobytes()
    _save(ds, path)
    return path
