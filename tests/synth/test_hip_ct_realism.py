"""hip-ct realism: osteoporosis shift, thin cortex, beam hardening, implants, partial FOV, table, grids."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import ndimage

from radseg.synth import hip_ct
from radseg.synth.cohort import EFFECTS, NEUTRAL, Shift, make_subject
from radseg.synth.hip_phantom import PART_VALUES

GRID = {"shape": (50, 140, 220), "spacing": (2.5, 1.3, 1.3)}
PLAIN = {"implant_rate": 0.0, "fov_rate": 0.0}


def subject(index=0, seed=3, **difficulty):
    base = make_subject(index, seed=seed, prefix=hip_ct.PREFIX)
    return dataclasses.replace(base, difficulty={**base.difficulty, **difficulty}) if difficulty else base


def test_density_shift_is_registered():
    assert EFFECTS["density"][0] == "density" and NEUTRAL["density"] == 1.0
    shift = Shift.parse("sex=F:density")
    shifted = [make_subject(k, seed=1, prefix="X", shift=shift) for k in range(12)]
    assert all(s.difficulty["density"] == (EFFECTS["density"][1] if s.sex == "F" else 1.0) for s in shifted)


def test_density_shift_makes_bone_osteoporotic():
    factor = EFFECTS["density"][1]
    base = hip_ct.make_case(subject(), beam_hardening=False, **GRID, **PLAIN)
    weak = hip_ct.make_case(subject(density=factor), beam_hardening=False, **GRID, **PLAIN)
    muscle = base.params["hu_muscle"]
    assert weak.params["hu_muscle"] == muscle
    for key in ("cortical", "cancellous"):
        assert weak.params[f"hu_{key}"] - muscle == pytest.approx(factor * (base.params[f"hu_{key}"] - muscle))
    assert weak.params["cortex_thin_mm"] == pytest.approx(factor * base.params["cortex_thin_mm"], rel=0.01)
    # Same geometry and noise: the bone's median HU over muscle drops by about the factor (a little more:
    # the thinner cortex).
    bone = base.labels.array > 0
    excess = [np.median(c.image.array[bone]) - muscle for c in (base, weak)]
    assert 0.4 * excess[0] < excess[1] < (factor + 0.1) * excess[0]


def test_thin_cortex_is_partial_volume_grey():
    """At 2 mm pixels the thin cortex (iliac wing, acetabular floor) never reaches the cortical HU."""
    case = hip_ct.make_case(subject(2), shape=(40, 110, 170), spacing=(3.0, 2.0, 2.0), beam_hardening=False, **PLAIN)
    p = case.params
    assert p["cortex_thin_mm"] < 1.0 < p["cortex_shaft_mm"]
    parts, image = case.extras["parts"], case.image.array
    pelvis = np.isin(parts, [PART_VALUES["right_pelvis"], PART_VALUES["left_pelvis"]])
    depth = ndimage.distance_transform_edt(pelvis, sampling=case.image.spacing)
    shell = image[pelvis & (depth <= 2.0)]
    assert np.median(shell) < 0.6 * p["hu_cortical"]


def test_beam_hardening_darkens_between_the_heads():
    with_bh = hip_ct.make_case(subject(), **GRID, **PLAIN)
    without = hip_ct.make_case(subject(), beam_hardening=False, **GRID, **PLAIN)
    p, image = with_bh.params, with_bh.image
    z = np.mean([p[f"{s}_head_centre_z_mm"] for s in ("right", "left")])
    k = int(np.rint(image.world_to_index([0, 0, z])[0]))
    y = np.mean([p[f"{s}_head_centre_y_mm"] for s in ("right", "left")])
    row = int(np.rint(image.world_to_index([0, y, z])[1]))
    cols = [int(np.rint(image.world_to_index([p[f"{s}_head_centre_x_mm"], y, z])[2])) for s in ("right", "left")]
    between = (slice(k - 1, k + 2), slice(row - 3, row + 4), slice(cols[0] + 25, cols[1] - 24))
    diff = with_bh.image.array[between].astype(float) - without.image.array[between]
    assert diff.mean() < -3  # a dark band between the femoral heads
    assert p["beam_hardening"] and not without.params["beam_hardening"]


@pytest.mark.parametrize("index", [0, 5])
def test_implant(index):
    case = hip_ct.make_case(subject(index), implant_rate=1.0, fov_rate=0.0, **GRID)
    p, labels, image = case.params, case.labels.array, case.image.array
    sides = [s for s in ("right", "left") if p[f"{s}_implant"]]
    assert len(sides) == 1
    side, other = sides[0], ("left" if sides[0] == "right" else "right")
    head = {"right": 4, "left": 5}
    ace = {"right": 2, "left": 3}
    half = image.shape[2] // 2
    cols = slice(0, half) if side == "right" else slice(half, None)  # patient right = image left
    other_cols = slice(half, None) if side == "right" else slice(0, half)
    assert (image[:, :, cols] >= 3000).sum() > 50 and image.max() == 3071
    assert not (labels == head[side]).any() and (labels == ace[side]).any()
    assert (labels == head[other]).any() and (labels == ace[other]).any()
    # Metal is not bone: saturated voxels are unlabelled but for a partial-volume rim on the bone around it.
    assert (labels[image >= 3000] == 0).mean() > 0.8
    assert (image[:, :, other_cols] >= 3000).sum() < (image[:, :, cols] >= 3000).sum() / 10
    assert p[f"{side}_implant_ball_radius_mm"] >= 14 and not p[f"{other}_implant"]


def test_implant_rate_zero_and_default_record():
    case = hip_ct.make_case(subject(), implant_rate=0.0, fov_rate=0.0, **GRID)
    assert case.params["right_implant"] is False and case.params["left_implant"] is False
    assert case.image.array.max() < 3000


def test_partial_fov_cuts_the_body():
    case = hip_ct.make_case(subject(1), implant_rate=0.0, fov_rate=1.0, shape=(40, 160, 260), spacing=(3.0, 1.4, 1.4))
    p, image, labels = case.params, case.image.array, case.labels.array
    assert p["partial_fov"] and 0 < p["fov_diameter_mm"] < 260 * 1.4
    ny, nx = image.shape[1:]
    y = (np.arange(ny) - (ny - 1) / 2) * 1.4 - p["fov_offset_y_mm"]
    x = (np.arange(nx) - (nx - 1) / 2) * 1.4
    outside = y[:, None] ** 2 + x[None, :] ** 2 > (p["fov_diameter_mm"] / 2) ** 2
    assert outside.any()
    assert (image[:, outside] == -1024).all() and (labels[:, outside] == 0).all()
    assert all((labels == v).any() for v in (2, 3, 4, 5))  # both hips still inside the circle


def test_table_under_the_body():
    case = hip_ct.make_case(subject(), **PLAIN, beam_hardening=False)
    none = hip_ct.make_case(subject(), **PLAIN, beam_hardening=False, table=False)
    p, image, labels = case.params, case.image.array, case.labels.array
    assert p["table"] and not none.params["table"]
    # Below the body's lowest point: an unlabelled shell in the carbon-fibre range, under a foam pad.
    rows = np.flatnonzero((image > -500).any(axis=(0, 2)))
    body_rows = np.flatnonzero((labels > 0).any(axis=(0, 2)))
    assert rows.max() > body_rows.max() + 5
    centre = image.shape[2] // 2
    profile = np.median(image[:, :, centre - 3:centre + 4], axis=(0, 2))
    shell_rows = np.flatnonzero(profile > -400)
    assert shell_rows.size and (labels[:, shell_rows[-1]] == 0).all()
    assert none.image.shape[1] < image.shape[1]  # the grid grows to hold the table


def test_default_resolution_covers_the_ranges():
    rng = np.random.default_rng(0)
    params = hip_ct.sample_hip_params(subject())
    pixels, slices = [], []
    for _ in range(300):
        _, spacing, _ = hip_ct._grid(params, rng, (10, 10, 10), None)
        slices.append(spacing[0])
        pixels.append(spacing[1])
    assert min(pixels) < 0.6 and max(pixels) > 1.8 and all(0.5 <= v <= 2.0 for v in pixels)
    assert min(slices) == 0.6 and max(slices) == 5.0
