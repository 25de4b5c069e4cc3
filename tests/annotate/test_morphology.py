"""radseg.annotate.morphology against scipy.ndimage, the reference it replaces: same voxels (the
Gaussian to float32 rounding) on synthetic volumes with anisotropic spacing and on real CT."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from radseg.annotate import morphology

SPACING = np.array([1.3, 0.7, 0.9])  # slices, rows, columns (mm): nothing isotropic


@pytest.fixture(scope="module")
def volume() -> np.ndarray:
    """Blobs and pores: smooth noise thresholded, so there are holes, thin walls and border contact."""
    rng = np.random.default_rng(7)
    field = ndimage.gaussian_filter(rng.normal(size=(23, 61, 57)), 2.0)
    return (field * 4000).astype(np.int16)


@pytest.fixture(scope="module")
def mask(volume) -> np.ndarray:
    return volume > np.percentile(volume, 55)


def _reference_slice_holes(mask, keep_fn, step, thin_mm):
    """The scipy way radseg filled slice holes before (label + per-hole distance transform)."""
    structure = np.zeros((3, 3, 3), bool)
    structure[1] = [[0, 1, 0], [1, 1, 1], [0, 1, 0]]
    labels, count = ndimage.label(~mask, structure=structure)
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    keep = keep_fn(sizes)
    keep[0] = False
    for border in (labels[:, 0, :], labels[:, -1, :], labels[:, :, 0], labels[:, :, -1]):
        keep[np.unique(border)] = False
    for value, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None or not keep[value] or thin_mm <= 0:
            continue
        hole = np.pad(labels[box] == value, ((0, 0), (1, 1), (1, 1)))
        if 2.0 * ndimage.distance_transform_edt(hole, sampling=(1e6, *step)).max() < thin_mm:
            keep[value] = False
    return mask | keep[labels]


def test_gaussian_matches_scipy(volume):
    for sigma, truncate in (((0.4, 0.7, 0.55), 3.0), ((0.0, 0.5, 0.5), 4.0), ((1.5, 0.0, 2.0), 3.0)):
        expected = ndimage.gaussian_filter(volume.astype(np.float32), sigma, truncate=truncate)
        got = morphology.gaussian(volume, sigma, truncate=truncate)
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-3 * np.abs(expected).max() * 1e-3)


@pytest.mark.parametrize("dtype", [np.int16, np.float32, np.int32, bool])
def test_rank_filters_match_scipy(volume, dtype):
    data = volume > 0 if dtype is bool else volume.astype(dtype)
    if dtype is np.float32:
        data[3, 4, 5] = np.inf  # as _below_half_maximum passes: +inf outside the tissue
    for size in (3, (3, 5, 5), (1, 3, 7), (5, 1, 1)):
        np.testing.assert_array_equal(morphology.maximum_filter(data, size), ndimage.maximum_filter(data, size=size))
        np.testing.assert_array_equal(morphology.minimum_filter(data, size), ndimage.minimum_filter(data, size=size))
    with pytest.raises(ValueError, match="odd"):
        morphology.maximum_filter(data, (2, 3, 3))


def test_fill_holes_propagate_and_drop_small_match_scipy(mask):
    np.testing.assert_array_equal(morphology.fill_holes(mask), ndimage.binary_fill_holes(mask))
    seed = np.zeros_like(mask)
    seed[tuple(np.argwhere(mask)[::40].T)] = True
    faces = ndimage.generate_binary_structure(3, 1)
    np.testing.assert_array_equal(morphology.propagate(seed, mask), ndimage.binary_propagation(seed, mask=mask, structure=faces))
    labels, count = ndimage.label(mask, structure=np.ones((3, 3, 3), bool))
    sizes = np.bincount(labels.ravel())
    threshold = int(np.median(sizes[1:])) + 1
    keep = sizes >= threshold
    keep[0] = False
    dropped = morphology.drop_small(mask, min_voxels=threshold)
    np.testing.assert_array_equal(dropped, keep[labels])
    assert 0 < dropped.sum() < mask.sum()  # the case removes some components and keeps others


def test_ball_dilation_and_closing_match_distance_transforms(mask):
    for radius in (1.0, 2.6, 4.0):
        expected = ndimage.distance_transform_edt(~mask, sampling=SPACING) <= radius
        np.testing.assert_array_equal(morphology.dilate_ball(mask, SPACING, radius), expected)
        pad = int(np.ceil(radius / SPACING.min())) + 1
        padded = np.pad(mask, pad)
        dilated = ndimage.distance_transform_edt(~padded, sampling=SPACING) <= radius
        closed = (ndimage.distance_transform_edt(dilated, sampling=SPACING) > radius)[pad:-pad, pad:-pad, pad:-pad]
        np.testing.assert_array_equal(morphology.close_ball(mask, SPACING, radius), closed)
        assert not (mask & ~closed).any()  # a closing holds the mask: no "| mask" needed after it


def test_within_distance_matches_scipy_but_at_exact_ties(mask):
    for radius in (3.0, 7.5, 12.0):
        distance = ndimage.distance_transform_edt(~mask, sampling=SPACING)
        got = morphology.within_distance(mask, SPACING, radius)
        differ = got != (distance <= radius)
        # only voxels at the radius itself (float rounding of a tie) may differ
        assert np.all(np.abs(distance[differ] - radius) < 1e-4)
        assert differ.sum() <= 0.001 * mask.size


def test_close_inplane_matches_grey_closing(volume):
    disc = np.hypot(*np.mgrid[-3:4, -3:4]) <= 3.0
    image = volume.astype(np.float32)
    np.testing.assert_array_equal(morphology.close_inplane(image, disc), ndimage.grey_closing(image, footprint=disc[None]))


@pytest.mark.parametrize("thin_mm", [0.0, 2.0, 3.5])
def test_fill_slice_holes_matches_per_hole_distance_transforms(mask, thin_mm):
    step = SPACING[1:]
    for plane in (mask, np.moveaxis(mask, 2, 0)):  # also a non-contiguous view, as fill_enclosed passes
        reference = _reference_slice_holes(plane, lambda sizes: sizes <= 60, step, thin_mm)
        got = morphology.fill_slice_holes(plane, lambda where, labels, area: area <= 60, step=step, thin_mm=thin_mm)
        np.testing.assert_array_equal(got, reference)
        assert got.sum() > plane.sum()  # something was filled


def test_fill_slice_holes_by_hand():
    """One slice: a 7x7 ring around a 5x5 hole (filled), a 1-pixel pore (filled), a notch open to the
    border (not a hole); with thin_mm above the 5x5 hole's inscribed circle it stays open."""
    plane = np.zeros((1, 12, 12), bool)
    plane[0, 1:8, 1:8] = True
    plane[0, 2:7, 2:7] = False  # 5x5 hole: widest inscribed circle 5 px across (distance max 3 px)
    plane[0, 9:12, 8:11] = True
    plane[0, 10, 9] = False  # a pore
    plane[0, 10:12, 9] = False  # ... opened to the border: not a hole
    filled = morphology.fill_slice_holes(plane, lambda where, labels, area: np.ones(area.size, bool))
    assert filled[0, 2:7, 2:7].all() and not filled[0, 10:12, 9].any()
    kept_open = morphology.fill_slice_holes(plane, lambda where, labels, area: np.ones(area.size, bool), thin_mm=6.1)
    assert not kept_open[0, 2:7, 2:7].any()
    assert morphology.fill_slice_holes(plane, lambda where, labels, area: np.ones(area.size, bool), thin_mm=6.0)[0, 4, 4]


