"""The tables and report of ``radseg benchmark``: CSV, JSON, a paper-ready Markdown table, one HTML page.

Files (each written to a temporary name and renamed)::

    per_case.csv   one row per model, case and label (the held-out scores)
    summary.csv    mean, 95% CI, n, n_nan, n_inf per model, label and metric
    paired.csv     every pair of models: mean(B - A) on the same cases, CI, p, Holm p, verdict
    subgroups.csv  with --by: Dice per model and subgroup
    runs.csv       per (model, fold): parameters, training and inference time, why training stopped
    benchmark.json all of the above, and the settings
    benchmark.md   the table for a paper, the paired comparisons, and the caveats
    report.html    the same, with a forest plot of the paired differences (self-contained, offline)
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import numpy as np

from radseg.evaluate.benchmark_table import paired_table, subgroup_table, summary_table
from radseg.io.atomic import atomic_path, write_text_atomic

__all__ = ["BenchmarkTables", "make_tables", "write_benchmark", "caveats", "markdown"]

SMALL_SAMPLE = 30  # held-out cases below which the report warns that CIs are wide
PAPER_METRICS = ("dice", "hd95")  # the paired comparisons benchmark.md shows (all of them: paired.csv)


class BenchmarkTables:
    def __init__(self, per_case, runs, summary, paired, subgroups, settings: dict[str, Any]) -> None:
        self.per_case, self.runs, self.summary, self.paired, self.subgroups = per_case, runs, summary, paired, subgroups
        self.settings = settings


def make_tables(per_case, runs, *, by=(), ci: str = "percentile", resamples: int = 10000, permutations: int = 10000,
                seed: int = 0, settings: dict[str, Any] | None = None) -> BenchmarkTables:
    summary = summary_table(per_case, ci=ci, resamples=resamples, seed=seed)
    paired = paired_table(per_case, permutations=permutations, seed=seed)
    subgroups = subgroup_table(per_case, list(by), ci=ci, resamples=resamples, seed=seed) if by else None
    settings = {**(settings or {}), "ci": ci, "test": "sign-flip permutation", "permutations": permutations,
                "resamples": resamples, "seed": seed, "by": list(by),
                "multiple_comparisons": "Holm, over the pairs of one label and metric"}
    return BenchmarkTables(per_case, runs, summary, paired, subgroups, settings)


def _fmt(value: float, digits: int = 3) -> str:
    return "–" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def _cell(row, digits: int) -> str:
    text = f"{_fmt(row['mean'], digits)} [{_fmt(row['ci_low'], digits)}, {_fmt(row['ci_high'], digits)}]"
    return text + (f" ({row['n_inf']} inf)" if row.get("n_inf") else "")


def _model_rows(tables: BenchmarkTables) -> dict[str, dict[str, Any]]:
    runs = tables.runs
    out = {}
    for name, group in runs.groupby("architecture", sort=False):
        train = group["train_seconds"].astype(float)
        out[name] = {"parameters": int(group["parameters"].iloc[0]),
                     "train_minutes": float(train.mean() / 60) if train.notna().any() else float("nan"),
                     "inference_s": float(group["inference_seconds_per_case"].astype(float).mean()),
                     "time_limited": int((group["stopped"] == "time-limit").sum()), "runs": len(group)}
    return out


def caveats(tables: BenchmarkTables) -> list[str]:
    """Plain sentences a reader must see before trusting the table."""
    per_case, notes = tables.per_case, []
    n_cases = per_case["case"].nunique()
    patients = per_case["patient"].nunique() if "patient" in per_case.columns else n_cases
    if n_cases < SMALL_SAMPLE or patients < SMALL_SAMPLE:
        notes.append(f"Only {n_cases} held-out cases from {patients} patients: the confidence intervals are wide and "
                     "small differences cannot be told apart; read 'no evidence of a difference' as 'not shown', "
                     "not as 'equal'.")
    if patients < n_cases:
        notes.append(f"{n_cases} cases come from {patients} patients: CIs resample patients and the paired test flips "
                     "signs per patient, because a patient's cases are not independent evidence.")
    for name, row in _model_rows(tables).items():
        if row["time_limited"]:
            notes.append(f"{name}: training stopped at the time limit in {row['time_limited']} of {row['runs']} "
                         "run(s), so its scores are those of a budget-limited model, not a converged one.")
    if "trained_here" in tables.runs.columns and not tables.runs["trained_here"].astype(bool).all():
        names = sorted(set(tables.runs.loc[~tables.runs["trained_here"].astype(bool), "architecture"]))
        notes.append(f"{', '.join(names)}: given as trained bundles, not trained under this protocol (their own "
                     "data, budget and seed); only the held-out cases are shared.")
    inf = tables.summary[(tables.summary["n_inf"] > 0)]
    for _, row in inf.drop_duplicates(["architecture", "label_name"]).iterrows():
        notes.append(f"{row['architecture']}: {row['label_name']} distances are infinite on {row['n_inf']} case(s) "
                     "(nothing predicted where the truth has it, or the reverse): left out of the distance means "
                     "(n_inf), scored at the image diagonal in the paired comparisons (n_penalised).")
    notes.append("Each model was trained once per fold with one seed: the CIs cover the choice of cases, not the "
                 "spread between training runs.")
    if "px" in set(per_case.get("unit", [])):
        notes.append("The images have no physical pixel size: distances are in pixels (px), not mm.")
    return notes


def markdown(tables: BenchmarkTables) -> str:
    """The paper table (mean [95% CI] per model and label), the paired comparisons and the caveats."""
    models = _model_rows(tables)
    summary, lines = tables.summary, []
    for (label, name, unit), group in summary.groupby(["label", "label_name", "unit"], sort=True):
        metrics = [m for m in ("dice", "iou", "hd95", "assd") if m in set(group["metric"])]
        head = [f"{m.upper()} ({unit})" if m in ("hd95", "assd") else m.capitalize() if m == "dice" else m.upper()
                for m in metrics]
        lines += [f"### {name} (label {label})", "",
                  "| model | " + " | ".join(head) + " | parameters | training (min) | inference (s/case) |",
                  "|---" * (len(head) + 4) + "|"]
        for arch in dict.fromkeys(group["architecture"]):
            cells = []
            for metric in metrics:
                row = group[(group["architecture"] == arch) & (group["metric"] == metric)].iloc[0]
                cells.append(_cell(row, 1 if metric in ("hd95", "assd") and unit == "px" else 3))
            info = models.get(arch, {})
            lines.append(f"| {arch} | " + " | ".join(cells) + f" | {info.get('parameters', 0) / 1e6:.2f} M | "
                         f"{_fmt(info.get('train_minutes'), 1)} | {_fmt(info.get('inference_s'), 2)} |")
        lines.append("")
    paired = tables.paired
    if paired is not None and not paired.empty:
        shown = paired[paired["metric"].isin(PAPER_METRICS)]
        paired = shown if not shown.empty else paired
        lines += ["### Paired comparisons (B - A on the same cases)", "",
                  "Dice and HD95 here; every metric's comparisons are in paired.csv and report.html.", "",
                  "Test: sign-flip permutation of the mean paired difference, signs flipped per patient "
                  "(two-sided; all sign patterns up to 16 patients). 95% CI: that test inverted, so it excludes 0 "
                  "exactly when p < 0.05 (unbounded when too few patients can bound it). p (Holm): adjusted over "
                  "the pairs of one label and metric; the verdict uses it.", "",
                  "| label | metric | A | B | cases | B - A [95% CI] | p | p (Holm) | verdict |", "|---" * 9 + "|"]
        for _, row in paired.iterrows():
            counts = f"{row['n']} ({row['patients']} patients)" if row["patients"] != row["n"] else f"{row['n']}"
            counts += f", {row['n_dropped']} dropped" if row["n_dropped"] else ""
            counts += f", {row['n_penalised']} inf scored at the diagonal" if row.get("n_penalised") else ""
            metric = f"{row['metric']} ({row['unit']})" if row["metric"] in ("hd95", "assd", "hd") else row["metric"]
            lines.append(f"| {row['label_name']} | {metric} | {row['a']} | {row['b']} | {counts} | "
                         f"{_fmt(row['difference'], 4)} {_interval(row['ci_low'], row['ci_high'])} | "
                         f"{_p(row['p_value'])} | {_p(row['p_holm'])} | {row['verdict']} |")
        lines.append("")
    lines += _subgroup_lines(tables.subgroups)
    notes = caveats(tables)
    if notes:
        lines += ["### Caveats", "", *[f"- {n}" for n in notes], ""]
    return "\n".join(lines)


def _subgroup_lines(subgroups) -> list[str]:
    """Dice per model and subgroup (``--by``), mean [95% CI] (n)."""
    if subgroups is None or subgroups.empty:
        return []
    lines = []
    for (attribute, name), part in subgroups.groupby(["attribute", "label_name"], sort=False):
        groups = list(dict.fromkeys(part["group"].astype(str)))
        lines += [f"### {part['metric'].iloc[0].capitalize()} by {attribute}: {name}", "",
                  "| model | " + " | ".join(groups) + " |", "|---" * (len(groups) + 1) + "|"]
        for arch, rows in part.groupby("architecture", sort=False):
            cells = {str(r["group"]): f"{_cell(r, 3)} ({r['n']})" for _, r in rows.iterrows()}
            lines.append(f"| {arch} | " + " | ".join(cells.get(g, "–") for g in groups) + " |")
        lines.append("")
    return lines


def _interval(low: float, high: float) -> str:
    if np.isinf(low) or np.isinf(high):
        return "[unbounded: too few cases]"
    return f"[{_fmt(low, 4)}, {_fmt(high, 4)}]"


def _p(value: float) -> str:
    if value is None or not np.isfinite(value):
        return "–"
    return f"{value:.4f}" if value >= 1e-4 else "<0.0001"


def forest_plot(paired, metric: str = "dice"):
    """A matplotlib Figure: each pair's mean(B - A) with its 95% CI, filled when Holm p < 0.05."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = paired[(paired["metric"] == metric) & np.isfinite(paired["difference"])]
    fig, ax = plt.subplots(figsize=(7, 0.45 * max(len(rows), 2) + 1.2))
    finite = rows[["ci_low", "ci_high", "difference"]].to_numpy(dtype=float)
    finite = finite[np.isfinite(finite)]
    span = (finite.min(), finite.max()) if finite.size else (-1.0, 1.0)
    pad = 0.1 * (span[1] - span[0] or 1.0)
    labels = []
    for i, (_, row) in enumerate(rows.iloc[::-1].iterrows()):
        significant = np.isfinite(row["p_holm"]) and row["p_holm"] < 0.05
        low = row["ci_low"] if np.isfinite(row["ci_low"]) else span[0] - pad
        high = row["ci_high"] if np.isfinite(row["ci_high"]) else span[1] + pad
        ax.plot([low, high], [i, i], color="#333", ls="-" if np.isfinite(row["ci_low"] + row["ci_high"]) else ":")
        ax.plot([row["difference"]], [i], "o", color="#333", markerfacecolor="#333" if significant else "white")
        unit = f" ({row['unit']})" if metric in ("hd95", "assd", "hd") else ""
        bounded = "" if np.isfinite(row["ci_low"] + row["ci_high"]) else " [CI unbounded]"
        labels.append(f"{row['label_name']}{unit}: {row['b']} - {row['a']}{bounded}")
    ax.axvline(0.0, color="#a40", lw=1, ls="--")
    ax.set_yticks(range(len(labels)), labels)
    from radseg.evaluate.fairness import metric_direction

    better = {True: "right: B better", False: "left: B better"}.get(metric_direction(metric), "")
    ax.set_xlabel(f"paired difference in {metric} (B - A), 95% CI; {better}; filled: Holm p < 0.05")
    fig.tight_layout()
    return fig


