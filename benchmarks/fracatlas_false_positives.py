"""Where the FracAtlas screener's false positives come from: the holdout only (training images).

    .venv/bin/python benchmarks/fracatlas_false_positives.py --model fracatlas \\
        --data runs/fracatlas5/prepared --sizes 512,704

Questions to answer before a round spends CPU hours on specificity, each on the model's held-out
training images (its manifest's holdout; the valid split is never read):

1. Which normal images the stored operating point flags, by body part and view, beside the
   sensitivity per body part.
2. Whether another summary of the same probability map separates fractured from normal images
   better than the stored image score: image AUC with a stratified bootstrap CI for the highest
   pixel, the 99.9th percentile, the summed probability (expected fracture area, px), the area
   at >= 0.5 (px) and the number of components at >= 0.5. If none does, a learned image score over them has little to work with.
3. Whether scale test-time augmentation would help: the image score's AUC when the image is
   fitted to another size than the one the model was trained at (``--sizes``), and averaged.

The model's stored scoring is used throughout (flip TTA, window, threshold); a model without one
(a candidate) is scored with ``--scoring`` and flagged at the threshold that reaches sensitivity 0.85
on these same images (a diagnostic, not an operating point). Writes
``benchmarks/results/fracatlas_false_positives.md`` and a montage of the highest-scoring normal
images (contour: probability >= 0.5; cross: where the image score is taken).
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from fracatlas_baseline import ROOT, SENSITIVITY, _fmt, publish

HERE = Path(__file__).resolve().parent


def _summaries(probability: np.ndarray, window: int) -> dict[str, float]:
    from scipy import ndimage

    from radseg.evaluate.detection import image_score

    return {"image score": image_score(probability, window=window),
            "highest pixel": float(probability.max()),
            "99.9th percentile": float(np.quantile(probability, 0.999)),
            "summed probability (px)": float(probability.sum()),
            "area >= 0.5 (px)": float((probability >= 0.5).sum()),
            "components >= 0.5": float(ndimage.label(probability >= 0.5)[1])}


def _maps(predictor, cases, size: int | None) -> dict[str, np.ndarray]:
    """Each case's foreground probability on its image grid, the image fitted to ``size`` (None: as trained)."""
    stored = predictor.bundle.preprocessing
    if size is not None:
        predictor.bundle.preprocessing = dataclasses.replace(stored, size=(size,) * stored.spatial_dims)
    try:
        out = {}
        for case in cases:
            probs, grid = predictor.probabilities(case.image)
            out[case.case_id] = np.asarray(grid.restore_channel(probs[1] if probs.shape[0] > 1 else probs[0]), np.float32)
            print(f"  {size or 'trained'} px: {len(out)}/{len(cases)}", end="\r", flush=True)
        print()
        return out
    finally:
        predictor.bundle.preprocessing = stored


def _auc_row(name: str, scores, truth) -> list[str]:
    from radseg.evaluate.detection import roc_auc_ci

    ci = roc_auc_ci(np.asarray(scores, float), truth)
    return [name, f"{ci.estimate:.3f} ({ci.low:.3f}-{ci.high:.3f})"]


