"""Write an evaluation: CSV tables, a JSON summary and one self-contained HTML report.

The HTML embeds its plots as PNG data URIs and loads nothing from the network, so it
opens offline and can be mailed as one file. Long tables are cut to their first rows with a line
naming the CSV that holds them all; the fairness section says in one sentence per label and
attribute what the comparison found (:func:`finding_sentence`). Distances carry the unit of the
per-case ``unit`` column ("mm" or "px") when there is one, mm otherwise.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from radseg.evaluate.run import Evaluation, metric_columns
from radseg.io.atomic import write_text_atomic

_DEFINITIONS = {
    "dice": "Dice = 2|P∩T| / (|P|+|T|)",
    "iou": "IoU = |P∩T| / |P∪T|",
    "hd": "Hausdorff distance (max of both directed maxima), {unit}",
    "hd95": "HD95: larger of the two directed 95th percentiles (MONAI's definition), {unit}",
    "assd": "average symmetric surface distance, {unit}",
    "nsd": "normalised surface Dice at the stated tolerance",
}
_DISTANCES = ("hd", "hd95", "assd", "masd")
_HEADLINE = ("dice", "iou", "hd95", "assd", "nsd")
TABLE_ROWS = 30  # longer tables show their first rows and say where the rest is


def distance_unit(table) -> str:
    """The unit of distances: the ``unit`` column's value ("mm" or "px"), mm when there is no column."""
    if table is None or "unit" not in getattr(table, "columns", ()):
        return "mm"
    units = sorted({str(u) for u in table["unit"].dropna().unique()} - {""})  # "": a ratio's summary row
    return units[0] if len(units) == 1 else ("mm" if not units else "mm or px (see the unit column)")


def finding_sentence(result, *, label: str = "", unit: str = "") -> str:
    """One plain sentence for a comparison (a :func:`~radseg.evaluate.fairness.fairness_table` summary
    or a fairness.csv row): ``"dice is 0.011 lower for sex=F than for sex=M (the reference) (95% CI
    0.004 to 0.018; permutation p=0.003): a gap, worse for sex=F."``. ``unit`` follows distances.
    """
    metric, by = str(result["metric"]), str(result["attribute"])
    subject = f"{label} {metric}" if label else metric
    finding = str(result.get("finding") or "")
    difference = result.get("difference")
    if finding.startswith("not compared") or difference is None or not np.isfinite(float(difference)):
        return f"{subject} by {by}: {finding or 'not compared'}."
    reference, compared, worse = result["reference_group"], result["compared_group"], result.get("worse_group")
    worse = None if worse is None or (isinstance(worse, float) and math.isnan(worse)) else worse
    low, high = float(result["difference_ci_low"]), float(result["difference_ci_high"])
    first, second, difference = compared, reference, float(difference)  # oriented as first - second
    if worse is not None and str(worse) == str(reference):
        first, second, difference, low, high = reference, compared, -difference, -high, -low
    word = "lower" if difference < 0 else "higher"
    if difference < 0:
        low, high = -high, -low
    tag = lambda group: f"{by}={group}" + (" (the reference)" if str(group) == str(reference) else "")  # noqa: E731
    suffix = f" {unit}" if unit and metric.lower() in _DISTANCES else ""
    comparisons = int(result.get("comparisons") or 1)
    p_value = float(result["p_value"])
    test = (f"permutation p={p_value:.2g}" if comparisons == 1 else
            f"Bonferroni-adjusted permutation p={p_value:.2g}, {comparisons} comparisons")
    verdict = ("a gap" + (f", worse for {by}={worse}" if worse is not None else "")) if finding == "gap" \
        else "no evidence of a gap"
    level = 100 * float(result.get("ci_level") or 0.95)
    return (f"{subject} is {abs(difference):.3g}{suffix} {word} for {tag(first)} than for {tag(second)} "
            f"({level:.3g}% CI {low:.3g} to {high:.3g}{suffix}; {test}): {verdict}.")


