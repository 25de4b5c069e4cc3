"""Operating points of an image-level screener: hand-counted cases and a brute-force reference."""

from __future__ import annotations

import numpy as np
import pytest

from radseg.evaluate.operating_point import (choose_operating_point, flagged, model_operating_point,
                                             operating_point_mismatch, rates_at)


def _brute_force(scores, truth, target):
    """The highest candidate threshold (any observed score) whose sensitivity reaches ``target``."""
    scores, truth = np.asarray(scores, float), np.asarray(truth, bool)
    best = None
    for t in np.unique(scores):
        if (scores[truth] >= t).mean() >= target - 1e-12:
            best = t
    return best


def test_hand_counted_operating_point():
    # 4 fractured images (0.9, 0.8, 0.6, 0.3), 4 normal ones (0.7, 0.5, 0.2, 0.1)
    scores = [0.9, 0.8, 0.6, 0.3, 0.7, 0.5, 0.2, 0.1]
    truth = [1, 1, 1, 1, 0, 0, 0, 0]
    point = choose_operating_point(scores, truth, sensitivity=0.75)
    # 3 of 4 fractured must score >= t: t = 0.6; normal images 0.7 flagged, 0.5/0.2/0.1 not
    assert point["threshold"] == 0.6 and point["sensitivity"] == 0.75 and point["specificity"] == 0.75
    everything = choose_operating_point(scores, truth, sensitivity=1.0)
    assert everything["threshold"] == 0.3 and everything["specificity"] == 0.5
    assert (point["images_with_finding"], point["images_without"]) == (4, 4)


def test_exact_fraction_is_not_rounded_up():
    """0.85 x 20 = 17 fractured images flagged, not 18 (floating point gives 17.000000000000004)."""
    scores = np.linspace(1.0, 0.05, 20).tolist() + [0.0] * 5
    truth = [1] * 20 + [0] * 5
    point = choose_operating_point(scores, truth, sensitivity=0.85)
    assert point["sensitivity"] == 17 / 20 and point["threshold"] == pytest.approx(scores[16])


def test_ties_at_the_threshold_are_all_flagged():
    scores, truth = [0.5, 0.5, 0.5, 0.9, 0.5], [1, 1, 1, 1, 0]
    point = choose_operating_point(scores, truth, sensitivity=0.5)
    assert point["threshold"] == 0.5 and point["sensitivity"] == 1.0 and point["specificity"] == 0.0


def test_matches_brute_force_on_random_scores():
    rng = np.random.default_rng(3)
    for _ in range(50):
        n = int(rng.integers(5, 60))
        truth = rng.random(n) < 0.5
        truth[0], truth[1] = True, False
        scores = np.round(rng.random(n) + 0.3 * truth, 2)  # rounding makes ties
        target = float(rng.choice([0.5, 0.8, 0.85, 0.9, 0.95]))
        point = choose_operating_point(scores, truth, sensitivity=target)
        assert point["threshold"] == _brute_force(scores, truth, target)
        assert point["sensitivity"] >= target - 1e-12
        hit = flagged(scores, point["threshold"])
        assert point["specificity"] == pytest.approx((~hit[~truth]).mean())


def test_rates_at_a_fixed_threshold_with_cis():
    scores = [0.9, 0.8, 0.6, 0.3, 0.7, 0.5, 0.2, 0.1] * 5
    truth = [1, 1, 1, 1, 0, 0, 0, 0] * 5
    rates = rates_at(scores, truth, 0.55, resamples=500, seed=1)
    assert rates["sensitivity"] == 0.75 and rates["specificity"] == 0.75
    for name in ("sensitivity", "specificity"):
        assert 0.0 <= rates[f"{name}_ci_low"] < rates[name] < rates[f"{name}_ci_high"] <= 1.0
    plain = rates_at(scores, truth, 0.55, resamples=0)
    assert plain["sensitivity"] == 0.75 and plain["sensitivity_ci_low"] != plain["sensitivity_ci_low"]  # NaN


def test_refuses_one_class_and_bad_targets():
    with pytest.raises(ValueError, match="with and without"):
        choose_operating_point([0.1, 0.2], [1, 1])
    with pytest.raises(ValueError, match="sensitivity 1.5"):
        choose_operating_point([0.1, 0.2], [1, 0], sensitivity=1.5)
    with pytest.raises(ValueError, match="finite"):
        rates_at([0.1, float("nan")], [1, 0], 0.5)


def test_a_stored_point_is_applied_only_as_stored():
    good = {"threshold": 0.9, "window": 5, "tta": True}
    assert model_operating_point({"operating_point": good}) is good
    assert model_operating_point({"operating_point": {"threshold": 0.4}}) == {"threshold": 0.4}  # older bundles
    # hand-edited manifests: a threshold or square that cannot be applied as chosen means no point
    for bad in ({"threshold": "0.9"}, {"threshold": float("nan")}, {"threshold": True},
                {"threshold": 0.9, "window": 5.5}, {"threshold": 0.9, "window": "5"}, {"threshold": 0.9, "window": 0}):
        assert model_operating_point({"operating_point": bad}) is None, bad
    assert model_operating_point(None) is None and model_operating_point({"operating_point": [0.9]}) is None


def test_mismatch_names_the_window_first_then_tta():
    point = {"threshold": 0.9, "window": 5, "tta": True}
    assert operating_point_mismatch(point, window=5, tta=True) is None
    assert "5-pixel image scores, these are 9-pixel" in operating_point_mismatch(point, window=9, tta=False)
    assert "with flip TTA, these are without" in operating_point_mismatch(point, window=5, tta=False)
    # a point stored without those fields (older bundles) matches any scores
    assert operating_point_mismatch({"threshold": 0.9}, window=9, tta=True) is None


def test_an_unusable_stored_point_is_explained():
    from radseg.evaluate.operating_point import unusable_operating_point

    assert unusable_operating_point(None) is None and unusable_operating_point({}) is None
    assert unusable_operating_point({"operating_point": {"threshold": 0.9, "window": 5}}) is None
    why = unusable_operating_point({"operating_point": {"threshold": 0.9, "window": 5.5}})
    assert "'window': 5.5" in why and "whole number" in why and "ignored" in why
    assert "not a table" in unusable_operating_point({"operating_point": [0.9]})
