"""NIfTI-1/2 read (nibabel) and NIfTI-1 write (:mod:`radseg.io.nifti_write`, numpy only), converting
between NIfTI's RAS (i, j, k) and radseg's LPS array order.

Reading checks the header before any voxel is loaded: a header claiming more data than
the file holds (uncompressed) or than this machine's memory is refused, naming the file
and the size it claims. An unusable (singular or non-finite) sform falls back to the
qform, then to the pixdim spacing, with the fallback listed in ``metadata["problems"]``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from radseg.errors import ReadError, WriteError
from radseg.image import LPS_TO_RAS, Image
from radseg.io.atomic import atomic_path, full_suffix

_NAMES_KEY = "radseg_label_names"
_REVERSE3 = np.eye(4)
_REVERSE3[:3, :3] = np.eye(3)[::-1]


def read_nifti(path: str | Path) -> Image:
    """Read a NIfTI file; integer data stays integer (label maps are never turned into floats)."""
    import nibabel as nib

    path = Path(path)
    try:
        img = nib.load(str(path))
    except Exception as exc:
        raise ReadError(path, f"not a readable NIfTI file ({type(exc).__name__}: {exc})") from exc
    _check_size(img, path)
    try:
        data = _scaled_data(img)
    except MemoryError:
        raise ReadError(path, f"not enough memory for the data the header claims ({_claim(img)})") from None
    except Exception as exc:
        raise ReadError(path, f"not a readable NIfTI file ({type(exc).__name__}: {exc})") from exc
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim not in (2, 3, 4):
        raise ReadError(path, f"NIfTI with {data.ndim} dimensions {data.shape} is not supported (2D, 3D or 3D+channels)")
    meta = {"format": "nifti", "source_files": [str(path)], "problems": []}
    affine_lps = LPS_TO_RAS @ _usable_affine(img, meta)
    names = _label_names(img)
    if names:
        meta["label_names"] = names
    zooms_unit = img.header.get_xyzt_units()[0]
    if zooms_unit not in ("mm", "unknown"):
        meta["problems"].append(f"spatial units are {zooms_unit}, not mm; values used as stored")
    if data.dtype.kind == "f" and data.size and not np.isfinite([data.min(), data.max()]).all():
        bad = int(np.count_nonzero(~np.isfinite(data)))
        meta["problems"].append(f"{bad} voxel(s) are NaN or infinite: kept as stored")
    try:
        if data.ndim == 2:
            return _plane_image(data.T, affine_lps, meta)
        array = np.transpose(data, (2, 1, 0, 3)) if data.ndim == 4 else data.T
        return Image(array, affine=affine_lps @ _REVERSE3, metadata=meta)
    except ValueError as exc:
        raise ReadError(path, f"cannot use this NIfTI's geometry ({exc})") from exc


def _claim(img) -> str:
    shape = tuple(int(n) for n in img.header.get_data_shape())
    size = int(np.prod(shape, dtype=np.float64)) * np.dtype(img.header.get_data_dtype()).itemsize
    return f"shape {' x '.join(map(str, shape))} of {img.header.get_data_dtype()}, {size / 2**30:.3g} GiB"


def _check_size(img, path: Path) -> None:
    """Refuse a header that claims more voxels than the file holds or than memory can take."""
    import os

    header = img.header
    shape = tuple(int(n) for n in header.get_data_shape())
    needed = float(np.prod(shape, dtype=np.float64)) * np.dtype(header.get_data_dtype()).itemsize
    try:
        memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        memory = None
    if memory and needed > memory:
        raise ReadError(path, f"header claims {_claim(img)}, more than this machine's memory "
                              f"({memory / 2**30:.3g} GiB): not loaded")
    if not str(path).lower().endswith(".gz"):
        offset = int(header.get("vox_offset", 0) or 0)
        available = path.stat().st_size - offset
        if needed > available:
            raise ReadError(path, f"header claims {_claim(img)} but the file holds only {max(available, 0)} bytes "
                                  "of data: truncated or a wrong header")


def _usable_affine(img, meta: dict) -> np.ndarray:
    """The RAS affine: sform, else qform, else nibabel's pixdim affine; a fallback is reported."""
    header = img.header
    coded = [(name, affine) for name, (affine, code) in
             (("sform", header.get_sform(coded=True)), ("qform", header.get_qform(coded=True))) if affine is not None]
    for name, affine in coded:
        affine = np.asarray(affine, dtype=float)
        if np.all(np.isfinite(affine)) and abs(np.linalg.det(affine[:3, :3])) > 1e-12:
            if name != coded[0][0]:
                meta["problems"].append(f"{coded[0][0]} is singular or not finite: the {name} is used")
            return affine
    zooms = np.asarray(header.get_zooms()[:3], dtype=float)
    valid = zooms.size == 3 and np.all(np.isfinite(zooms)) and np.all(zooms > 0)
    if not coded and valid:
        return np.asarray(img.affine, dtype=float)  # no sform/qform: pixdim scaling, as every NIfTI reader does
    if coded:
        meta["problems"].append("the affine is singular or not finite (e.g. all zero): orientation unknown, "
                                + ("pixdim spacing used" if valid else "1 px voxels used"))
    if not valid:
        meta["spacing_known"] = False
        return np.eye(4)
    return np.diag([*zooms, 1.0])


