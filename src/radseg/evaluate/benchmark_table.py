"""The tables of ``radseg benchmark``: per-model means with CIs, paired model-vs-model differences.

Input is one per-case table (pandas) with columns ``architecture``, ``case``, ``patient``,
``label``, ``label_name``, ``unit`` and metric columns (``dice``, ``iou``, ``hd95``, ``assd`` ...),
one row per model, case and label (cross-validation: each case is held out once, so it
appears once per model), and optionally ``max_distance`` (the image diagonal in the unit).

Per-model summaries use the finite values of a metric and count the rest: ``n_nan``
(undefined, e.g. both masks empty) and ``n_inf`` (a distance to an empty mask). Their CI
resamples **patients** with all their cases (:func:`radseg.evaluate.paired.patient_bootstrap_ci`)
whenever a patient has several cases; with one case per patient it is the chosen method
(percentile, BCa, or HemSeg-200's exact protocol), and the ``ci_method`` column says which.

Paired comparisons flip signs per patient (:mod:`radseg.evaluate.paired`). For a distance,
a case where a model delivers an infinite value (it predicted nothing, or something where
the truth has nothing) is scored at ``max_distance`` (the largest distance the image allows)
instead of being dropped: dropping it would favour the model that fails; ``n_penalised``
says how many values were so replaced. Cases without a finite value in both models
otherwise (NaN: both masks empty) are dropped and counted in ``n_dropped``.
"""

from __future__ import annotations

from itertools import combinations
from typing import Sequence

import numpy as np

from radseg.evaluate.bootstrap import bootstrap_ci, hemseg_protocol_ci
from radseg.evaluate.fairness import metric_direction
from radseg.evaluate.paired import holm, paired_difference, patient_bootstrap_ci, verdict

__all__ = ["HEADLINE", "CI_METHODS", "summary_table", "paired_table", "subgroup_table", "check_unique"]

HEADLINE = ("dice", "iou", "hd95", "assd")
CI_METHODS = ("percentile", "bca", "hemseg")
KEYS = ("label", "label_name", "unit")


def _clustered(groups: np.ndarray) -> bool:
    return groups.size != np.unique(groups).size


def _ci(values: np.ndarray, groups: np.ndarray, method: str, resamples: int, seed: int) -> tuple[float, float, str]:
    """(low, high, method used) over the finite values; patients resampled when they repeat."""
    finite = np.isfinite(values)
    values, groups = values[finite], groups[finite]
    if resamples <= 0 or values.size == 0:
        return float("nan"), float("nan"), "none"
    if _clustered(groups):
        low, high = patient_bootstrap_ci(values, groups, resamples=resamples, seed=seed)
        return low, high, "patient bootstrap (percentile)"
    if method == "hemseg":
        ci = hemseg_protocol_ci(values)  # 5,000 resamples, RandomState(47), sorted positions 125/4875
    else:
        ci = bootstrap_ci(values, resamples=resamples, method=method, seed=seed)
    return float(ci.low), float(ci.high), method


def _statistics(group, metric: str, ci: str, resamples: int, seed: int) -> dict:
    """n, mean, sd, median and CI of ``metric`` over the group's finite values; NaN and inf counted."""
    values = group[metric].to_numpy(dtype=float)
    finite = values[np.isfinite(values)]
    low, high, used = _ci(values, _patients(group), ci, resamples, seed)
    return {"n": int(finite.size), "mean": float(finite.mean()) if finite.size else float("nan"),
            "sd": float(finite.std(ddof=1)) if finite.size > 1 else float("nan"),
            "median": float(np.median(finite)) if finite.size else float("nan"),
            "ci_low": low, "ci_high": high, "ci_method": used,
            "n_nan": int(np.isnan(values).sum()), "n_inf": int(np.isinf(values).sum())}


def _patients(frame) -> np.ndarray:
    if "patient" not in frame.columns:
        return frame["case"].astype(str).to_numpy()
    patient = frame["patient"].astype(object)
    return np.where(patient.isna(), "case:" + frame["case"].astype(str), patient.astype(str)).astype(str)


def check_unique(per_case) -> None:
    """A (model, case, label) row twice would be counted twice: refuse it."""
    duplicated = per_case.duplicated(["architecture", "case", "label"])
    if duplicated.any():
        first = per_case[duplicated].iloc[0]
        raise ValueError(f"per-case table has {int(duplicated.sum())} repeated row(s), e.g. "
                         f"{first['architecture']} / {first['case']} / label {first['label']}")


def _metrics(per_case, metrics: Sequence[str] | None) -> list[str]:
    return [m for m in (metrics or HEADLINE) if m in per_case.columns]


