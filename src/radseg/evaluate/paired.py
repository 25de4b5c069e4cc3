"""Paired comparison of two models scored on the same cases: "does B beat A?" with evidence.

Per case ``d_i = b_i - a_i`` (pairs without a finite value in both are dropped: a case counts
only when both models have one). One statistic, the mean difference over cases, gets one test
and the interval that belongs to it:

* the **sign-flip permutation test** (two-sided). Under the null the two models are
  exchangeable on each patient, so each patient's summed difference is as likely to carry
  either sign. Cases are flipped **per patient** (``groups``): slices or lesions of one
  patient are not independent, and flipping them one by one would overstate the evidence;
  with one case per patient this is the classic paired sign-flip test. Exact over all
  ``2^g`` sign patterns up to g = 16 patients; beyond, ``permutations`` random patterns with
  ``p = (1 + hits) / (1 + permutations)``. The level is exact at any sample size when the
  differences are symmetric about 0 under the null (the exchangeability above); for skewed
  differences (a distance such as HD95) it is approximate, as for any test of a mean.
* its **inverted confidence interval**: every shift ``delta`` that the same test does not
  reject for ``d - delta`` at ``1 - confidence``, found by bisection with the same sign
  patterns; its ends are then snapped so that the interval excludes 0 exactly when
  ``p < 1 - confidence`` (with tied values the bisection's edge can fall a hair from 0).
  With very few patients (g <= 5 at 95%) no shift can be rejected and the interval is
  unbounded: the data cannot bound the difference, and the table says so.

:func:`patient_bootstrap_ci` is the matching interval of one model's mean: patients are
resampled with all their cases (for one case per patient it is the ordinary percentile
bootstrap).

With many pairs of models, the p-values of one family (one label and metric, all pairs) are
adjusted by Holm's step-down method (:func:`holm`), which controls the family-wise error rate
at any dependence; :func:`verdict` says "B better than A", "A better than B" or "no evidence
of a difference" from the adjusted p and the metric's direction (higher Dice is better, lower
HD95 is better). The interval is the unadjusted one (it agrees with the unadjusted p; the
table shows both p-values, so a CI that excludes 0 beside "no evidence" after Holm is read
as it is).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np

from radseg.evaluate.bootstrap import bootstrap_distribution

__all__ = ["PairedDifference", "paired_difference", "patient_bootstrap_ci", "sign_flip_p", "holm", "verdict"]

_EXACT_MAX_N = 16  # 2^16 sign patterns enumerated exactly; beyond, Monte-Carlo


@dataclass(frozen=True)
class PairedDifference:
    """``mean(b - a)`` over the cases both models have, the sign-flip p and its inverted CI."""

    difference: float
    low: float
    high: float
    p_value: float
    n: int  # cases with both values
    patients: int  # sign-flip units
    confidence: float
    permutations: int  # 0: exact (all 2^patients sign patterns)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _signs(n: int, permutations: int, seed) -> tuple[np.ndarray, bool]:
    """All 2^n sign patterns (exact, n <= 16), or ``permutations`` random ones."""
    if n <= _EXACT_MAX_N:
        patterns = np.arange(2 ** n)[:, None] >> np.arange(n)
        return 1.0 - 2.0 * (patterns & 1), True
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    return rng.integers(0, 2, size=(int(permutations), n)) * 2.0 - 1.0, False


class _SignFlip:
    """The test on per-patient sums ``D_g - n_g * delta`` with one fixed set of sign patterns."""

    def __init__(self, d: np.ndarray, groups: np.ndarray, permutations: int, seed) -> None:
        codes = np.unique(groups, return_inverse=True)[1].ravel()
        self.sums = np.bincount(codes, weights=d)
        self.counts = np.bincount(codes).astype(float)
        self.mean = float(d.mean())
        self.scale = float(np.ptp(d)) or max(abs(self.mean), 1.0)
        self.signs, self.exact = _signs(self.sums.size, permutations, seed)

    def p(self, delta: float = 0.0) -> float:
        shifted = self.sums - self.counts * delta
        observed = abs(shifted.sum())
        tolerance = 1e-9 * max(1.0, float(np.abs(shifted).sum()))  # float sums of equal patterns must tie
        hits = int(np.count_nonzero(np.abs(self.signs @ shifted) >= observed - tolerance))
        return hits / len(self.signs) if self.exact else (1 + hits) / (1 + len(self.signs))

    def edge(self, alpha: float, direction: float) -> float:
        """The outermost shift on one side of the mean that the test does not reject (bisection)."""
        step = self.scale
        for _ in range(60):  # find a rejected shift, doubling the distance
            if self.p(self.mean + direction * step) < alpha:
                break
            step *= 2.0
        else:
            return direction * float("inf")  # nothing rejected: too few patients to bound the difference
        inside, outside = 0.0, step
        for _ in range(60):
            middle = 0.5 * (inside + outside)
            if self.p(self.mean + direction * middle) < alpha:
                outside = middle
            else:
                inside = middle
            if outside - inside <= 1e-9 * self.scale:
                break
        return self.mean + direction * inside


def sign_flip_p(differences, *, groups=None, permutations: int = 10000,
                seed: int | np.random.Generator | None = 0) -> float:
    """Two-sided sign-flip permutation p of ``mean(differences) == 0`` (flipped per group, exact up to 16)."""
    d = np.asarray(differences, dtype=float)
    if d.ndim != 1 or d.size == 0:
        raise ValueError(f"differences must be a non-empty 1-D array, got shape {d.shape}")
    groups = np.arange(d.size) if groups is None else np.asarray(groups)
    return _SignFlip(d, groups, permutations, seed).p()


def _pairs(a, b, groups) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired values must be two 1-D arrays of one length, got {a.shape} and {b.shape}")
    groups = np.arange(a.size) if groups is None else np.asarray(groups)
    if groups.shape != a.shape:
        raise ValueError(f"groups must give one patient per case, got {groups.shape} for {a.shape}")
    both = np.isfinite(a) & np.isfinite(b)
    return b[both] - a[both], groups[both]


def paired_difference(a, b, *, groups=None, permutations: int = 10000, confidence: float = 0.95,
                      seed: int | np.random.Generator | Sequence[int] | None = 0) -> PairedDifference:
    """Compare model B with model A on the same cases (``a[i]`` and ``b[i]`` belong to case i).

    Parameters
    ----------
    a, b : array_like
        Per-case values of one metric, aligned by case; a case without a finite value in
        both is dropped.
    groups : array_like, optional
        The patient of each case: signs flip per patient. Default: every case its own patient.
    permutations : int
        Random sign patterns when there are more than 16 patients (exact enumeration below).
    confidence : float
        Coverage of the inverted interval (it excludes 0 exactly when ``p < 1 - confidence``).
    seed : int, sequence, Generator or None
        Seeds the random sign patterns (unused when exact).

    Returns
    -------
    PairedDifference
        ``difference = mean(b - a)`` over cases; NaN everywhere (``n=0``) when no case has both values.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    d, g = _pairs(a, b, groups)
    if d.size == 0:
        nan = float("nan")
        return PairedDifference(nan, nan, nan, nan, 0, 0, confidence, 0)
    generator = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    test = _SignFlip(d, g, permutations, generator)
    alpha = 1.0 - confidence
    p = test.p()
    low, high = test.edge(alpha, -1.0), test.edge(alpha, 1.0)
    if p >= alpha:  # not rejected at 0: 0 belongs to the interval
        low, high = min(low, 0.0), max(high, 0.0)
    elif low <= 0.0 <= high:  # rejected at 0: the interval stops short of it
        tiny = float(np.nextafter(0.0, 1.0))
        low, high = (max(low, tiny), high) if test.mean > 0 else (low, min(high, -tiny))
    return PairedDifference(test.mean, float(low), float(high), float(p), int(d.size), int(test.sums.size),
                            confidence, 0 if test.exact else int(permutations))


