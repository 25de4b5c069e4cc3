"""Subgroup fairness of a per-case metric: a signed difference between named groups, with a CI
and a permutation test of that same difference, plus the descriptive measures of HexAI-KneeHipBoneSeg.

Input is one row per case with metric columns and group columns (sex, race, age_group ...),
either already merged or as a metric table plus ``metadata=`` (merged on ``case_id`` or
``case``; cases without a metadata row count as missing metadata).

For one metric and one attribute (:func:`fairness_table`), over the groups that have metadata:

* per group: ``n``, the mean and its bootstrap CI (:func:`radseg.evaluate.bootstrap.bootstrap_ci`);
  NaN and inf metric values are left out and counted in ``n_nonfinite``.
* **the comparison**: a *reference* group (``reference=``, else the largest group; ties: the first
  in group order) against the *compared* group, the other group whose mean lies farthest from the
  reference's. ``difference = mean(compared) - mean(reference)``, signed; ``worse_group`` names the
  one of the two with the worse mean (Dice, IoU, NSD ...: higher is better; HD, HD95, ASSD: lower
  is better; ``higher_is_better=`` for other metrics, else no group is called worse).
* ``difference_ci_low/high``: percentile bootstrap CI of ``difference``, resampling cases within
  each of the two groups.
* ``p_value``: two-sided permutation test of the same difference. The labels of the two groups'
  cases are shuffled (sizes kept) and the difference is recomputed, studentised by its unpooled
  standard error (Welch's t), the scale the bootstrap CI also uses: ``p = (1 + #{|t*| >= |t|}) /
  (1 + P)``. Studentising keeps the test valid when the two groups' spreads differ.
* With more than two groups that can be compared there are ``comparisons = k - 1`` possible pairs
  with the reference, and the compared group is picked from the data; Bonferroni covers that pick:
  ``p_value`` is the permutation p times ``comparisons`` (at most 1) and the CI is at level
  ``1 - alpha / comparisons`` (``ci_level``), with ``alpha = 1 - confidence``.
* ``finding``: ``"gap"`` when ``p_value < alpha``, ``"no evidence of a gap"`` otherwise, or
  ``"not compared: <why>"`` (a single group, or fewer than two groups of ``min_group_size`` cases).
  :func:`radseg.evaluate.report.finding_sentence` says it in one sentence.

**CI and p agree, approximately**: the CI excludes 0 exactly when fewer than ``alpha / 2`` of the
bootstrap differences fall beyond 0, and ``p < alpha`` when ``|t|`` exceeds the permutation
quantile; both amount to ``|difference| / SE > z(1 - alpha / 2)`` with the same unpooled SE. They
can disagree only near that boundary (Monte-Carlo noise, and the percentile bootstrap's slightly
narrow intervals for small groups): ``tests/reliability/test_statistics.py`` measures it. The
decision is the permutation p, which is exact under the null of no difference. That is why groups
smaller than ``min_group_size`` are left out of the comparison (their bootstrap CI is too narrow to
be trusted): they keep their row and CI, noted "too small to judge".

Descriptive, no test (HexAI's measures, over every group with values):

* ``ser``, the skewed error ratio of HexAI's ``SkewedErrorRatio``:
  ``max_g (1 - s_g) / min_g (1 - s_g)`` with ``s_g`` the group mean score (HexAI: the mean of
  the per-image macro Dice or IoU). 1 means equal error rates; inf when one group is perfect
  (``s_g = 1``). Defined only for scores in [0, 1] where 1 is perfect (Dice, IoU, NSD ...): NaN
  with a warning when a group mean lies outside [0, 1] (e.g. a distance in mm).
* ``sd_groups``: standard deviation of the group means, population form (``ddof=0``), as HexAI's
  ``StandardDeviation`` (``numpy.std``); ``max_group`` / ``min_group``: highest and lowest mean.
  (The former ``gap`` = max - min group mean is gone: it is never negative, so its bootstrap CI
  sat above 0 even with no difference, and disagreed with its own permutation p.)

Reported, never dropped silently: cases whose attribute is missing form a ``"(missing)"`` row
that takes no part in the comparison and are counted in the summary.

Age groups (:func:`age_group`) follow HexAI's ``generate_age_grouping``: ``<=50``, ``51-64``
(50 < age <= 64), ``65-79`` (64 < age <= 79). HexAI puts every other age, including
missing ones and ages over 79, silently into group 0 (``<=50``); radseg gives ages over 79 their
own ``80+`` group and leaves missing ages missing.
"""

