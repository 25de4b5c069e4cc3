"""Scenarios: DICOM input that is shuffled, incomplete, broken or unusual (README: "What radseg
promises on bad input"). Each checks the exit code, that the offending file is named, and that
no output is half-written while the good items of a batch are done."""

from __future__ import annotations

import json
import os
import random

import numpy as np
import pydicom
import pytest

import radseg.io as rio
from radseg.image import Image
from radseg.io.dicom_write import write_dicom_radiograph, write_dicom_series
from tests.conftest import SHARED_DATA
from tests.reliability.conftest import assert_batch_rest_done, cli, cli_subprocess, edit, outputs, partials


def test_shuffled_slice_order_reads_by_geometry(tmp_path, series, small_ct):
    rng = random.Random(1)
    for path in series:  # random names and InstanceNumbers: only positions may order the slices
        edit(path, InstanceNumber=rng.randrange(1000))
        path.rename(path.with_name(f"z{rng.randrange(10**6):06d}.dcm"))
    result = cli("convert", tmp_path / "ct", tmp_path / "ct.nii.gz")
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(rio.read(tmp_path / "ct.nii.gz").array, small_ct.array)


def test_missing_slice_is_an_error_naming_both_neighbours(tmp_path, series):
    series[3].unlink()
    result = cli("convert", tmp_path / "ct", tmp_path / "ct.nii.gz")
    assert result.exit_code == 1
    assert "missing slice" in result.output and series[2].name in result.output and series[4].name in result.output
    assert not (tmp_path / "ct.nii.gz").exists() and not partials(tmp_path)


def test_missing_slice_interpolated_with_allow_gaps(tmp_path, series, small_ct):
    series[3].unlink()
    result = cli("convert", tmp_path / "ct", tmp_path / "ct.nii.gz", "--allow-gaps")
    assert result.exit_code == 0 and "interpolated" in result.output
    assert rio.read(tmp_path / "ct.nii.gz").shape == small_ct.shape
    assert json.loads((tmp_path / "ct.json").read_text())["radseg"]["problems"]


def test_present_but_unreadable_slice_is_not_a_gap(tmp_path, series):
    edit(series[2], PixelData=None)  # IM00003 is there but has no pixels
    result = cli("convert", tmp_path / "ct", tmp_path / "ct.nii.gz", "--allow-gaps")
    assert result.exit_code == 1
    assert series[2].name in result.output and "missing slice" not in result.output
    assert not (tmp_path / "ct.nii.gz").exists() and not partials(tmp_path)


def test_slice_without_position_is_named_as_part_of_its_series(tmp_path, series):
    edit(series[2], ImagePositionPatient=None)
    info = json.loads(cli("info", tmp_path / "ct", "--json").output)
    assert len(info["images"]) == 1 and info["images"][0]["kind"] == "slices"  # no bogus one-file radiograph
    assert any(series[2].name in p and "ImagePositionPatient" in p for p in info["images"][0]["problems"])
    result = cli("convert", tmp_path / "ct", tmp_path / "ct.nii.gz", "--allow-gaps")
    assert result.exit_code == 1 and series[2].name in result.output and "ImagePositionPatient" in result.output
    assert not outputs(tmp_path) and not partials(tmp_path)


def test_rescale_slope_zero_is_refused(tmp_path, series):
    edit(series[4], RescaleSlope=0)
    result = cli("convert", tmp_path / "ct", tmp_path / "ct.nii.gz")
    assert result.exit_code == 1 and series[4].name in result.output and "RescaleSlope" in result.output
    assert not (tmp_path / "ct.nii.gz").exists() and not partials(tmp_path)


def test_duplicate_slices_are_an_error(tmp_path, series):
    ds = pydicom.dcmread(series[1])
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    ds.save_as(tmp_path / "ct" / "copy.dcm")
    result = cli("convert", tmp_path / "ct", tmp_path / "ct.nii.gz")
    assert result.exit_code == 1 and "duplicate slice" in result.output and "copy.dcm" in result.output
    assert not (tmp_path / "ct.nii.gz").exists()


