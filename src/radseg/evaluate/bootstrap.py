"""Bootstrap confidence intervals of a per-case statistic (percentile and BCa), seeded and vectorised.

:func:`bootstrap_ci` resamples the cases with replacement ``resamples`` times, recomputes the
statistic on every resample and returns a :class:`ConfidenceInterval`:

* ``method="percentile"``: the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles of
  the bootstrap statistics (linear interpolation, as ``numpy.quantile`` and
  ``scipy.stats.bootstrap`` do).
* ``method="bca"``: bias-corrected and accelerated (Efron 1987). Bias correction
  ``z0 = Phi^-1(fraction of bootstrap statistics below the estimate)``, ties with the estimate
  counted half (as ``scipy.stats.bootstrap``; it matters for discrete data such as 0/1 scores,
  where many resamples reproduce the estimate exactly); acceleration
  ``a = sum(d^3) / (6 sum(d^2)^1.5)`` with ``d = mean(jackknife) - jackknife_i`` from the
  leave-one-out statistics; the percentile levels are then
  ``Phi(z0 + (z0 + z) / (1 - a (z0 + z)))`` for ``z = Phi^-1`` of each nominal level. When every
  bootstrap statistic lies on one side of the estimate the fraction is clipped to
  ``[0.5 / B, 1 - 0.5 / B]`` instead of giving an infinite ``z0``.

When all bootstrap statistics are equal (constant data, one case) the interval has zero width.

NaN policy: the HemSeg-200 code has none (one NaN makes every resample that draws it NaN, and
the sorted array puts them last). radseg's default ``nan="omit"`` drops NaN values before
resampling and reports the number of values used as ``n``; ``nan="propagate"`` returns a NaN
estimate and interval when any value is NaN. Infinite values are kept (their mean is inf);
filter them first if they mean something else.

:func:`hemseg_protocol_ci` reproduces the HemSeg-200 protocol bit for bit.

:func:`group_difference` compares two groups with one statistic, ``mean(other) - mean(reference)``:
its percentile bootstrap CI (each group resampled on its own) and its two-sided permutation p
(:func:`permutation_p`, Welch-studentised so that unequal spreads keep it valid), so the CI
excludes 0 when, up to Monte-Carlo noise near the boundary, ``p < 1 - confidence``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr, ndtri

__all__ = ["ConfidenceInterval", "GroupDifference", "bootstrap_ci", "bootstrap_distribution", "group_difference",
           "hemseg_protocol_ci", "permutation_p"]

_METHODS = ("percentile", "bca")
_NAN = ("omit", "propagate")
_CHUNK_ELEMENTS = 2_000_000  # resample indices held at once (16 MB of int64)


@dataclass(frozen=True)
class ConfidenceInterval:
    """A point estimate and its confidence interval.

    Attributes
    ----------
    estimate : float
        The statistic on the values used (NaN omitted by default).
    low, high : float
        Interval bounds.
    method : str
        ``"percentile"``, ``"bca"`` or ``"hemseg"``.
    resamples : int
        Number of bootstrap resamples.
    n : int
        Number of values the interval is based on.
    confidence : float
        Nominal coverage, e.g. 0.95.
    """

    estimate: float
    low: float
    high: float
    method: str
    resamples: int
    n: int
    confidence: float = 0.95

    @property
    def width(self) -> float:
        """``high - low``."""
        return self.high - self.low


def _rng(seed: int | np.random.Generator | np.random.SeedSequence | None) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _apply(statistic: Callable, samples: np.ndarray) -> np.ndarray:
    """Statistic of every row of ``samples``; uses ``axis=-1`` when the statistic accepts it."""
    try:
        out = np.asarray(statistic(samples, axis=-1), dtype=float)
        if out.shape == samples.shape[:-1]:
            return out
    except TypeError:
        pass
    return np.array([statistic(row) for row in samples], dtype=float)


def bootstrap_distribution(
    values,
    *,
    statistic: Callable = np.mean,
    resamples: int = 10000,
    seed: int | np.random.Generator | None = 0,
) -> np.ndarray:
    """Statistic of ``resamples`` resamples (with replacement) of ``values``.

    Parameters
    ----------
    values : array_like
        1-D values (used as given: no NaN handling here).
    statistic : callable
        ``statistic(array, axis=-1)``; a statistic without ``axis`` is applied row by row.
    resamples : int
        Number of resamples.
    seed : int, Generator or None
        Seed of ``numpy.random.default_rng``, or a Generator to draw from.

    Returns
    -------
    numpy.ndarray
        ``(resamples,)`` float array, in drawing order.
    """
    values = np.asarray(values, dtype=float)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"values must be a non-empty 1-D array, got shape {values.shape}")
    if int(resamples) < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    rng, n = _rng(seed), values.size
    out = np.empty(int(resamples))
    chunk = max(1, _CHUNK_ELEMENTS // n)
    for start in range(0, out.size, chunk):
        stop = min(start + chunk, out.size)
        out[start:stop] = _apply(statistic, values[rng.integers(0, n, size=(stop - start, n))])
    return out


def _jackknife(values: np.ndarray, statistic: Callable) -> np.ndarray:
    """Leave-one-out statistics, computed in chunks of rows."""
    n = values.size
    out = np.empty(n)
    base = np.arange(n - 1)
    chunk = max(1, _CHUNK_ELEMENTS // max(n - 1, 1))
    for start in range(0, n, chunk):
        left_out = np.arange(start, min(start + chunk, n))[:, None]
        out[start:start + left_out.shape[0]] = _apply(statistic, values[base + (base >= left_out)])
    return out


def _bca_levels(values, boot, estimate, statistic, alpha) -> tuple[float, float]:
    below = (np.count_nonzero(boot < estimate) + np.count_nonzero(boot <= estimate)) / (2.0 * boot.size)
    below = np.clip(below, 0.5 / boot.size, 1 - 0.5 / boot.size)
    z0 = ndtri(below)
    if values.size > 2:
        jack = _jackknife(values, statistic)
        d = jack.mean() - jack
        denominator = 6.0 * np.sum(d * d) ** 1.5
        a = float(np.sum(d ** 3) / denominator) if denominator > 0 else 0.0
    else:
        a = 0.0
    levels = []
    for z in (ndtri(alpha / 2), ndtri(1 - alpha / 2)):
        levels.append(float(ndtr(z0 + (z0 + z) / (1 - a * (z0 + z)))))
    return levels[0], levels[1]


def bootstrap_ci(
    values,
    *,
    statistic: Callable = np.mean,
    resamples: int = 10000,
    confidence: float = 0.95,
    method: str = "percentile",
    seed: int | np.random.Generator | None = 0,
    nan: str = "omit",
) -> ConfidenceInterval:
    """Bootstrap confidence interval of ``statistic(values)``.

    Parameters
    ----------
    values : array_like
        1-D per-case values.
    statistic : callable
        Default ``numpy.mean``; called as ``statistic(samples, axis=-1)`` when possible.
    resamples : int
        Number of bootstrap resamples.
    confidence : float
        Nominal coverage in (0, 1).
    method : {"percentile", "bca"}
        Interval construction (see the module docstring).
    seed : int, Generator or None
        Seed of ``numpy.random.default_rng`` (same seed, same interval), or a Generator.
    nan : {"omit", "propagate"}
        ``"omit"`` drops NaN values (``n`` counts the rest); ``"propagate"`` returns NaNs if any.

    Returns
    -------
    ConfidenceInterval
    """
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    if nan not in _NAN:
        raise ValueError(f"nan must be one of {_NAN}, got {nan!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    resamples = int(resamples)
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    values = np.asarray(values, dtype=float)
    if values.ndim != 1:
        raise ValueError(f"values must be 1-D, got shape {values.shape}")
    missing = np.isnan(values)
    if missing.any():
        if nan == "propagate":
            return ConfidenceInterval(np.nan, np.nan, np.nan, method, resamples, values.size, confidence)
        values = values[~missing]
    if values.size == 0:
        return ConfidenceInterval(np.nan, np.nan, np.nan, method, resamples, 0, confidence)
    estimate = float(_apply(statistic, values[None, :])[0])
    boot = bootstrap_distribution(values, statistic=statistic, resamples=resamples, seed=seed)
    if np.all(boot == boot[0]):
        return ConfidenceInterval(estimate, float(boot[0]), float(boot[0]), method, resamples, values.size,
                                  confidence)
    alpha = 1.0 - confidence
    if method == "percentile":
        levels = (alpha / 2, 1 - alpha / 2)
    else:
        levels = _bca_levels(values, boot, estimate, statistic, alpha)
    low, high = np.quantile(boot, levels)
    return ConfidenceInterval(estimate, float(low), float(high), method, resamples, values.size, confidence)


#: HemSeg-200's protocol constants (``utils/eval_bootstrap_ci.py`` of songchangwei/HemSeg500).
HEMSEG_RESAMPLES = 5000
HEMSEG_SEED = 47
HEMSEG_POSITIONS = (125, 4875)  # 0-based: int(0.025 * 5000), int(0.975 * 5000)


def hemseg_protocol_ci(values, *, seed: int = HEMSEG_SEED) -> ConfidenceInterval:
    """The HemSeg-200 bootstrap, reproduced exactly.

    ``numpy.random.RandomState(seed).choice(values, size=(5000, n), replace=True)``, the mean of
    each row, sorted ascending; the interval is ``sorted[125]`` and ``sorted[4875]``, **0-based**
    (``int(0.025 * 5000)`` and ``int(0.975 * 5000)``: the 126th and 4876th smallest means, so 125
    means lie below the interval and 124 above it). No NaN handling: a NaN value makes the
    result NaN or meaningless, as in the original. The estimate is the plain mean (HemSeg rounds
    the printed numbers to 4 decimals; radseg does not round).

    Parameters
    ----------
    values : array_like
        1-D per-case values.
    seed : int
        Seed of the legacy ``RandomState``; HemSeg's code uses 47.

    Returns
    -------
    ConfidenceInterval
        ``method="hemseg"``, ``resamples=5000``.
    """
    values = np.asarray(values, dtype=float)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"values must be a non-empty 1-D array, got shape {values.shape}")
    rng = np.random.RandomState(seed)
    samples = rng.choice(values, size=(HEMSEG_RESAMPLES, values.size), replace=True)
    means = np.sort(np.mean(samples, axis=1))
    low, high = HEMSEG_POSITIONS
    return ConfidenceInterval(float(np.average(values)), float(means[low]), float(means[high]), "hemseg",
                              HEMSEG_RESAMPLES, int(values.size), 0.95)


@dataclass(frozen=True)
class GroupDifference:
    """``mean(other) - mean(reference)`` with a bootstrap CI and a permutation p of that difference.

    Attributes
    ----------
    difference : float
        Signed: negative when ``other`` has the lower mean.
    low, high : float
        Percentile bootstrap CI at ``confidence``, cases resampled within each group.
    p_value : float
        Two-sided permutation p (Welch-studentised difference, group sizes kept).
    confidence : float
        Coverage of the CI.
    resamples, permutations : int
        Bootstrap resamples and label permutations.
    """

    difference: float
    low: float
    high: float
    p_value: float
    confidence: float
    resamples: int
    permutations: int


def _welch_t(sums: np.ndarray, squares: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Welch's t of group 1 minus group 0 from per-row sums and sums of squares ``(rows, 2)``."""
    means = sums / counts
    variances = np.maximum(squares - counts * means ** 2, 0.0) / (counts - 1)
    difference = means[:, 1] - means[:, 0]
    se = np.sqrt(variances[:, 0] / counts[0] + variances[:, 1] / counts[1])
    with np.errstate(divide="ignore", invalid="ignore"):
        t = difference / se
    return np.where((se == 0) & (difference == 0), 0.0, t)


