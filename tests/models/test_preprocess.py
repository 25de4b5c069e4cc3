"""Preprocessing geometry: hand-derived grid sizes, canonical axes, exact round trips."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from radseg.image import Image  # noqa: E402
from radseg.models.preprocess import Preprocessing, plan_grid, prepare, prepare_labels  # noqa: E402
from radseg.orientation import canonical_axes  # noqa: E402


def test_fit_keeps_the_aspect_ratio_and_centres_the_padding():
    image = Image(np.zeros((100, 200), np.float32), spacing=(1.0, 1.0))
    grid = plan_grid(image, Preprocessing(spatial_dims=2, size=(64, 64)))
    # scale = min(64/100, 64/200) = 0.32 px/mm -> 32 x 64, padded by 16 rows above
    assert grid.resized_shape == (32, 64) and grid.pad_before == (16, 0) and grid.grid_shape == (64, 64)


def test_fit_uses_physical_extent_not_pixel_counts():
    image = Image(np.zeros((100, 100), np.float32), spacing=(2.0, 1.0))  # 200 mm tall, 100 mm wide
    grid = plan_grid(image, Preprocessing(spatial_dims=2, size=(64, 64)))
    assert grid.resized_shape == (64, 32) and grid.pad_before == (0, 16)


def test_spacing_mode_sizes_follow_the_extent():
    image = Image(np.zeros((10, 40, 48), np.int16), spacing=(2.5, 0.7, 0.8))
    grid = plan_grid(image, Preprocessing(spatial_dims=3, mode="spacing", spacing=(2, 2, 2), patch_size=(16, 16, 16),
                                          intensity="zscore"))
    # extents 25, 28, 38.4 mm -> 12 (12.5 rounds to even), 14, 19 voxels
    assert grid.resized_shape == (12, 14, 19)
    assert np.allclose(grid.grid_spacing, (25 / 12, 2.0, 38.4 / 19))


def test_canonical_axes_undo_a_permuted_and_flipped_layout(ct_image):
    # The same voxels stored as NIfTI-like (x, y, z) array axes with x running right->left reversed.
    array = np.transpose(ct_image.array, (2, 1, 0))[::-1]
    affine = np.eye(4)
    affine[:3, 0] = -ct_image.affine[:3, 2]  # axis 0 now walks x backwards
    affine[:3, 1] = ct_image.affine[:3, 1]
    affine[:3, 2] = ct_image.affine[:3, 0]
    affine[:3, 3] = ct_image.index_to_world([0, 0, ct_image.shape[2] - 1])
    other = Image(np.ascontiguousarray(array), affine=affine)
    perm, flips = canonical_axes(other.affine)
    assert perm == (2, 1, 0) and flips == (False, False, True)
    pre = Preprocessing(spatial_dims=3, mode="spacing", spacing=(2.5, 1.4, 1.6), patch_size=(16, 16, 16),
                        intensity="window", window=(-1000, 1500))
    a, _ = prepare(ct_image, pre)
    b, _ = prepare(other, pre)
    assert np.array_equal(a, b)


def test_labels_come_back_exactly_when_no_resampling_is_needed(ct_image):
    labels = Image((ct_image.array > 1000).astype(np.uint8), affine=ct_image.affine)
    pre = Preprocessing(spatial_dims=3, mode="spacing", spacing=tuple(ct_image.spacing), patch_size=(16, 16, 16),
                        intensity="zscore")
    x, grid = prepare(ct_image, pre)
    target = prepare_labels(labels, grid)
    assert np.array_equal(target, labels.array)
    assert np.array_equal(grid.restore_channel(target.astype(np.float32)) > 0.5, labels.array > 0)


def test_fit_round_trip_of_a_label_block_lands_in_place():
    image = Image(np.random.default_rng(0).normal(size=(300, 500)).astype(np.float32), spacing=(0.2, 0.2))
    block = np.zeros(image.shape, np.uint8)
    block[100:200, 320:450] = 1
    grid = plan_grid(image, Preprocessing(spatial_dims=2, size=(128, 128)))
    small = prepare_labels(Image(block, affine=image.affine), grid)
    back = grid.restore_channel(small.astype(np.float32)) > 0.5
    assert back.shape == block.shape
    assert 2 * (back & (block > 0)).sum() / (back.sum() + block.sum()) > 0.98
    assert np.allclose(np.argwhere(back).mean(0), np.argwhere(block).mean(0), atol=1.0)


def test_intensity_modes():
    values = np.concatenate([np.zeros(98), [1e6, -1e6]]).astype(np.float32).reshape(10, 10)
    values[:5] += 10
    image = Image(values, spacing=(1, 1))
    pct, _ = prepare(image, Preprocessing(spatial_dims=2, size=(10, 10), percentiles=(2, 98)))
    assert abs(pct.mean()) < 1e-5 and abs(pct.std() - 1) < 1e-4  # z-scored after clipping the outliers
    win, _ = prepare(image, Preprocessing(spatial_dims=2, size=(10, 10), intensity="window", window=(0, 10)))
    assert win.min() == 0.0 and win.max() == 1.0
    with pytest.raises(ValueError, match="window"):
        Preprocessing(spatial_dims=2, size=(10, 10), intensity="window")


def test_colour_images_become_grey_and_dimension_mismatch_is_refused():
    rgb = Image(np.stack([np.full((20, 20), v, np.uint8) for v in (30, 60, 90)], -1), spacing=(1, 1))
    x, _ = prepare(rgb, Preprocessing(spatial_dims=2, size=(16, 16), intensity="window", window=(0, 120)))
    assert np.allclose(x, 0.5)
    with pytest.raises(ValueError, match="takes 3D images"):
        prepare(rgb, Preprocessing(spatial_dims=3, mode="spacing", spacing=(1, 1, 1), patch_size=(8, 8, 8)))


def test_serialisation_round_trip():
    pre = Preprocessing(spatial_dims=3, mode="spacing", spacing=(2, 2, 2), patch_size=(32, 32, 32),
                        intensity="window", window=(-200, 1500), mean=300.0, std=200.0)
    assert Preprocessing.from_dict(pre.to_dict()) == pre


def test_differences_name_each_changed_field_as_stored():
    a = Preprocessing(spatial_dims=2, mode="fit", size=(64, 64), intensity="percentile")
    b = Preprocessing(spatial_dims=2, mode="fit", size=(64, 48), intensity="zscore")
    assert a.differences(a) == {}
    # the patch follows the fit size when unset: compared as used, so it differs too
    assert a.differences(b) == {"intensity": ("percentile", "zscore"), "patch_size": ([64, 64], [64, 48]),
                                "size": ([64, 64], [64, 48])}
    assert b.differences(a)["size"] == ([64, 48], [64, 64])


def test_monochrome1_radiographs_reach_the_network_like_monochrome2():
    values = np.random.default_rng(0).integers(0, 4096, (40, 40)).astype(np.uint16)
    pre = Preprocessing(spatial_dims=2, size=(32, 32))
    normal, _ = prepare(Image(values, spacing=(1, 1), metadata={"photometric": "MONOCHROME2"}), pre)
    inverted, _ = prepare(Image(4095 - values, spacing=(1, 1), metadata={"photometric": "MONOCHROME1"}), pre)
    assert np.allclose(normal, inverted, atol=1e-4)


def test_fit_mode_patch_defaults_to_the_size_and_may_be_smaller():
    assert Preprocessing(spatial_dims=2, size=(128, 96)).patch_size == (128, 96)
    assert Preprocessing(spatial_dims=2, size=(128, 96), patch_size=(64, 64)).patch_size == (64, 64)
    with pytest.raises(ValueError, match="larger than the fit size"):
        Preprocessing(spatial_dims=2, size=(128, 96), patch_size=(128, 128))
    # a bundle written before patch sizes were optional reads back the same
    saved = Preprocessing(spatial_dims=2, size=(128, 96)).to_dict()
    assert Preprocessing.from_dict(saved).patch_size == (128, 96)
    assert Preprocessing(spatial_dims=2, mode="spacing", spacing=(1.0, 1.0)).patch_size == (256, 256)