def report_html(tables: BenchmarkTables) -> str:
    from radseg.evaluate.report import _figure_uri, _table

    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>radseg benchmark</title>",
             "<style>body{font-family:sans-serif;margin:2em;max-width:1200px}.table{border-collapse:collapse;"
             "font-size:13px}.table td,.table th{padding:3px 8px;border-bottom:1px solid #ddd;text-align:right}"
             ".warn{color:#a40}</style></head><body><h1>radseg benchmark</h1>",
             f"<p>{tables.per_case['case'].nunique()} held-out cases; {html.escape(_protocol(tables.settings))}</p>"]
    parts += [f"<p class='warn'>{html.escape(n)}</p>" for n in caveats(tables)]
    parts += ["<h2>Models (mean and 95% CI)</h2>", _table(tables.summary, limit=None)]
    if tables.paired is not None and not tables.paired.empty:
        parts.append("<h2>Paired comparisons</h2>")
        for metric in [m for m in ("dice", "hd95") if m in set(tables.paired["metric"])]:
            fig = forest_plot(tables.paired, metric)
            parts.append(f"<img alt='forest plot of paired {metric} differences' src='{_figure_uri(fig)}'>")
            import matplotlib.pyplot as plt

            plt.close(fig)
        parts.append(_table(tables.paired, limit=None))
    if tables.subgroups is not None:
        parts += ["<h2>Subgroups</h2>", _table(tables.subgroups, limit=None)]
    parts += ["<h2>Runs</h2>", _table(tables.runs, limit=None), "</body></html>"]
    return "\n".join(parts)