def test_real_ct_crop_matches_scipy(shared_data):
    """A real PENGWIN pelvic crop (0.86 mm pixels, int32 HU): every replaced step agrees with scipy's."""
    from radseg.io import read
    from radseg.orientation import canonical

    path = shared_data / "ct" / "pengwin-crops" / "001" / "001_SA.nii.gz"
    if not path.exists():
        pytest.skip(f"{path} not present")
    ct = canonical(read(path))
    middle = ct.array.shape[0] // 2
    hu, spacing = ct.array[middle - 16:middle + 16], ct.spacing  # 32 slices through the sacrum: fast enough by default
    blurred = morphology.gaussian(hu, 0.5 / spacing)
    np.testing.assert_allclose(blurred, ndimage.gaussian_filter(hu.astype(np.float32), 0.5 / spacing, truncate=3.0),
                               atol=0.01)
    np.testing.assert_array_equal(morphology.maximum_filter(hu, (3, 5, 5)), ndimage.maximum_filter(hu, size=(3, 5, 5)))
    bone = blurred > 200
    np.testing.assert_array_equal(morphology.fill_holes(bone), ndimage.binary_fill_holes(bone))
    np.testing.assert_array_equal(morphology.dilate_ball(bone, spacing, 3.0),
                                  ndimage.distance_transform_edt(~bone, sampling=spacing) <= 3.0)
    step = spacing[1:]
    reference = _reference_slice_holes(bone, lambda sizes: sizes * step.prod() <= 2500, step, 4.0)
    got = morphology.fill_slice_holes(bone, lambda where, labels, area: area * step.prod() <= 2500, step=step, thin_mm=4.0)
    np.testing.assert_array_equal(got, reference)