def test_two_series_in_one_folder_need_series(tmp_path, small_ct):
    write_dicom_series(small_ct, tmp_path / "mix", description="Soft", series_number=2, file_pattern="a{index:03d}.dcm")
    write_dicom_series(small_ct, tmp_path / "mix", description="Bone", series_number=3, file_pattern="b{index:03d}.dcm")
    result = cli("convert", tmp_path / "mix", tmp_path / "one.nii.gz")
    assert result.exit_code == 1 and "2 series found" in result.output and "Soft" in result.output
    assert not (tmp_path / "one.nii.gz").exists()
    picked = cli("convert", tmp_path / "mix", tmp_path / "one.nii.gz", "--series", "bone")
    assert picked.exit_code == 0, picked.output
    np.testing.assert_array_equal(rio.read(tmp_path / "one.nii.gz").array, small_ct.array)


def test_gantry_tilt_is_resampled_and_reported(tmp_path, small_ct):
    affine = small_ct.affine.copy()
    affine[:3, 0] = small_ct.spacing[0] * np.array([0, np.tan(np.radians(12)), 1.0])
    write_dicom_series(Image(small_ct.array, affine=affine), tmp_path / "ct")
    result = cli("convert", tmp_path / "ct", tmp_path / "ct.nii.gz")
    assert result.exit_code == 0 and "gantry tilt of 12.00 degrees" in result.output
    assert not rio.read(tmp_path / "ct.nii.gz").is_sheared


def test_localizer_is_skipped(tmp_path, series, small_ct):
    scout = pydicom.dcmread(series[0])
    scout.SOPInstanceUID = pydicom.uid.generate_uid()
    scout.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    scout.ImageOrientationPatient = [0, 1, 0, 0, 0, -1]
    scout.save_as(tmp_path / "ct" / "scout.dcm")
    result = cli("convert", tmp_path / "ct", tmp_path / "ct.nii.gz")
    assert result.exit_code == 0, result.output
    assert rio.read(tmp_path / "ct.nii.gz").shape == small_ct.shape
    assert "localizer" in cli("info", tmp_path / "ct").output


def test_corrupt_file_fails_its_series_and_the_batch_goes_on(tmp_path, batch, small_ct):
    bad = write_dicom_series(small_ct, batch / "bad", description="Bad", series_number=5)
    bad[2].write_bytes(bad[2].read_bytes()[:-300])  # pixel data cut short
    result = cli("convert", batch, tmp_path / "out", "-q")
    assert result.exit_code == 1 and bad[2].name in result.output
    assert_batch_rest_done(tmp_path / "out")


@pytest.mark.parametrize("content", [b"", b"just some notes, not DICOM at all\n" * 10], ids=["zero-byte", "non-dicom"])
def test_bad_dcm_file_is_named_and_the_batch_goes_on(tmp_path, batch, content):
    bad = batch / "good1" / "IM99999.dcm"
    bad.write_bytes(content)
    result = cli("convert", batch, tmp_path / "out", "-q")
    assert result.exit_code == 1 and "IM99999.dcm" in result.output
    assert_batch_rest_done(tmp_path / "out")
    info = cli("info", batch)
    assert "IM99999.dcm" in info.output and ("empty" if not content else "not a DICOM") in info.output


def test_fifo_in_a_series_folder_is_named_and_never_opened(tmp_path, series, small_ct):
    fifo = tmp_path / "ct" / "IM9999.dcm"
    os.mkfifo(fifo)
    info = cli_subprocess("info", tmp_path / "ct")
    assert info.returncode == 0 and "IM9999.dcm" in info.stdout and "FIFO" in info.stdout
    done = cli_subprocess("convert", tmp_path / "ct", tmp_path / "out", "-q")
    assert done.returncode == 0, done.stderr
    assert "IM9999.dcm" in done.stderr and "FIFO" in done.stderr
    (written,) = outputs(tmp_path / "out")
    np.testing.assert_array_equal(rio.read(written).array, small_ct.array)


def test_fifo_given_directly_is_refused(tmp_path):
    fifo = tmp_path / "IM9999.dcm"
    os.mkfifo(fifo)
    done = cli_subprocess("info", fifo)
    assert done.returncode == 1 and "IM9999.dcm" in done.stderr and "not a regular file" in done.stderr


@pytest.mark.parametrize("name", ["MR_small_jp2klossless.dcm", "MR_small_RLE.dcm", "MR_small_jpeg_ls_lossless.dcm"])
def test_compressed_transfer_syntax_decodes_to_the_uncompressed_values(tmp_path, testdata, name):
    result = cli("convert", testdata(name), tmp_path / "mr.nii.gz", "--include-derived")  # MR_small is DERIVED
    assert result.exit_code == 0, result.output
    reference = pydicom.dcmread(testdata("MR_small.dcm")).pixel_array
    np.testing.assert_array_equal(np.squeeze(rio.read(tmp_path / "mr.nii.gz").array), reference)