def _protocol(settings: dict[str, Any]) -> str:
    folds = settings.get("folds")
    split = f"{folds}-fold patient-grouped cross-validation" if folds else "the dataset's own split"
    ci = ("HemSeg-200's bootstrap protocol (5,000 resamples, positions 125/4875)" if settings.get("ci") == "hemseg"
          else f"{settings.get('ci')} bootstrap ({settings.get('resamples')} resamples)")
    return (f"{split}, seed {settings.get('seed')}; CIs of model means: {ci}, patients resampled when a patient has "
            "several cases; paired test: sign-flip permutation per patient with its inverted CI, Holm-adjusted.")


def _records(frame) -> list[dict[str, Any]]:
    from radseg.evaluate.report import _clean

    return [] if frame is None else [{k: _clean(v) for k, v in row.items()} for row in frame.to_dict("records")]


def write_benchmark(tables: BenchmarkTables, outdir: str | Path) -> list[Path]:
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in ("per_case", "summary", "paired", "subgroups", "runs"):
        frame = getattr(tables, name)
        if frame is None:
            continue
        with atomic_path(out / f"{name}.csv") as tmp:
            frame.to_csv(tmp, index=False)
        written.append(out / f"{name}.csv")
    document = {"settings": tables.settings, "caveats": caveats(tables), "summary": _records(tables.summary),
                "paired": _records(tables.paired), "subgroups": _records(tables.subgroups), "runs": _records(tables.runs)}
    for name, text in (("benchmark.json", json.dumps(document, indent=2)), ("benchmark.md", markdown(tables)),
                       ("report.html", report_html(tables))):
        write_text_atomic(out / name, text)
        written.append(out / name)
    return written
