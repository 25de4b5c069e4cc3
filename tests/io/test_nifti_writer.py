"""radseg's own NIfTI-1 writer (:mod:`radseg.io.nifti_write`) against the nibabel writer it replaced.

``_nibabel_write`` below is the old ``write_nifti`` body, kept as the reference: for every kind of
image radseg writes (2D, 3D, 3D+channels, each NIfTI data type, label maps with names, oblique,
flipped and sheared geometry, big-endian and non-contiguous arrays) the new file must hold the same
header (every field, raw and as nibabel reads it), the same extensions, the same voxels and
affines, and read back through ``radseg.io.read``.
"""

from __future__ import annotations

import gzip
import json
import os
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

import radseg.io as rio
import radseg.io.nifti_write as nifti_write
from radseg.errors import WriteError
from radseg.image import Image
from radseg.io.nifti import _NAMES_KEY, _nifti_dtype, write_nifti
from radseg.io.nifti_write import NIFTI1_HEADER, quaternion
from tests.conftest import oblique_direction, phantom_volume


def _nibabel_write(image: Image, path: Path) -> None:
    """The nibabel-based ``write_nifti`` radseg used before (reference only)."""
    array = _nifti_dtype(image.array, path)
    if image.channels is not None:
        data = np.transpose(array, (*range(image.ndim - 1, -1, -1), image.ndim))
    else:
        data = array.T
    affine = image.ras_affine()
    img = nib.Nifti1Image(data, affine)
    code = 1 if image.metadata.get("format") == "dicom" else 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        img.set_qform(affine, code=code)
    img.set_sform(affine, code=code)
    img.header.set_xyzt_units("mm", "sec")
    names = image.metadata.get("label_names")
    if names:
        payload = json.dumps({_NAMES_KEY: {str(int(k)): str(v) for k, v in names.items()}}).encode()
        img.header.extensions.append(nib.nifti1.Nifti1Extension("comment", payload))
    nib.save(img, str(path))