def test_monochrome1_kept_or_inverted_on_request(tmp_path):
    values = np.arange(12 * 10, dtype=np.uint16).reshape(12, 10) * 30
    path = write_dicom_radiograph(Image(values, spacing=(0.2, 0.2)), tmp_path / "cr.dcm", modality="CR",
                                  photometric="MONOCHROME1", bits_stored=12)
    kept = cli("convert", path, tmp_path / "kept.nii.gz")
    assert kept.exit_code == 0
    np.testing.assert_array_equal(np.squeeze(rio.read(tmp_path / "kept.nii.gz").array), values)
    inverted = cli("convert", path, tmp_path / "inv.nii.gz", "--invert-monochrome1")
    assert inverted.exit_code == 0 and "MONOCHROME1 inverted" in inverted.output
    np.testing.assert_array_equal(np.squeeze(rio.read(tmp_path / "inv.nii.gz").array), 4095 - values)


def test_multiframe_colour_is_read_with_its_frames(tmp_path, testdata):
    path = testdata("SC_rgb_2frame.dcm")
    info = json.loads(cli("info", path, "--json").output)["images"][0]
    assert info["frames"] == 2 and info["shape"] == [2, 100, 100] and info["channels"] == 3
    result = cli("convert", path, tmp_path / "rgb.nii.gz")
    assert result.exit_code == 0, result.output
    image = rio.read(tmp_path / "rgb.nii.gz")
    assert image.shape == (2, 100, 100) and image.channels == 3


def test_multiframe_without_positions_shows_its_frame_count(testdata):
    info = cli("info", testdata("emri_small.dcm"))
    assert info.exit_code == 0 and "frames: 10" in info.output and "shape: 10 x 64 x 64" in info.output


def test_rt_dose_grid_is_read_along_its_frame_offsets(tmp_path, testdata):
    path = testdata("rtdose.dcm")
    result = cli("convert", path, tmp_path / "dose.nii.gz")
    assert result.exit_code == 0, result.output
    dose = rio.read(tmp_path / "dose.nii.gz")
    ds = pydicom.dcmread(path)
    assert dose.shape == (15, 10, 10) and dose.spacing[0] == pytest.approx(5.0)
    np.testing.assert_allclose(dose.array, ds.pixel_array * float(ds.DoseGridScaling), rtol=1e-6)


@pytest.mark.parametrize("name", ["meta_missing_tsyntax.dcm", "nested_priv_SQ.dcm"])
def test_malformed_pydicom_files_are_reported_not_crashed_on(tmp_path, testdata, name):
    info = cli("info", testdata(name))
    assert info.exit_code == 1 and name in info.output and "not a valid image" in info.output
    result = cli("convert", testdata(name), tmp_path / "x.nii.gz")
    assert result.exit_code == 1 and name in result.output and not outputs(tmp_path)


def test_radiograph_without_pixel_size_is_in_px(tmp_path):
    path = write_dicom_radiograph(Image(np.zeros((8, 6), np.uint16), spacing=(0.1, 0.1)), tmp_path / "dx.dcm")
    edit(path, ImagerPixelSpacing=None)
    item = json.loads(cli("info", path, "--json").output)["images"][0]
    assert item["spacing_unit"] == "px" and item["spacing_known"] is False
    assert "no physical pixel size: lengths are in px" in item["problems"]
    assert "px" in cli("info", path).output.split("spacing:")[1].splitlines()[0]


def test_real_radiograph_with_zero_pixel_spacing_is_in_px():
    path = SHARED_DATA / "xray" / "wg04" / "RG1_JLSN.dcm"
    if not path.exists():
        pytest.skip(f"{path} not present")
    text = cli("info", path).output
    assert "no physical pixel size: lengths are in px" in text and " mm" not in text.split("spacing:")[1].splitlines()[0]


def test_empty_file_in_place_of_a_slice_is_named_even_with_allow_gaps(tmp_path, series):
    series[2].write_bytes(b"")  # IM00003.dcm exists but is empty: not silently interpolated over
    result = cli("convert", tmp_path / "ct", tmp_path / "ct.nii.gz", "--allow-gaps")
    assert result.exit_code == 1 and series[2].name in result.output
    assert not (tmp_path / "ct.nii.gz").exists() and not partials(tmp_path)