from __future__ import annotations

import warnings as _warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from radseg.evaluate.bootstrap import bootstrap_ci, group_difference

__all__ = ["AGE_GROUPS", "MISSING", "age_group", "fairness_report", "fairness_table", "metric_direction",
           "parse_reference"]

AGE_GROUPS = ("<=50", "51-64", "65-79", "80+")
MISSING = "(missing)"
ID_COLUMNS = ("case_id", "case")


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


_HIGHER = ("dice", "iou", "precision", "sensitivity", "specificity", "recall", "accuracy", "f1", "ap")
_LOWER = ("hd", "hd95", "assd", "masd", "asd")


def metric_direction(metric: str) -> bool | None:
    """True for scores (Dice, IoU, NSD ...), False for distances (HD, HD95, ASSD), None when unknown."""
    name = str(metric).lower()
    if name in _HIGHER or name.startswith("nsd"):
        return True
    if name in _LOWER or name.startswith("hd") or name.endswith(("_mm", "distance", "error")):
        return False
    return None


def parse_reference(text: str | None) -> dict[str, str]:
    """``"sex=M,age_group=51-64"`` -> ``{"sex": "M", "age_group": "51-64"}`` (the CLI's ``--reference``)."""
    out: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        attribute, sep, group = item.partition("=")
        if not sep or not attribute.strip() or not group.strip():
            raise ValueError(f"reference item {item!r}: expected ATTRIBUTE=GROUP, e.g. sex=M")
        out[attribute.strip()] = group.strip()
    return out


def _comparison(names: list, samples: list[np.ndarray], *, by: str, reference: Any, min_group_size: int,
                better_high: bool | None, resamples: int, permutations: int, confidence: float,
                seed: np.random.SeedSequence) -> dict[str, Any]:
    """Reference vs the farthest other group among the groups large enough to judge."""
    sizes = [s.size for s in samples]
    eligible = [i for i, size in enumerate(sizes) if size >= max(2, min_group_size)]
    if reference is not None:
        matches = [i for i, name in enumerate(names) if str(name) == str(reference)]
        if not matches:
            raise ValueError(f"reference {by}={reference} is not among the groups with values "
                             f"({', '.join(map(str, names)) or 'none'})")
        ref = matches[0]
        if ref not in eligible:
            return {"finding": f"not compared: the reference {by}={reference} has {sizes[ref]} case(s), "
                               f"fewer than {max(2, min_group_size)}"}
    elif eligible:
        ref = max(eligible, key=lambda i: (sizes[i], -i))
    if len(names) < 2:
        return {"finding": f"not compared: {by} has a single group" + (f" ({names[0]})" if names else "")}
    others = [i for i in eligible if i != ref] if eligible else []
    if not eligible or not others:
        counts = ", ".join(f"{name} {size}" for name, size in zip(names, sizes))
        return {"finding": f"not compared: fewer than two {by} groups with at least "
                           f"{max(2, min_group_size)} cases ({counts})"}
    means = [s.mean() for s in samples]
    other = max(others, key=lambda i: (abs(means[i] - means[ref]), -i))
    comparisons = len(others)
    alpha = 1.0 - confidence
    diff = group_difference(samples[ref], samples[other], resamples=resamples, permutations=permutations,
                            confidence=1.0 - alpha / comparisons, seed=seed)
    worse = None
    if better_high is not None and diff.difference != 0:
        worse = names[other] if (diff.difference < 0) == better_high else names[ref]
    p_value = min(1.0, diff.p_value * comparisons)
    return {"reference_group": names[ref], "compared_group": names[other], "worse_group": worse,
            "difference": diff.difference, "difference_ci_low": diff.low, "difference_ci_high": diff.high,
            "ci_level": 1.0 - alpha / comparisons, "p_value": p_value, "comparisons": comparisons,
            "finding": "gap" if p_value < alpha else "no evidence of a gap"}


