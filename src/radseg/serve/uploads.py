"""Turn one uploaded file into an :class:`~radseg.image.Image`, or a clear :class:`UploadError`.

Accepted uploads:

* images: a radiograph (PNG, JPEG, TIFF, BMP, DICOM), a CT or MR volume (NIfTI, MHA/NRRD, DICOM),
  or a ``.zip`` of one DICOM series (any folder layout inside);
* label maps (``as_labels=True``): a label PNG, NIfTI, NPY/NPZ, DICOM-SEG, or a ``.zip`` of a CXAS
  per-class PNG folder (with ``classes.json``).

Everything is checked before it is read: the size against ``max_bytes``, the type by content
and suffix, the pixel count from the file's header (:class:`PixelLimits`: a 79 KB blank PNG
may declare 9000x9000 pixels, which would take minutes and gigabytes to decode and segment),
and zips member by member: no absolute paths, no ``..`` (zip-slip), no symlinks,
a bounded number of members, bounded unpacked bytes (counted while extracting, so a lying
header does not help a zip bomb) and a bounded compression ratio. The readers themselves
(:func:`radseg.io.read`, :func:`radseg.io.read_labels`) do the decoding.
"""

from __future__ import annotations

import os
import shutil
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from radseg.errors import RadsegError
from radseg.image import Image
from radseg.io.atomic import full_suffix

__all__ = [
    "IMAGE_SUFFIXES",
    "LABEL_SUFFIXES",
    "Loaded",
    "PixelLimits",
    "UploadError",
    "ZipLimits",
    "accepted_text",
    "load_upload",
    "safe_extract_zip",
]

MB = 1024 * 1024

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".dcm", ".dicom", ".ima",
                  ".nii", ".nii.gz", ".mha", ".nrrd", ".zip")
LABEL_SUFFIXES = (".png", ".nii", ".nii.gz", ".npy", ".npz", ".dcm", ".mha", ".nrrd", ".zip")


class UploadError(RadsegError):
    """An upload that cannot be used; the message is written for the person who uploaded it."""


@dataclass(frozen=True)
class ZipLimits:
    """What a zip may hold. The defaults fit a CT series of a few thousand slices."""

    max_members: int = 20_000
    max_unpacked_bytes: int = 4096 * MB
    max_ratio: float = 200.0  # unpacked / packed, checked on members above 1 MB unpacked
    ratio_floor: int = MB


@dataclass(frozen=True)
class PixelLimits:
    """The largest picture an upload may declare in its header, checked before any decoding.

    ``max_pixels`` bounds a 2D image (default 36 million: 6000x6000, above any radiograph or
    mammogram; a 9000x9000 PNG is refused); ``max_voxels`` a volume (default 2**28, 268 million:
    1 GB as float32, e.g. 512x512x1024 CT). ``radseg serve --max-megapixels/--max-megavoxels``.
    """

    max_pixels: int = 36_000_000
    max_voxels: int = 2 ** 28


@dataclass
class Loaded:
    """An upload read into an image (or a label map), with where it came from."""

    image: Image
    name: str  # the case name: the upload's file name without its suffix
    kind: str  # "radiograph", "volume", "labels"
    notes: list[str] = field(default_factory=list)


def accepted_text(as_labels: bool = False) -> str:
    if as_labels:
        return "a label map: PNG, NIfTI (.nii/.nii.gz), NPY/NPZ, DICOM-SEG, MHA/NRRD, or a .zip of a CXAS class-PNG folder"
    return "PNG, JPEG, TIFF, BMP, DICOM (.dcm), NIfTI (.nii/.nii.gz), MHA/NRRD, or a .zip of one DICOM series"


def _case_name(path: Path) -> str:
    suffix = full_suffix(path)
    name = path.name[: -len(suffix)] if suffix and path.name.lower().endswith(suffix) else path.stem
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip("._")[:80] or "case"


def _size_text(n: int) -> str:
    return f"{n / MB:.1f} MB" if n >= 0.1 * MB else f"{n / 1024:.0f} KB"