def _montage(table: pd.DataFrame, cases: dict, maps: dict, window: int, path: Path, count: int = 6) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy import ndimage

    top = table[~table.finding].sort_values("score", ascending=False).head(count)
    fig, axes = plt.subplots(1, len(top), figsize=(3 * len(top), 3.6))
    for ax, row in zip(np.atleast_1d(axes), top.itertuples()):
        image, probability = np.asarray(cases[row.case].image.array, float).squeeze(), maps[row.case]
        ax.imshow(image, cmap="gray")
        ax.contour(probability, [0.5], colors="r", linewidths=0.8)
        y, x = np.unravel_index(np.argmax(ndimage.uniform_filter(probability, window, mode="nearest")), probability.shape)
        ax.plot(x, y, "y+", markersize=10)
        ax.set_title(f"{row.case}\n{row.body_part}, score {row.score:.2f}", fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=60, bbox_inches="tight")
    plt.close(fig)
    tmp.replace(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="fracatlas", help="a model with an operating point and a holdout")
    parser.add_argument("--data", type=Path, default=ROOT / "runs" / "fracatlas5" / "prepared")
    parser.add_argument("--scoring", default="", help="TTA,WINDOW such as 'tta,15' instead of the stored scoring "
                        "(needed for a model without an operating point)")
    parser.add_argument("--sizes", default="", help="other fit sizes to weigh as scale TTA, e.g. 704 or 384,704")
    parser.add_argument("--results", type=Path, default=HERE / "results" / "fracatlas_false_positives.md")
    args = parser.parse_args()

    from radseg.datasets.prepared import open_prepared
    from radseg.evaluate.operating_point import choose_operating_point, model_operating_point
    from radseg.infer.predictor import Predictor
    from radseg.workflows.detection import holdout_cases

    probe = Predictor.load(args.model, device="cpu")
    point = model_operating_point(probe.bundle.manifest)
    if point is None and not args.scoring:
        raise SystemExit(f"{args.model}: no operating point stored; give --scoring TTA,WINDOW (the threshold is then "
                         f"chosen on these images for sensitivity {SENSITIVITY})")
    if args.scoring:  # TTA,WINDOW[,RANKING] (the candidates script's form; the ranking does not matter here)
        parts = [part.strip() for part in args.scoring.split(",")]
        if len(parts) not in (2, 3) or parts[0] not in ("tta", "none") or not parts[1].isdigit():
            raise SystemExit(f"--scoring {args.scoring!r}: expected TTA,WINDOW such as 'tta,15' or 'none,5'")
        point = {"tta": parts[0] == "tta", "window": int(parts[1])}
    predictor = Predictor.load(args.model, device="cpu", tta=bool(point.get("tta")))
    window = int(point.get("window", 1))
    dataset = open_prepared(args.data)
    cases = {c.case_id: c for c in holdout_cases(predictor, dataset, args.data)}
    maps = _maps(predictor, list(cases.values()), None)
    table = pd.DataFrame([{"case": case_id, "finding": bool(np.any(cases[case_id].label.array > 0)),
                           "body_part": cases[case_id].metadata.get("body_part", "?"),
                           "view": cases[case_id].metadata.get("view", "?")} for case_id in maps])
    summaries = pd.DataFrame([_summaries(probability, window) for probability in maps.values()])
    table["score"] = summaries["image score"]
    truth = table["finding"].to_numpy()
    if "threshold" in point:
        threshold, origin = float(point["threshold"]), "the stored operating point"
    else:  # a diagnostic only: met on these images by construction
        threshold = choose_operating_point(table["score"], truth, sensitivity=SENSITIVITY)["threshold"]
        origin = f"the threshold for sensitivity {SENSITIVITY} chosen on these images"
    table["flagged"] = table["score"] >= threshold

    command = shlex.join([".venv/bin/python", "benchmarks/fracatlas_false_positives.py", *sys.argv[1:]])
    lines = ["# Where the FracAtlas screener's false positives come from (holdout, training images)", "",
             f"Command: `{command}`", "",
             f"Model `{args.model}`, scored with flip TTA {'on' if point.get('tta') else 'off'}, a {window} px window; "
             f"flagged: image score >= {threshold:.4f} ({origin}). The model's {len(table)} held-out "
             f"training images ({int(truth.sum())} fractured, {int((~truth).sum())} normal); valid is not read.", "",
             "## 1. Who is flagged, by body part and view", "",
             "| group | normal images | flagged (1 - specificity) | mean score, normal | fractured images | "
             "flagged (sensitivity) |", "| --- | --- | --- | --- | --- | --- |"]
    for column in ("body_part", "view"):
        for value, group in table.groupby(column):
            normal, fractured = group[~group.finding], group[group.finding]
            lines.append(f"| {column} = {value} | {len(normal)} | "
                         f"{int(normal.flagged.sum())} ({_fmt(normal.flagged.mean() if len(normal) else None, 2)}) | "
                         f"{_fmt(normal.score.mean() if len(normal) else None, 2)} | {len(fractured)} | "
                         f"{_fmt(fractured.flagged.mean() if len(fractured) else None, 2)} |")
    montage = args.results.with_suffix(".png")
    _montage(table, cases, maps, window, montage)
    lines += ["", f"The highest-scoring normal images: `{montage.name}` (red: probability >= 0.5; yellow cross: where "
              "the image score is taken).", "",
              "## 2. Other summaries of the same probability map", "", "| image score | AUC (95% CI) |", "| --- | --- |"]
    for name in summaries:  # the first is the score flagged above
        lines.append("| " + " | ".join(_auc_row(name, summaries[name], truth)) + " |")

    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    if sizes:
        trained = predictor.bundle.preprocessing.size
        lines += ["", "## 3. Scale test-time augmentation", "",
                  f"The image fitted to another size than the trained {trained[0]} px, its image score (the same window) "
                  "alone and its probability averaged with the trained size's.", "",
                  "| fit size | AUC alone (95% CI) | AUC averaged with the trained size (95% CI) |", "| --- | --- | --- |"]
        from radseg.evaluate.detection import image_score

        ids = list(maps)
        for size in sizes:
            other = _maps(predictor, list(cases.values()), size)
            alone = [image_score(other[k], window=window) for k in ids]
            mixed = [image_score((other[k] + maps[k]) / 2, window=window) for k in ids]
            lines.append(f"| {size} px | {_auc_row('', alone, truth)[1]} | {_auc_row('', mixed, truth)[1]} |")
    for case in cases.values():
        case.unload()
    publish(lines, args.results)


if __name__ == "__main__":
    main()