def _rotation(x: float, y: float, z: float) -> np.ndarray:
    cx, sx, cy, sy, cz, sz = (f(np.radians(a)) for a in (x, y, z) for f in (np.cos, np.sin))
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def _images() -> dict[str, Image]:
    rng = np.random.default_rng(7)
    sheared = np.eye(4)  # gantry tilt: slice axis leans along y (the qform keeps the rigid part)
    sheared[:3, :3] = [[0, 0, 0.7], [0.4, 0.75, 0], [2.5, 0, 0]]
    sheared[:3, 3] = [-30, 12, 80]
    labels = np.zeros((6, 20, 24), dtype=np.uint8)
    labels[1:4, 5:12, 3:9] = 1
    labels[2:5, 10:18, 12:20] = 2
    return {
        "3d-int16-dicom": Image(phantom_volume((6, 20, 24)), spacing=(2.5, 0.7, 0.8), origin=(-30, -20, 100),
                                metadata={"format": "dicom"}),
        "3d-int16-oblique": Image(phantom_volume((5, 16, 18), seed=1), spacing=(3.0, 0.75, 0.9),
                                  origin=(12.5, -40.0, 60.0), direction=oblique_direction()),
        "3d-float32-oblique": Image(rng.normal(size=(5, 7, 9)).astype(np.float32), spacing=(1.5, 0.5, 0.6),
                                    origin=(-5, 6, 7), direction=_rotation(10, -20, 35)),
        "3d-float32-nan": Image(np.where(rng.random((3, 4, 5)) > 0.8, np.nan, 1.5).astype(np.float32)),
        "3d-float64": Image(rng.random((3, 4, 5)), spacing=(0.3, 0.4, 0.5)),
        "3d-negative-steps": Image(np.arange(60, dtype=np.int32).reshape(3, 4, 5), spacing=(1, 2, 3),
                                   direction=np.diag([-1.0, 1.0, -1.0])[::-1], origin=(4, -5, 6)),
        "3d-all-flipped": Image(np.arange(60, dtype=np.uint16).reshape(3, 4, 5), spacing=(2, 1, 1),
                                direction=-np.eye(3)[::-1]),
        "3d-coronal": Image(np.arange(60, dtype=np.int8).reshape(3, 4, 5) - 30, spacing=(1, 1, 1),
                            direction=np.array([[0, 0, 1], [1, 0, 0], [0, -1, 0]], dtype=float)),
        "3d-sheared": Image(np.arange(60, dtype=np.int16).reshape(3, 4, 5), affine=sheared),
        "3d-uint32": Image(rng.integers(0, 2**32 - 1, (3, 4, 5), dtype=np.uint32)),
        "3d-bool": Image(rng.random((4, 5, 6)) > 0.5, spacing=(1, 1, 1)),
        "3d-labels-named": Image(labels, spacing=(2.5, 0.7, 0.8),
                                 metadata={"label_names": {1: "liver", 2: "tumour é"}}),
        "3d-int64-labels": Image(labels.astype(np.int64) * 300, spacing=(1, 1, 1)),
        "3d-uint64-labels": Image(labels.astype(np.uint64), spacing=(1, 1, 1)),
        "3d-big-endian": Image(np.arange(60, dtype=">i2").reshape(3, 4, 5)),
        "3d-non-contiguous": Image(np.arange(240, dtype=np.float32).reshape(6, 8, 5)[::2, ::-2]),
        "3d-fortran-order": Image(np.asfortranarray(np.arange(60, dtype=np.int16).reshape(3, 4, 5))),
        "3d+channels": Image(rng.random((4, 5, 6, 2)).astype(np.float32), spacing=(1, 2, 3)),
        "2d-uint8": Image(rng.integers(0, 255, (6, 7), dtype=np.uint8), spacing=(0.3, 0.4), origin=(3, 4)),
        "2d-int16-flipped": Image(np.arange(42, dtype=np.int16).reshape(6, 7), spacing=(0.5, 0.25),
                                  direction=[[0, -1], [1, 0]]),
        "2d-rgb": Image(rng.integers(0, 255, (6, 7, 3), dtype=np.uint8), spacing=(0.3, 0.4)),
    }


IMAGES = _images()
SUFFIXES = (".nii", ".nii.gz")


def _write_both(image: Image, folder: Path, suffix: str) -> tuple[Path, Path]:
    new, old = folder / f"new{suffix}", folder / f"old{suffix}"
    write_nifti(image, new)
    _nibabel_write(image, old)
    return new, old


def _content(path: Path) -> bytes:
    raw = path.read_bytes()
    return gzip.decompress(raw) if path.name.endswith(".gz") else raw


