"""DICOM series reading on series written with pydicom: order, gaps, tilt, mixtures, bad files."""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest

import radseg.io as rio
from radseg.errors import ReadError, SeriesError
from radseg.image import Image, align_axes
from radseg.io.dicom_scan import scan
from radseg.io.dicom_write import write_dicom_series
from tests.conftest import phantom_volume


def _shuffle_names(paths: list[Path], seed: int = 3) -> None:
    """Rename files to random names and scramble InstanceNumber: only geometry may order them."""
    rng = random.Random(seed)
    names = [f"x{rng.randrange(10**8):08d}.dcm" for _ in paths]
    numbers = list(range(1, len(paths) + 1))
    rng.shuffle(numbers)
    for path, name, number in zip(paths, names, numbers):
        ds = pydicom.dcmread(path)
        ds.InstanceNumber = number
        ds.save_as(path.with_name(name))
        path.unlink()


def test_shuffled_series_reads_back_exactly(tmp_path, ct_image):
    paths = write_dicom_series(ct_image, tmp_path / "ct")
    _shuffle_names(paths)
    image = rio.read(tmp_path / "ct")
    assert image.array.dtype == np.int16
    np.testing.assert_array_equal(image.array, ct_image.array)
    np.testing.assert_allclose(image.affine, ct_image.affine, atol=1e-5)
    assert image.nifti_axis_codes == "LPS"
    assert image.metadata["problems"] == []


def test_oblique_series_geometry_is_exact(tmp_path, oblique_image):
    write_dicom_series(oblique_image, tmp_path / "ct")
    image = rio.read(tmp_path / "ct")
    np.testing.assert_array_equal(image.array, oblique_image.array)
    np.testing.assert_allclose(image.affine, oblique_image.affine, atol=1e-5)


def test_reversed_slice_direction_is_sorted_along_normal(tmp_path, ct_image):
    # Slice axis pointing down (feet first): positions fall as the index grows.
    flipped = Image(ct_image.array, affine=ct_image.affine @ np.diag([-1.0, 1, 1, 1]))
    write_dicom_series(flipped, tmp_path / "ct")
    image = rio.read(tmp_path / "ct")
    aligned = align_axes(image, flipped)
    np.testing.assert_array_equal(aligned.array, flipped.array)
    assert image.affine[2, 0] > 0  # radseg sorts ascending along the normal


def test_rescale_gives_hounsfield_units(tmp_path, ct_image):
    write_dicom_series(ct_image, tmp_path / "ct", intercept=-1024, slope=1)
    ds = pydicom.dcmread(next((tmp_path / "ct").iterdir()))
    assert ds.PixelRepresentation == 0 and float(ds.RescaleIntercept) == -1024
    assert rio.read(tmp_path / "ct").array.min() == ct_image.array.min()  # negative HU restored


def test_non_integer_slope_gives_float(tmp_path, ct_image):
    scaled = ct_image.with_array(ct_image.array.astype(np.float32) * 0.5)
    write_dicom_series(scaled, tmp_path / "ct", slope=0.5, intercept=-1024)
    image = rio.read(tmp_path / "ct")
    assert image.array.dtype == np.float32
    np.testing.assert_allclose(image.array, scaled.array)


def test_missing_slice_is_an_error_naming_the_gap(tmp_path, ct_image):
    paths = write_dicom_series(ct_image, tmp_path / "ct")
    paths[5].unlink()
    with pytest.raises(SeriesError) as err:
        rio.read(tmp_path / "ct")
    message = str(err.value)
    assert "1 missing slice(s)" in message
    assert paths[4].name in message and paths[6].name in message
    assert "--allow-gaps" in message


def test_missing_slice_resampled_when_asked(tmp_path, ct_image):
    paths = write_dicom_series(ct_image, tmp_path / "ct")
    paths[5].unlink()
    image = rio.read(tmp_path / "ct", on_gap="resample")
    assert image.shape == ct_image.shape
    np.testing.assert_allclose(image.affine, ct_image.affine, atol=1e-5)
    expected = np.rint((ct_image.array[4].astype(float) + ct_image.array[6]) / 2)
    np.testing.assert_array_equal(image.array[5], expected)
    np.testing.assert_array_equal(image.array[6:], ct_image.array[6:])
    assert any("interpolated" in p for p in image.metadata["problems"])


