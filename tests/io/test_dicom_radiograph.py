"""Radiographs and compressed transfer syntaxes: full bit depth, MONOCHROME1, spacing tags, decoders."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

import radseg.io as rio
from radseg.image import Image
from radseg.io.dicom_write import write_dicom_radiograph
from tests.conftest import pydicom_data


@pytest.mark.parametrize(
    "compressed, reference",
    [
        ("RG1_J2KR.dcm", "RG1_UNCR.dcm"),  # CR chest, 15-bit, JPEG 2000 lossless
        ("RG3_J2KR.dcm", "RG3_UNCR.dcm"),  # CR tibia, 10-bit
        ("MR2_J2KR.dcm", "MR2_UNCR.dcm"),
        ("emri_small_RLE.dcm", "emri_small.dcm"),  # RLE, multi-frame
        ("emri_small_jpeg_ls_lossless.dcm", "emri_small.dcm"),  # JPEG-LS lossless
    ],
)
def test_lossless_compression_gives_identical_pixels(compressed, reference):
    a = rio.read(pydicom_data(compressed))
    b = rio.read(pydicom_data(reference))
    assert a.array.dtype == b.array.dtype
    np.testing.assert_array_equal(a.array, b.array)


def test_jpeg_lossless_decodes_to_uncompressed_values():
    # JPEG lossless (process 14): decoded values equal pydicom's own decoder output.
    path = pydicom_data("JPGLosslessP14SV1_1s_1f_8b.dcm")
    image = rio.read(path)
    np.testing.assert_array_equal(image.array, pydicom.dcmread(path).pixel_array)


def test_cr_keeps_full_bit_depth_and_monochrome1():
    path = pydicom_data("RG1_UNCR.dcm")
    image = rio.read(path)
    ds = pydicom.dcmread(path)
    assert image.ndim == 2 and image.shape == (1955, 1841)
    assert image.array.dtype == np.uint16
    assert image.array.max() > 255 and image.array.max() < 2 ** int(ds.BitsStored)
    assert image.metadata["photometric"] == "MONOCHROME1"
    np.testing.assert_array_equal(image.array, ds.pixel_array)  # kept as stored by default
    # RG1 has PixelSpacing "0\0": invalid, so the pixel size is unknown and said so.
    assert image.metadata["spacing_known"] is False
    assert any("no physical pixel size: lengths are in px" in p for p in image.metadata["problems"])


def test_monochrome1_inverted_only_when_asked(tmp_path):
    stored = np.arange(64 * 80, dtype=np.uint16).reshape(64, 80) % 4096
    path = write_dicom_radiograph(Image(stored, spacing=(0.15, 0.15)), tmp_path / "m1.dcm",
                                  photometric="MONOCHROME1", bits_stored=12)
    kept = rio.read(path)
    np.testing.assert_array_equal(kept.array, stored)
    inverted = rio.read(path, invert_monochrome1=True)
    np.testing.assert_array_equal(inverted.array, 4095 - stored)
    assert inverted.metadata["photometric"] == "MONOCHROME2"


@pytest.mark.parametrize(
    "tag, magnification, expected, source",
    [
        ("PixelSpacing", None, (0.2, 0.25), "PixelSpacing"),
        ("ImagerPixelSpacing", None, (0.2, 0.25), "ImagerPixelSpacing"),
        ("ImagerPixelSpacing", 1.2, (0.2, 0.25), "ImagerPixelSpacing/EstimatedRadiographicMagnificationFactor"),
    ],
)
def test_radiograph_spacing_sources(tmp_path, tag, magnification, expected, source):
    image = Image(np.ones((30, 20), np.uint16), spacing=(0.2, 0.25))
    path = write_dicom_radiograph(image, tmp_path / "dx.dcm", spacing_tag=tag, magnification=magnification)
    if magnification:
        ds = pydicom.dcmread(path)  # detector spacing is the anatomy spacing times the magnification
        np.testing.assert_allclose([float(v) for v in ds.ImagerPixelSpacing], np.array(expected) * magnification)
    back = rio.read(path)
    np.testing.assert_allclose(back.spacing, expected, rtol=1e-6)
    assert back.metadata["spacing_source"] == source
    assert back.metadata["spacing_known"] is True


def test_pixel_spacing_wins_over_imager_spacing(tmp_path):
    path = write_dicom_radiograph(Image(np.ones((8, 8), np.uint16), spacing=(0.3, 0.3)), tmp_path / "dx.dcm")
    ds = pydicom.dcmread(path)
    ds.PixelSpacing = ["0.25", "0.25"]
    ds.save_as(path)
    assert rio.read(path).spacing.tolist() == [0.25, 0.25]


def test_enhanced_ct_frames_sorted_with_geometry():
    path = pydicom_data("eCT_Supplemental.dcm")
    image = rio.read(path)
    ds = pydicom.dcmread(path)
    frames = ds.pixel_array
    positions = [np.array(f.PlanePositionSequence[0].ImagePositionPatient, float)
                 for f in ds.PerFrameFunctionalGroupsSequence]
    transform = ds.SharedFunctionalGroupsSequence[0].PixelValueTransformationSequence[0]
    hu = frames * float(transform.RescaleSlope) + float(transform.RescaleIntercept)
    assert image.shape == (2, 512, 512)
    np.testing.assert_allclose(image.spacing, [10.0, 0.388672, 0.388672], rtol=1e-6)
    # Each output slice sits at its frame's ImagePositionPatient and holds that frame's HU.
    for k in range(2):
        origin_k = image.index_to_world([k, 0, 0])
        source = int(np.argmin([np.linalg.norm(p - origin_k) for p in positions]))
        assert np.linalg.norm(positions[source] - origin_k) < 1e-4
        np.testing.assert_array_equal(image.array[k], hu[source])