def permutation_p(reference, other, *, permutations: int = 10000,
                  seed: int | np.random.Generator | None = 0) -> float:
    """Two-sided permutation p of ``mean(other) - mean(reference)``, studentised (Welch's t).

    The two groups' labels are shuffled among their cases (sizes kept);
    ``p = (1 + #{|t*| >= |t|}) / (1 + permutations)``, valid at any sample size under the null of
    exchangeable groups. Each group needs at least two values.
    """
    reference, other = np.asarray(reference, dtype=float), np.asarray(other, dtype=float)
    if reference.size < 2 or other.size < 2:
        raise ValueError(f"each group needs at least 2 values, got {reference.size} and {other.size}")
    values = np.concatenate([reference, other])
    values = values - values.mean()  # keeps the sums of squares free of cancellation
    codes = np.repeat([0, 1], [reference.size, other.size])
    counts = np.array([reference.size, other.size], dtype=float)
    observed = _welch_t(np.bincount(codes, weights=values)[None], np.bincount(codes, weights=values ** 2)[None],
                        counts)[0]
    rng, n = _rng(seed), values.size
    chunk = max(1, _CHUNK_ELEMENTS // n)
    hits = 0
    tolerance = 1e-9 * max(1.0, abs(observed)) if np.isfinite(observed) else 0.0
    for start in range(0, int(permutations), chunk):
        rows = min(chunk, int(permutations) - start)
        shuffled = rng.permuted(np.broadcast_to(codes, (rows, n)), axis=1)
        flat = (np.arange(rows)[:, None] * 2 + shuffled).ravel()
        weights = np.broadcast_to(values, (rows, n)).ravel()
        sums = np.bincount(flat, weights=weights, minlength=2 * rows).reshape(rows, 2)
        squares = np.bincount(flat, weights=weights ** 2, minlength=2 * rows).reshape(rows, 2)
        hits += int(np.count_nonzero(np.abs(_welch_t(sums, squares, counts)) >= abs(observed) - tolerance))
    return float((1 + hits) / (1 + int(permutations)))


def group_difference(reference, other, *, resamples: int = 10000, permutations: int = 10000,
                     confidence: float = 0.95, seed: int | np.random.SeedSequence | None = 0) -> GroupDifference:
    """Signed difference of two group means, its bootstrap CI and its permutation p (one statistic).

    Parameters
    ----------
    reference, other : array_like
        Finite per-case values of each group (at least two each).
    resamples, permutations : int
        Bootstrap resamples (each group resampled on its own) and label permutations.
    confidence : float
        Coverage of the percentile CI.
    seed : int, SeedSequence or None
        Seeds the three independent streams (two bootstraps, one permutation test).

    Returns
    -------
    GroupDifference
        The CI excludes 0 when, and (up to Monte-Carlo noise) only when, ``p_value < 1 - confidence``:
        both compare ``|difference|`` with the same unpooled standard error.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    reference, other = np.asarray(reference, dtype=float), np.asarray(other, dtype=float)
    streams = (seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)).spawn(3)
    boot = (bootstrap_distribution(other, resamples=resamples, seed=np.random.default_rng(streams[1]))
            - bootstrap_distribution(reference, resamples=resamples, seed=np.random.default_rng(streams[0])))
    alpha = 1.0 - confidence
    low, high = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
    p = permutation_p(reference, other, permutations=permutations, seed=np.random.default_rng(streams[2]))
    return GroupDifference(float(other.mean() - reference.mean()), float(low), float(high), p, confidence,
                           int(resamples), int(permutations))