def write_outputs(evaluation: Evaluation, outdir: str | Path) -> list[Path]:
    """per_case.csv, summary.csv, fairness.csv (when asked), summary.json and report.html."""
    outdir = Path(outdir)
    written = []
    tables = {"per_case.csv": evaluation.per_case, "summary.csv": evaluation.summary}
    if evaluation.fairness is not None:
        tables["fairness.csv"] = evaluation.fairness
    for name, table in tables.items():
        write_text_atomic(outdir / name, table.to_csv(index=False))
        written.append(outdir / name)
    write_text_atomic(outdir / "summary.json", json.dumps(summary_json(evaluation), indent=2, allow_nan=False))
    write_text_atomic(outdir / "report.html", report_html(evaluation))
    return written + [outdir / "summary.json", outdir / "report.html"]


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, (np.floating, np.integer)):
        return _clean(value.item())
    return value


def summary_json(evaluation: Evaluation) -> dict[str, Any]:
    records = [{k: _clean(v) for k, v in row.items()} for row in evaluation.summary.to_dict("records")]
    out = {
        "settings": {k: (_clean(v) if not isinstance(v, dict) else {str(a): b for a, b in v.items()})
                     for k, v in evaluation.settings.items()},
        "cases": int(evaluation.per_case["case"].nunique()) if not evaluation.per_case.empty else 0,
        "summary": records,
        "unmatched_predictions": evaluation.unmatched_predictions,
        "unmatched_truths": evaluation.unmatched_truths,
        "failed": [{"case": c, "problem": p} for c, p in evaluation.failed],
        "warnings": [{"case": c, "problem": p} for c, p in evaluation.warnings],
    }
    if evaluation.fairness is not None:
        out["fairness"] = [{k: _clean(v) for k, v in row.items()} for row in evaluation.fairness.to_dict("records")]
    return out


