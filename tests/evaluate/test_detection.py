"""Detections from probability maps and image-level ROC AUC, against hand-derived values."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from radseg.evaluate.detection import image_score, instances_from_probability, roc_auc, roc_auc_ci
from radseg.evaluate.instances import coco_instance_ap


def _pairwise_auc(scores, truth) -> float:
    """The definition: P(score of a positive > score of a negative), ties one half."""
    pos = [s for s, t in zip(scores, truth) if t]
    neg = [s for s, t in zip(scores, truth) if not t]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def test_auc_hand_values():
    assert roc_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)  # 3 of 4 pairs ordered
    assert roc_auc([0.9, 0.8, 0.1], [1, 1, 0]) == 1.0
    assert roc_auc([0.5, 0.5], [1, 0]) == 0.5  # a tie counts one half
    assert roc_auc([0.2, 0.9], [1, 0]) == 0.0


def test_auc_matches_pairwise_definition_with_ties():
    rng = np.random.default_rng(3)
    scores = np.round(rng.random(200), 1)  # many ties
    truth = rng.random(200) < scores * 0.8
    assert roc_auc(scores, truth) == pytest.approx(_pairwise_auc(scores, truth), abs=1e-12)


def test_auc_ci_covers_estimate_and_narrows_with_n():
    rng = np.random.default_rng(0)
    small_truth = rng.random(40) < 0.5
    small = roc_auc_ci(rng.normal(small_truth.astype(float), 1.0), small_truth, resamples=1000, seed=1)
    big_truth = rng.random(400) < 0.5
    big = roc_auc_ci(rng.normal(big_truth.astype(float), 1.0), big_truth, resamples=1000, seed=1)
    for ci in (small, big):
        assert ci.low <= ci.estimate <= ci.high
    assert big.width < small.width
    # seeded: the same data and seed give the same interval
    scores = rng.normal(small_truth.astype(float), 1.0)
    first = roc_auc_ci(scores, small_truth, resamples=500, seed=7)
    assert (first.low, first.high) == (roc_auc_ci(scores, small_truth, resamples=500, seed=7).low,
                                       roc_auc_ci(scores, small_truth, resamples=500, seed=7).high)


def test_auc_needs_both_classes():
    with pytest.raises(ValueError, match="both classes"):
        roc_auc([0.1, 0.2], [1, 1])


def test_instances_components_scores_and_min_size():
    prob = np.zeros((40, 40), np.float32)
    prob[5:15, 5:15] = 0.7
    prob[8, 8] = 0.95  # the peak decides the score
    prob[20:30, 20:30] = 0.6
    prob[30, 30] = 0.6  # diagonal neighbour: same instance (8-connected)
    prob[2, 35] = 0.9  # a single pixel, dropped by min_pixels
    found = instances_from_probability(prob, threshold=0.5, min_pixels=4)
    assert [round(s, 2) for _, s in found] == [0.95, 0.6]
    assert found[0][0].sum() == 100 and found[1][0].sum() == 101
    mean = instances_from_probability(prob, threshold=0.5, min_pixels=4, score="mean")
    assert mean[0][1] == pytest.approx((99 * 0.7 + 0.95) / 100, rel=1e-6)


def test_perfect_instances_give_ap_one_and_a_false_positive_lowers_it():
    truth = np.zeros((64, 64), bool)
    truth[10:20, 10:30] = True
    prob = truth * 0.9
    detections = instances_from_probability(prob)
    assert coco_instance_ap([[truth]], [detections])["AP50"] == pytest.approx(1.0)
    # a more confident false positive ranked first halves precision at the first recall step
    prob2 = prob.copy()
    prob2[40:50, 40:50] = 0.99
    worse = coco_instance_ap([[truth]], [instances_from_probability(prob2)])["AP50"]
    # ranked: FP (precision 0), then the TP at recall 1 with precision 1/2; COCO's envelope makes
    # precision 1/2 at every one of the 101 recall thresholds, so AP50 is exactly 0.5
    assert worse == pytest.approx(0.5, abs=1e-12)


def test_image_score_ignores_a_single_hot_pixel():
    prob = np.full((32, 32), 0.1, np.float32)
    prob[16, 16] = 1.0
    assert image_score(prob, window=3) == pytest.approx((8 * 0.1 + 1.0) / 9, rel=1e-5)
    assert image_score(prob, window=1) == 1.0
