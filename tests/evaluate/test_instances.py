"""COCO-style instance AP against hand-derived values (101-point interpolation, one class)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from radseg.evaluate.instances import coco_instance_ap


def box_mask(shape, top, left, height, width) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[top:top + height, left:left + width] = True
    return mask


SHAPE = (100, 100)
A = box_mask(SHAPE, 10, 10, 20, 20)
B = box_mask(SHAPE, 60, 60, 20, 30)


@pytest.mark.parametrize("iou_type", ["segm", "bbox"])
def test_perfect_detections_score_one(iou_type):
    result = coco_instance_ap([[A, B]], [[(A, 0.9), (B, 0.8)]], iou_type=iou_type)
    assert result["AP50"] == pytest.approx(1.0) and result["AP50_95"] == pytest.approx(1.0)


def test_one_of_two_found():
    # Precision 1 up to recall 0.5, nothing beyond: 51 of the 101 recall points have precision 1.
    result = coco_instance_ap([[A, B]], [[(A, 0.9)]])
    assert result["AP50"] == pytest.approx(51 / 101)


def test_partial_overlap_counts_at_low_thresholds_only():
    # Shift A by 4 rows: IoU = 16*20 / (24*20) = 2/3, so it matches at thresholds 0.50..0.65 (4 of 10).
    shifted = box_mask(SHAPE, 14, 10, 20, 20)
    result = coco_instance_ap([[A]], [[(shifted, 0.9)]])
    assert result["AP50"] == pytest.approx(1.0)
    assert result["AP75"] == pytest.approx(0.0)
    assert result["AP50_95"] == pytest.approx(4 / 10)


def test_false_positive_with_higher_score_lowers_ap():
    # Ranked: FP (0.95), TP A (0.9), TP B (0.8): precision at recall 0.5 is 1/2, at recall 1 is 2/3;
    # interpolated precision is 2/3 for every recall point up to 1.0 -> AP50 = 2/3.
    false = box_mask(SHAPE, 40, 0, 10, 10)
    result = coco_instance_ap([[A, B], []], [[(A, 0.9), (B, 0.8)], [(false, 0.95)]])
    assert result["AP50"] == pytest.approx(2 / 3, abs=1e-6)


def test_no_ground_truth_is_nan_and_mismatch_is_an_error():
    assert math.isnan(coco_instance_ap([[]], [[(A, 0.5)]])["AP50"])
    with pytest.raises(ValueError, match="images"):
        coco_instance_ap([[A]], [])