def _figure_uri(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _box_strip(per_case, metric: str, *, group: str = "label_name", title: str = "") -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [(str(name), frame[metric].to_numpy(float)) for name, frame in per_case.groupby(group, sort=True)]
    groups = [(name, values[np.isfinite(values)]) for name, values in groups]
    figure, axis = plt.subplots(figsize=(max(3.5, 1.1 * len(groups) + 1.5), 3.2))
    data = [values for _, values in groups]
    if any(len(v) for v in data):
        axis.boxplot([v if len(v) else [np.nan] for v in data], showfliers=False)
        rng = np.random.default_rng(0)
        for position, values in enumerate(data, start=1):
            axis.scatter(position + rng.uniform(-0.12, 0.12, len(values)), values, s=9, alpha=0.6, color="#1f6fb2")
    axis.set_xticks(range(1, len(groups) + 1), [f"{n}\n(n={len(v)})" for n, v in groups], fontsize=8)
    axis.set_ylabel(metric)
    axis.set_title(title or metric, fontsize=10)
    axis.grid(axis="y", alpha=0.3)
    uri = _figure_uri(figure)
    plt.close(figure)
    return f'<img alt="{html.escape(metric)}" src="{uri}">'


def _worst_cases(evaluation: Evaluation, *, count: int = 6) -> list[str]:
    """The cases with the lowest mean Dice over their labels (case-level view of the worst)."""
    per_case = evaluation.per_case
    if per_case.empty or "dice" not in per_case.columns:
        return []
    means = per_case.groupby("case")["dice"].mean().dropna().sort_values(kind="stable")
    return [str(c) for c in means.index[:count]]


def _error_overlays(evaluation: Evaluation, cases: list[str]) -> str:
    """2D cases drawn as agreement maps: both (green), prediction only (red), truth only (blue)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from radseg.evaluate.cases import load_pair

    panels = []
    for case in cases:
        try:
            pred, truth, _ = load_pair(*evaluation.files[case])
        except Exception:  # the failure is already listed under Problems
            continue
        if truth.ndim == 2:
            panels.append((case, pred.array > 0, truth.array > 0, tuple(truth.spacing)))
    if not panels:
        return ""
    figure, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.6), squeeze=False)
    for axis, (case, pred, truth, spacing) in zip(axes[0], panels):
        rgb = np.full(truth.shape + (3,), 0.12)
        rgb[pred & truth] = (0.2, 0.75, 0.3)
        rgb[pred & ~truth] = (0.9, 0.2, 0.2)
        rgb[truth & ~pred] = (0.25, 0.45, 0.95)
        # extent in mm keeps the true aspect ratio of anisotropic pixels
        axis.imshow(rgb, extent=(0, truth.shape[1] * spacing[1], truth.shape[0] * spacing[0], 0),
                    interpolation="nearest")
        dice = evaluation.per_case.loc[evaluation.per_case["case"] == case, "dice"].mean()
        axis.set_title(f"{case}\nmean Dice {dice:.3f}", fontsize=9)
        axis.set_xticks([]), axis.set_yticks([])
    figure.suptitle("green: both   red: prediction only   blue: ground truth only", fontsize=9, y=1.06)
    uri = _figure_uri(figure)
    plt.close(figure)
    return f'<img alt="worst cases" src="{uri}">'


def _group_plots(evaluation: Evaluation, attributes: list[str]) -> list[str]:
    """Box/strip plots of the headline metrics per subgroup, one per label x attribute."""
    groups = evaluation.groups
    if groups is None or groups.empty:
        return []
    parts = []
    for attribute in [a for a in attributes if a in groups.columns]:
        frame = groups.assign(**{attribute: groups[attribute].astype(object).where(groups[attribute].notna(),
                                                                                     "(missing)").astype(str)})
        for name, per_label in frame.groupby("label_name", sort=True):
            for metric in [m for m in ("dice", "hd95") if m in per_label.columns]:
                parts.append(_box_strip(per_label, metric, group=attribute, title=f"{name}: {metric} by {attribute}"))
    return parts


def _table(frame, *, digits: int = 4, limit: int | None = TABLE_ROWS, source: str = "", note: str = "") -> str:
    """The frame as HTML; past ``limit`` rows only the first ones, and a line saying the table is cut."""
    if frame is None or frame.empty:
        return "<p>none</p>"
    shown = frame if limit is None or len(frame) <= limit else frame.head(limit)
    out = shown.to_html(index=False, float_format=lambda v: f"{v:.{digits}g}", na_rep="–", border=0,
                        classes="table", escape=True)
    if len(shown) < len(frame):
        note = (f"Table cut: {len(shown)} of {len(frame)} rows shown; {len(frame) - len(shown)} more rows in "
                f"{source}. " + note)
    return out + (f"<p class='cut'>{html.escape(note.strip())}</p>" if note else "")


def _headline_first(summary):
    if summary is None or summary.empty or "metric" not in summary.columns:
        return summary
    rank = {m: i for i, m in enumerate(_HEADLINE)}
    order = summary["metric"].map(lambda m: rank.get(m, len(rank)))
    return summary.assign(_order=order).sort_values("_order", kind="stable").drop(columns="_order")


def _attributes(evaluation: Evaluation) -> list[str]:
    by = [str(a) for a in evaluation.settings.get("by", [])]
    seen = [str(a) for a in evaluation.fairness["attribute"].dropna().unique()] if "attribute" in evaluation.fairness else []
    return by + [a for a in seen if a not in by]


def _fairness_section(evaluation: Evaluation, unit: str) -> list[str]:
    fairness = evaluation.fairness
    parts = ["<h2>Fairness by subgroup</h2>",
             "<p>For each attribute, the reference group (the largest unless one was named) is compared with "
             "the group whose mean lies farthest from it: the signed difference (compared minus reference), "
             "its bootstrap CI (cases resampled within each group) and a permutation test of the same "
             "difference; a gap is declared when p &lt; 0.05 (the CI then excludes 0). With more than two "
             "groups the p-value and CI are Bonferroni-adjusted for the comparisons. Groups under the minimum "
             "size are shown but not compared. ser = skewed error ratio max(1-s)/min(1-s); sd_groups = SD of "
             "the group means (HexAI's descriptive measures).</p>"]
    if fairness is None or fairness.empty:
        return parts + ["<p>none</p>"]
    metric = next((m for m in _HEADLINE if m in set(fairness["metric"])), fairness["metric"].iloc[0])
    keys = ["label_name", "metric", "attribute"] if "label_name" in fairness.columns else ["metric", "attribute"]
    comparisons = fairness.drop_duplicates(keys)
    columns = [c for c in ("label_name", "metric", "reference_group", "compared_group", "worse_group", "difference",
                           "difference_ci_low", "difference_ci_high", "p_value", "finding") if c in fairness.columns]
    for attribute in _attributes(evaluation):
        rows = comparisons[comparisons["attribute"].astype(str) == attribute]
        parts.append(f"<h3>By {html.escape(attribute)}</h3>")
        if rows.empty:
            parts.append(f"<p class='warn'>{html.escape(attribute)}: no comparison in fairness.csv.</p>")
            continue
        items = []
        for _, row in rows[rows["metric"] == metric].iterrows():
            sentence = finding_sentence(row, label=str(row.get("label_name", "") or ""), unit=unit)
            css = " class='warn'" if row["finding"] == "gap" else ""
            items.append(f"<li{css}>{html.escape(sentence)}</li>")
        parts.append("<ul>" + "".join(items) + "</ul>")
        headline = rows[rows["metric"].isin(["dice", "hd95"])][columns]
        parts.append(_table(headline, source="fairness.csv",
                            note=f"Dice and HD95 shown; all {len(rows)} comparisons by {attribute}, with every "
                                 "group's mean and CI, are in fairness.csv."))
        parts += _group_plots(evaluation, [attribute])
    return parts


def _problems(evaluation: Evaluation, limit: int = TABLE_ROWS) -> list[str]:
    problems = ([("unmatched prediction", p) for p in evaluation.unmatched_predictions]
                + [("unmatched ground truth", p) for p in evaluation.unmatched_truths]
                + [(f"failed: {c}", p) for c, p in evaluation.failed]
                + [(f"warning: {c}", p) for c, p in evaluation.warnings])
    if not problems:
        return []
    out = ["<h2>Problems</h2><ul class='warn'>" + "".join(
        f"<li>{html.escape(k)}: {html.escape(v)}</li>" for k, v in problems[:limit]) + "</ul>"]
    if len(problems) > limit:
        out.append(f"<p class='cut'>List cut: {limit} of {len(problems)} problems shown; "
                   f"{len(problems) - limit} more in summary.json.</p>")
    return out


def report_html(evaluation: Evaluation) -> str:
    per_case, summary = evaluation.per_case, evaluation.summary
    unit = distance_unit(per_case if per_case is not None and "unit" in per_case.columns else summary)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>radseg evaluation</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1200px}"
        ".table{border-collapse:collapse;font-size:13px}.table td,.table th{padding:3px 8px;"
        "border-bottom:1px solid #ddd;text-align:right}h2{margin-top:1.6em}.warn{color:#a40}"
        ".cut{font-size:12px;color:#555;font-style:italic}</style></head><body>",
        "<h1>radseg evaluation</h1>",
        f"<p>{per_case['case'].nunique() if not per_case.empty else 0} cases; "
        f"bootstrap {evaluation.settings.get('bootstrap_resamples')} resamples "
        f"({html.escape(str(evaluation.settings.get('ci_method')))}, seed {evaluation.settings.get('seed')}); "
        f"distances in {html.escape(unit)}.</p>",
        "<ul>" + "".join(f"<li><b>{k}</b>: {html.escape(v.format(unit=unit))}</li>" for k, v in _DEFINITIONS.items()
                         if not per_case.empty and k in per_case.columns) + "</ul>",
        "<h2>Summary (mean and 95% CI)</h2>", _table(_headline_first(summary), source="summary.csv"),
    ]
    if not per_case.empty:
        parts.append("<h2>Distribution per label</h2>")
        for metric in [m for m in _HEADLINE if m in per_case.columns]:
            parts.append(_box_strip(per_case, metric))
        if "dice" in per_case.columns:
            worst = per_case.sort_values("dice", kind="stable")
            parts += ["<h2>Worst cases by Dice</h2>", _table(worst, limit=10, source="per_case.csv"),
                      _error_overlays(evaluation, _worst_cases(evaluation))]
    if evaluation.fairness is not None:
        parts += _fairness_section(evaluation, unit)
    parts += _problems(evaluation)
    parts.append("</body></html>")
    return "\n".join(parts)


__all__ = ["write_outputs", "summary_json", "report_html", "metric_columns", "finding_sentence", "distance_unit"]
