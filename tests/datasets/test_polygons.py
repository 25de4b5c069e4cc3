"""Polygon rasterisation at pixel centres, masks back to polygons, EXIF orientation."""

from __future__ import annotations

import numpy as np
import pytest

from radseg.datasets.polygons import mask_to_polygons, parse_segmentation, polygon_mask


def _centre_rule(points, shape):
    """Independent rasteriser: matplotlib's point-in-polygon test at every pixel centre."""
    from matplotlib.path import Path

    rows, cols = np.mgrid[: shape[0], : shape[1]]
    centres = np.column_stack([cols.ravel() + 0.5, rows.ravel() + 0.5])
    return Path(np.asarray(points, float).reshape(-1, 2)).contains_points(centres).reshape(shape)


def test_rectangle_covers_exactly_the_pixels_whose_centres_are_inside():
    # x from 2 to 10, y from 2 to 6 -> columns 2..9, rows 2..5 (centres 2.5 .. 9.5 and 2.5 .. 5.5)
    mask = polygon_mask([2, 2, 10, 2, 10, 6, 2, 6], (10, 12))
    expected = np.zeros((10, 12), bool)
    expected[2:6, 2:10] = True
    assert np.array_equal(mask, expected)


def test_random_polygons_match_an_independent_rasteriser():
    rng = np.random.default_rng(0)
    for _ in range(30):
        centre = rng.uniform(10, 40, 2)
        angles = np.sort(rng.uniform(0, 2 * np.pi, 9))
        radii = rng.uniform(2, 9, 9)
        points = np.column_stack([centre[0] + radii * np.cos(angles), centre[1] + radii * np.sin(angles)])
        assert np.array_equal(polygon_mask(points.ravel(), (50, 50)), _centre_rule(points, (50, 50)))


def test_bad_polygons_are_refused():
    with pytest.raises(ValueError, match="at least 3 points"):
        polygon_mask([1, 1, 2, 2], (5, 5))
    with pytest.raises(ValueError, match="non-finite"):
        polygon_mask([1, 1, 2, np.nan, 3, 3], (5, 5))


def test_string_polygons_are_parsed():
    assert parse_segmentation("[[1, 2, 3, 4, 5, 6]]") == [[1, 2, 3, 4, 5, 6]]
    assert parse_segmentation(["[1, 2, 3, 4, 5, 6]"]) == [[1, 2, 3, 4, 5, 6]]
    assert parse_segmentation({"size": [2, 2], "counts": "04"}) == {"size": [2, 2], "counts": "04"}


def test_masks_to_polygons_and_back_is_exact():
    rows, cols = np.mgrid[:60, :70]
    mask = (rows - 30) ** 2 / 200 + (cols - 20) ** 2 / 90 <= 1
    mask[5, 60] = True  # one pixel
    mask[50, 40:55] = True  # a one-pixel line
    mask[10:20, 50:65] = True
    mask[14, 55] = False  # a hole: polygons fill it
    polygons = mask_to_polygons(mask)
    assert len(polygons) == 4
    back = np.zeros_like(mask)
    for polygon in polygons:
        back |= polygon_mask(polygon, mask.shape)
    expected = mask.copy()
    expected[14, 55] = True
    assert np.array_equal(back, expected)
    # straight runs collapse to their (cut) corners: a 10x20 rectangle is an octagon, not 60 points
    square = np.zeros((30, 30), bool)
    square[10:20, 5:25] = True
    assert mask_to_polygons(square) == [[24.5, 20.0, 5.5, 20.0, 5.0, 19.5, 5.0, 10.5, 5.5, 10.0, 24.5, 10.0, 25.0, 10.5, 25.0, 19.5]]
