"""Overlap and volume metrics on hand-counted masks, the empty-mask policy, and MONAI's Dice."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import ndimage

from radseg.evaluate import (
    EmptyPolicy,
    dice,
    empty_policy,
    iou,
    overlap_metrics,
    precision,
    relative_volume_difference,
    sensitivity,
    volume_difference,
)


def rectangles():
    truth = np.zeros((20, 20), bool)
    truth[2:12, 3:13] = True  # 10 x 10 = 100 pixels
    pred = np.zeros((20, 20), bool)
    pred[5:15, 3:18] = True  # 10 x 15 = 150 pixels
    # Overlap: rows 5..11 (7) x cols 3..12 (10) = 70 pixels; union 100 + 150 - 70 = 180.
    return pred, truth


def test_two_known_rectangles():
    pred, truth = rectangles()
    assert dice(pred, truth) == pytest.approx(2 * 70 / (100 + 150))  # 0.56
    assert iou(pred, truth) == pytest.approx(70 / 180)
    assert precision(pred, truth) == pytest.approx(70 / 150)
    assert sensitivity(pred, truth) == pytest.approx(70 / 100)
    assert relative_volume_difference(pred, truth) == pytest.approx((150 - 100) / 100)
    # Pixels of 2.0 x 0.5 mm = 1 mm²: 50 more pixels = +50 mm²; the sign is pred - truth.
    assert volume_difference(pred, truth, spacing=(2.0, 0.5)) == pytest.approx(50.0)
    assert volume_difference(truth, pred, spacing=(2.0, 0.5)) == pytest.approx(-50.0)
    assert volume_difference(pred, truth) == pytest.approx(50.0)  # default 1 mm per axis


def test_3d_volume_in_mm3_and_one_pass_dict():
    truth = np.zeros((10, 12, 14), bool)
    truth[2:6, 2:8, 3:9] = True  # 4 * 6 * 6 = 144 voxels
    pred = np.zeros_like(truth)
    pred[3:7, 2:8, 3:9] = True  # same box shifted one slice: overlap 3 * 36 = 108
    spacing = (2.5, 0.8, 0.5)  # 1.0 mm³ per voxel
    out = overlap_metrics(pred, truth, spacing=spacing)
    assert out["dice"] == pytest.approx(2 * 108 / 288)
    assert out["iou"] == pytest.approx(108 / 180)
    assert out["volume_difference"] == 0.0 and out["relative_volume_difference"] == 0.0
    pred[3:7, 2:8, 9] = True  # 24 more voxels = +24 mm³
    assert volume_difference(pred, truth, spacing=spacing) == pytest.approx(24.0)
    assert volume_difference(pred, truth, spacing=(2.0, 1.0, 1.0)) == pytest.approx(48.0)


def test_zero_one_integers_accepted_other_values_refused():
    pred, truth = rectangles()
    assert dice(pred.astype(np.uint8), truth.astype(float)) == pytest.approx(0.56)
    with pytest.raises(ValueError, match="label"):
        dice(pred.astype(np.uint8) * 2, truth)
    with pytest.raises(ValueError, match="shape"):
        dice(pred, truth[:10])
    with pytest.raises(ValueError, match="spacing"):
        volume_difference(pred, truth, spacing=(1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="positive"):
        volume_difference(pred, truth, spacing=(1.0, 0.0))


def test_both_empty_follows_the_policy():
    empty = np.zeros((5, 6), bool)
    for metric in (dice, iou, precision, sensitivity, relative_volume_difference):
        assert math.isnan(metric(empty, empty)), metric.__name__  # default "nan"
    assert dice(empty, empty, empty="perfect") == 1.0
    assert iou(empty, empty, empty="perfect") == 1.0
    assert precision(empty, empty, empty="perfect") == 1.0
    assert sensitivity(empty, empty, empty="perfect") == 1.0
    assert relative_volume_difference(empty, empty, empty="perfect") == 0.0
    assert volume_difference(empty, empty) == 0.0  # always defined


def test_one_empty_is_a_failure_by_default():
    empty = np.zeros((5, 6), bool)
    some = empty.copy()
    some[1:3, 1:4] = True
    # Well defined with one empty mask, the policy never changes them:
    assert dice(some, empty) == 0.0 and dice(empty, some) == 0.0
    assert iou(some, empty) == 0.0
    assert sensitivity(empty, some) == 0.0  # missed everything
    assert precision(some, empty) == 0.0  # every predicted pixel is false
    assert relative_volume_difference(empty, some) == -1.0
    # Undefined (0/0 or x/0): worst value by default, NaN on request.
    assert precision(empty, some) == 0.0
    assert sensitivity(some, empty) == 0.0
    assert relative_volume_difference(some, empty) == math.inf
    lenient = EmptyPolicy(one="nan")
    assert math.isnan(precision(empty, some, empty=lenient))
    assert math.isnan(sensitivity(some, empty, empty=lenient))
    assert math.isnan(relative_volume_difference(some, empty, empty=lenient))
    assert dice(some, empty, empty=lenient) == 0.0


def test_policy_names_are_checked():
    assert empty_policy("nan") == EmptyPolicy(both="nan", one="worst")
    assert empty_policy("perfect") == EmptyPolicy(both="perfect", one="worst")
    with pytest.raises(ValueError):
        empty_policy("one")
    with pytest.raises(ValueError):
        EmptyPolicy(both="zero")


def random_blob(shape, seed, fraction=0.35, sigma=2.0):
    """Thresholded smoothed noise: a few irregular blobs covering ``fraction`` of the array."""
    noise = ndimage.gaussian_filter(np.random.default_rng(seed).standard_normal(shape), sigma)
    return noise > np.quantile(noise, 1 - fraction)


@pytest.mark.parametrize("shape", [(48, 56), (20, 24, 28)])
def test_dice_matches_monai(shape):
    torch = pytest.importorskip("torch", reason="MONAI comparison needs torch (train extra)")
    metrics = pytest.importorskip("monai.metrics", reason="MONAI not installed (train extra)")
    for seed in range(3):
        pred, truth = random_blob(shape, seed), random_blob(shape, seed + 10)
        as_tensor = lambda m: torch.from_numpy(m)[None, None].float()  # noqa: E731
        ref = metrics.compute_dice(as_tensor(pred), as_tensor(truth), include_background=True)
        assert dice(pred, truth) == pytest.approx(float(ref), rel=1e-6)
        assert iou(pred, truth) == pytest.approx(float(metrics.compute_iou(as_tensor(pred), as_tensor(truth))), rel=1e-6)
    # Where the policies differ (documented): MONAI's default ignore_empty=True gives NaN for an
    # empty truth even with a false-positive prediction; radseg counts it as Dice 0.
    empty = np.zeros(shape, bool)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = metrics.compute_dice(as_tensor(pred), as_tensor(empty), include_background=True)
    assert math.isnan(float(ref)) and dice(pred, empty) == 0.0