def patient_bootstrap_ci(values, groups=None, *, resamples: int = 10000, confidence: float = 0.95,
                         seed: int | np.random.Generator | None = 0) -> tuple[float, float]:
    """Percentile CI of the mean over cases, resampling patients with all their cases.

    Non-finite values are dropped first. With one case per patient this is the ordinary
    percentile bootstrap of the mean.
    """
    values = np.asarray(values, dtype=float)
    groups = np.arange(values.size) if groups is None else np.asarray(groups)
    keep = np.isfinite(values)
    values, groups = values[keep], groups[keep]
    if values.size == 0 or resamples <= 0:
        return float("nan"), float("nan")
    codes = np.unique(groups, return_inverse=True)[1].ravel()
    sums, counts = np.bincount(codes, weights=values), np.bincount(codes).astype(float)
    def ratio(patients: np.ndarray, axis: int = -1) -> np.ndarray:  # mean over the drawn patients' cases
        picks = patients.astype(np.intp)
        return sums[picks].sum(axis=axis) / counts[picks].sum(axis=axis)

    means = bootstrap_distribution(np.arange(sums.size, dtype=float), statistic=ratio, resamples=resamples,
                                   seed=seed)
    alpha = 1.0 - confidence
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (same order as given; NaN stays NaN and is not counted).

    Sorted ascending, ``p_(i)`` becomes ``max_{j<=i} min(1, (m - j + 1) p_(j))``; rejecting
    where the adjusted p is below alpha controls the family-wise error rate at alpha.
    """
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    m = finite.size
    if m == 0:
        return out
    order = finite[np.argsort(p[finite], kind="stable")]
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out[order] = np.maximum.accumulate(scaled)
    return out


def verdict(difference: float, adjusted_p: float, *, higher_is_better: bool | None, a: str, b: str,
            alpha: float = 0.05) -> str:
    """One phrase for a comparison of ``b`` with ``a``: which is better, or that the data cannot tell."""
    if not np.isfinite(adjusted_p) or not np.isfinite(difference):
        return "not compared (no case has both values)"
    if adjusted_p >= alpha or difference == 0:
        return "no evidence of a difference"
    if higher_is_better is None:
        return f"{b} higher than {a}" if difference > 0 else f"{b} lower than {a}"
    b_better = (difference > 0) == higher_is_better
    return f"{b} better than {a}" if b_better else f"{a} better than {b}"
