"""The cup sphere of a hip replacement from its metal, on hand-built geometry with known centre and radii."""

from __future__ import annotations

import numpy as np
import pytest

from radseg.annotate.hip_implant import cup_sphere, metal_ml

SPACING = np.array([2.0, 1.2, 1.2])


def _grid(shape=(60, 120, 200)):
    k, j, i = np.indices(shape).astype(float)
    return k * SPACING[0], j * SPACING[1], i * SPACING[2]


def _implant(centre_mm, ball=14.0, cup_outer=27.0, shell=3.5, shape=(60, 120, 200)):
    """A metal ball, a liner gap, and a hemispherical cup opening downwards; a stem below."""
    z, y, x = _grid(shape)
    cz, cy, cx = centre_mm
    r = np.sqrt((z - cz) ** 2 + (y - cy) ** 2 + (x - cx) ** 2)
    ct = np.zeros(shape, np.float32)
    ct[r <= ball] = 3071
    ct[(r >= cup_outer - shell) & (r <= cup_outer) & (z >= cz - 5)] = 3071
    stem = ((y - cy) ** 2 + (x - (cx - 8)) ** 2 <= 6.0 ** 2) & (z < cz - ball + 2) & (z > cz - 90)
    ct[stem] = 3071
    return ct


def test_centre_and_outer_radius_of_the_cup():
    centre = np.array([63.1, 70.3, 80.7])  # mm, off the voxel grid
    ct = _implant(centre)
    found = cup_sphere(ct, SPACING, centre_col=150.0, side="right")
    assert found is not None
    index, outer = found
    assert np.linalg.norm(index * SPACING - centre) < 0.5  # a fraction of a voxel
    assert outer == pytest.approx(27.0, abs=1.0)  # the shell's outer surface, on 1.2-2 mm voxels


def test_the_left_side_reports_columns_of_the_whole_volume():
    centre = np.array([63.1, 70.3, 200.7])
    ct = _implant(centre, shape=(60, 120, 300))
    index, _ = cup_sphere(ct, SPACING, centre_col=100.0, side="left")
    assert abs(index[2] * SPACING[2] - 200.7) < 0.6
    assert cup_sphere(ct, SPACING, centre_col=100.0, side="right") is None  # no metal there


def test_a_nail_or_a_ball_without_cup_is_no_cup():
    z, y, x = _grid()
    nail = np.zeros(z.shape, np.float32)
    nail[((y - 70) ** 2 + (x - 80) ** 2 <= 5.0 ** 2) & (z > 10)] = 3071  # 10 mm across: no prosthetic ball
    assert cup_sphere(nail, SPACING, centre_col=150.0, side="right") is None
    ball = np.zeros(z.shape, np.float32)
    ball[(z - 60) ** 2 + (y - 70) ** 2 + (x - 80) ** 2 <= 14.0 ** 2] = 3071  # hemi-arthroplasty: no cup above
    assert cup_sphere(ball, SPACING, centre_col=150.0, side="right") is None


def test_metal_volume_by_side():
    ct = np.zeros((10, 10, 20), np.float32)
    ct[:, :, 2:4] = 3000  # 200 voxels on the right (low columns)
    assert metal_ml(ct, np.array([2.0, 1.0, 1.0]), 10.0, "right") == pytest.approx(200 * 2.0 / 1000)
    assert metal_ml(ct, np.array([2.0, 1.0, 1.0]), 10.0, "left") == 0.0


def test_the_acetabulum_reaches_its_cup_across_the_dark_band():
    """A cup (outer radius 27 mm) sits in an acetabular shell of bone from 31 to 38 mm above it; the
    4 mm band between reads dark and the bone mask misses it. The band under the acetabulum joins
    it; no voxel is added where no acetabulum lies beyond the cup (below its rim, the other way),
    nor beyond the shell, nor inside the metal; the closing radius and shell are in mm."""
    from radseg.annotate.hip_implant import CUP_SHELL_MM, bone_to_the_cup

    centre = np.array([63.1, 70.3, 80.7])
    ct = _implant(centre)
    metal = ct >= 2500
    z, y, x = _grid()
    r = np.sqrt((z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2)
    acetabulum = (r >= 31.0) & (r <= 38.0) & (z >= centre[0] + 4) & (x < centre[2] + 20)  # medial-superior wall
    band = (r > 27.0) & (r < 31.0)
    found = cup_sphere(ct, SPACING, centre_col=150.0, side="right")
    index, outer = found
    added = bone_to_the_cup(acetabulum, metal, index, outer, SPACING)
    assert not (added & metal).any() and not (added & acetabulum).any()
    under = band & (z >= centre[0] + 8) & (x < centre[2] + 14)  # the band well inside the wall's extent
    assert added[under].mean() > 0.9
    assert not added[(z < centre[0] - 2)].any()  # below the rim: no acetabulum beyond, nothing added
    assert not added[x > centre[2] + 26].any()  # the side without acetabulum
    assert not added[r > outer + CUP_SHELL_MM + 0.01].any()
