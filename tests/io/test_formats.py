"""NIfTI, raster and ITK formats: round trips, and agreement with nibabel / SimpleITK world coordinates."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

import radseg.io as rio
from radseg.errors import ReadError, WriteError
from radseg.image import Image
from radseg.io import raster
from tests.conftest import oblique_direction, phantom_volume


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".mha", ".nrrd"])
def test_volume_round_trip(tmp_path, oblique_image, suffix):
    path = rio.write(oblique_image, tmp_path / f"ct{suffix}")
    back = rio.read(path)
    assert back.array.dtype == oblique_image.array.dtype
    np.testing.assert_array_equal(back.array, oblique_image.array)
    np.testing.assert_allclose(back.affine, oblique_image.affine, atol=1e-4)


@pytest.mark.parametrize("suffix", [".nii.gz", ".mha"])
def test_label_map_stays_integer(tmp_path, ct_image, suffix):
    labels = ct_image.with_array((ct_image.array > 0).astype(np.uint8) * 7)
    back = rio.read(rio.write(labels, tmp_path / f"labels{suffix}"))
    assert back.array.dtype == np.uint8
    np.testing.assert_array_equal(back.array, labels.array)


def test_nifti_world_coordinates_match_nibabel(tmp_path, oblique_image):
    path = rio.write(oblique_image, tmp_path / "ct.nii.gz")
    img = nib.load(str(path))
    data = np.asanyarray(img.dataobj)
    ijk = np.array([3, 7, 5])  # NIfTI index (i, j, k) = radseg array index (k, j, i)
    ras = img.affine @ [*ijk, 1]
    lps = oblique_image.index_to_world(ijk[::-1])
    np.testing.assert_allclose(ras[:3], lps * [-1, -1, 1], atol=1e-4)
    assert data[tuple(ijk)] == oblique_image.array[tuple(ijk[::-1])]
    assert img.header.get_xyzt_units()[0] == "mm"
    assert img.header["sform_code"] > 0 and img.header["qform_code"] > 0


def test_itk_world_coordinates_match_simpleitk(tmp_path, oblique_image):
    path = rio.write(oblique_image, tmp_path / "ct.mha")
    img = sitk.ReadImage(str(path))
    ijk = (3, 7, 5)
    point = img.TransformIndexToPhysicalPoint(ijk)  # ITK is LPS, like radseg
    np.testing.assert_allclose(point, oblique_image.index_to_world(ijk[::-1]), atol=1e-4)
    assert img.GetPixel(ijk) == oblique_image.array[ijk[::-1]]


def test_real_nifti_matches_nibabel(shared_data):
    path = shared_data / "ct" / "totalsegmentator-example" / "example_ct.nii.gz"
    image = rio.read(path)
    img = nib.load(str(path))
    assert image.shape == img.shape[::-1]
    ijk = np.array([10, 20, 30])
    np.testing.assert_allclose(img.affine @ [*ijk, 1], [*(image.index_to_world(ijk[::-1]) * [-1, -1, 1]), 1], atol=1e-4)
    np.testing.assert_array_equal(np.asanyarray(img.dataobj)[tuple(ijk)], image.array[tuple(ijk[::-1])])


def test_nifti_scaled_integers_stay_integer(tmp_path):
    data = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    img = nib.Nifti1Image(data, np.eye(4))
    img.header.set_slope_inter(1, -1024)
    nib.save(img, str(tmp_path / "scaled.nii.gz"))
    image = rio.read(tmp_path / "scaled.nii.gz")
    assert np.issubdtype(image.array.dtype, np.integer)
    np.testing.assert_array_equal(image.array, data.T - 1024)


def test_2d_nifti_round_trip(tmp_path):
    image = Image(np.arange(12 * 9, dtype=np.int16).reshape(12, 9), spacing=(0.5, 0.25), origin=(3.0, 4.0))
    back = rio.read(rio.write(image, tmp_path / "xray.nii.gz"))
    assert back.ndim == 2
    np.testing.assert_array_equal(back.array, image.array)
    np.testing.assert_allclose(back.affine, image.affine)


def test_png_16bit_round_trip(tmp_path):
    values = (np.arange(50 * 70, dtype=np.uint32).reshape(50, 70) * 17 % 65536).astype(np.uint16)
    image = Image(values, spacing=(0.2, 0.2))
    back = rio.read(rio.write(image, tmp_path / "xray.png"))
    assert back.array.dtype == np.uint16 and back.array.max() > 255
    np.testing.assert_array_equal(back.array, values)
    assert back.metadata["spacing_known"] is False  # PNG has no radiological pixel size


def test_png_8bit_and_tiff_float_round_trip(tmp_path):
    u8 = Image(np.arange(256, dtype=np.uint8).reshape(16, 16))
    np.testing.assert_array_equal(rio.read(rio.write(u8, tmp_path / "a.png")).array, u8.array)
    f32 = Image(np.linspace(-1000, 3000, 64, dtype=np.float32).reshape(8, 8))
    back = rio.read(rio.write(f32, tmp_path / "a.tif"))
    assert back.array.dtype == np.float32
    np.testing.assert_array_equal(back.array, f32.array)


def test_16bit_tiff_round_trip(tmp_path):
    values = np.array([[0, 1000], [40000, 65535]], dtype=np.uint16)
    np.testing.assert_array_equal(rio.read(rio.write(Image(values), tmp_path / "a.tiff")).array, values)


def test_grey_rgb_jpeg_collapses_to_one_channel(tmp_path):
    from PIL import Image as PILImage

    grey = np.tile(np.arange(64, dtype=np.uint8) * 4, (32, 1))
    PILImage.fromarray(np.stack([grey] * 3, axis=-1)).save(tmp_path / "x.png")
    back = rio.read(tmp_path / "x.png")
    assert back.channels is None
    np.testing.assert_array_equal(back.array, grey)
    colour = np.zeros((4, 4, 3), np.uint8)
    colour[..., 0] = 200
    PILImage.fromarray(colour).save(tmp_path / "c.png")
    assert rio.read(tmp_path / "c.png").channels == 3


@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
def test_jpeg_exif_orientation_reads_as_viewers_show_it(tmp_path, orientation):
    from PIL import Image as PILImage, ImageOps

    # An asymmetric picture (bright top-left block) in a 40 x 60 portrait file, tagged to turn.
    stored = np.full((60, 40), 40, np.uint8)
    stored[:20, :10] = 220
    exif = PILImage.Exif()
    exif[0x0112] = orientation
    PILImage.fromarray(stored).save(tmp_path / "x.jpg", quality=100, exif=exif)
    shown = np.asarray(ImageOps.exif_transpose(PILImage.open(tmp_path / "x.jpg")))  # Pillow as the reference
    image = rio.read(tmp_path / "x.jpg")
    np.testing.assert_array_equal(image.array, shown)
    assert image.shape == ((60, 40) if orientation in (1, 3) else (40, 60))
    assert image.metadata.get("exif_orientation") == (None if orientation == 1 else orientation)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow(tmp_path, orientation):
    from PIL import Image as PILImage
    from PIL import ImageOps

    array = np.arange(12, dtype=np.uint8).reshape(3, 4)
    exif = PILImage.Exif()
    exif[0x0112] = orientation
    PILImage.fromarray(array).save(tmp_path / "o.png", exif=exif)
    expected = np.asarray(ImageOps.exif_transpose(PILImage.open(tmp_path / "o.png")))
    assert np.array_equal(raster.apply_orientation(array, orientation), expected)


def test_writers_refuse_lossy_or_unfit_data(tmp_path, ct_image):
    with pytest.raises(WriteError, match="2D"):
        rio.write(ct_image, tmp_path / "ct.png")
    with pytest.raises(WriteError, match="8-bit"):
        rio.write(Image(np.array([[0, 300]], np.uint16)), tmp_path / "x.jpg")
    with pytest.raises(WriteError, match="do not fit"):
        rio.write(Image(np.array([[-5, 3]], np.int16)), tmp_path / "x.png")
    with pytest.raises(WriteError, match="unknown output suffix"):
        rio.write(ct_image, tmp_path / "x.xyz")
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_content_beats_suffix(tmp_path):
    rio.write(Image(np.ones((3, 3), np.uint8)), tmp_path / "img.png")
    (tmp_path / "img.png").rename(tmp_path / "img.dat")
    assert rio.detect_format(tmp_path / "img.dat") == "raster"
    assert rio.read(tmp_path / "img.dat").shape == (3, 3)


def test_corrupt_files_name_the_file(tmp_path):
    (tmp_path / "bad.nii.gz").write_bytes(b"\x1f\x8b" + b"junk" * 10)
    with pytest.raises(ReadError, match="bad.nii.gz"):
        rio.read(tmp_path / "bad.nii.gz")
    good = tmp_path / "ok.png"
    rio.write(Image(np.ones((64, 64), np.uint8)), good)
    (tmp_path / "cut.png").write_bytes(good.read_bytes()[:60])
    with pytest.raises(ReadError, match="cut.png"):
        rio.read(tmp_path / "cut.png")
    with pytest.raises(ReadError, match="unknown image format"):
        (tmp_path / "notes.txt").write_text("x")
        rio.read(tmp_path / "notes.txt")
    with pytest.raises(ReadError, match="no such file"):
        rio.read(tmp_path / "missing.nii.gz")


def test_failed_write_leaves_no_partial_file(tmp_path, monkeypatch, ct_image):
    from radseg.io import nifti_write

    def boom(stream, data, dtype):
        stream.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(nifti_write, "_write_voxels", boom)
    with pytest.raises(WriteError, match="ct.nii.gz.*disk full"):
        rio.write(ct_image, tmp_path / "ct.nii.gz")
    assert list(tmp_path.iterdir()) == []


def test_dicom_series_matches_simpleitk(tmp_path, oblique_image):
    from radseg.io.dicom_write import write_dicom_series

    write_dicom_series(oblique_image, tmp_path / "ct")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(tmp_path / "ct")))
    itk = reader.Execute()
    ours = rio.read(tmp_path / "ct")
    np.testing.assert_array_equal(sitk.GetArrayFromImage(itk), ours.array)
    for ijk in [(0, 0, 0), (10, 20, 5), (47, 39, 11)]:
        np.testing.assert_allclose(itk.TransformIndexToPhysicalPoint(ijk), ours.index_to_world(ijk[::-1]), atol=1e-3)


def test_image_geometry_basics():
    image = Image(np.zeros((4, 5, 6)), spacing=(3.0, 0.5, 0.25), origin=(1.0, 2.0, 3.0))
    np.testing.assert_allclose(image.index_to_world([1, 2, 4]), [1 + 4 * 0.25, 2 + 2 * 0.5, 3 + 3.0])
    np.testing.assert_allclose(image.world_to_index(image.index_to_world([1.5, 2, 3])), [1.5, 2, 3])
    assert image.axis_codes == "SPL" and image.nifti_axis_codes == "LPS"
    assert image.metadata.get("spacing_known", True) is True
    assert Image(np.zeros((3, 3))).metadata["spacing_known"] is False
    oblique = Image(phantom_volume(), spacing=(1, 1, 1), direction=oblique_direction(30))
    assert not oblique.is_sheared
    with pytest.raises(ValueError, match="positive"):
        Image(np.zeros((2, 2)), spacing=(0, 1))
    with pytest.raises(ValueError, match="does not fit"):
        Image(np.zeros((2, 2, 2, 2, 2)), spacing=(1, 1, 1))
