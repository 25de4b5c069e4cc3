"""radseg convert against dcm2niix: same voxel values and the same world affine (within 1e-3 mm)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

import radseg.io as rio
from radseg.convert import convert
from radseg.image import align_axes
from radseg.io.dicom_write import write_dicom_series


def _dcm2niix(exe: str, folder: Path, out: Path) -> Path:
    out.mkdir()
    subprocess.run([exe, "-z", "y", "-f", "ref", "-o", str(out), str(folder)], check=True, capture_output=True)
    return out / "ref.nii.gz"


def _assert_same_in_world(ours_path: Path, reference_path: Path) -> None:
    ours = rio.read(ours_path)
    reference = rio.read(reference_path)
    aligned = align_axes(reference, ours, atol=1e-3)  # raises unless affines agree within 1e-3 mm
    np.testing.assert_array_equal(aligned.array, ours.array)
    assert np.abs(aligned.affine - ours.affine).max() < 1e-3


@pytest.mark.realdata
def test_totalsegmentator_series_matches_dcm2niix(tmp_path, shared_data, dcm2niix):
    folder = shared_data / "ct" / "totalsegmentator-example" / "dicom"
    target = tmp_path / "ours.nii.gz"
    report = convert(folder, target)
    assert report.ok and report.written == [target]
    _assert_same_in_world(target, _dcm2niix(dcm2niix, folder, tmp_path / "ref"))


def test_oblique_shuffled_series_matches_dcm2niix(tmp_path, oblique_image, dcm2niix):
    write_dicom_series(oblique_image, tmp_path / "ct", file_pattern="{uid}.dcm")  # file names in random order
    target = tmp_path / "ours.nii.gz"
    assert convert(tmp_path / "ct", target).ok
    _assert_same_in_world(target, _dcm2niix(dcm2niix, tmp_path / "ct", tmp_path / "ref"))