def load_upload(path: str | Path, *, max_bytes: int, work_dir: str | Path, as_labels: bool = False,
                zip_limits: ZipLimits | None = None, display_name: str | None = None,
                pixel_limits: PixelLimits | None = None) -> Loaded:
    """Check and read one upload. ``work_dir`` receives an unpacked zip (the caller removes it)."""
    pixel_limits = pixel_limits or PixelLimits()
    path = Path(path)
    shown = display_name or path.name
    if not path.is_file():
        raise UploadError("no file was uploaded" if not str(path) else f"{shown}: the upload is missing on the server; upload it again")
    size = path.stat().st_size
    if size > max_bytes:
        raise UploadError(f"{shown} is {_size_text(size)}, above this server's upload limit of "
                          f"{_size_text(max_bytes)} (radseg serve --max-upload-mb)")
    if size == 0:
        raise UploadError(f"{shown} is empty (0 bytes)")
    with open(path, "rb") as handle:
        head = handle.read(8)
    suffix = full_suffix(path)
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")) or suffix == ".zip":
        folder = safe_extract_zip(path, Path(work_dir), limits=zip_limits or ZipLimits(), shown=shown)
        check_pixels(folder, pixel_limits, shown)
        return _read_folder(folder, _case_name(path), shown, as_labels)
    allowed = LABEL_SUFFIXES if as_labels else IMAGE_SUFFIXES
    if suffix not in allowed and not _looks_like_dicom(path):
        what = "label map" if as_labels else "image"
        raise UploadError(f"{shown}: {suffix or 'a file without suffix'} is not a supported {what} type; "
                          f"upload {accepted_text(as_labels)}")
    check_pixels(path, pixel_limits, shown)
    if as_labels:
        return Loaded(_read(lambda: _read_label_file(path), shown), _case_name(path), "labels")
    image = _read(lambda: _read_image(path), shown)
    return Loaded(image, _case_name(path), "volume" if image.ndim == 3 else "radiograph")


_RASTER = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


def _declared(path: Path) -> tuple[int, int] | None:
    """``(pixel count, spatial dims)`` from the file's header alone, or None when it cannot tell."""
    suffix = full_suffix(path)
    try:
        if suffix in _RASTER:
            from PIL import Image as PILImage

            with PILImage.open(path) as picture:  # reads the header only
                frames = int(getattr(picture, "n_frames", 1) or 1)
                width, height = picture.size
            return width * height * frames, 2 if frames == 1 else 3
        if suffix in (".nii", ".nii.gz"):
            import nibabel

            shape = [int(n) for n in nibabel.load(str(path)).shape[:3]]
            count = 1
            for n in shape:
                count *= n
            return count, 3 if len(shape) == 3 and shape[2] > 1 else 2
        if suffix in (".mha", ".nrrd"):
            import SimpleITK as sitk

            reader = sitk.ImageFileReader()
            reader.SetFileName(str(path))
            reader.ReadImageInformation()
            size = [int(n) for n in reader.GetSize()]
            count = 1
            for n in size:
                count *= n
            return count, 3 if len(size) >= 3 and size[2] > 1 else 2
        if suffix in (".dcm", ".dicom", ".ima", "") or _looks_like_dicom(path):
            import pydicom

            header = pydicom.dcmread(str(path), stop_before_pixels=True, force=True)
            frames = int(getattr(header, "NumberOfFrames", 1) or 1)
            count = int(header.Rows) * int(header.Columns) * frames
            return count, 2 if frames == 1 else 3
    except Exception:  # noqa: BLE001 - an unreadable header: the reader gives the real message
        return None
    return None


def check_pixels(path: Path, limits: PixelLimits, shown: str) -> None:
    """UploadError when the header(s) of ``path`` (a file, or an unpacked folder of DICOM slices)
    declare more pixels than ``limits`` allow; nothing is decoded."""
    path = Path(path)
    if path.is_dir():
        found = [_declared(f) for f in sorted(path.rglob("*")) if f.is_file()]
        found = [f for f in found if f is not None]
        if not found:
            return
        count = sum(n for n, _ in found)
        dims = 3 if len(found) > 1 or found[0][1] == 3 else 2
    else:
        declared = _declared(path)
        if declared is None:
            return
        count, dims = declared
    limit = limits.max_pixels if dims == 2 else limits.max_voxels
    if count > limit:
        what, flag = ("pixels", "--max-megapixels") if dims == 2 else ("voxels", "--max-megavoxels")
        raise UploadError(f"{shown} refused: its header declares {count / 1e6:.1f} million {what}, above this "
                          f"server's limit of {limit / 1e6:.1f} million (radseg serve {flag}); nothing was decoded")


def _looks_like_dicom(path: Path) -> bool:
    with open(path, "rb") as handle:
        head = handle.read(132)
    return len(head) == 132 and head[128:132] == b"DICM"


def _read_image(path: Path) -> Image:
    import radseg.io as rio

    return rio.read(path)


def _read_label_file(path: Path) -> Image:
    import radseg.io as rio
    from radseg.labels import make_label_map

    if full_suffix(path) in (".mha", ".nrrd"):
        return make_label_map(rio.read(path))
    labels = rio.read_labels(path)
    return labels if labels.channels is not None else make_label_map(labels)


def _read(reader, shown: str) -> Image:
    """Run a radseg reader; any failure becomes an UploadError naming the upload, not a temp path."""
    try:
        return reader()
    except RadsegError as exc:
        problem = getattr(exc, "problem", None) or str(exc)
        raise UploadError(f"could not read {shown}: {problem}") from None
    except MemoryError:
        raise UploadError(f"could not read {shown}: it is too large for this server's memory") from None
    except Exception as exc:  # noqa: BLE001 - a decoder's own error on a corrupt file
        raise UploadError(f"could not read {shown}: the file looks corrupt or truncated "
                          f"({type(exc).__name__}: {str(exc)[:200]})") from None