def fairness_table(
    df: pd.DataFrame,
    *,
    metric: str,
    by: str,
    metadata: pd.DataFrame | None = None,
    reference: Any = None,
    higher_is_better: bool | None = None,
    resamples: int = 10000,
    permutations: int = 10000,
    confidence: float = 0.95,
    method: str = "percentile",
    min_group_size: int = 10,
    seed: int = 0,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Per-group means, the reference-vs-compared difference (CI, permutation p) and HexAI's measures.

    Parameters
    ----------
    df : pandas.DataFrame
        One row per case: metric columns, and the ``by`` column unless ``metadata`` is given.
        ``by="age_group"`` is derived with :func:`age_group` from an ``age`` column if needed.
    metric, by : str
        Metric column and group column.
    metadata : pandas.DataFrame, optional
        Group columns per case, merged on ``case_id`` (or ``case``), keeping every metric row.
    reference : optional
        The reference group (matched as text); default the largest group that can be judged.
    higher_is_better : bool, optional
        Direction of the metric, to name the worse group; default from its name (:func:`metric_direction`).
    resamples, permutations : int
        Bootstrap resamples (group CIs, difference CI) and label permutations (its p-value).
    confidence : float
        Coverage of every CI; ``alpha = 1 - confidence`` is the level of the test.
    method : {"percentile", "bca"}
        CI method of the group means (the difference CI is always percentile).
    min_group_size : int
        Groups with fewer usable cases (and never fewer than 2) are noted "too small to judge" and
        left out of the comparison.
    seed : int
        Seeds every random draw (independent streams for each group and the comparison).

    Returns
    -------
    groups : pandas.DataFrame
        Columns ``metric, attribute, group, n, n_nonfinite, mean, ci_low, ci_high, role, note``; one
        row per group in order (categorical order, else sorted), then ``"(missing)"`` if any case has
        no value for ``by``. ``role`` is ``"reference"``, ``"compared"`` or ``""``; ``note`` is ``""``,
        ``"too small to judge"`` or ``"metadata missing"``.
    summary : dict
        ``metric, attribute, n_groups, n_cases, n_missing_metadata, n_nonfinite, reference_group,
        compared_group, worse_group, difference, difference_ci_low, difference_ci_high, ci_level,
        p_value, comparisons, finding, ser, sd_groups, max_group, min_group, resamples, permutations,
        seed, warnings`` (list of str). Comparison values are None/NaN when not compared.
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
        if vals.size < max(2, min_group_size):
            note = "too small to judge"
            warnings.append(f"{by}={group}: {vals.size} case(s) with a finite {metric}, fewer than "
                            f"{max(2, min_group_size)}: too small to judge, left out of the comparison")
        ci = bootstrap_ci(vals, resamples=resamples, confidence=confidence, method=method,
                          seed=np.random.default_rng(group_seed))
        rows.append({"metric": metric, "attribute": by, "group": group, "n": int(vals.size),
                     "n_nonfinite": int(member.sum() - vals.size), "mean": ci.estimate,
                     "ci_low": ci.low, "ci_high": ci.high, "role": "", "note": note})
        samples.append(vals)
    if missing.any():
        vals = values_all[missing & finite]
        rows.append({"metric": metric, "attribute": by, "group": MISSING, "n": int(vals.size),
                     "n_nonfinite": int(missing.sum() - vals.size),
                     "mean": float(vals.mean()) if vals.size else np.nan, "ci_low": np.nan, "ci_high": np.nan,
                     "role": "", "note": "metadata missing"})
        warnings.append(f"{by}: {int(missing.sum())} case(s) without a value, reported as {MISSING!r} "
                        "and left out of the comparison")
    n_nonfinite = int((~finite).sum())
    if n_nonfinite:
        warnings.append(f"{metric}: {n_nonfinite} NaN or infinite value(s) left out")

    summary: dict[str, Any] = {
        "metric": metric, "attribute": by, "n_groups": 0, "n_cases": int(sum(s.size for s in samples)),
        "n_missing_metadata": int(missing.sum()), "n_nonfinite": n_nonfinite,
        **{key: None for key in ("reference_group", "compared_group", "worse_group")},
        **{key: np.nan for key in ("difference", "difference_ci_low", "difference_ci_high", "ci_level", "p_value")},
        "comparisons": 0, "finding": "", "ser": np.nan, "sd_groups": np.nan, "max_group": None, "min_group": None,
        "resamples": int(resamples), "permutations": int(permutations), "seed": seed, "warnings": warnings,
    }
    compared = [(g, s) for g, s in zip(order, samples) if s.size]
    summary["n_groups"] = len(compared)
    names = [g for g, _ in compared]
    direction = higher_is_better if higher_is_better is not None else metric_direction(metric)
    summary.update(_comparison(names, [s for _, s in compared], by=by, reference=reference,
                               min_group_size=min_group_size, better_high=direction, resamples=resamples,
                               permutations=permutations, confidence=confidence, seed=streams[1]))
    if summary["finding"].startswith("not compared"):
        warnings.append(f"{by}: {summary['finding']}")
    for row in rows:
        if row["group"] is not MISSING and row["group"] in (summary["reference_group"], summary["compared_group"]):
            row["role"] = "reference" if row["group"] == summary["reference_group"] else "compared"
    groups = pd.DataFrame(rows, columns=["metric", "attribute", "group", "n", "n_nonfinite", "mean",
                                         "ci_low", "ci_high", "role", "note"])
    if len(compared) < 2:
        return groups, summary

    means = np.array([s.mean() for _, s in compared])
    summary.update(max_group=names[int(np.argmax(means))], min_group=names[int(np.argmin(means))],
                   sd_groups=float(np.std(means)))
    if np.all((means >= 0) & (means <= 1)):
        errors = 1.0 - means
        with np.errstate(divide="ignore", invalid="ignore"):
            summary["ser"] = float(errors.max() / errors.min())
    else:
        warnings.append(f"{metric}: group means outside [0, 1], the skewed error ratio is undefined")
    return groups, summary


_COMPARISON = ["reference_group", "compared_group", "worse_group", "difference", "difference_ci_low",
               "difference_ci_high", "ci_level", "p_value", "comparisons", "finding", "ser", "sd_groups",
               "max_group", "min_group"]
REPORT_COLUMNS = ["metric", "attribute", "group", "n", "n_nonfinite", "mean", "ci_low", "ci_high", "role", "note",
                  *_COMPARISON, "warnings"]


def fairness_report(
    df: pd.DataFrame,
    *,
    metrics: Sequence[str],
    by: Sequence[str],
    metadata: pd.DataFrame | None = None,
    reference: Mapping[str, Any] | None = None,
    **options: Any,
) -> pd.DataFrame:
    """:func:`fairness_table` for every metric x attribute, stacked into one table (fairness.csv).

    Parameters
    ----------
    df, metadata
        As for :func:`fairness_table`.
    metrics, by : list of str
        Metric columns and group columns.
    reference : dict, optional
        Reference group per attribute, e.g. ``{"sex": "M"}`` (:func:`parse_reference` reads
        ``"sex=M,age_group=51-64"``); attributes not named use their largest group.
    **options
        ``resamples, permutations, confidence, method, min_group_size, seed`` of
        :func:`fairness_table`.

    Returns
    -------
    pandas.DataFrame
        One row per metric x attribute x group with the group columns of :func:`fairness_table`,
        then that attribute's comparison and measures (``reference_group, compared_group,
        worse_group, difference, difference_ci_low, difference_ci_high, ci_level, p_value,
        comparisons, finding, ser, sd_groups, max_group, min_group``) and ``warnings`` (joined with
        ``"; "``), repeated on each of its groups' rows.
    """
    reference = dict(reference or {})
    unknown = sorted(set(reference) - set(by))
    if unknown:
        raise ValueError(f"reference given for {', '.join(unknown)}, not among the --by attributes {', '.join(by)}")
    data = _merge(df, metadata)
    frames = []
    for metric in metrics:
        for attribute in by:
            groups, summary = fairness_table(data, metric=metric, by=attribute, reference=reference.get(attribute),
                                             **options)
            groups = groups.astype({"group": object})
            for key in _COMPARISON:
                groups[key] = summary[key]
            groups["warnings"] = "; ".join(summary["warnings"])
            frames.append(groups)
    if not frames:
        return pd.DataFrame(columns=REPORT_COLUMNS)
    with _warnings.catch_warnings():  # concat of frames with all-NaN columns
        _warnings.simplefilter("ignore", FutureWarning)
        return pd.concat(frames, ignore_index=True)[REPORT_COLUMNS]