def test_planes_along_and_back(mask):
    for axis in range(3):
        planes = morphology.planes_along(mask, axis)
        np.testing.assert_array_equal(planes, np.moveaxis(mask, axis, 0))
        assert planes.flags["C_CONTIGUOUS"]
        back = morphology.from_planes(planes, axis)
        np.testing.assert_array_equal(back, mask)
        assert back.flags["C_CONTIGUOUS"]


def test_open_inplane_matches_scipy_per_slice_and_the_disc_by_hand(mask):
    footprint = morphology.disc((0.7, 0.9), 2.0)
    # radius 2 mm on 0.7 x 0.9 mm pixels: rows within 2 px, columns within 2 px, centres inside the circle
    rows, cols = np.nonzero(footprint)
    assert footprint.shape == (5, 5) and footprint[2, 2] and footprint[0, 2] and footprint[2, 0]
    assert not footprint[0, 0] and np.all(np.hypot((rows - 2) * 0.7, (cols - 2) * 0.9) <= 2.0)
    assert morphology.disc((1.5, 1.5), 1.0).sum() == 5  # under a pixel: the 3x3 cross
    got = morphology.open_inplane(mask, footprint)
    for z in range(mask.shape[0]):
        eroded = ndimage.binary_erosion(mask[z], footprint, border_value=1)  # beyond the edge never erodes
        np.testing.assert_array_equal(got[z], ndimage.binary_dilation(eroded, footprint))


def test_window_voxels_are_odd_and_cover_the_millimetres():
    # 3 mm at 0.75 mm pixels: 1.5 mm either side is 2 pixels, so 5; at 5 mm slices less than one slice
    assert morphology.window_voxels(3.0, (5.0, 0.75, 0.75), minimum=(1, 3, 3)) == (1, 5, 5)
    assert morphology.window_voxels(3.0, (5.0, 0.75, 0.75)) == (3, 5, 5)
    assert morphology.window_voxels(10.0, (2.0, 1.0, 1.0)) == (5, 11, 11)
    assert all(v % 2 for v in morphology.window_voxels(7.3, (0.6, 0.9, 1.7)))


def test_bounding_box_matches_find_objects_with_margins_clipped():
    mask = np.zeros((9, 12, 10), bool)
    mask[2:5, 0:3, 6:10] = True  # touches the first row and the last column
    mask[3, 7, 7] = True
    (reference,) = ndimage.find_objects(mask.astype(np.uint8))
    assert morphology.bounding_box(mask) == reference == (slice(2, 5), slice(0, 8), slice(6, 10))
    # one margin for every axis, or one per axis; never beyond the array
    assert morphology.bounding_box(mask, margin=2) == (slice(0, 7), slice(0, 10), slice(4, 10))
    assert morphology.bounding_box(mask, margin=[0, 1, 3]) == (slice(2, 5), slice(0, 9), slice(3, 10))
    assert morphology.bounding_box(np.zeros((4, 4, 4), bool), margin=1) is None
