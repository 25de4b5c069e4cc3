"""Bootstrap CIs against scipy.stats.bootstrap, hand cases, seeding, NaN policy, HemSeg-200 protocol."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import scipy.stats as st

from radseg.evaluate.bootstrap import (
    HEMSEG_POSITIONS,
    ConfidenceInterval,
    bootstrap_ci,
    hemseg_protocol_ci,
)

DICE_LIKE = np.random.default_rng(1).beta(8, 2, size=80)    # per-case Dice, left-skewed
SKEWED = np.random.default_rng(1).exponential(size=60)     # strongly right-skewed: BCa != percentile
BINARY = (np.random.default_rng(2).random(30) < 0.7).astype(float)  # many resample means tie the estimate


@pytest.mark.parametrize("data", [SKEWED, BINARY], ids=["skewed", "binary"])
@pytest.mark.parametrize("method", ["percentile", "bca"])
def test_same_stream_as_scipy_gives_the_same_interval(method, data):
    # scipy draws rng.integers(0, n, (B, n)) in one batch, as radseg does: with the same seed the
    # resamples are identical, so any difference would be in the percentile or BCa arithmetic
    # (z0 from the fraction below the estimate with ties counted half, which 0/1 data tests,
    # jackknife acceleration, interpolation).
    ours = bootstrap_ci(data, resamples=20000, method=method, seed=5)
    ref = st.bootstrap((data,), np.mean, n_resamples=20000, method=method,
                       rng=np.random.default_rng(5)).confidence_interval
    assert ours.low == pytest.approx(ref.low, rel=1e-12)
    assert ours.high == pytest.approx(ref.high, rel=1e-12)


@pytest.mark.parametrize("method", ["percentile", "bca"])
def test_independent_streams_agree_with_scipy(method):
    # Tolerance: over 100 seeds the Monte-Carlo SD of each endpoint with B = 20,000 on this data
    # is 0.44-0.49% of the width (percentile) and 0.58-0.63% (BCa, z0 is estimated too), so the
    # difference of two independent runs has SD <= 0.9% of the width; 3% is > 3.3 SD.
    ours = bootstrap_ci(DICE_LIKE, resamples=20000, method=method, seed=0)
    ref = st.bootstrap((DICE_LIKE,), np.mean, n_resamples=20000, method=method,
                       rng=np.random.default_rng(12345)).confidence_interval
    tolerance = 0.03 * ours.width
    assert abs(ours.low - ref.low) < tolerance
    assert abs(ours.high - ref.high) < tolerance
    assert ours.low < ours.estimate < ours.high and ours.estimate == pytest.approx(DICE_LIKE.mean())


def test_bca_corrects_for_skew():
    # For right-skewed data BCa moves the interval up relative to the percentile interval.
    pct = bootstrap_ci(SKEWED, resamples=20000, method="percentile", seed=0)
    bca = bootstrap_ci(SKEWED, resamples=20000, method="bca", seed=0)
    assert bca.low - pct.low > 0.05 * pct.width
    assert bca.high - pct.high > 0.05 * pct.width


@pytest.mark.parametrize("method", ["percentile", "bca"])
def test_constant_values_give_zero_width(method):
    ci = bootstrap_ci(np.full(25, 0.8), resamples=2000, method=method)
    assert (ci.estimate, ci.low, ci.high, ci.n) == (pytest.approx(0.8), pytest.approx(0.8), pytest.approx(0.8), 25)
    assert ci.width == 0


def test_bernoulli_mean_matches_normal_approximation():
    # The bootstrap distribution of a mean of n 0/1 values has SD sqrt(p(1-p)/n) exactly and is
    # close to normal for n = 2000, so the percentile CI is p +- 1.96 SD up to Monte-Carlo error
    # (about 0.5% of the width with B = 10,000) and skewness (O(1/sqrt(n))).
    x = (np.random.default_rng(7).random(2000) < 0.3).astype(float)
    p, n = x.mean(), x.size
    half = st.norm.ppf(0.975) * np.sqrt(p * (1 - p) / n)
    ci = bootstrap_ci(x, resamples=10000, seed=1)
    assert ci.low == pytest.approx(p - half, abs=0.03 * 2 * half)
    assert ci.high == pytest.approx(p + half, abs=0.03 * 2 * half)


def test_confidence_level_changes_width():
    wide = bootstrap_ci(DICE_LIKE, confidence=0.99, resamples=5000)
    narrow = bootstrap_ci(DICE_LIKE, confidence=0.80, resamples=5000)
    assert wide.width > 1.5 * narrow.width and wide.confidence == 0.99


def test_seeding_is_reproducible():
    a = bootstrap_ci(DICE_LIKE, resamples=3000, seed=11, method="bca")
    b = bootstrap_ci(DICE_LIKE, resamples=3000, seed=11, method="bca")
    c = bootstrap_ci(DICE_LIKE, resamples=3000, seed=12, method="bca")
    assert a == b
    assert (a.low, a.high) != (c.low, c.high)
    assert isinstance(a, ConfidenceInterval)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.low = 0.0


def test_chunking_does_not_change_the_result(monkeypatch):
    from radseg.evaluate import bootstrap

    whole = bootstrap_ci(DICE_LIKE, resamples=1000, seed=3)
    monkeypatch.setattr(bootstrap, "_CHUNK_ELEMENTS", 80 * 7)  # 7 resamples per chunk
    chunked = bootstrap_ci(DICE_LIKE, resamples=1000, seed=3)
    # numpy's Generator.integers draws each int64 value from the stream independently, so drawing
    # the resample indices in chunks (to bound memory) gives exactly the same resamples.
    assert chunked == whole


def test_nan_omit_and_propagate():
    x = np.concatenate([DICE_LIKE, [np.nan, np.nan]])
    omitted = bootstrap_ci(x, resamples=2000, seed=0)
    clean = bootstrap_ci(DICE_LIKE, resamples=2000, seed=0)
    assert omitted == clean and omitted.n == DICE_LIKE.size
    propagated = bootstrap_ci(x, resamples=2000, nan="propagate")
    assert np.isnan(propagated.estimate) and np.isnan(propagated.low) and propagated.n == x.size
    empty = bootstrap_ci([np.nan], resamples=100)
    assert empty.n == 0 and np.isnan(empty.high)


def test_other_statistics_and_bad_options():
    median = bootstrap_ci(DICE_LIKE, statistic=np.median, resamples=2000)
    assert median.estimate == pytest.approx(np.median(DICE_LIKE))
    no_axis = bootstrap_ci(DICE_LIKE, statistic=lambda v: float(np.max(v)), resamples=200)
    assert no_axis.high == pytest.approx(DICE_LIKE.max())
    with pytest.raises(ValueError, match="method"):
        bootstrap_ci(DICE_LIKE, method="basic")
    with pytest.raises(ValueError, match="nan"):
        bootstrap_ci(DICE_LIKE, nan="raise")
    with pytest.raises(ValueError, match="1-D"):
        bootstrap_ci(np.ones((3, 3)))


def test_hemseg_protocol_positions():
    # Rebuild HemSeg-200's sorted array with its RNG and check the two 0-based positions used.
    x = SKEWED
    rng = np.random.RandomState(47)
    means = np.sort(rng.choice(x, size=(5000, x.size), replace=True).mean(axis=1))
    ci = hemseg_protocol_ci(x)
    assert HEMSEG_POSITIONS == (125, 4875) == (int(0.025 * 5000), int(0.975 * 5000))
    assert ci.low == means[125] and ci.high == means[4875]
    assert ci.low != means[124] and ci.high != means[4874]     # not 1-based, not symmetric
    assert (ci.method, ci.resamples, ci.n, ci.estimate) == ("hemseg", 5000, x.size, pytest.approx(x.mean()))
    assert hemseg_protocol_ci(x, seed=1).low != ci.low          # the seed is used
    assert np.isnan(hemseg_protocol_ci(np.append(x, np.nan)).high)  # no NaN handling, as in HemSeg
