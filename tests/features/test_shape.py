"""Shape measurements (CXAS parity, in mm) on shapes whose values are known by hand."""

from __future__ import annotations

import numpy as np
import pytest

from radseg.features import measure
from radseg.image import Image
from radseg.labels import make_label_map, make_multilabel


def table(rows):
    return {(m.structure, m.name): m.value for m in rows}


def test_rectangle_on_anisotropic_pixels():
    array = np.zeros((80, 60), np.uint8)
    array[10:50, 20:50] = 3  # 40 rows x 30 columns
    labels = make_label_map(Image(array, spacing=(0.5, 2.0), origin=(100.0, -20.0)), {3: "box"})
    got = table(measure(labels, "shape"))
    assert got[("box", "area")] == pytest.approx(40 * 30 * 0.5 * 2.0)
    assert got[("box", "centroid_row")] == pytest.approx(29.5)
    assert got[("box", "centroid_col")] == pytest.approx(34.5)
    # world: x = origin_x + col * 2.0, y = origin_y + row * 0.5 (default 2D direction)
    assert got[("box", "centroid_x_mm")] == pytest.approx(100.0 + 34.5 * 2.0)
    assert got[("box", "centroid_y_mm")] == pytest.approx(-20.0 + 29.5 * 0.5)
    assert (got[("box", "bbox_row_min")], got[("box", "bbox_row_max")]) == (10, 49)
    assert got[("box", "bbox_row_size_mm")] == pytest.approx(20.0)
    assert got[("box", "bbox_col_size_mm")] == pytest.approx(60.0)
    assert got[("box", "perimeter")] == pytest.approx(160.0, rel=0.03)
    assert got[("box", "compactness")] == pytest.approx(4 * np.pi * 1200 / 160.0**2, rel=0.06)
    assert got[("box", "convexity")] == pytest.approx(1.0, abs=1e-6)


def test_disc_and_l_shape():
    rows, cols = np.mgrid[:200, :200]
    array = np.zeros((200, 200), np.uint8)
    array[(rows - 60.3) ** 2 + (cols - 60.6) ** 2 <= 40**2] = 1
    array[120:160, 100:140] = 2
    array[120:140, 120:140] = 0  # an L: 1200 pixels, convex hull 1600 - 200
    got = table(measure(make_label_map(Image(array, spacing=(0.25, 0.25)), {1: "disc", 2: "ell"}), "shape"))
    assert got[("disc", "area")] == pytest.approx(np.pi * 10.0**2, rel=0.005)
    assert got[("disc", "perimeter")] == pytest.approx(2 * np.pi * 10.0, rel=0.005)
    assert got[("disc", "compactness")] == pytest.approx(1.0, abs=0.01)
    assert got[("disc", "convexity")] == pytest.approx(1.0, abs=0.012)  # staircase dents
    assert got[("ell", "convexity")] == pytest.approx(1200 / 1400, rel=0.01)


def test_multilabel_classes_keep_their_names_and_may_overlap():
    base = Image(np.zeros((20, 20), np.uint8), spacing=(1.0, 1.0))
    stack = np.zeros((2, 20, 20), bool)
    stack[0, 2:10, 2:10] = True
    stack[1, 5:15, 5:15] = True
    got = table(measure(make_multilabel(stack, ["heart", "left lung"], like=base), "shape"))
    assert got[("heart", "area")] == 64 and got[("left lung", "area")] == 100


def test_cube_and_ball_in_3d():
    k, j, i = np.indices((40, 50, 50))
    array = np.zeros((40, 50, 50), np.uint8)
    array[5:25, 10:30, 10:30] = 1  # 20 voxels each way: 40 x 20 x 20 mm
    array[((k - 20) * 2.0) ** 2 + (j - 38.0) ** 2 + (i - 38.0) ** 2 <= 10.0**2] = 2  # radius 10 mm
    labels = make_label_map(Image(array, spacing=(2.0, 1.0, 1.0)), {1: "box", 2: "ball"})
    got = table(measure(labels, "shape"))
    assert got[("box", "volume")] == pytest.approx(40 * 20 * 20 / 1000.0)
    assert got[("box", "bbox_slice_size_mm")] == pytest.approx(40.0)
    assert got[("box", "surface_area")] == pytest.approx(2 * (40 * 20 * 2 + 20 * 20), rel=0.03)
    assert got[("box", "convexity")] == pytest.approx(1.0, abs=0.01)
    assert got[("ball", "volume")] == pytest.approx(4 / 3 * np.pi * 1000 / 1000.0, rel=0.03)
    assert 0.85 < got[("ball", "sphericity")] < 0.95  # the voxel staircase adds ~10% of area
    assert got[("box", "sphericity")] < got[("ball", "sphericity")]
