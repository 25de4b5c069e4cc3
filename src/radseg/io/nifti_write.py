"""A NIfTI-1 single-file writer in numpy and the standard library (no nibabel import).

It writes what ``nibabel.save(Nifti1Image(data, affine))`` wrote for radseg's images, byte for
byte: the same 348-byte header (sform and qform from one RAS affine, the qform quaternion found
the way nibabel finds it, pixdim, ``xyzt_units``, ``scl_slope`` 1 / ``scl_inter`` 0, magic
``n+1``), the same header extensions, ``vox_offset`` 352 plus the extensions, and the voxels in
Fortran order. ``.nii.gz`` is gzip level 1 with no file name and mtime 0, as nibabel writes it.
Importing nibabel costs ~0.2 s (it pulls in pydicom and scipy); this module costs nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO, Sequence

import numpy as np

#: The NIfTI-1 header (nifti1.h), little-endian as radseg writes it.
NIFTI1_HEADER = np.dtype([
    ("sizeof_hdr", "<i4"), ("data_type", "S10"), ("db_name", "S18"), ("extents", "<i4"),
    ("session_error", "<i2"), ("regular", "S1"), ("dim_info", "u1"), ("dim", "<i2", (8,)),
    ("intent_p1", "<f4"), ("intent_p2", "<f4"), ("intent_p3", "<f4"), ("intent_code", "<i2"),
    ("datatype", "<i2"), ("bitpix", "<i2"), ("slice_start", "<i2"), ("pixdim", "<f4", (8,)),
    ("vox_offset", "<f4"), ("scl_slope", "<f4"), ("scl_inter", "<f4"), ("slice_end", "<i2"),
    ("slice_code", "u1"), ("xyzt_units", "u1"), ("cal_max", "<f4"), ("cal_min", "<f4"),
    ("slice_duration", "<f4"), ("toffset", "<f4"), ("glmax", "<i4"), ("glmin", "<i4"),
    ("descrip", "S80"), ("aux_file", "S24"), ("qform_code", "<i2"), ("sform_code", "<i2"),
    ("quatern_b", "<f4"), ("quatern_c", "<f4"), ("quatern_d", "<f4"),
    ("qoffset_x", "<f4"), ("qoffset_y", "<f4"), ("qoffset_z", "<f4"),
    ("srow_x", "<f4", (4,)), ("srow_y", "<f4", (4,)), ("srow_z", "<f4", (4,)),
    ("intent_name", "S16"), ("magic", "S4"),
])
assert NIFTI1_HEADER.itemsize == 348

#: numpy dtype -> NIfTI-1 datatype code. int64/uint64 are left out on purpose: nibabel 5 refuses
#: to write them without an explicit dtype (other tools mishandle them), and so does radseg.
DATATYPES = {
    np.dtype(np.uint8): 2, np.dtype(np.int16): 4, np.dtype(np.int32): 8, np.dtype(np.float32): 16,
    np.dtype(np.float64): 64, np.dtype(np.int8): 256, np.dtype(np.uint16): 512, np.dtype(np.uint32): 768,
}

#: Extension codes (nifti1.h) radseg writes.
COMMENT_EXTENSION = 6
#: ``xyzt_units``: NIFTI_UNITS_MM | NIFTI_UNITS_SEC.
MM_SEC = 2 | 8
_DIM_MAX = np.iinfo(np.int16).max
_CHUNK_BYTES = 1 << 25  # non-contiguous or byte-swapped data is copied this much at a time


class NiftiWriteError(ValueError):
    """Data this writer cannot put into a NIfTI-1 file (the caller names the file)."""


def quaternion(rotation: np.ndarray) -> np.ndarray:
    """Unit quaternion (w, x, y, z), w >= 0, of a 3x3 rotation matrix.

    Bar-Itzhack's method, as ``nibabel.quaternions.mat2quat`` (same steps, so the same float
    results): the eigenvector of the largest eigenvalue of a symmetric 4x4 matrix.
    """
    qxx, qyx, qzx, qxy, qyy, qzy, qxz, qyz, qzz = np.asarray(rotation, dtype=np.float64).flat
    k = np.array([
        [qxx - qyy - qzz, 0, 0, 0],
        [qyx + qxy, qyy - qxx - qzz, 0, 0],
        [qzx + qxz, qzy + qyz, qzz - qxx - qyy, 0],
        [qyz - qzy, qzx - qxz, qxy - qyx, qxx + qyy + qzz],
    ]) / 3.0
    values, vectors = np.linalg.eigh(k)
    q = vectors[[3, 0, 1, 2], np.argmax(values)]
    if q[0] < 0:
        q *= -1
    return q


def set_qform(header: np.ndarray, affine: np.ndarray, code: int) -> None:
    """qform fields from a 4x4 affine (``nibabel.Nifti1Header.set_qform`` with strip_shears).

    A sheared affine (gantry tilt) keeps its closest rigid rotation in the quaternion; the
    sform holds the exact affine.
    """
    affine = np.asarray(affine, dtype=np.float64)
    rzs = affine[:3, :3]
    zooms = np.sqrt(np.sum(rzs * rzs, axis=0))
    rotation = rzs / zooms
    if np.linalg.det(rotation) > 0:
        qfac = 1
    else:
        qfac = -1
        rotation[:, -1] *= -1
    p, _, qs = np.linalg.svd(rotation)  # polar decomposition: the closest orthogonal matrix
    quat = quaternion(np.dot(p, qs))
    header["qform_code"] = code
    header["qoffset_x"], header["qoffset_y"], header["qoffset_z"] = affine[:3, 3]
    header["pixdim"][0] = qfac
    header["pixdim"][1:4] = zooms
    header["quatern_b"], header["quatern_c"], header["quatern_d"] = quat[1:]


def set_sform(header: np.ndarray, affine: np.ndarray, code: int) -> None:
    header["sform_code"] = code
    header["srow_x"][:] = affine[0, :]
    header["srow_y"][:] = affine[1, :]
    header["srow_z"][:] = affine[2, :]


def extension_bytes(code: int, content: bytes) -> bytes:
    """One header extension: esize and ecode, the content, zeros up to a multiple of 16 bytes."""
    size = (len(content) + 23) // 16 * 16
    return np.array([size, code], dtype="<i4").tobytes() + content + bytes(size - 8 - len(content))


def nifti1_header(shape: Sequence[int], dtype: np.dtype, affine: np.ndarray, *, code: int,
                  xyzt_units: int = MM_SEC, extensions: Sequence[tuple[int, bytes]] = ()) -> bytes:
    """Everything before the voxels of a single-file NIfTI-1 (``.nii``): header, extension flag,
    extensions. ``shape`` is in NIfTI index order (i, j, k[, t]); ``affine`` is the 4x4 RAS
    affine, stored as the sform and (rigid part) the qform, both with ``code``.
    """
    dtype = np.dtype(dtype)
    datatype = DATATYPES.get(dtype.newbyteorder("="))
    if datatype is None:
        raise NiftiWriteError(f"cannot write {dtype} data to NIfTI")
    shape = tuple(int(n) for n in shape)
    if not 1 <= len(shape) <= 7:
        raise NiftiWriteError(f"NIfTI-1 holds 1 to 7 dimensions, not {len(shape)}")
    if any(n < 0 or n > _DIM_MAX for n in shape):
        raise NiftiWriteError(f"shape {shape} does not fit NIfTI-1 (at most {_DIM_MAX} per axis)")
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape != (4, 4) or not np.all(np.isfinite(affine)):
        raise NiftiWriteError("the affine must be a finite 4x4 matrix")
    header = np.zeros((), dtype=NIFTI1_HEADER)
    header["sizeof_hdr"] = 348
    header["dim"] = 1
    header["dim"][0] = len(shape)
    header["dim"][1:len(shape) + 1] = shape
    header["pixdim"] = 1.0
    header["datatype"] = datatype
    header["bitpix"] = dtype.itemsize * 8
    set_sform(header, affine, code)
    with np.errstate(invalid="raise", divide="raise"):
        try:
            set_qform(header, affine, code)
        except (FloatingPointError, np.linalg.LinAlgError) as exc:
            raise NiftiWriteError(f"cannot make a qform of this affine ({exc})") from None
    header["xyzt_units"] = xyzt_units
    header["scl_slope"] = 1.0
    header["scl_inter"] = 0.0
    header["magic"] = b"n+1"
    blocks = [extension_bytes(ecode, content) for ecode, content in extensions]
    header["vox_offset"] = 352 + sum(len(block) for block in blocks)
    flag = b"\x01\x00\x00\x00" if blocks else b"\x00\x00\x00\x00"
    return header.tobytes() + flag + b"".join(blocks)


def write_nifti1(path: str | Path, data: np.ndarray, affine: np.ndarray, *, code: int,
                 compress: bool, extensions: Sequence[tuple[int, bytes]] = ()) -> None:
    """Write ``data`` (NIfTI index order: i, j, k[, t]) to ``path`` as one NIfTI-1 file.

    The voxels go in Fortran order, as NIfTI wants, so ``data = array.T`` of a C-ordered radseg
    array is written straight from its memory without a copy. ``compress``: gzip level 1
    (nibabel's default, and the fastest level, worth it for label maps and CT air).
    """
    data = np.asarray(data)
    dtype = data.dtype.newbyteorder("<")  # the header says little-endian: big-endian data is swapped
    head = nifti1_header(data.shape, dtype, affine, code=code, extensions=extensions)
    with open(path, "wb") as raw:
        if compress:
            import gzip

            with gzip.GzipFile(filename="", mode="wb", compresslevel=1, fileobj=raw, mtime=0) as stream:
                stream.write(head)
                _write_voxels(stream, data, dtype)
        else:
            raw.write(head)
            _write_voxels(raw, data, dtype)


def _write_voxels(stream: BinaryIO, data: np.ndarray, dtype: np.dtype) -> None:
    """The Fortran-order bytes of ``data`` as ``dtype`` (little-endian), copied in chunks when needed."""
    source = data.T  # C order of the reversed axes = Fortran order of data
    if source.flags.c_contiguous and source.dtype == dtype:
        if source.size:
            stream.write(memoryview(source.reshape(-1)).cast("B"))
        return
    row_bytes = max(1, source[0].size * dtype.itemsize) if len(source) else 1
    step = max(1, _CHUNK_BYTES // row_bytes)  # whole leading-axis slices, about _CHUNK_BYTES a write
    for start in range(0, len(source), step):
        block = np.ascontiguousarray(source[start:start + step], dtype=dtype)
        stream.write(memoryview(block.reshape(-1)).cast("B"))
