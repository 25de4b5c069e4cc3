"""PNG, JPEG, TIFF and BMP through Pillow, with 16-bit data kept 16-bit.

Raster files carry no physical pixel size that radiology tools agree on, so images
read from them have unit (1 px) spacing and ``metadata["spacing_known"] = False``: lengths
measured on them are in px.
Greyscale images saved as RGB (common for JPEG radiographs) come back single-channel
when the three channels are identical; real colour keeps a trailing channel axis.
A JPEG/TIFF whose EXIF orientation tag turns it in every viewer comes back turned the same
way (annotators drew on what they saw); ``metadata["exif_orientation"]`` records the tag.

Size limit: a file whose header claims more than :data:`MAX_PIXELS` pixels per page
(128 megapixels, e.g. 11585 x 11585) is refused before anything is decoded, naming the file
and the size it claims: a 48 KB PNG can claim 20000 x 20000 and would need gigabytes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from radseg.errors import ReadError, WriteError
from radseg.image import Image
from radseg.io.atomic import atomic_path, full_suffix

LOSSY_SUFFIXES = {".jpg", ".jpeg"}
#: Most pixels per page radseg decodes from a PNG/JPEG/TIFF/BMP (checked in the header first).
MAX_PIXELS = 1 << 27


def read_raster(path: str | Path) -> Image:
    import warnings

    from PIL import Image as PILImage, UnidentifiedImageError

    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)  # radseg's own limit applies
            pil_file = PILImage.open(path)
    except PILImage.DecompressionBombError as exc:  # Pillow's own header check, above radseg's limit
        import re

        claimed = re.search(r"\((\d+) pixels\)", str(exc))
        raise ReadError(path, f"header claims {claimed.group(1) if claimed else 'too many'} pixels, more than "
                              f"radseg's limit of {MAX_PIXELS} pixels per image: not decoded") from None
    except UnidentifiedImageError:
        raise ReadError(path, "not a readable PNG/JPEG/TIFF/BMP image") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ReadError(path, f"corrupt or truncated image ({exc})") from exc
    try:
        with pil_file as pil:
            width, height = pil.size
            if width * height > MAX_PIXELS:
                raise ReadError(path, f"header claims {width} x {height} = {width * height} pixels, more than radseg's "
                                      f"limit of {MAX_PIXELS} pixels per image: not decoded")
            orientation = int(pil.getexif().get(0x0112) or 1)
            frames = [_to_array(pil, path)]
            for index in range(1, getattr(pil, "n_frames", 1)):
                pil.seek(index)
                frames.append(_to_array(pil, path))
    except ReadError:
        raise
    except (OSError, SyntaxError, ValueError, MemoryError) as exc:
        raise ReadError(path, f"corrupt or truncated image ({type(exc).__name__}: {exc})") from exc
    meta = {
        "format": "raster",
        "source_files": [str(path)],
        "spacing_known": False,
        "lossy": full_suffix(path) in LOSSY_SUFFIXES,
        "problems": [],
    }
    if len(frames) > 1:
        if any(f.shape != frames[0].shape for f in frames):
            raise ReadError(path, "multi-page image with pages of different sizes")
        meta["problems"].append(f"{len(frames)} pages stacked as slices with 1 mm spacing")
        return Image(np.stack(frames), spacing=(1.0, 1.0, 1.0), metadata=meta)
    array = frames[0]
    if orientation != 1:
        array = np.ascontiguousarray(apply_orientation(array, orientation))
        meta["exif_orientation"] = orientation
        meta["problems"].append(f"EXIF orientation {orientation}: pixels turned as viewers show them")
    return Image(array, spacing=(1.0, 1.0), spatial_ndim=2, metadata=meta)


def apply_orientation(array: np.ndarray, orientation: int) -> np.ndarray:
    """Pixels as a viewer shows them for EXIF ``orientation`` (what PIL's ``exif_transpose`` does)."""
    swap = (1, 0, *range(2, array.ndim))
    turns = {
        2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
        5: lambda a: a.transpose(swap), 6: lambda a: np.rot90(a, -1), 7: lambda a: a[::-1, ::-1].transpose(swap),
        8: lambda a: np.rot90(a, 1),
    }
    return turns[orientation](array) if orientation in turns else array


def _to_array(pil, path: Path) -> np.ndarray:
    mode = pil.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        array = np.array(pil, dtype=np.uint16)
    elif mode == "I":
        array = np.array(pil, dtype=np.int32)
        if array.size and array.min() >= 0 and array.max() <= 65535:
            array = array.astype(np.uint16)
    elif mode in ("L", "P", "F"):
        array = np.array(pil)  # P: palette indices are the values (label PNGs)
    elif mode == "1":
        array = np.array(pil).astype(np.uint8)
    elif mode in ("RGB", "RGBA", "LA", "CMYK", "YCbCr"):
        array = np.array(pil.convert("RGBA" if mode in ("RGBA", "LA") else "RGB"))
        if array.shape[-1] == 4 and np.all(array[..., 3] == 255):
            array = array[..., :3]
        if array.shape[-1] == 3 and np.array_equal(array[..., 0], array[..., 1]) and np.array_equal(array[..., 0], array[..., 2]):
            array = array[..., 0]
    else:
        raise ReadError(path, f"unsupported image mode {mode}")
    return np.ascontiguousarray(array)


def write_raster(image: Image, path: str | Path) -> Path:
    """Write a 2D image: uint8 or uint16 greyscale (PNG, TIFF), RGB uint8, float32 only to TIFF.

    Values are never rescaled: data that do not fit the format is refused with the reason.
    JPEG is lossy and only accepts 8-bit data (previews, not label maps).
    """
    from PIL import Image as PILImage

    path = Path(path)
    suffix = full_suffix(path)
    if image.ndim != 2:
        raise WriteError(path, f"{suffix} holds 2D images; this image is {image.ndim}D (use .nii.gz, .mha or .nrrd)")
    array = _raster_dtype(image.array, suffix, path)
    mode = {np.dtype(np.uint8): "L", np.dtype(np.uint16): "I;16", np.dtype(np.float32): "F"}.get(array.dtype)
    if array.ndim == 3:
        mode = "RGB" if array.shape[-1] == 3 else "RGBA"
    pil = PILImage.fromarray(array, mode=mode) if mode != "I;16" else PILImage.fromarray(array)
    with atomic_path(path) as tmp:
        pil.save(tmp, format=_PIL_FORMATS[suffix], **({"quality": 95} if suffix in LOSSY_SUFFIXES else {}))
    return path


_PIL_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF", ".bmp": "BMP"}


def _raster_dtype(array: np.ndarray, suffix: str, path: Path) -> np.ndarray:
    if array.dtype == bool:
        array = array.astype(np.uint8)
    if array.ndim == 3:
        if array.shape[-1] not in (3, 4) or array.dtype != np.uint8:
            raise WriteError(path, f"colour images must be uint8 RGB/RGBA, got {array.dtype} {array.shape}")
        return array
    if array.dtype.kind == "f":
        if suffix not in (".tif", ".tiff"):
            raise WriteError(path, f"{suffix} cannot hold floating-point values exactly; use .tif, .nii.gz or .npy")
        return array.astype(np.float32)
    low, high = (int(array.min()), int(array.max())) if array.size else (0, 0)
    if low < 0 or high > 65535:
        raise WriteError(path, f"values {low}..{high} do not fit unsigned 8/16-bit {suffix}; use .nii.gz, .tif or .npy")
    if high <= 255 and array.dtype.itemsize == 1:
        return array.astype(np.uint8)
    if suffix in LOSSY_SUFFIXES or suffix == ".bmp":
        if high > 255:
            raise WriteError(path, f"{suffix} holds 8-bit values only (max here {high}); use .png or .tif for 16-bit")
        return array.astype(np.uint8)
    return array.astype(np.uint16) if array.dtype.itemsize > 1 else array.astype(np.uint8)
