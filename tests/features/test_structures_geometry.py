"""Structure lookup by name and value, sides, and the geometry helpers, on hand-derived cases."""

from __future__ import annotations

import numpy as np
import pytest

from radseg.features.geometry import (
    column_crossings,
    contours,
    min_gap,
    outline_length,
    ransac_circle,
)
from radseg.features.structures import Structures, as_2d, right_direction
from radseg.geometry import fit_sphere
from radseg.image import Image
from radseg.labels import make_label_map, make_multilabel


def labels(names=None, values=(1, 2, 3)):
    array = np.zeros((10, 12), np.uint8)
    for k, v in enumerate(values):
        array[1 + 3 * k: 3 + 3 * k, 2:5] = v
    return make_label_map(Image(array, spacing=(1.0, 1.0)), names)


def test_names_match_in_any_order_and_spelling():
    found = Structures(labels({1: "Femur_Right", 2: "left-femur", 3: "tibia"}))
    assert found.value_of(["right femur"]) == 1
    assert found.value_of(["left femur"]) == 2
    assert found.value_of(["right tibia"]) is None  # "tibia" has no side: not the right tibia


def test_value_fallback_only_for_unnamed_values():
    named = Structures(labels({1: "right lung", 2: "left lung", 3: "heart"}))
    assert named.find(["right femur"], [2]) is None  # value 2 is the left lung here, not a femur
    unnamed = Structures(labels(None))
    mask = unnamed.find(["right femur"], [2])
    assert mask is not None and mask.sum() == 6 and mask[4, 2]


def test_multilabel_classes_and_used_names():
    base = Image(np.zeros((6, 6), np.uint8), spacing=(1.0, 1.0))
    stack = np.zeros((2, 6, 6), bool)
    stack[0, :3] = True
    stack[1, 2:] = True  # overlaps class 0 in row 2
    found = Structures(make_multilabel(stack, ["heart", "right lung"], like=base))
    assert found.find(["right lung"]).sum() == 24
    assert found.find(["heart"])[2].all()
    assert found.used == {"right lung", "heart"}


def test_right_direction_from_anatomy_then_orientation_then_convention():
    lab = labels(None)
    right = np.zeros((10, 12), bool)
    right[:, 9:] = True
    left = np.zeros((10, 12), bool)
    left[:, :3] = True
    assert right_direction(lab, right, left)[0] == 1  # right structure lies at high columns: flipped display
    assert right_direction(lab, left, right)[0] == -1
    flipped = Image(lab.array, spacing=(1.0, 1.0), metadata={"patient_orientation": ["R", "F"]})
    assert right_direction(flipped)[0] == 1
    sign, how = right_direction(lab)
    assert sign == -1 and "assumed" in how


def test_as_2d_takes_the_single_slice():
    volume = np.zeros((1, 8, 9), np.uint8)
    volume[0, 2, 3] = 4
    flat = as_2d(Image(volume, spacing=(3.0, 0.5, 0.25)))
    assert flat.shape == (8, 9) and flat.array[2, 3] == 4
    assert np.allclose(flat.spacing, (0.5, 0.25))
    stacked = np.zeros((3, 8, 9), np.uint8)
    stacked[1, 2, 3] = 4
    assert as_2d(Image(stacked, spacing=(3.0, 0.5, 0.25))).array[2, 3] == 4
    stacked[2, 2, 3] = 4
    with pytest.raises(ValueError, match="2D label map"):
        as_2d(Image(stacked, spacing=(3.0, 0.5, 0.25)))


def test_contours_run_along_pixel_edges_in_mm():
    mask = np.zeros((10, 10), bool)
    mask[2:5, 3:7] = True  # 3 rows x 4 columns
    (outline,) = contours(mask, (0.5, 2.0))
    assert np.isclose(outline[:, 0].min(), 1.5 * 0.5) and np.isclose(outline[:, 0].max(), 4.5 * 0.5)
    assert np.isclose(outline[:, 1].min(), 2.5 * 2.0) and np.isclose(outline[:, 1].max(), 6.5 * 2.0)
    big = np.zeros((60, 60), bool)
    big[5:45, 10:40] = True  # 40 x 30 pixels = 20 mm x 60 mm; the smoothing rounds the corners a little
    (outline,) = contours(big, (0.5, 2.0))
    assert outline_length(outline) == pytest.approx(2 * (20.0 + 60.0), rel=0.03)
    assert outline_length(outline) < 2 * (20.0 + 60.0)
    rows, cols = np.mgrid[:300, :300]
    disc = (rows - 150.3) ** 2 + (cols - 140.6) ** 2 <= 60**2
    (outline,) = contours(disc, (1.0, 1.0))
    assert outline_length(outline, window=1) == pytest.approx(2 * np.pi * 60, rel=0.06)  # raw staircase: 5% long
    assert outline_length(outline) == pytest.approx(2 * np.pi * 60, rel=0.005)


def test_circle_fits_recover_a_digital_disc():
    rows, cols = np.mgrid[:200, :200]
    disc = (rows - 100.3) ** 2 + (cols - 90.6) ** 2 <= 40**2
    points = np.concatenate(contours(disc, (0.5, 0.5)))
    for fitted in (fit_sphere(points), ransac_circle(points, radius_range=(5, 40), tolerance=0.4)):
        assert fitted.radius == pytest.approx(20.0, abs=0.1)
        assert np.allclose(fitted.centre, (50.15, 45.3), atol=0.05)


def test_ransac_ignores_a_straight_tail():
    rows, cols = np.mgrid[:300, :200]
    shape = ((rows - 60) ** 2 + (cols - 100) ** 2 <= 30**2) | ((rows >= 60) & (np.abs(cols - 100) <= 15))
    points = np.concatenate(contours(shape, (1.0, 1.0)))
    fitted = ransac_circle(points, radius_range=(10, 45), tolerance=0.75)
    assert fitted.radius == pytest.approx(30.0, abs=0.3)
    assert np.allclose(fitted.centre, (60, 100), atol=0.3)


def test_sphere_fit_ignores_a_flat_cut_face():
    from radseg.features.ct import fit_femoral_head_sphere

    k, j, i = np.indices((60, 60, 60))
    ball = ((k - 30) ** 2 + (j - 30) ** 2 + (i - 30) ** 2 <= 20**2) & (k <= 42)  # cap removed 12 voxels up
    sphere, _ = fit_femoral_head_sphere(ball, (1.0, 1.0, 1.0))
    assert sphere.radius == pytest.approx(20.0, rel=0.01)
    assert np.allclose(sphere.centre, (30, 30, 30), atol=0.3)


def test_min_gap_is_edge_to_edge_and_crossings_interpolate():
    mask_a = np.zeros((40, 30), bool)
    mask_b = np.zeros((40, 30), bool)
    mask_a[5:15, 5:25] = True  # bottom edge at row 14.5
    mask_b[20:30, 5:25] = True  # top edge at row 19.5: a 5-pixel gap
    gap, p, q = min_gap(contours(mask_a, (0.2, 0.2)), np.concatenate(contours(mask_b, (0.2, 0.2))), window=1.0)
    assert gap == pytest.approx(1.0, abs=1e-6)
    assert p[0] == pytest.approx(14.5 * 0.2) and q[0] == pytest.approx(19.5 * 0.2)
    rows = column_crossings(contours(mask_a, (0.2, 0.2)), 3.0)
    assert np.allclose(rows, [0.9, 2.9])