def test_uneven_spacing_is_reported(tmp_path, ct_image):
    paths = write_dicom_series(ct_image, tmp_path / "ct")
    ds = pydicom.dcmread(paths[7])
    ds.ImagePositionPatient[2] = float(ds.ImagePositionPatient[2]) + 0.9
    ds.save_as(paths[7])
    with pytest.raises(SeriesError, match="uneven spacing"):
        rio.read(tmp_path / "ct")


def test_duplicate_positions_are_an_error(tmp_path, ct_image):
    paths = write_dicom_series(ct_image, tmp_path / "ct")
    ds = pydicom.dcmread(paths[3])
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    ds.save_as(tmp_path / "ct" / "copy.dcm")
    with pytest.raises(SeriesError, match="duplicate slice position"):
        rio.read(tmp_path / "ct")


def test_two_series_in_one_folder(tmp_path, ct_image, oblique_image):
    write_dicom_series(ct_image, tmp_path / "mixed", description="Axial soft", series_number=2,
                       file_pattern="a{index:03d}.dcm")
    write_dicom_series(oblique_image, tmp_path / "mixed", description="Oblique bone", series_number=3,
                       file_pattern="b{index:03d}.dcm")
    with pytest.raises(ReadError, match="2 series found") as err:
        rio.read(tmp_path / "mixed")
    assert "Axial soft" in str(err.value) and "Oblique bone" in str(err.value)
    soft = rio.read(tmp_path / "mixed", series="axial SOFT")
    bone = rio.read(tmp_path / "mixed", series="Oblique")
    np.testing.assert_array_equal(soft.array, ct_image.array)
    np.testing.assert_array_equal(bone.array, oblique_image.array)
    by_uid = rio.read(tmp_path / "mixed", series=soft.metadata["series_uid"])
    np.testing.assert_array_equal(by_uid.array, ct_image.array)
    with pytest.raises(ReadError, match="no series matches"):
        rio.read(tmp_path / "mixed", series="sagittal")


def test_non_dicom_files_are_ignored(tmp_path, ct_image):
    write_dicom_series(ct_image, tmp_path / "ct")
    (tmp_path / "ct" / "README.txt").write_text("not an image")
    (tmp_path / "ct" / "DICOMDIR.bak").write_bytes(os.urandom(2000))
    rio.write(Image(np.zeros((4, 4), np.uint8)), tmp_path / "ct" / "thumb.png")
    found = scan(tmp_path / "ct")
    assert len(found.series) == 1 and len(found.non_dicom) == 3
    np.testing.assert_array_equal(rio.read(tmp_path / "ct").array, ct_image.array)


def test_corrupt_slice_is_named(tmp_path, ct_image):
    paths = write_dicom_series(ct_image, tmp_path / "ct")
    data = paths[2].read_bytes()
    paths[2].write_bytes(data[: len(data) - 1000])  # pixel data cut short
    with pytest.raises(SeriesError) as err:
        rio.read(tmp_path / "ct")
    assert paths[2].name in str(err.value)


def test_header_corrupt_files_are_reported_by_scan(tmp_path, ct_image):
    paths = write_dicom_series(ct_image, tmp_path / "ct")
    for path, keep in ((paths[0], 300), (paths[-1], 1000)):  # cut inside the header, before the pixels
        path.write_bytes(path.read_bytes()[:keep])
    found = scan(tmp_path / "ct")
    assert sorted(p for p, _ in found.unreadable) == sorted([paths[0], paths[-1]])
    assert all("truncated" in why or "not a readable" in why for _, why in found.unreadable)
    assert len(found.series[0].files) == len(paths) - 2


