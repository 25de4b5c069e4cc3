"""Read any supported file into an :class:`~radseg.image.Image`, and write images by suffix.

``read(path)`` looks at the file's content first (magic bytes) and its suffix second, so
a DICOM file called ``scan.img`` or a PNG called ``x.dat`` is still read right:

========  ==============================================  ===========================
format    content / suffix                                reader
========  ==============================================  ===========================
dicom     folder, ``DICM`` at byte 128, ``.dcm``           :mod:`radseg.io.dicom`
nifti     ``.nii``, ``.nii.gz`` (NIfTI-1/2 header)         :mod:`radseg.io.nifti`
raster    PNG, JPEG, TIFF, BMP signatures                  :mod:`radseg.io.raster`
itk       ``.mha``, ``.mhd``, ``.nrrd``, ``.nhdr``         :mod:`radseg.io.itk`
========  ==============================================  ===========================
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from radseg.errors import ReadError, WriteError
from radseg.image import Image
from radseg.io.atomic import full_suffix, not_regular
from radseg.registry import Registry

__all__ = ["read", "read_labels", "write", "detect_format", "series_options", "IMAGE_WRITERS", "READERS"]

_SUFFIX_FORMATS = {
    ".dcm": "dicom", ".dicom": "dicom", ".ima": "dicom",
    ".nii": "nifti", ".nii.gz": "nifti",
    ".png": "raster", ".jpg": "raster", ".jpeg": "raster", ".tif": "raster", ".tiff": "raster", ".bmp": "raster",
    ".mha": "itk", ".mhd": "itk", ".nrrd": "itk", ".nhdr": "itk", ".seg.nrrd": "itk",
}


def _read_dicom(path: Path, **options: Any) -> Image:
    from radseg.io.dicom import read_dicom

    return read_dicom(path, **options)


def _read_nifti(path: Path, **options: Any) -> Image:
    from radseg.io.nifti import read_nifti

    return read_nifti(path)


def _read_raster(path: Path, **options: Any) -> Image:
    from radseg.io.raster import read_raster

    return read_raster(path)


def _read_itk(path: Path, **options: Any) -> Image:
    from radseg.io.itk import read_itk

    return read_itk(path)


READERS: Registry[Callable[..., Image]] = Registry("image format")
READERS.register("dicom", _read_dicom)
READERS.register("nifti", _read_nifti)
READERS.register("raster", _read_raster)
READERS.register("itk", _read_itk)


def detect_format(path: str | Path) -> str:
    """The reader for ``path``: by content when the file has a known signature, else by suffix."""
    path = Path(path)
    if path.is_dir():
        return "dicom"
    if not path.exists():
        raise ReadError(path, "no such file or folder")
    why = not_regular(path)
    if why:
        raise ReadError(path, why)
    with open(path, "rb") as handle:
        head = handle.read(352)
    suffix = full_suffix(path)
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "dicom"
    if head.startswith(b"\x89PNG") or head.startswith(b"\xff\xd8\xff") or head[:4] in (b"II*\x00", b"MM\x00*") or head.startswith(b"BM"):
        return "raster"
    if head.startswith(b"NRRD"):
        return "itk"
    if len(head) >= 348 and head[344:348] in (b"n+1\x00", b"ni1\x00"):
        return "nifti"
    if head[4:8] in (b"n+2\x00",) or (len(head) >= 8 and head[:4] == (540).to_bytes(4, "little")):
        return "nifti"
    if head.startswith(b"\x1f\x8b") and suffix == ".nii.gz":
        return "nifti"
    if suffix in _SUFFIX_FORMATS:
        return _SUFFIX_FORMATS[suffix]
    if not head:
        raise ReadError(path, "file is empty")
    # Last try: DICOM without preamble (some archives strip it).
    return "dicom" if suffix == "" else _unknown(path, suffix)


def _unknown(path: Path, suffix: str) -> str:
    raise ReadError(
        path,
        f"unknown image format {suffix or '(no suffix)'}; readable: DICOM (file or folder), "
        f"{', '.join(sorted(_SUFFIX_FORMATS))}",
    )


#: The read options that apply to an already grouped DICOM series (radseg.io.dicom.read_series).
SERIES_OPTIONS = ("on_gap", "tilt", "invert_monochrome1")


def series_options(options: dict[str, Any] | None) -> dict[str, Any]:
    """Of ``read``'s options, those ``read_series`` takes (the others choose files and series)."""
    return {k: v for k, v in (options or {}).items() if k in SERIES_OPTIONS}


def read(path: str | Path, **options: Any) -> Image:
    """Read an image or a DICOM series (folder) into an Image.

    DICOM options: ``series`` (UID or part of the description, for folders with several),
    ``on_gap`` ("error" or "resample"), ``tilt`` ("resample" or "shear"),
    ``include_derived``, ``invert_monochrome1``. Other readers take no options.
    """
    path = Path(path)
    fmt = detect_format(path)
    if fmt != "dicom" and options:
        unexpected = ", ".join(sorted(options))
        raise TypeError(f"{fmt} reader takes no options (got {unexpected})")
    return READERS[fmt](path, **options)


# --- image writers (label-map writers build on these) ---------------------------------

def _write_nifti(image: Image, path: Path) -> Path:
    from radseg.io.nifti import write_nifti

    return write_nifti(image, path)


def _write_raster(image: Image, path: Path) -> Path:
    from radseg.io.raster import write_raster

    return write_raster(image, path)


def _write_itk(image: Image, path: Path) -> Path:
    from radseg.io.itk import write_itk

    return write_itk(image, path)


#: Suffix -> writer. The CLI's ``convert`` lists these as the accepted outputs.
IMAGE_WRITERS: Registry[Callable[[Image, Path], Path]] = Registry("output suffix")
for _suffix in (".nii.gz", ".nii"):
    IMAGE_WRITERS.register(_suffix, _write_nifti)
for _suffix in (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp"):
    IMAGE_WRITERS.register(_suffix, _write_raster)
for _suffix in (".mha", ".nrrd"):
    IMAGE_WRITERS.register(_suffix, _write_itk)


def write(image: Image, path: str | Path, /, kind: str | None = None, **options: Any):
    """Write an image by the suffix of ``path``, or labels as ``kind`` (atomically).

    Without ``kind`` the format follows the suffix (:data:`IMAGE_WRITERS`). With ``kind``
    (``nifti``, ``png``, ``png-classes``, ``npy``, ``npz``, ``coco``, ``dicom-seg``,
    ``overlay``) ``image`` is a label map or multi-label mask and ``path`` a file or folder;
    see :mod:`radseg.io.label_formats`.
    """
    path = Path(path)
    if kind is not None:
        from radseg.io.label_formats import write_labels

        return write_labels(image, path, kind, **options)
    if options:
        raise TypeError(f"image writers take no options (got {', '.join(sorted(options))})")
    suffix = full_suffix(path)
    if suffix not in IMAGE_WRITERS:
        raise WriteError(path, IMAGE_WRITERS.unknown_message(suffix or "(no suffix)"))
    return IMAGE_WRITERS[suffix](image, path)


def read_labels(path: str | Path, **options: Any) -> Image:
    """Read labels written by any label writer (see :func:`write`)."""
    from radseg.io.label_formats import read_labels as _read_labels

    return _read_labels(path, **options)
