"""Subgroup fairness of a per-case metric, with the measures of the HexAI-KneeHipBoneSeg study.

Input is one row per case with metric columns and group columns (sex, race, age_group ...),
either already merged or as a metric table plus ``metadata=`` (merged on ``case_id`` or
``case``; cases without a metadata row count as missing metadata).

For one metric and one attribute (:func:`fairness_table`), over the groups that have metadata:

* per group: ``n``, the mean and its bootstrap CI (:func:`radseg.evaluate.bootstrap.bootstrap_ci`);
  NaN and inf metric values are left out and counted in ``n_nonfinite``.
* ``gap`` = max group mean - min group mean, with a percentile bootstrap CI that resamples
  cases within each group and recomputes the gap. The gap is never negative, so its CI sits
  above 0 even when the groups do not differ: judge that with ``p_value``.
* ``p_value``: permutation test of the gap. Group labels are shuffled among the cases (group
  sizes kept), the gap is recomputed, and ``p = (1 + #{permuted gap >= observed}) / (1 + P)``.
* ``ser``, the skewed error ratio of HexAI's ``SkewedErrorRatio``:
  ``max_g (1 - s_g) / min_g (1 - s_g)`` with ``s_g`` the group mean score (HexAI: the mean of
  the per-image macro Dice or IoU). 1 means equal error rates; inf when one group is perfect
  (``s_g = 1``). Defined only for scores in [0, 1] where 1 is perfect (Dice, IoU, NSD ...): NaN
  with a warning when a group mean lies outside [0, 1] (e.g. a distance in mm).
* ``sd_groups``: standard deviation of the group means, population form (``ddof=0``), as HexAI's
  ``StandardDeviation`` (``numpy.std``).

Reported, never dropped silently: groups smaller than ``min_group_size`` are kept in every
measure and listed in the warnings as too small to judge; cases whose attribute is missing form
a ``"(missing)"`` row that takes no part in the comparison and are counted in the summary.

Age groups (:func:`age_group`) follow HexAI's ``generate_age_grouping``: ``<=50``, ``51-64``
(50 < age <= 64), ``65-79`` (64 < age <= 79). HexAI puts every other age, including
missing ones and ages over 79, silently into group 0 (``<=50``); radseg gives ages over 79 their
own ``80+`` group and leaves missing ages missing.
"""

from __future__ import annotations

import warnings as _warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from radseg.evaluate.bootstrap import bootstrap_ci, bootstrap_distribution

__all__ = ["AGE_GROUPS", "MISSING", "age_group", "fairness_report", "fairness_table"]

AGE_GROUPS = ("<=50", "51-64", "65-79", "80+")
MISSING = "(missing)"
ID_COLUMNS = ("case_id", "case")
_CHUNK_ELEMENTS = 2_000_000


def age_group(age):
    """HexAI age groups: ``<=50``, ``51-64``, ``65-79`` and ``80+``.

    Parameters
    ----------
    age : float, array_like or pandas.Series
        Age in years; NaN stays missing.

    Returns
    -------
    str, None, pandas.Categorical or pandas.Series
        A label (None for a missing scalar age), or ordered categorical labels for array input
        (a Series keeps its index).
    """
    if np.ndim(age) == 0:
        if age is None or pd.isna(age):
            return None
        age = float(age)
        return AGE_GROUPS[0 if age <= 50 else 1 if age <= 64 else 2 if age <= 79 else 3]
    values = pd.to_numeric(pd.Series(age), errors="raise").to_numpy(dtype=float)
    codes = np.select([values <= 50, values <= 64, values <= 79, values > 79], [0, 1, 2, 3], default=-1)
    groups = pd.Categorical.from_codes(codes, categories=list(AGE_GROUPS), ordered=True)
    return pd.Series(groups, index=age.index, name="age_group") if isinstance(age, pd.Series) else groups


def _merge(df: pd.DataFrame, metadata: pd.DataFrame | None) -> pd.DataFrame:
    if metadata is None:
        return df
    key = next((c for c in ID_COLUMNS if c in df.columns and c in metadata.columns), None)
    if key is None:
        raise ValueError(f"no common id column ({' or '.join(ID_COLUMNS)}) in the metric and metadata tables")
    if metadata[key].duplicated().any():
        dupes = metadata.loc[metadata[key].duplicated(), key].astype(str).unique()[:5]
        raise ValueError(f"metadata has several rows for {key} {', '.join(dupes)}")
    left, right = df, metadata
    if left[key].dtype != right[key].dtype:  # e.g. int ids read from one CSV, str from another
        left, right = left.assign(**{key: left[key].astype(str)}), right.assign(**{key: right[key].astype(str)})
    overlap = [c for c in right.columns if c in left.columns and c != key]
    return left.merge(right.drop(columns=overlap), on=key, how="left")


