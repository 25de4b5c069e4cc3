"""Paired model comparison: the sign-flip test, its inverted CI, Holm, the verdict; calibration by simulation."""

from __future__ import annotations

import numpy as np
import pytest

from radseg.evaluate.paired import holm, paired_difference, sign_flip_p, verdict


def test_exact_sign_flip_p_by_hand():
    # sums of +-1 +-2 +-3: |sum| >= 6 only for all-plus and all-minus: 2 of 8 patterns
    assert sign_flip_p([1.0, 2.0, 3.0]) == pytest.approx(0.25)
    # +-1 +-1 +-4 take the sums 6, 4, 4, 2 and their negatives: |sum| >= 6 twice (2/8);
    # observed 1 - 1 + 4 = 4: |sum| >= 4 six times (6/8)
    assert sign_flip_p([1.0, 1.0, 4.0]) == pytest.approx(0.25)
    assert sign_flip_p([1.0, -1.0, 4.0]) == pytest.approx(0.75)
    assert sign_flip_p([0.0, 0.0, 0.0]) == 1.0


def test_monte_carlo_matches_exact_enumeration():
    rng = np.random.default_rng(3)
    d = rng.normal(0.4, 1.0, 16)
    exact = sign_flip_p(d)
    # the same differences plus a zero: the exact p is unchanged, but n = 17 switches to Monte-Carlo
    sampled = sign_flip_p(np.append(d, 0.0), permutations=40000, seed=1)
    assert abs(sampled - exact) < 0.01


def test_interval_agrees_with_p_and_holds_the_mean():
    rng = np.random.default_rng(0)
    for trial in range(120):
        n = int(rng.integers(6, 40))
        a = rng.normal(0.8, 0.05, n)
        b = a + rng.normal(rng.uniform(-0.02, 0.02), 0.03, n)
        result = paired_difference(a, b, permutations=4000, seed=trial)
        assert result.low <= result.difference <= result.high
        excludes_zero = result.low > 0 or result.high < 0
        assert excludes_zero == (result.p_value < 0.05), (trial, result)


def test_too_few_cases_cannot_bound_the_difference():
    result = paired_difference([0.5, 0.6, 0.7], [0.9, 0.95, 0.99])
    assert result.n == 3 and result.p_value == pytest.approx(0.25)
    assert result.low == -np.inf and result.high == np.inf


def test_pairs_without_both_values_are_dropped():
    a = np.array([0.5, np.nan, 0.7, 0.6, np.inf, 0.4, 0.5])
    b = np.array([0.6, 0.9, 0.8, 0.7, 10.0, 0.5, 0.6])
    result = paired_difference(a, b)
    assert result.n == 5 and result.difference == pytest.approx(0.1)
    empty = paired_difference([np.nan], [1.0])
    assert empty.n == 0 and np.isnan(empty.p_value)


def test_identical_models_are_declared_different_in_about_5_percent():
    """Calibration: two models of equal quality (same per-case mean, independent noise) in 400 seeded
    repeats of 25 cases. The test is exact, so the rejection rate must sit near 0.05."""
    rejections = 0
    for seed in range(400):
        rng = np.random.default_rng(seed)
        difficulty = rng.uniform(0.6, 0.95, 25)
        a, b = difficulty + rng.normal(0, 0.03, 25), difficulty + rng.normal(0, 0.03, 25)
        rejections += paired_difference(a, b, permutations=2000, seed=seed).p_value < 0.05
    # binomial(400, 0.05): mean 20, sd 4.4
    assert 8 <= rejections <= 34


def test_holm_keeps_the_family_wise_error_with_three_equal_models():
    false_claims = 0
    for seed in range(200):
        rng = np.random.default_rng(1000 + seed)
        base = rng.uniform(0.6, 0.95, 20)
        models = [base + rng.normal(0, 0.03, 20) for _ in range(3)]
        p = [paired_difference(models[i], models[j], permutations=1000, seed=seed).p_value
             for i, j in ((0, 1), (0, 2), (1, 2))]
        false_claims += bool(np.any(holm(p) < 0.05))
    assert false_claims <= 20  # FWER <= 5 % (10 expected at most; 20 leaves room for noise)


def test_a_real_difference_is_found_and_its_interval_covers_it():
    covered = found = 0
    for seed in range(150):
        rng = np.random.default_rng(seed)
        a = rng.uniform(0.6, 0.95, 30)
        b = a + 0.02 + rng.normal(0, 0.02, 30)
        result = paired_difference(a, b, permutations=2000, seed=seed)
        covered += result.low <= 0.02 <= result.high
        found += result.p_value < 0.05
    assert found >= 145  # the shift is 1 sd of the noise with 30 cases: power ~ 1
    assert 0.90 <= covered / 150 <= 0.99


