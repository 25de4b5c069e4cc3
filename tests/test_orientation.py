"""radseg.orientation: every axis-aligned layout, tilted volumes against nibabel, and the two
rules for an oblique volume whose axes have no nearest order."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
from nibabel.orientations import io_orientation

from radseg.image import Image
from radseg.orientation import ObliqueWarning, canonical, canonical_axes, from_canonical, to_canonical
from tests.annotate.conftest import reoriented  # the same voxels stored in another axis order

SPACING = (2.5, 0.8, 0.7)


def _working_image() -> Image:
    """A volume already in working order: the default direction runs (slice, row, col) along +z, +y, +x."""
    array = np.arange(5 * 6 * 7, dtype=np.int16).reshape(5, 6, 7)
    return Image(array, spacing=SPACING, origin=(10.0, -20.0, 30.0))


LAYOUTS = [(perm, flip) for perm in itertools.permutations(range(3))
           for flip in itertools.product((False, True), repeat=3)]


@pytest.mark.parametrize("perm,flip", LAYOUTS)
def test_every_axis_aligned_layout_comes_back_to_working_order(perm, flip):
    original = _working_image()
    stored = reoriented(original, perm, flip)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning for an axis-aligned volume
        work = canonical(stored)
    assert np.array_equal(work.array, original.array)
    assert np.allclose(work.spacing, SPACING)
    assert np.array_equal(work.back(work.array), stored.array)
    # a working index maps to the stored index of the same voxel
    index = np.array([1, 4, 2])
    assert stored.array[tuple(work.image_index(index).astype(int))] == original.array[tuple(index)]
    assert canonical_axes(stored.affine, oblique="raise") == (work.perm, work.flips)


def test_default_layout_is_the_identity():
    perm, flips = canonical_axes(_working_image().affine)
    assert perm == (0, 1, 2) and flips == (False, False, False)


def test_to_and_from_canonical_are_inverse_on_any_array():
    array = np.random.default_rng(0).normal(size=(3, 4, 5))
    for perm, flips in LAYOUTS:
        view = to_canonical(array, perm, flips)
        assert view.shape == tuple(array.shape[p] for p in perm)
        assert np.array_equal(from_canonical(view, perm, flips), array)


def _rotation(axis, degrees) -> np.ndarray:
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    t = np.radians(degrees)
    return np.eye(3) + np.sin(t) * k + (1 - np.cos(t)) * k @ k


@pytest.mark.parametrize("seed", range(20))
def test_tilted_volumes_take_the_nearest_axes_as_nibabel_does(seed):
    rng = np.random.default_rng(seed)
    perm, flip = LAYOUTS[seed * 2]
    stored = reoriented(_working_image(), perm, flip)
    affine = stored.affine.copy()
    affine[:3, :3] = _rotation(rng.normal(size=3), rng.uniform(0, 30)) @ affine[:3, :3]  # a tilt under 30 degrees
    ornt = io_orientation(affine)  # per array axis: (world axis, +1/-1), nibabel's own rule
    expected_perm = tuple(int(np.flatnonzero(ornt[:, 0] == world)[0]) for world in (2, 1, 0))
    expected_flips = tuple(bool(ornt[a, 1] < 0) for a in expected_perm)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert canonical_axes(affine, oblique="raise") == (expected_perm, expected_flips)


def _oblique_image() -> Image:
    """Axes 1 and 2 both lie closest to world y (a sheared volume: 18 and 37 degrees off y)."""
    direction = np.column_stack([[0.0, 0.0, 1.0], [0.3, 0.95, 0.0], [0.6, 0.8, 0.0]])
    direction /= np.linalg.norm(direction, axis=0)
    return Image(np.zeros((4, 5, 6)), spacing=SPACING, direction=direction)


def test_an_oblique_volume_gets_the_nearest_order_with_a_warning():
    image = _oblique_image()
    with pytest.warns(ObliqueWarning, match="nearest axis order"):
        perm, flips = canonical_axes(image.affine)
    # matched greedily: z <- axis 0 (cosine 1), y <- axis 1 (0.95), x <- the axis left
    assert perm == (0, 1, 2) and flips == (False, False, False)
    with pytest.warns(ObliqueWarning):
        assert canonical(image).array.shape == (4, 5, 6)


def test_an_oblique_volume_is_refused_under_the_raise_rule():
    image = _oblique_image()
    with pytest.raises(ValueError, match="cannot tell the patient axes"):
        canonical_axes(image.affine, oblique="raise")
    with pytest.raises(ValueError, match="cannot tell the patient axes"):
        canonical(image, oblique="raise")


def test_bad_inputs():
    with pytest.raises(ValueError, match="oblique must be one of"):
        canonical_axes(np.eye(4), oblique="resample")
    with pytest.raises(ValueError, match="3D scalar volume"):
        canonical(Image(np.zeros((4, 5)), spacing=(1.0, 1.0)))