def summary_table(per_case, *, metrics: Sequence[str] | None = None, ci: str = "percentile",
                  resamples: int = 10000, seed: int = 0):
    """One row per architecture, label and metric: n, mean, sd, median, 95% CI, n_nan, n_inf."""
    import pandas as pd

    if ci not in CI_METHODS:
        raise ValueError(f"ci {ci!r}: choose one of {', '.join(CI_METHODS)}")
    check_unique(per_case)
    rows = []
    order = list(dict.fromkeys(per_case["architecture"]))
    for (arch, label, name, unit), group in per_case.groupby(["architecture", *KEYS], sort=False):
        for metric in _metrics(per_case, metrics):
            rows.append({"architecture": arch, "label": label, "label_name": name, "unit": unit, "metric": metric,
                         **_statistics(group, metric, ci, resamples, seed)})
    table = pd.DataFrame(rows)
    if not table.empty:
        metric_order = {m: i for i, m in enumerate(_metrics(per_case, metrics))}
        table["_order"] = table["architecture"].map({a: i for i, a in enumerate(order)})
        table["_metric"] = table["metric"].map(metric_order)
        table = table.sort_values(["label", "_metric", "_order"], kind="stable").drop(columns=["_order", "_metric"])
    return table.reset_index(drop=True)


def _wide(group, column: str):
    return group.pivot_table(index="case", columns="architecture", values=column, aggfunc="first", dropna=False)


def paired_table(per_case, *, metrics: Sequence[str] | None = None, permutations: int = 10000, seed: int = 0,
                 alpha: float = 0.05):
    """Every pair of architectures on every label and metric: ``mean(B - A)`` on the same cases.

    Columns: label, metric, unit, a, b, n (cases with values in both), patients (sign-flip
    units), n_dropped, n_penalised (infinite distances scored at ``max_distance``), difference,
    ci_low, ci_high (the sign-flip test inverted, so it agrees with p_value), p_value, p_holm
    (Holm over the pairs of one label and metric), verdict (from p_holm; see
    :mod:`radseg.evaluate.paired`).
    """
    import pandas as pd

    check_unique(per_case)
    archs = list(dict.fromkeys(per_case["architecture"]))
    rows = []
    for (label, name, unit), group in per_case.groupby(list(KEYS), sort=True):
        patient_of = dict(zip(group["case"].astype(str), _patients(group)))
        penalty = _wide(group, "max_distance") if "max_distance" in group.columns else None
        for metric in _metrics(per_case, metrics):
            table = _wide(group, metric)
            groups = np.array([patient_of[str(c)] for c in table.index])
            distance = metric_direction(metric) is False
            family = []
            for index, (a, b) in enumerate(combinations([x for x in archs if x in table.columns], 2)):
                va, vb = table[a].to_numpy(dtype=float), table[b].to_numpy(dtype=float)
                penalised = 0
                if distance and penalty is not None:
                    cap = penalty.max(axis=1).reindex(table.index).to_numpy(dtype=float)
                    penalised = int(np.isinf(va).sum() + np.isinf(vb).sum())
                    va, vb = np.where(np.isinf(va), cap, va), np.where(np.isinf(vb), cap, vb)
                result = paired_difference(va, vb, groups=groups, permutations=permutations, seed=[seed, index],
                                           confidence=1 - alpha)
                family.append({"label": label, "label_name": name, "unit": unit, "metric": metric, "a": a, "b": b,
                               "n": result.n, "patients": result.patients, "n_dropped": int(len(va) - result.n),
                               "n_penalised": penalised, "difference": result.difference, "ci_low": result.low,
                               "ci_high": result.high, "p_value": result.p_value})
            adjusted = holm([row["p_value"] for row in family])
            direction = metric_direction(metric)
            for row, p in zip(family, adjusted):
                row["p_holm"] = float(p)
                row["verdict"] = verdict(row["difference"], float(p), higher_is_better=direction, a=row["a"],
                                         b=row["b"], alpha=alpha)
            rows.extend(family)
    return pd.DataFrame(rows)


def subgroup_table(per_case, by: Sequence[str], *, metric: str = "dice", ci: str = "percentile",
                   resamples: int = 10000, seed: int = 0):
    """Mean ``metric`` with CI per architecture, label and subgroup of each ``by`` column."""
    import pandas as pd

    rows = []
    for attribute in by:
        if attribute not in per_case.columns:
            raise ValueError(f"--by {attribute}: the cases have no such column "
                             f"(columns: {', '.join(map(str, per_case.columns))})")
        keys = ["architecture", *KEYS, attribute]
        for (arch, label, name, unit, group_value), group in per_case.groupby(keys, sort=True, dropna=False):
            stats = _statistics(group, metric, ci, resamples, seed)
            rows.append({"architecture": arch, "label": label, "label_name": name, "unit": unit,
                         "attribute": attribute, "group": group_value, "metric": metric,
                         **{k: stats[k] for k in ("n", "mean", "ci_low", "ci_high", "ci_method")}})
    return pd.DataFrame(rows)