def test_holm_by_hand():
    # sorted 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1 = 0.02, 0.03, 0.06, 0.04 -> running max 0.06
    adjusted = holm([0.01, 0.04, 0.03, 0.005])
    assert adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02])
    with_nan = holm([0.02, np.nan, 0.5])
    assert np.isnan(with_nan[1]) and with_nan[[0, 2]] == pytest.approx([0.04, 0.5])
    assert holm([0.6, 0.9]) == pytest.approx([1.0, 1.0])


def test_verdict_reads_the_metric_direction():
    assert verdict(0.03, 0.01, higher_is_better=True, a="unet", b="swin") == "swin better than unet"
    assert verdict(-2.0, 0.01, higher_is_better=False, a="unet", b="swin") == "swin better than unet"
    assert verdict(2.0, 0.01, higher_is_better=False, a="unet", b="swin") == "unet better than swin"
    assert verdict(0.03, 0.2, higher_is_better=True, a="unet", b="swin") == "no evidence of a difference"
    assert verdict(float("nan"), float("nan"), higher_is_better=True, a="x", b="y").startswith("not compared")


def test_tied_values_keep_interval_and_p_in_agreement():
    """Ties (equal Dice, whole-pixel distances) put the interval's true end exactly at 0."""
    d = np.array([-0.1, 0, 0, 0, 0.1, 0.1, 0.2, 0.2, 0.3])
    result = paired_difference(np.zeros(d.size), d)
    assert result.p_value >= 0.05 and result.low <= 0 <= result.high
    rng = np.random.default_rng(5)
    for trial in range(150):
        a = np.round(rng.uniform(0, 1, 12), 1)
        b = np.round(a + rng.normal(0.05, 0.1, 12), 1)
        r = paired_difference(a, b)
        assert (r.low > 0 or r.high < 0) == (r.p_value < 0.05), (trial, r)


def test_cases_of_one_patient_flip_together():
    """Five identical slices per patient carry the evidence of one patient, not of five."""
    rng = np.random.default_rng(2)
    a, b = rng.uniform(0.6, 0.9, 6), rng.uniform(0.6, 0.9, 6) + 0.05
    by_patient = paired_difference(a, b)
    slices = paired_difference(np.repeat(a, 5), np.repeat(b, 5), groups=np.repeat(np.arange(6), 5))
    as_if_independent = paired_difference(np.repeat(a, 5), np.repeat(b, 5))
    assert slices.p_value == pytest.approx(by_patient.p_value) and slices.patients == 6 and slices.n == 30
    assert (slices.low, slices.high) == pytest.approx((by_patient.low, by_patient.high), abs=1e-6)
    assert as_if_independent.p_value < slices.p_value  # ignoring the patients overstates the evidence


def test_clustered_null_is_calibrated_only_when_flipping_per_patient():
    """12 patients x 4 slices, a patient effect on the difference that averages to zero."""
    per_patient = per_case = 0
    for seed in range(300):
        rng = np.random.default_rng(seed)
        patient_shift = np.repeat(rng.normal(0, 0.05, 12), 4)
        a = rng.uniform(0.6, 0.9, 48)
        b = a + patient_shift + rng.normal(0, 0.01, 48)
        groups = np.repeat(np.arange(12), 4)
        per_patient += paired_difference(a, b, groups=groups, permutations=1000, seed=seed).p_value < 0.05
        per_case += paired_difference(a, b, permutations=1000, seed=seed).p_value < 0.05
    assert per_patient <= 27  # binomial(300, 0.05): mean 15, sd 3.8
    assert per_case > 60  # flipping slices one by one declares differences that are not there


def test_patient_bootstrap():
    from radseg.evaluate.bootstrap import bootstrap_ci
    from radseg.evaluate.paired import patient_bootstrap_ci

    rng = np.random.default_rng(0)
    values = rng.uniform(0.5, 1.0, 40)
    ordinary = bootstrap_ci(values, resamples=20000, seed=1)
    low, high = patient_bootstrap_ci(values, resamples=20000, seed=2)
    assert low == pytest.approx(ordinary.low, abs=0.004) and high == pytest.approx(ordinary.high, abs=0.004)
    # a patient's identical slices change nothing: the same patients resampled, the same means
    same = patient_bootstrap_ci(np.repeat(values, 3), np.repeat(np.arange(40), 3), resamples=5000, seed=3)
    assert same == pytest.approx(patient_bootstrap_ci(values, resamples=5000, seed=3))
    assert np.isnan(patient_bootstrap_ci([np.nan, np.inf])[0])