def _same(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype.kind == "f":
        return a.shape == b.shape and bool(np.all((a == b) | (np.isnan(a) & np.isnan(b))))
    return np.array_equal(a, b)


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("name", list(IMAGES))
def test_every_header_field_matches_the_nibabel_writer(tmp_path, name, suffix):
    new, old = _write_both(IMAGES[name], tmp_path, suffix)
    new_bytes, old_bytes = _content(new), _content(old)
    # The 348 raw header bytes, field by field (nibabel's loaded header hides scl_slope/inter).
    raw_new = np.frombuffer(new_bytes[:348], dtype=NIFTI1_HEADER)[0]
    raw_old = np.frombuffer(old_bytes[:348], dtype=NIFTI1_HEADER)[0]
    differing = [f for f in NIFTI1_HEADER.names if not _same(raw_new[f], raw_old[f])]
    assert differing == []
    # The same fields as nibabel reads them.
    h_new, h_old = nib.load(str(new)).header, nib.load(str(old)).header
    assert list(h_new.keys()) == list(h_old.keys())
    assert [key for key in h_old.keys() if not _same(h_new[key], h_old[key])] == []
    assert h_new.get_data_dtype() == h_old.get_data_dtype()
    assert h_new.get_xyzt_units() == h_old.get_xyzt_units() == ("mm", "sec")
    assert [(e.get_code(), e.get_content()) for e in h_new.extensions] == \
           [(e.get_code(), e.get_content()) for e in h_old.extensions]
    assert int(raw_new["vox_offset"]) == 352 + sum(e.get_sizeondisk() for e in h_old.extensions)
    assert (float(raw_new["scl_slope"]), float(raw_new["scl_inter"])) == (1.0, 0.0)
    # Extension flag, extensions and voxels: the whole file is the same, byte for byte.
    assert new_bytes == old_bytes


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("name", list(IMAGES))
def test_voxels_and_affines_read_back_with_nibabel(tmp_path, name, suffix):
    image = IMAGES[name]
    new, old = _write_both(image, tmp_path, suffix)
    img, ref = nib.load(str(new)), nib.load(str(old))
    data = np.asanyarray(img.dataobj)
    assert data.dtype == np.asanyarray(ref.dataobj).dtype
    assert _same(data, np.asanyarray(ref.dataobj))
    expected = _nifti_dtype(image.array, new)
    if image.channels is None:
        assert _same(data, expected.T)
    else:
        assert _same(data, np.transpose(expected, (*range(image.ndim - 1, -1, -1), image.ndim)))
    code = 1 if image.metadata.get("format") == "dicom" else 2
    sform, scode = img.header.get_sform(coded=True)
    qform, qcode = img.header.get_qform(coded=True)
    assert (int(scode), int(qcode)) == (code, code)
    np.testing.assert_allclose(sform, image.ras_affine(), atol=1e-5)
    np.testing.assert_allclose(sform, ref.header.get_sform(), atol=1e-5)
    np.testing.assert_allclose(qform, ref.header.get_qform(), atol=1e-5)
    if not image.is_sheared:
        np.testing.assert_allclose(qform, image.ras_affine(), atol=1e-5)


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("name", [n for n in IMAGES if n != "2d-rgb"])  # 2D RGB is stored as 3D i, j, c
def test_round_trip_through_radseg_read(tmp_path, name, suffix):
    image = IMAGES[name]
    back = rio.read(write_nifti(image, tmp_path / f"x{suffix}"))
    expected = _nifti_dtype(image.array, tmp_path / "x.nii")
    assert back.array.dtype == expected.dtype.newbyteorder("=")  # big-endian data comes back native
    assert _same(back.array, expected)
    assert back.ndim == image.ndim
    np.testing.assert_allclose(back.affine, image.affine, atol=1e-4)
    assert back.metadata.get("label_names", {}) == image.metadata.get("label_names", {})


def test_a_2d_rgb_image_is_stored_as_i_j_channel(tmp_path):
    image = IMAGES["2d-rgb"]
    data = np.asanyarray(nib.load(str(write_nifti(image, tmp_path / "rgb.nii"))).dataobj)
    assert data.shape == (7, 6, 3)
    np.testing.assert_array_equal(data, np.transpose(image.array, (1, 0, 2)))


def test_nii_gz_is_plain_gzip_of_the_nii(tmp_path):
    image = IMAGES["3d-labels-named"]
    plain = write_nifti(image, tmp_path / "labels.nii")
    packed = write_nifti(image, tmp_path / "labels.nii.gz")
    raw = packed.read_bytes()
    assert raw[:3] == b"\x1f\x8b\x08"  # gzip, deflate
    assert raw[3] & 0x08 == 0 and raw[4:8] == bytes(4)  # no file name, mtime 0: reproducible
    with gzip.open(packed, "rb") as handle:
        assert handle.read() == plain.read_bytes()
    assert _same(np.asanyarray(nib.load(str(packed)).dataobj), np.asanyarray(nib.load(str(plain)).dataobj))
    _nibabel_write(image, tmp_path / "ref.nii.gz")
    assert raw == (tmp_path / "ref.nii.gz").read_bytes()  # same level (1) and gzip header as nibabel


def test_upper_case_suffix_is_still_gzip(tmp_path):
    path = write_nifti(IMAGES["3d-bool"], tmp_path / "MASK.NII.GZ")
    assert path.read_bytes()[:2] == b"\x1f\x8b"
    assert nib.load(str(path)).shape == (6, 5, 4)


def test_large_non_contiguous_arrays_are_written_in_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(nifti_write, "_CHUNK_BYTES", 64)
    for name in ("3d-non-contiguous", "3d-big-endian", "3d+channels", "3d-fortran-order"):
        new, old = _write_both(IMAGES[name], tmp_path, ".nii")
        assert new.read_bytes() == old.read_bytes(), name


def test_quaternion_matches_nibabel():
    from nibabel.quaternions import mat2quat

    rng = np.random.default_rng(3)
    for _ in range(50):
        q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        q *= np.sign(np.linalg.det(q))
        assert np.array_equal(quaternion(q), mat2quat(q))
    for rotation in (np.eye(3), np.diag([1.0, -1, -1]), np.diag([-1.0, 1, -1]), np.diag([-1.0, -1, 1])):
        assert np.array_equal(quaternion(rotation), mat2quat(rotation))


def _listing(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_a_write_that_fails_midway_leaves_no_file(tmp_path, monkeypatch, suffix):
    def broken(stream, data, dtype):
        stream.write(b"\x00" * 1000)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(nifti_write, "_write_voxels", broken)
    with pytest.raises(WriteError, match="No space left"):
        write_nifti(IMAGES["3d-int16-dicom"], tmp_path / f"ct{suffix}")
    assert _listing(tmp_path) == []


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_a_failed_overwrite_keeps_the_old_file(tmp_path, monkeypatch, suffix):
    path = write_nifti(IMAGES["3d-bool"], tmp_path / f"mask{suffix}")
    before = path.read_bytes()

    def broken(stream, data, dtype):
        stream.write(b"\x00" * 10)
        raise KeyboardInterrupt

    monkeypatch.setattr(nifti_write, "_write_voxels", broken)
    with pytest.raises(KeyboardInterrupt):
        write_nifti(IMAGES["3d-labels-named"], path)
    assert _listing(tmp_path) == [path.name]
    assert path.read_bytes() == before


@pytest.mark.parametrize("array, problem", [
    (np.array([[[0, 2**40]]], dtype=np.int64), "do not fit a 32-bit integer"),
    (np.array([[[0, 2**63]]], dtype=np.uint64), "do not fit a 32-bit integer"),
    (np.zeros((2, 2, 2), dtype=np.float16), "cannot write float16"),
    (np.zeros((2, 2, 2), dtype=np.complex64), "cannot write complex64"),
])
def test_data_nifti_cannot_hold_is_refused_and_nothing_is_written(tmp_path, array, problem):
    with pytest.raises(WriteError, match=problem):
        write_nifti(Image(array), tmp_path / "x.nii.gz")
    assert _listing(tmp_path) == []


def test_an_axis_longer_than_nifti1_allows_is_refused(tmp_path):
    with pytest.raises(WriteError, match="does not fit NIfTI-1"):
        write_nifti(Image(np.zeros((1, 2, 40000), dtype=np.uint8)), tmp_path / "x.nii")
    assert _listing(tmp_path) == []


def test_a_suffix_other_than_nii_is_refused(tmp_path):
    with pytest.raises(WriteError, match=r"\.nii or \.nii\.gz"):
        write_nifti(IMAGES["3d-bool"], tmp_path / "x.img")
    assert _listing(tmp_path) == []


def test_the_writer_does_not_import_nibabel(tmp_path):
    import subprocess
    import sys

    code = ("import sys, numpy as np\nfrom radseg.image import Image\nfrom radseg.io import write\n"
            f"write(Image(np.zeros((2, 3, 4), np.int16)), {str(tmp_path / 'x.nii.gz')!r})\n"
            "print(sorted(m for m in ('nibabel', 'pydicom', 'scipy') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "[]"
    assert (tmp_path / "x.nii.gz").exists()