def _label_names(img) -> dict[int, str]:
    for extension in img.header.extensions:
        try:
            content = json.loads(extension.get_content())
        except (ValueError, TypeError, UnicodeDecodeError):
            continue
        if isinstance(content, dict) and _NAMES_KEY in content:
            return {int(k): str(v) for k, v in content[_NAMES_KEY].items()}
    return {}


def _scaled_data(img) -> np.ndarray:
    """Data with the header's scl_slope/scl_inter applied, kept integer when that is exact."""
    # nibabel moves scl_slope/scl_inter from the header to the array proxy on load.
    slope, inter = getattr(img.dataobj, "slope", None), getattr(img.dataobj, "inter", None)
    raw = np.asanyarray(img.dataobj.get_unscaled()) if hasattr(img.dataobj, "get_unscaled") else np.asanyarray(img.dataobj)
    slope = 1.0 if slope is None or not np.isfinite(slope) or slope == 0 else float(slope)
    inter = 0.0 if inter is None or not np.isfinite(inter) else float(inter)
    if slope == 1.0 and inter == 0.0:
        return np.asarray(raw)
    if np.issubdtype(raw.dtype, np.integer) and slope == 1.0 and inter == round(inter):
        out = raw.astype(np.int32) + int(inter)
        if out.size == 0 or (out.min() >= -(2**15) and out.max() < 2**15):
            return out.astype(np.int16)
        return out
    return raw.astype(np.float32) * np.float32(slope) + np.float32(inter)


def _plane_image(array: np.ndarray, affine_lps: np.ndarray, meta: dict) -> Image:
    """A 2D NIfTI: axes (i, j) -> array (row=j, col=i); exact when the plane is z=0 (as radseg writes it)."""
    columns = affine_lps[:3, :2][:, ::-1]  # array axes (row, col) = NIfTI (j, i)
    if np.allclose(columns[2], 0) and np.isclose(affine_lps[2, 3], 0):
        affine = np.eye(3)
        affine[:2, :2] = columns[:2]
        affine[:2, 2] = affine_lps[:2, 3]
        return Image(array, affine=affine, metadata=meta)
    meta["nifti_affine_lps"] = affine_lps.tolist()
    meta["problems"].append("2D NIfTI in an oblique plane: in-plane spacing kept, 3D placement in metadata")
    return Image(array, spacing=np.linalg.norm(columns, axis=0), metadata={**meta, "spacing_known": True})


def write_nifti(image: Image, path: str | Path) -> Path:
    """Write ``image`` as NIfTI-1 (``.nii`` or ``.nii.gz``), RAS affine in both sform and qform.

    The data type is kept (bool becomes uint8, int64 the smallest integer type that holds
    the values) so label maps stay exact. Written by :mod:`radseg.io.nifti_write` (numpy only:
    the same bytes nibabel wrote, without nibabel's 0.2 s import).
    """
    from radseg.io.nifti_write import NiftiWriteError, write_nifti1

    path = Path(path)
    data, code, extensions = _layout(image, path)
    with atomic_path(path) as tmp:
        try:
            write_nifti1(tmp, data, image.ras_affine(), code=code, compress=full_suffix(path) == ".nii.gz",
                         extensions=extensions)
        except NiftiWriteError as exc:
            raise WriteError(path, str(exc)) from None
    return path


