"""CT set: volumes, HU statistics, femoral-head sphere fit and hip joint space."""

from __future__ import annotations

import numpy as np
import pytest

from radseg.features import measure
from radseg.image import Image
from radseg.labels import make_label_map

SPACING = (1.0, 0.7, 0.7)
RADIUS, GAP = 23.0, 3.0
CENTRES = {"right": (40.0, 38.0, 35.0), "left": (40.0, 38.0, 115.0)}  # plane mm (z, y, x)


@pytest.fixture(scope="module")
def hips():
    shape = (80, 110, 220)
    z, y, x = (np.indices(shape).T * np.asarray(SPACING)).T
    array = np.zeros(shape, np.uint8)
    for value, side in ((3, "right"), (5, "left")):
        c = CENTRES[side]
        d = np.sqrt((z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2)
        array[(d <= RADIUS) & (z >= c[0] - 0.6 * RADIUS)] = value  # head cut flat towards the neck
        array[(d >= RADIUS + GAP) & (d <= RADIUS + GAP + 6) & (z >= c[0])] = value + 1
    names = {3: "right_femoral_head", 4: "right_acetabulum", 5: "left femoral head", 6: "left acetabulum"}
    labels = make_label_map(Image(array, spacing=SPACING, origin=(-50.0, 10.0, 200.0)), names)
    hu = np.where(array > 0, 400.0, -50.0) + np.where(array == 3, 100.0, 0.0)
    return labels, labels.with_array(hu.astype(np.float32))


def test_volumes_and_hu(hips):
    labels, image = hips
    rows = {(m.structure, m.name): m.value for m in measure(labels, "ct", image=image)}
    voxel_ml = float(np.prod(SPACING)) / 1000
    assert rows[("right_femoral_head", "volume")] == pytest.approx((labels.array == 3).sum() * voxel_ml)
    assert rows[("right_femoral_head", "hu_mean")] == pytest.approx(500.0)
    assert rows[("right_femoral_head", "hu_std")] == pytest.approx(0.0, abs=1e-6)
    assert rows[("left acetabulum", "hu_max")] == pytest.approx(400.0)
    # a spherical cap removed 0.6 R below the centre: V = 4/3 pi R^3 - pi h^2 (3R - h) / 3, h = 0.4 R
    h = 0.4 * RADIUS
    assert rows[("left femoral head", "volume")] == pytest.approx(
        (4 / 3 * np.pi * RADIUS**3 - np.pi * h * h * (3 * RADIUS - h) / 3) / 1000, rel=0.02)


def test_femoral_head_sphere_and_joint_space(hips):
    labels, _ = hips
    rows = {(m.structure, m.name): m.value for m in measure(labels, "ct")}
    for name, side in (("right_femoral_head", "right"), ("left femoral head", "left")):
        assert rows[(name, "femoral_head_diameter")] == pytest.approx(2 * RADIUS, rel=0.02)
        z, y, x = CENTRES[side]
        world = (-50.0 + x, 10.0 + y, 200.0 + z)  # default LPS layout: axes (z, y, x) from the origin
        for axis, value in zip("xyz", world):
            assert rows[(name, f"femoral_head_centre_{axis}_mm")] == pytest.approx(value, abs=0.5)
        assert rows[(name, "min_jsw")] == pytest.approx(GAP, abs=max(SPACING))


def test_hip_ct_phantom():
    from radseg.synth import hip_ct
    from radseg.synth.cohort import make_subject

    case = hip_ct.make_case(make_subject(2, seed=1, prefix=hip_ct.PREFIX), spacing=(3.0, 1.0, 1.0))
    p = case.params
    rows = {(m.structure, m.name): m.value for m in measure(case.labels, "ct", image=case.image)}
    in_plane = float(case.labels.spacing[1])
    for side in ("right", "left"):
        name = f"{side}_femoral_head"
        assert rows[(name, "femoral_head_diameter")] == pytest.approx(2 * p[f"{side}_head_radius_mm"], rel=0.005)
        for axis in "xyz":
            assert rows[(name, f"femoral_head_centre_{axis}_mm")] == pytest.approx(p[f"{side}_head_centre_{axis}_mm"], abs=1.0)
        assert rows[(name, "volume")] == pytest.approx(p[f"{side}_head_volume_mm3"] / 1000, rel=0.01)
        mask = case.labels.array == next(v for v, n in case.labels.metadata["label_names"].items() if n == name)
        assert rows[(name, "hu_mean")] == pytest.approx(float(case.image.array[mask].mean()))
        # digitised surfaces: the minimum gap comes out short, by less than a slice
        assert 0 < p[f"{side}_jsw_min_mm"] - rows[(name, "min_jsw")] < float(max(case.labels.spacing))
        assert rows[(name, "min_jsw")] == pytest.approx(p[f"{side}_jsw_min_mm"], abs=2 * in_plane)


def test_ct_set_refuses_2d():
    with pytest.raises(ValueError, match="3D"):
        measure(make_label_map(Image(np.ones((4, 4), np.uint8), spacing=(1.0, 1.0))), "ct")