def test_gantry_tilt_shear_keeps_voxels(tmp_path, ct_image):
    tilt = np.radians(15)
    affine = ct_image.affine.copy()
    affine[:3, 0] = ct_image.spacing[0] * np.array([0, np.tan(tilt), 1.0])  # slices slide along y
    tilted = Image(ct_image.array, affine=affine)
    write_dicom_series(tilted, tmp_path / "ct")
    sheared = rio.read(tmp_path / "ct", tilt="shear")
    np.testing.assert_array_equal(sheared.array, ct_image.array)
    np.testing.assert_allclose(sheared.affine, affine, atol=1e-5)
    assert sheared.is_sheared
    assert any("gantry tilt of 15.00 degrees" in p for p in sheared.metadata["problems"])


def test_gantry_tilt_resampled_keeps_anatomy_in_place(tmp_path):
    # A bright column that is vertical in the patient: on a tilted acquisition it slides across
    # the slices; after de-shearing it must sit at the same (row, col) in every slice.
    shape, spacing = (10, 60, 40), (2.0, 0.5, 0.5)
    tilt = np.radians(12)
    step = np.array([0.0, spacing[0] * np.tan(tilt), spacing[0]])
    affine = np.eye(4)
    affine[:3, 0], affine[1, 1], affine[0, 2] = step, spacing[1], spacing[2]
    volume = np.full(shape, -1000, np.int16)
    for k in range(shape[0]):
        # world y of the column is 10 mm; in slice k row index = (10 - k*step_y) / 0.5
        row = (10.0 - k * step[1]) / spacing[1] + 20
        volume[k, int(round(row)) - 2:int(round(row)) + 3, 18:23] = 1000
    affine[:3, 3] = [0.0, -10.0, 0.0]
    write_dicom_series(Image(volume, affine=affine), tmp_path / "ct")
    image = rio.read(tmp_path / "ct")
    assert not image.is_sheared
    rows = [np.average(np.arange(shape[1]), weights=(image.array[k] > 0).sum(axis=1)) for k in range(shape[0])]
    assert np.ptp(rows) < 1.0  # within 0.5 mm across 18 mm of table travel
    world = image.index_to_world([0, rows[0], 20])
    assert abs(world[1] - 10.0) < 0.6


def test_mixed_orientations_split_into_volumes(tmp_path, ct_image, oblique_image):
    uid = pydicom.uid.generate_uid()
    write_dicom_series(ct_image, tmp_path / "ct", series_uid=uid, file_pattern="a{index:03d}.dcm")
    write_dicom_series(oblique_image, tmp_path / "ct", series_uid=uid, file_pattern="b{index:03d}.dcm")
    found = scan(tmp_path / "ct")
    assert len(found.series) == 2
    assert all("split into 2 volumes" in s.problems[-1] for s in found.series)
    first = rio.read(tmp_path / "ct", series=f"{uid}.part1")
    assert first.shape == ct_image.shape


def test_localizer_skipped_unless_asked(tmp_path, ct_image):
    paths = write_dicom_series(ct_image, tmp_path / "ct")
    coronal = np.column_stack([(0, 1, 0), (0, 0, -1), (1, 0, 0)]).astype(float)  # normal, column, row cosines
    scout = Image(phantom_volume((1, 40, 48)), spacing=(1.0, 0.7, 0.8), direction=coronal)
    loc = write_dicom_series(scout, tmp_path / "loc", series_uid=pydicom.dcmread(paths[0]).SeriesInstanceUID)
    ds = pydicom.dcmread(loc[0])
    ds.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    ds.save_as(tmp_path / "ct" / "scout.dcm")
    shutil.rmtree(tmp_path / "loc")
    found = scan(tmp_path / "ct")
    assert len(found.series) == 1 and found.skipped[0][1] == "localizer"
    assert len(scan(tmp_path / "ct", include_derived=True).series) == 2


def test_not_dicom_file_error(tmp_path):
    path = tmp_path / "scan.dcm"
    path.write_text("hello")
    with pytest.raises(ReadError, match="scan.dcm"):
        rio.read(path)


def test_empty_folder_error(tmp_path):
    with pytest.raises(ReadError, match="no readable DICOM"):
        rio.read(tmp_path)
