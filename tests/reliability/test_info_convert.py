"""Scenarios: non-DICOM input (PNG, NIfTI) with lying headers or unusable geometry, and
interrupted conversions (README: "What radseg promises on bad input")."""

from __future__ import annotations

import json
import struct
import zlib

import nibabel as nib
import numpy as np

import radseg.io as rio
from radseg.image import Image
from tests.reliability.conftest import assert_batch_rest_done, cli, outputs, partials


def _png_claiming(path, width: int, height: int) -> None:
    """A tiny PNG whose header claims ``width x height`` (the data is never decoded)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 4096))
                     + chunk(b"IEND", b""))


def _nifti(path, data, affine=None) -> None:
    """Save ``data`` with ``affine`` as the sform (no qform), even a singular one nibabel cannot decompose."""
    img = nib.Nifti1Image(data, np.eye(4))
    if affine is not None:
        img.set_qform(None, code=0)
        img.set_sform(affine, code=1)
    nib.save(img, str(path))


def test_png_claiming_20000_squared_is_refused_before_decoding(tmp_path):
    _png_claiming(tmp_path / "huge.png", 20000, 20000)
    info = cli("info", tmp_path / "huge.png")
    assert info.exit_code == 1 and "huge.png" in info.output and "400000000 pixels" in info.output
    result = cli("convert", tmp_path / "huge.png", tmp_path / "huge.nii.gz")
    assert result.exit_code == 1 and "huge.png" in result.output and not outputs(tmp_path)


def test_png_info_says_px_not_mm(tmp_path):
    rio.write(Image(np.arange(12, dtype=np.uint8).reshape(3, 4)), tmp_path / "a.png")
    text = cli("info", tmp_path / "a.png").output
    assert "spacing: 1 x 1 px" in text and "no physical pixel size: lengths are in px" in text


def test_nifti_with_all_zero_affine_is_described_with_the_problem(tmp_path):
    _nifti(tmp_path / "zero.nii.gz", np.ones((4, 5, 6), np.int16), affine=np.zeros((4, 4)))
    info = json.loads(cli("info", tmp_path / "zero.nii.gz", "--json").output)
    assert info["images"] and any("singular" in p for p in info["images"][0]["problems"])
    result = cli("convert", tmp_path / "zero.nii.gz", tmp_path / "out.nii.gz")
    assert result.exit_code == 0 and "singular" in result.output


def test_nifti_with_singular_affine_falls_back_and_says_so(tmp_path):
    affine = np.diag([1.0, 1.0, 0.0, 1.0])  # the third axis has no extent
    _nifti(tmp_path / "flat.nii.gz", np.ones((4, 5, 6), np.int16), affine=affine)
    info = cli("info", tmp_path / "flat.nii.gz")
    assert info.exit_code == 0 and "singular" in info.output


def test_sheared_affine_round_trips(tmp_path):
    affine = np.array([[1.0, 0.3, 0, 0], [0, 1.0, 0, 0], [0, 0, 2.0, 0], [0, 0, 0, 1]])
    _nifti(tmp_path / "shear.nii.gz", np.arange(60, dtype=np.int16).reshape(3, 4, 5), affine=affine)
    result = cli("convert", tmp_path / "shear.nii.gz", tmp_path / "out.nii.gz")
    assert result.exit_code == 0, result.output
    np.testing.assert_allclose(nib.load(str(tmp_path / "out.nii.gz")).affine, affine, atol=1e-5)


def test_nifti_claiming_4096_cubed_names_the_file_and_the_size(tmp_path):
    header = nib.Nifti1Header()
    header.set_data_shape((4096, 4096, 4096))
    header.set_data_dtype(np.int16)
    with open(tmp_path / "big.nii", "wb") as handle:
        handle.write(header.binaryblock + b"\0" * (352 - 348 + 1024))
    info = cli("info", tmp_path / "big.nii")
    assert info.exit_code == 1 and "big.nii" in info.output and "4096 x 4096 x 4096" in info.output
    assert "MemoryError" not in info.output
    result = cli("convert", tmp_path / "big.nii", tmp_path / "out.nii.gz")
    assert result.exit_code == 1 and "big.nii" in result.output and not outputs(tmp_path, "out*")


def test_nan_and_inf_values_are_kept_and_reported(tmp_path):
    data = np.zeros((3, 4, 5), np.float32)
    data[0, 0, 0], data[1, 1, 1] = np.nan, np.inf
    _nifti(tmp_path / "nan.nii.gz", data)
    info = json.loads(cli("info", tmp_path / "nan.nii.gz", "--json").output)["images"][0]
    assert any("NaN or infinite" in p for p in info["problems"]) and info["value_range"] == [0.0, 0.0]
    result = cli("convert", tmp_path / "nan.nii.gz", tmp_path / "out.nii.gz")
    assert result.exit_code == 0
    assert np.isnan(rio.read(tmp_path / "out.nii.gz").array).sum() == 1


def test_4d_nifti_is_read_with_channels(tmp_path):
    _nifti(tmp_path / "four.nii.gz", np.zeros((3, 4, 5, 2), np.int16))
    item = json.loads(cli("info", tmp_path / "four.nii.gz", "--json").output)["images"][0]
    assert item["shape"] == [5, 4, 3] and item["channels"] == 2


def test_5d_nifti_is_refused_naming_the_file(tmp_path):
    _nifti(tmp_path / "five.nii.gz", np.zeros((3, 4, 5, 2, 2), np.int16))
    result = cli("convert", tmp_path / "five.nii.gz", tmp_path / "out.nii.gz")
    assert result.exit_code == 1 and "five.nii.gz" in result.output and "5 dimensions" in result.output
    assert not outputs(tmp_path, "out*") and not partials(tmp_path)


def test_batch_of_images_finishes_the_good_ones(tmp_path):
    root = tmp_path / "in"
    root.mkdir()
    rio.write(Image(np.ones((3, 4), np.uint8)), root / "good.png")
    _nifti(root / "good.nii.gz", np.ones((3, 4, 5), np.int16))
    (root / "broken.nii.gz").write_bytes(b"\x1f\x8b" + b"garbage" * 20)
    result = cli("convert", root, tmp_path / "out", "-q")
    assert result.exit_code == 1 and "broken.nii.gz" in result.output
    assert len(outputs(tmp_path / "out")) == 2 and not partials(tmp_path / "out")


def test_kill_during_convert_stale_partial_is_cleaned(tmp_path, series):
    out = tmp_path / "ct.nii.gz"
    stale = tmp_path / ".ct.partial-deadbeef.nii.gz"
    stale.write_bytes(b"half an image")
    result = cli("convert", tmp_path / "ct", out)
    assert result.exit_code == 0 and stale.name in result.output
    assert out.exists() and (tmp_path / "ct.json").exists() and not partials(tmp_path)


def test_kill_between_image_and_sidecar_is_redone(tmp_path, batch):
    out = tmp_path / "out"
    assert cli("convert", batch, out, "-q").exit_code == 0
    first = outputs(out)[0]
    sidecar = first.with_name(first.name.replace(".nii.gz", ".json"))
    sidecar.unlink()  # killed after the image, before its sidecar
    again = cli("convert", batch, out, "-q")
    assert again.exit_code == 0 and "kept 1 existing" in again.output and sidecar.exists()
    assert_batch_rest_done(out)


def test_sidecar_without_image_is_rewritten_with_its_image(tmp_path, series):
    (tmp_path / "ct.json").write_text("{}")  # an older run's order: sidecar first, then killed
    result = cli("convert", tmp_path / "ct", tmp_path / "ct.nii.gz")
    assert result.exit_code == 0 and (tmp_path / "ct.nii.gz").exists()
    assert json.loads((tmp_path / "ct.json").read_text())["radseg"]["shape"] == [6, 16, 20]
