"""``radseg evaluate``: per-case metrics over folders, summary with bootstrap CIs, fairness by subgroup.

Summary statistics use the finite values of each metric; NaN (metric undefined, e.g.
both masks empty) and inf (a surface distance to an empty mask) are counted in
``n_nan`` / ``n_inf`` columns instead of being silently averaged or dropped.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from radseg.errors import ReadError, RadsegError
from radseg.evaluate.metrics import ID_COLUMNS, label_rows, per_label_metrics

ProgressCallback = Callable[[str], None]


@dataclass
class Evaluation:
    """Everything ``radseg evaluate`` produces (tables are pandas DataFrames)."""

    per_case: Any
    summary: Any
    fairness: Any = None
    unmatched_predictions: list[str] = field(default_factory=list)
    unmatched_truths: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    files: dict[str, tuple[Path, Path]] = field(default_factory=dict)  # case -> (prediction, truth)
    groups: Any = None  # per_case joined with the metadata's --by columns


def parse_labels(text: str | None) -> dict[int, str]:
    """``"1=femur,2=tibia"`` -> ``{1: "femur", 2: "tibia"}`` (bare numbers get ``label_<n>``)."""
    table: dict[int, str] = {}
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        value, _, name = item.partition("=")
        try:
            number = int(value)
        except ValueError:
            raise ValueError(f"--labels item {item!r}: expected VALUE=NAME with an integer value") from None
        if number <= 0:
            raise ValueError(f"--labels item {item!r}: label values are positive (0 is background)")
        table[number] = name.strip() or f"label_{number}"
    return table


def _evaluate_case(job: tuple[str, Path, Path, dict[int, str], dict[str, Any]]) -> dict[str, Any]:
    """Worker: metrics for one case, or its error (never raises, so one bad case cannot stop a batch)."""
    from radseg.evaluate.cases import read_pair

    case, prediction, truth, labels, options = job
    options = dict(options)
    threads = options.pop("threads", -1)
    try:
        kind, *read = read_pair(prediction, truth)
        if kind == "classes":  # multi-label: each class on its own, overlaps allowed
            pairs, ref = read
            rows = []
            for name, (value, p, t) in pairs.items():
                if labels and value not in labels:
                    continue
                metrics = per_label_metrics(p.astype(np.uint8), t.astype(np.uint8), labels=[1],
                                            spacing=tuple(ref.spacing), workers=threads, **options)
                rows.append({"case": case, "label": value, "label_name": labels.get(value, name), **metrics[1]})
            return {"case": case, "rows": rows, "warnings": [],
                    "spacing_known": bool(ref.metadata.get("spacing_known", True))}
        pred, ref, warnings = read
        names = {**ref.metadata.get("label_names", {}), **pred.metadata.get("label_names", {})}
        rows = label_rows(case, pred.array, ref.array, labels=labels or None, names=names, spacing=tuple(ref.spacing),
                          workers=threads, **options)
        return {"case": case, "rows": rows, "warnings": warnings,
                "spacing_known": bool(ref.metadata.get("spacing_known", True))}
    except RadsegError as exc:
        return {"case": case, "error": str(exc)}
    except Exception as exc:  # a bug or an odd file: report it with the case, keep the batch going
        return {"case": case, "error": f"{type(exc).__name__}: {exc}"}


def evaluate_folders(
    predictions: str | Path,
    truths: str | Path,
    *,
    labels: dict[int, str] | None = None,
    metadata: str | Path | None = None,
    by: Sequence[str] = (),
    resamples: int = 10000,
    ci_method: str = "percentile",
    nsd_tolerance: float | None = None,
    hd_percentile: float = 95,
    seed: int = 0,
    workers: int | None = None,
    on_progress: ProgressCallback | None = None,
    jobs_total: Callable[[int], None] | None = None,
) -> Evaluation:
    """Evaluate every prediction against the ground truth with the same case name."""
    import pandas as pd

    from radseg.evaluate.cases import pair_cases

    pairing = pair_cases(predictions, truths)
    if not pairing.pairs:
        raise ReadError(predictions, f"no case names in common with {truths} "
                                     f"({len(pairing.only_prediction)} predictions, {len(pairing.only_truth)} truths)")
    options = {"nsd_tolerance": nsd_tolerance, "hd_percentile": hd_percentile}
    table = load_metadata(metadata, by) if metadata is not None and by else None  # fail before the work
    workers = max(1, min(workers or os.cpu_count() or 1, len(pairing.pairs)))
    # One process per core already: keep the KD-tree queries single-threaded inside each.
    options["threads"] = 1 if workers > 1 else -1
    jobs = [(case, p, t, dict(labels or {}), options) for case, p, t in pairing.pairs]
    if jobs_total:
        jobs_total(len(jobs))
    results = []
    if workers == 1:
        for job in jobs:
            results.append(_evaluate_case(job))
            if on_progress:
                on_progress(job[0])
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for result in pool.map(_evaluate_case, jobs, chunksize=1):
                results.append(result)
                if on_progress:
                    on_progress(result["case"])
    evaluation = Evaluation(per_case=None, summary=None, files={case: (p, t) for case, p, t in pairing.pairs},
                            unmatched_predictions=[str(p) for p in pairing.only_prediction],
                            unmatched_truths=[str(p) for p in pairing.only_truth])
    rows = []
    for result in results:
        if "error" in result:
            evaluation.failed.append((result["case"], result["error"]))
            continue
        rows.extend(result["rows"])
        evaluation.warnings.extend((result["case"], w) for w in result["warnings"])
        if not result["spacing_known"]:
            evaluation.warnings.append((result["case"], "no physical pixel size: distances are in pixels, not mm"))
    evaluation.per_case = pd.DataFrame(rows)
    evaluation.summary = summarise(evaluation.per_case, resamples=resamples, method=ci_method, seed=seed)
    if table is not None:
        evaluation.groups = evaluation.per_case.merge(table[["case", *by]], on="case", how="left")
        evaluation.fairness = fairness_by_label(evaluation.per_case, table, by=list(by), resamples=resamples,
                                                seed=seed)
    evaluation.settings = {
        "predictions": str(predictions), "truths": str(truths), "labels": labels or {},
        "bootstrap_resamples": resamples, "ci_method": ci_method, "seed": seed,
        "nsd_tolerance_mm": nsd_tolerance, "hd_percentile": hd_percentile, "by": list(by),
    }
    return evaluation


def metric_columns(table) -> list[str]:
    return [c for c in table.columns if c not in ID_COLUMNS and np.issubdtype(table[c].dtype, np.number)]


def summarise(per_case, *, resamples: int, method: str, seed: int):
    """One row per label and metric: mean with bootstrap CI over the finite per-case values."""
    import pandas as pd

    from radseg.evaluate.bootstrap import bootstrap_ci

    rows = []
    if per_case.empty:
        return pd.DataFrame(rows)
    for (label, name), group in per_case.groupby(["label", "label_name"], sort=True):
        for metric in metric_columns(per_case):
            values = group[metric].to_numpy(dtype=float)
            finite = values[np.isfinite(values)]
            row = {"label": label, "label_name": name, "metric": metric, "n": int(finite.size),
                   "n_nan": int(np.isnan(values).sum()), "n_inf": int(np.isinf(values).sum())}
            if finite.size:
                ci = bootstrap_ci(finite, resamples=resamples, method=method, seed=seed)
                row.update(mean=float(finite.mean()), sd=float(finite.std(ddof=1)) if finite.size > 1 else 0.0,
                           median=float(np.median(finite)), ci_low=float(ci.low), ci_high=float(ci.high))
            rows.append(row)
    return pd.DataFrame(rows)


def read_metadata(path: str | Path):
    """Subject metadata (CSV or XLSX) indexed by case name (column ``case``, ``case_id`` or the first one)."""
    import pandas as pd

    path = Path(path)
    try:
        table = pd.read_excel(path) if path.suffix.lower() in (".xlsx", ".xls") else pd.read_csv(path)
    except Exception as exc:
        raise ReadError(path, f"cannot read the metadata table ({exc})") from exc
    key = next((c for c in ("case", "case_id", "id", "subject", "image_id") if c in table.columns), table.columns[0])
    table = table.rename(columns={key: "case"})
    table["case"] = table["case"].astype(str)
    return table


def load_metadata(path: str | Path, by: Sequence[str]):
    """The metadata table with the ``by`` columns checked (``age_group`` derived from ``age`` if absent)."""
    table = read_metadata(path)
    if "age_group" in by and "age_group" not in table.columns and "age" in table.columns:
        from radseg.evaluate.fairness import age_group

        table["age_group"] = age_group(table["age"]).astype(object)  # HexAI's groups from the age in years
    missing = [column for column in by if column not in table.columns]
    if missing:
        raise ReadError(path, f"no column(s) {', '.join(missing)}; columns are {', '.join(table.columns)}")
    return table


def fairness_by_label(per_case, table, *, by: list[str], resamples: int, seed: int):
    """Fairness measures for every label x metric x attribute (see :mod:`radseg.evaluate.fairness`)."""
    import pandas as pd

    from radseg.evaluate.fairness import fairness_report

    frames = []
    metrics = [m for m in metric_columns(per_case) if m != "label"]
    for (label, name), group in per_case.groupby(["label", "label_name"], sort=True):
        merged = group.drop(columns=["label", "label_name"]).merge(table, on="case", how="left")
        report = fairness_report(merged, metrics=metrics, by=by, resamples=resamples, seed=seed)
        report.insert(0, "label_name", name)
        report.insert(0, "label", label)
        frames.append(report)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