def _layout(image: Image, path: Path) -> tuple[np.ndarray, int, list[tuple[int, bytes]]]:
    """What :func:`write_nifti` writes: the data in NIfTI index order, the sform/qform code, the extensions."""
    from radseg.io.nifti_write import COMMENT_EXTENSION

    suffix = full_suffix(path)
    if suffix not in (".nii", ".nii.gz"):
        raise WriteError(path, f"a NIfTI file is named .nii or .nii.gz, not {suffix or '(no suffix)'}")
    array = _nifti_dtype(image.array, path)
    if image.channels is not None:
        data = np.transpose(array, (*range(image.ndim - 1, -1, -1), image.ndim))
    else:
        data = array.T  # C-order [k, j, i] is Fortran-order [i, j, k]: no copy
    code = 1 if image.metadata.get("format") == "dicom" else 2  # scanner-based vs aligned
    extensions = []
    names = image.metadata.get("label_names")
    if names:
        # Label names travel inside the file (a JSON comment extension) so nothing is lost.
        payload = json.dumps({_NAMES_KEY: {str(int(k)): str(v) for k, v in names.items()}}).encode()
        extensions.append((COMMENT_EXTENSION, payload))
    return data, code, extensions


class NiftiSink:
    """Writes a volume that arrives slice by slice to an uncompressed ``.nii`` file: the file
    :func:`write_nifti` writes of the same image, byte for byte, without the whole volume in memory.

    The ``sink`` of :func:`radseg.io.dicom_stack.stack_planes` (via ``read_dicom``/``read_series``):
    a CT series of 300 slices is then never held as one 157 MB array that is allocated, filled,
    written and freed; each slice is read, rescaled and written while it is still in the CPU cache
    (issue 25: ``radseg convert DIR out.nii`` against ``dcm2niix``). ``written`` says whether it was
    used; when not (a volume that has to be resampled, float values ...), the caller writes the
    image it got with :func:`write_nifti`, as before.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if full_suffix(self.path) != ".nii":
            raise WriteError(self.path, "slice-by-slice writing is for uncompressed .nii files")
        self.written = False

    def __call__(self, shell: Image, slices) -> np.ndarray:
        """Write ``shell`` (its array gives only shape and dtype) with the voxels ``slices`` gives, in order;
        returns the volume as written, mapped read-only from the file."""
        from radseg.io.nifti_write import NiftiWriteError, nifti1_header

        data, code, extensions = _layout(shell, self.path)
        if data.ndim != 3 or data.dtype.kind not in "iu":
            raise WriteError(self.path, f"slice-by-slice writing takes 3D integer volumes, not {data.dtype} {data.shape}")
        dtype = data.dtype.newbyteorder("<")  # as write_nifti1
        try:
            head = nifti1_header(data.shape, dtype, shell.ras_affine(), code=code, extensions=extensions)
        except NiftiWriteError as exc:
            raise WriteError(self.path, str(exc)) from None
        shape = shell.array.shape
        with atomic_path(self.path) as tmp:
            with open(tmp, "wb") as stream:
                stream.write(head)
                count = 0
                for plane in slices:  # the C-order bytes of each [row, column] slice: write_nifti1's order
                    stream.write(memoryview(np.ascontiguousarray(plane, dtype=dtype)).cast("B"))
                    count += 1
            if count != shape[0]:
                raise WriteError(self.path, f"{count} slices written of {shape[0]}")
        self.written = True
        if not data.size:
            return np.zeros(shape, dtype)
        return np.memmap(self.path, dtype=dtype, mode="r", offset=len(head), shape=shape)


def _nifti_dtype(array: np.ndarray, path: Path) -> np.ndarray:
    if array.dtype == bool:
        return array.astype(np.uint8)
    if array.dtype in (np.int64, np.uint64):
        low, high = (int(array.min()), int(array.max())) if array.size else (0, 0)
        for dtype in (np.uint8, np.int16, np.uint16, np.int32, np.uint32):
            info = np.iinfo(dtype)
            if info.min <= low and high <= info.max:
                return array.astype(dtype)
        # NIfTI-1 has 64-bit integer codes but most tools cannot read them (nibabel refuses too).
        raise WriteError(path, f"{array.dtype} values {low} to {high} do not fit a 32-bit integer: "
                               "not written to NIfTI")
    if array.dtype.kind not in "uifb":
        raise WriteError(path, f"cannot write {array.dtype} data to NIfTI")
    return array