def _read_folder(folder: Path, name: str, shown: str, as_labels: bool) -> Loaded:
    import radseg.io as rio

    classes = sorted(folder.rglob("classes.json"))
    if as_labels:
        if not classes:
            raise UploadError(f"{shown}: a label zip holds one CXAS class-PNG folder (with classes.json); none found")
        return Loaded(_read(lambda: rio.read_labels(classes[0].parent), shown), name, "labels")
    files = [p for p in folder.rglob("*") if p.is_file()]
    if not files:
        raise UploadError(f"{shown}: the zip holds no files")
    if classes:
        raise UploadError(f"{shown} is a label folder (classes.json); choose 'labels' as the model to measure it")
    image = _read(lambda: rio.read(folder), shown)
    return Loaded(image, name, "volume" if image.ndim == 3 else "radiograph",
                  notes=[f"{len(files)} file(s) unpacked from the zip"])


def _member_problem(info: zipfile.ZipInfo) -> str | None:
    name = info.filename
    if "\x00" in name:
        return "has a NUL character in its name"
    unix = name.replace("\\", "/")
    if unix.startswith("/") or (len(unix) > 1 and unix[1] == ":"):
        return "has an absolute path"
    if any(part == ".." for part in PurePosixPath(unix).parts):
        return "points outside the zip's folder (..)"
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        return "is a symbolic link"
    return None


def safe_extract_zip(path: str | Path, work_dir: str | Path, *, limits: ZipLimits = ZipLimits(),
                     shown: str | None = None) -> Path:
    """Unpack ``path`` into a new folder under ``work_dir`` after checking every member.

    Refuses (UploadError) members with absolute paths, ``..`` or symlinks; more than
    ``max_members`` members; more than ``max_unpacked_bytes`` in total (declared, and again
    counted while writing); members whose compression ratio exceeds ``max_ratio``. Nested
    zips are not opened. Partial output is removed on failure.
    """
    path = Path(path)
    shown = shown or path.name
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise UploadError(f"{shown} is not a readable zip file ({exc})") from None
    with archive:
        members = [m for m in archive.infolist() if not m.is_dir()]
        if len(members) > limits.max_members:
            raise UploadError(f"{shown} holds {len(members)} files, more than the {limits.max_members} allowed")
        declared = 0
        for info in members:
            problem = _member_problem(info)
            if problem:
                raise UploadError(f"{shown} refused: the entry '{info.filename[:120]}' {problem}; "
                                  "a zip may only hold files inside its own folder")
            declared += info.file_size
            if info.file_size >= limits.ratio_floor and info.file_size > limits.max_ratio * max(info.compress_size, 1):
                raise UploadError(f"{shown} refused: '{info.filename[:120]}' unpacks {info.file_size // max(info.compress_size, 1)}x "
                                  f"its packed size (a zip bomb?); the limit is {limits.max_ratio:.0f}x")
        if declared > limits.max_unpacked_bytes:
            raise UploadError(f"{shown} refused: it unpacks to {_size_text(declared)}, above the "
                              f"{_size_text(limits.max_unpacked_bytes)} limit (a zip bomb?)")
        target = Path(work_dir)
        target.mkdir(parents=True, exist_ok=True)
        root = Path(os.path.realpath(target / "unzipped"))
        root.mkdir(exist_ok=True)
        written = 0
        try:
            for info in members:
                parts = [p for p in PurePosixPath(info.filename.replace("\\", "/")).parts if p not in ("", ".")]
                if not parts or parts[0] == "__MACOSX":
                    continue
                out = Path(os.path.realpath(root.joinpath(*parts)))
                if root not in out.parents:  # belt and braces after the name checks
                    raise UploadError(f"{shown} refused: the entry '{info.filename[:120]}' points outside the zip's folder")
                out.parent.mkdir(parents=True, exist_ok=True)
                budget = info.file_size
                with archive.open(info) as source, open(out, "wb") as sink:
                    while True:
                        chunk = source.read(MB)
                        if not chunk:
                            break
                        written += len(chunk)
                        budget -= len(chunk)
                        if budget < 0 or written > limits.max_unpacked_bytes:
                            raise UploadError(f"{shown} refused: '{info.filename[:120]}' unpacks to more than "
                                              "its header says or than the limit allows (a zip bomb?)")
                        sink.write(chunk)
        except UploadError:
            shutil.rmtree(root, ignore_errors=True)
            raise
        except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, NotImplementedError) as exc:
            shutil.rmtree(root, ignore_errors=True)
            raise UploadError(f"{shown} is a damaged or unsupported zip ({type(exc).__name__}: {exc})") from None
    return root