def _groups_column(df: pd.DataFrame, by: str) -> pd.Series:
    if by in df.columns:
        return df[by]
    if by == "age_group" and "age" in df.columns:
        return age_group(df["age"])
    raise KeyError(f"no column {by!r} (columns: {', '.join(map(str, df.columns))})")


def _group_order(column: pd.Series) -> list:
    present = column.dropna().unique()
    if isinstance(column.dtype, pd.CategoricalDtype):
        return [c for c in column.cat.categories if c in set(present)]
    try:
        return sorted(present)
    except TypeError:  # mixed types
        return sorted(present, key=str)


def _permutation_gaps(values: np.ndarray, codes: np.ndarray, k: int, permutations: int,
                      rng: np.random.Generator) -> np.ndarray:
    """max - min group mean for ``permutations`` shuffles of the group labels."""
    n = values.size
    counts = np.bincount(codes, minlength=k)
    out = np.empty(permutations)
    chunk = max(1, _CHUNK_ELEMENTS // n)
    for start in range(0, permutations, chunk):
        rows = min(chunk, permutations - start)
        shuffled = rng.permuted(np.broadcast_to(codes, (rows, n)), axis=1)
        flat = (np.arange(rows)[:, None] * k + shuffled).ravel()
        sums = np.bincount(flat, weights=np.broadcast_to(values, (rows, n)).ravel(), minlength=rows * k)
        means = sums.reshape(rows, k) / counts
        out[start:start + rows] = means.max(axis=1) - means.min(axis=1)
    return out


def fairness_table(
    df: pd.DataFrame,
    *,
    metric: str,
    by: str,
    metadata: pd.DataFrame | None = None,
    resamples: int = 10000,
    permutations: int = 10000,
    confidence: float = 0.95,
    method: str = "percentile",
    min_group_size: int = 10,
    seed: int = 0,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Per-group means and the HexAI fairness measures of one metric across one attribute.

    Parameters
    ----------
    df : pandas.DataFrame
        One row per case: metric columns, and the ``by`` column unless ``metadata`` is given.
        ``by="age_group"`` is derived with :func:`age_group` from an ``age`` column if needed.
    metric, by : str
        Metric column and group column.
    metadata : pandas.DataFrame, optional
        Group columns per case, merged on ``case_id`` (or ``case``), keeping every metric row.
    resamples, permutations : int
        Bootstrap resamples (group CIs and gap CI) and label permutations (gap p-value).
    confidence : float
        Coverage of every CI.
    method : {"percentile", "bca"}
        CI method of the group means (the gap CI is always percentile).
    min_group_size : int
        Groups with fewer usable cases are flagged as too small to judge.
    seed : int
        Seeds every random draw (independent streams for each group, the gap and the test).

    Returns
    -------
    groups : pandas.DataFrame
        Columns ``metric, attribute, group, n, n_nonfinite, mean, ci_low, ci_high, note``; one row
        per group in order (categorical order, else sorted), then ``"(missing)"`` if any case has
        no value for ``by``. ``note`` is ``""``, ``"too small to judge"`` or ``"metadata missing"``.
    summary : dict
        ``metric, attribute, n_groups, n_cases, n_missing_metadata, n_nonfinite, max_group,
        min_group, gap, gap_ci_low, gap_ci_high, p_value, ser, sd_groups, resamples, permutations,
        seed, warnings`` (list of str). Measures are NaN when fewer than two groups have values.
    """
    data = _merge(df, metadata)
    if metric not in data.columns:
        raise KeyError(f"no metric column {metric!r}")
    groups_col = _groups_column(data, by)
    values_all = pd.to_numeric(data[metric], errors="coerce").to_numpy(dtype=float)
    finite = np.isfinite(values_all)
    missing = groups_col.isna().to_numpy()
    streams = np.random.SeedSequence(seed).spawn(3)
    order = _group_order(groups_col)
    group_seeds = streams[0].spawn(max(len(order), 1))
    warnings: list[str] = []
    rows, samples = [], []
    for group, group_seed in zip(order, group_seeds):
        member = (groups_col == group).to_numpy() & ~missing
        vals = values_all[member & finite]
        note = ""
        if vals.size < min_group_size:
            note = "too small to judge"
            warnings.append(f"{by}={group}: {vals.size} case(s) with a finite {metric}, fewer than "
                            f"{min_group_size}: too small to judge")
        ci = bootstrap_ci(vals, resamples=resamples, confidence=confidence, method=method,
                          seed=np.random.default_rng(group_seed))
        rows.append({"metric": metric, "attribute": by, "group": group, "n": int(vals.size),
                     "n_nonfinite": int(member.sum() - vals.size), "mean": ci.estimate,
                     "ci_low": ci.low, "ci_high": ci.high, "note": note})
        samples.append(vals)
    if missing.any():
        vals = values_all[missing & finite]
        rows.append({"metric": metric, "attribute": by, "group": MISSING, "n": int(vals.size),
                     "n_nonfinite": int(missing.sum() - vals.size),
                     "mean": float(vals.mean()) if vals.size else np.nan, "ci_low": np.nan, "ci_high": np.nan,
                     "note": "metadata missing"})
        warnings.append(f"{by}: {int(missing.sum())} case(s) without a value, reported as {MISSING!r} "
                        "and left out of the comparison")
    n_nonfinite = int((~finite).sum())
    if n_nonfinite:
        warnings.append(f"{metric}: {n_nonfinite} NaN or infinite value(s) left out")
    groups = pd.DataFrame(rows, columns=["metric", "attribute", "group", "n", "n_nonfinite", "mean",
                                         "ci_low", "ci_high", "note"])

    summary: dict[str, Any] = {
        "metric": metric, "attribute": by, "n_groups": 0, "n_cases": int(sum(s.size for s in samples)),
        "n_missing_metadata": int(missing.sum()), "n_nonfinite": n_nonfinite,
        "max_group": None, "min_group": None, "gap": np.nan, "gap_ci_low": np.nan, "gap_ci_high": np.nan,
        "p_value": np.nan, "ser": np.nan, "sd_groups": np.nan, "resamples": int(resamples),
        "permutations": int(permutations), "seed": seed, "warnings": warnings,
    }
    compared = [(g, s) for g, s in zip(order, samples) if s.size]
    summary["n_groups"] = len(compared)
    if len(compared) < 2:
        warnings.append(f"{by}: fewer than two groups with values, no comparison")
        return groups, summary

    names = [g for g, _ in compared]
    means = np.array([s.mean() for _, s in compared])
    summary.update(max_group=names[int(np.argmax(means))], min_group=names[int(np.argmin(means))],
                   gap=float(means.max() - means.min()), sd_groups=float(np.std(means)))

    boot = np.column_stack([
        bootstrap_distribution(s, resamples=resamples, seed=np.random.default_rng(gap_seed))
        for (_, s), gap_seed in zip(compared, streams[1].spawn(len(compared)))])
    gaps = boot.max(axis=1) - boot.min(axis=1)
    alpha = 1.0 - confidence
    summary["gap_ci_low"], summary["gap_ci_high"] = (float(v) for v in np.quantile(gaps, [alpha / 2, 1 - alpha / 2]))

    values = np.concatenate([s for _, s in compared])
    codes = np.repeat(np.arange(len(compared)), [s.size for _, s in compared])
    if permutations > 0:
        perm = _permutation_gaps(values, codes, len(compared), int(permutations), np.random.default_rng(streams[2]))
        tolerance = 1e-12 * max(1.0, float(np.abs(values).max()))
        summary["p_value"] = float((1 + np.sum(perm >= summary["gap"] - tolerance)) / (1 + permutations))

    if np.all((means >= 0) & (means <= 1)):
        errors = 1.0 - means
        with np.errstate(divide="ignore", invalid="ignore"):
            summary["ser"] = float(errors.max() / errors.min())
    else:
        warnings.append(f"{metric}: group means outside [0, 1], the skewed error ratio is undefined")
    return groups, summary


REPORT_COLUMNS = ["metric", "attribute", "group", "n", "n_nonfinite", "mean", "ci_low", "ci_high", "note",
                  "gap", "gap_ci_low", "gap_ci_high", "p_value", "ser", "sd_groups", "max_group", "min_group",
                  "warnings"]


def fairness_report(
    df: pd.DataFrame,
    *,
    metrics: Sequence[str],
    by: Sequence[str],
    metadata: pd.DataFrame | None = None,
    **options: Any,
) -> pd.DataFrame:
    """:func:`fairness_table` for every metric x attribute, stacked into one table (fairness.csv).

    Parameters
    ----------
    df, metadata
        As for :func:`fairness_table`.
    metrics, by : list of str
        Metric columns and group columns.
    **options
        ``resamples, permutations, confidence, method, min_group_size, seed`` of
        :func:`fairness_table`.

    Returns
    -------
    pandas.DataFrame
        One row per metric x attribute x group with the group columns of :func:`fairness_table`,
        then that attribute's ``gap, gap_ci_low, gap_ci_high, p_value, ser, sd_groups, max_group,
        min_group`` and ``warnings`` (joined with ``"; "``), repeated on each of its groups' rows.
    """
    data = _merge(df, metadata)
    frames = []
    for metric in metrics:
        for attribute in by:
            groups, summary = fairness_table(data, metric=metric, by=attribute, **options)
            groups = groups.astype({"group": object})
            for key in ("gap", "gap_ci_low", "gap_ci_high", "p_value", "ser", "sd_groups", "max_group", "min_group"):
                groups[key] = summary[key]
            groups["warnings"] = "; ".join(summary["warnings"])
            frames.append(groups)
    if not frames:
        return pd.DataFrame(columns=REPORT_COLUMNS)
    with _warnings.catch_warnings():  # concat of frames with all-NaN columns
        _warnings.simplefilter("ignore", FutureWarning)
        return pd.concat(frames, ignore_index=True)[REPORT_COLUMNS]
