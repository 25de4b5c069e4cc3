"""``radseg evaluate``: per-case metrics over folders, summary with bootstrap CIs, fairness by subgroup.

Summary statistics use the finite values of each metric; NaN (metric undefined, e.g.
both masks empty) and inf (a surface distance to an empty mask) are counted in
``n_nan`` / ``n_inf`` columns instead of being silently averaged or dropped. Every case
read appears: a case where a label of the dataset's label set (``--labels``, else every
value found in any case or named by the files) is absent from both masks gets a NaN row.

Units: the per-case and summary tables have a ``unit`` column, ``mm`` or ``px``: the length
unit of hd, hd95, assd and nsd's tolerance (volume_difference is in unit² or unit³). It is
``px`` when either file of a case has no physical pixel size (PNG/JPEG, a radiograph without
spacing tags): the unknown wins. Cases in px and in mm are summarised separately, never
averaged together.

``resamples=0`` (``--bootstrap 0``) means no confidence intervals: ``ci_low``/``ci_high``
are NaN. Options are checked by :func:`check_options` before any case is read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from radseg.errors import ReadError, RadsegError
from radseg.scale.engine import EngineOptions, map_jobs
from radseg.scale.parts import select_part
from radseg.evaluate.metrics import ID_COLUMNS, label_rows, per_label_metrics

#: Columns of the per-case table that are neither ids nor metrics.
UNIT = "unit"
#: Ratios: their summary rows carry no unit (the others: the case's length unit, mm or px).
UNITLESS = frozenset({"dice", "iou", "precision", "sensitivity", "relative_volume_difference", "nsd"})

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
        unknown = read[1].metadata.get("no_pixel_size", [])  # read_pair: the file(s) without a pixel size
        unit = "px" if unknown else "mm"  # the unknown wins
        if kind == "classes":  # multi-label: each class on its own, overlaps allowed
            pairs, ref = read
            rows = []
            for name, (value, p, t) in pairs.items():
                if labels and value not in labels:
                    continue
                metrics = per_label_metrics(p.astype(np.uint8), t.astype(np.uint8), labels=[1],
                                            spacing=tuple(ref.spacing), workers=threads, **options)
                rows.append({"case": case, "label": value, "label_name": labels.get(value, name), UNIT: unit,
                             **metrics[1]})
            return {"case": case, "rows": rows, "warnings": [], "unit": unit, "unknown": unknown, "ndim": ref.ndim,
                    "spacing": tuple(ref.spacing), "names": {}}
        pred, ref, warnings = read
        names = {**ref.metadata.get("label_names", {}), **pred.metadata.get("label_names", {})}
        rows = label_rows(case, pred.array, ref.array, labels=labels or None, names=names, spacing=tuple(ref.spacing),
                          workers=threads, **options)
        for row in rows:
            row[UNIT] = unit
        return {"case": case, "rows": rows, "warnings": warnings, "unit": unit, "unknown": unknown, "ndim": ref.ndim,
                "spacing": tuple(ref.spacing), "names": {int(k): str(v) for k, v in names.items() if int(k) != 0}}
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
    reference: dict[str, str] | None = None,
    resamples: int = 10000,
    ci_method: str = "percentile",
    nsd_tolerance: float | None = None,
    hd_percentile: float = 95,
    seed: int = 0,
    workers: int | None = None,
    on_progress: ProgressCallback | None = None,
    jobs_total: Callable[[int], None] | None = None,
    part: tuple[int, int] | None = None,
    engine: EngineOptions | None = None,
) -> Evaluation:
    """Evaluate every prediction against the ground truth with the same case name.

    ``part=(K, N)`` scores part K of N of the case pairs (by case name; the statistics then describe
    that part only). ``engine`` runs the per-case metrics locally (``workers`` processes) or on Ray."""
    import pandas as pd

    from radseg.evaluate.cases import pair_cases

    check_options(resamples=resamples, by=by, hd_percentile=hd_percentile, nsd_tolerance=nsd_tolerance)
    pairing = pair_cases(predictions, truths)
    if not pairing.pairs:
        raise ReadError(predictions, f"no case names in common with {truths} "
                                     f"({len(pairing.only_prediction)} predictions, {len(pairing.only_truth)} truths)")
    options = {"nsd_tolerance": nsd_tolerance, "hd_percentile": hd_percentile}
    table = load_metadata(metadata, by) if metadata is not None and by else None  # fail before the work
    pairs = select_part(pairing.pairs, part, key=lambda pair: pair[0])
    engine = engine or EngineOptions(workers=workers)  # the CLI's EngineOptions carry --workers already
    # One process per core already: keep the KD-tree queries single-threaded inside each.
    options["threads"] = 1 if engine.worker_count(len(pairs)) > 1 or engine.engine != "local" else -1
    jobs = [(case, p, t, dict(labels or {}), options) for case, p, t in pairs]
    if jobs_total:
        jobs_total(len(jobs))
    results: list[Any] = [None] * len(jobs)
    for index, result in map_jobs(_evaluate_case, jobs, engine):
        results[index] = result  # in case order, whichever engine finished them
        if on_progress:
            on_progress(result["case"])
    evaluation = Evaluation(per_case=None, summary=None, files={case: (p, t) for case, p, t in pairs},
                            unmatched_predictions=[str(p) for p in pairing.only_prediction],
                            unmatched_truths=[str(p) for p in pairing.only_truth])
    rows = []
    good = [r for r in results if "error" not in r]
    evaluation.failed = [(r["case"], r["error"]) for r in results if "error" in r]
    for result in good:
        evaluation.warnings.extend((result["case"], w) for w in result["warnings"])
        if result["unit"] == "px":
            evaluation.warnings.append((result["case"], f"no physical pixel size in {' and '.join(result['unknown'])}: "
                                                        "distances are in pixels (unit px), not mm"))
    rows = _complete_rows(good, labels, options)
    evaluation.per_case = pd.DataFrame(rows)
    add_statistics(evaluation, table, by=by, reference=reference, resamples=resamples, ci_method=ci_method, seed=seed)
    evaluation.settings = {
        "predictions": str(predictions), "truths": str(truths), "labels": labels or {},
        "bootstrap_resamples": resamples, "ci_method": ci_method, "seed": seed,
        "nsd_tolerance_mm": nsd_tolerance, "hd_percentile": hd_percentile, "by": list(by),
        "part": f"{part[0]}/{part[1]}" if part else None,
    }
    if part:
        evaluation.warnings.append((f"part {part[0]}/{part[1]}", f"{len(pairs)} of {len(pairing.pairs)} cases: the "
                                    f"statistics describe this part only; {PART_MERGE_HINT}"))
    return evaluation


#: What a --part evaluation tells its user about the whole (radseg.evaluate.merge).
PART_MERGE_HINT = "`radseg evaluate --merge PART_DIRS -o OUT` gives the whole evaluation"


def add_statistics(evaluation: Evaluation, table, *, by: Sequence[str], reference: dict[str, str] | None,
                   resamples: int, ci_method: str, seed: int) -> None:
    """The summary (and, with a metadata ``table``, the groups and fairness) of ``evaluation.per_case``."""
    evaluation.summary = summarise(evaluation.per_case, resamples=resamples, method=ci_method, seed=seed)
    if table is not None:
        evaluation.groups = evaluation.per_case.merge(table[["case", *by]], on="case", how="left")
        evaluation.fairness = fairness_by_label(evaluation.per_case, table, by=list(by), resamples=resamples,
                                                seed=seed, reference=reference)


def check_options(*, resamples: int, by: Sequence[str] = (), hd_percentile: float = 95,
                  nsd_tolerance: float | None = None) -> None:
    """Refuse impossible options before any case is read (``ValueError`` saying which and why)."""
    if int(resamples) < 0:
        raise ValueError(f"--bootstrap {resamples}: the number of resamples is 0 (no confidence intervals) or more")
    if int(resamples) == 0 and by:
        raise ValueError("--bootstrap 0 with --by: the fairness audit needs bootstrap resamples (use 1000 or more)")
    if not 0 < float(hd_percentile) <= 100:
        raise ValueError(f"HD percentile {hd_percentile}: must be in (0, 100]")
    if nsd_tolerance is not None and not float(nsd_tolerance) > 0:
        raise ValueError(f"--nsd-tolerance {nsd_tolerance}: must be positive")


def _complete_rows(results: list[dict[str, Any]], labels: dict[int, str] | None,
                   options: dict[str, Any]) -> list[dict[str, Any]]:
    """Every case's rows, with a NaN row (the empty-mask values) for each label of the dataset's
    label set that the case lacks because both its masks are empty there: no case disappears."""
    names: dict[int, str] = {}
    for result in results:
        names.update(result["names"])
        names.update({row["label"]: row["label_name"] for row in result["rows"]})
    if labels:
        names = {**names, **labels}
        names = {v: names[v] for v in labels}
    rows: list[dict[str, Any]] = []
    opts = {k: v for k, v in options.items() if k != "threads"}
    for result in results:
        have = {row["label"] for row in result["rows"]}
        rows.extend(result["rows"])
        missing = sorted(v for v in names if v not in have)
        if not missing:
            continue
        empty = np.zeros((1,) * result["ndim"], np.uint8)
        metrics = per_label_metrics(empty, empty, labels=missing, spacing=result["spacing"], **opts)
        rows.extend({"case": result["case"], "label": v, "label_name": names[v], UNIT: result["unit"], **metrics[v]}
                    for v in missing)
    order = {result["case"]: i for i, result in enumerate(results)}
    return sorted(rows, key=lambda row: (order[row["case"]], row["label"]))


def metric_columns(table) -> list[str]:
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    return [c for c in table.columns if c not in ID_COLUMNS and c != UNIT
            and is_numeric_dtype(table[c].dtype) and not is_bool_dtype(table[c].dtype)]


def summarise(per_case, *, resamples: int, method: str, seed: int):
    """One row per label, unit and metric: mean with bootstrap CI over the finite per-case values
    (``resamples=0``: no CI, ``ci_low``/``ci_high`` NaN). Cases in px and mm are never pooled."""
    import pandas as pd

    from radseg.evaluate.bootstrap import bootstrap_ci

    rows = []
    if per_case.empty:
        return pd.DataFrame(rows)
    if UNIT not in per_case.columns:
        per_case = per_case.assign(**{UNIT: "mm"})
    for (label, name, unit), group in per_case.groupby(["label", "label_name", UNIT], sort=True):
        for metric in metric_columns(per_case):
            values = group[metric].to_numpy(dtype=float)
            finite = values[np.isfinite(values)]
            row = {"label": label, "label_name": name, "metric": metric, UNIT: "" if metric in UNITLESS else unit,
                   "n": int(finite.size),
                   "n_nan": int(np.isnan(values).sum()), "n_inf": int(np.isinf(values).sum())}
            if finite.size:
                low = high = float("nan")
                if resamples > 0:
                    ci = bootstrap_ci(finite, resamples=resamples, method=method, seed=seed)
                    low, high = float(ci.low), float(ci.high)
                row.update(mean=float(finite.mean()), sd=float(finite.std(ddof=1)) if finite.size > 1 else 0.0,
                           median=float(np.median(finite)), ci_low=low, ci_high=high)
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


def fairness_by_label(per_case, table, *, by: list[str], resamples: int, seed: int,
                      reference: dict[str, str] | None = None):
    """Fairness measures for every label x metric x attribute (see :mod:`radseg.evaluate.fairness`)."""
    import pandas as pd

    from radseg.evaluate.fairness import fairness_report

    frames = []
    metrics = [m for m in metric_columns(per_case) if m != "label"]
    for (label, name), group in per_case.groupby(["label", "label_name"], sort=True):
        merged = group.drop(columns=["label", "label_name"]).merge(table, on="case", how="left")
        report = fairness_report(merged, metrics=metrics, by=by, resamples=resamples, seed=seed, reference=reference)
        report.insert(0, "label_name", name)
        report.insert(0, "label", label)
        frames.append(report)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
