"""FracAtlas candidates compared on the holdout only: which weights to ship, decided before valid is looked at.

    .venv/bin/python benchmarks/fracatlas_candidates.py [--scoring tta,5,mean] \\
        --candidate shipped=fracatlas --candidate hard-negatives=runs/fracatlas/train3/model \\
        --average "average=fracatlas,runs/fracatlas/train3/model" --note "..."

Every candidate is scored by ``radseg evaluate-detection --split holdout`` with ``--scoring`` (flip TTA,
image-score window, detection ranking), else the first candidate's stored operating point's, so they differ
in weights only. Each candidate's held-out cases come from its own manifest; they must be the same
images for all, or the comparison stops. ``--average NAME=A,B`` adds the mean of two bundles' weights
(same network; a "model soup" of two runs from one start) as a candidate; ``--ensemble NAME=A,B,...``
adds the ensemble of those models (``radseg models ensemble``: their probabilities averaged). The rule, fixed
before scoring: the highest holdout mask AP50 (the baseline's, the default), or with ``--rule mask_AP50+auc``
the highest mask AP50 + image AUC (for a lever aimed at the image score); the winner is the one to score on
valid and ship with ``fracatlas_baseline.py --skip-train --run ... --ship``; the other figures are shown beside it.
Writes ``benchmarks/results/fracatlas_candidates.md``; never touches the valid split.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import pandas as pd

from fracatlas_baseline import RADSEG, ROOT, SENSITIVITY, _fmt, _run, publish

HERE = Path(__file__).resolve().parent
#: How the winner is picked: the highest sum of these holdout figures (name the rule before scoring).
RULES = {"mask_AP50": ("mask_AP50",), "mask_AP50+auc": ("mask_AP50", "auc")}
COLUMNS = ("mask_AP50", "box_AP50", "auc", "dice", "precision", "recall")


def _average(name: str, pair: str, work: Path) -> Path:
    """A bundle holding the mean of two bundles' weights, saved under WORK/NAME/model."""
    from radseg.models.bundle import load_bundle

    first, second = (p.strip() for p in pair.split(","))
    a, b = load_bundle(first), load_bundle(second)
    if a.state_dict.keys() != b.state_dict.keys() or a.architecture != b.architecture:
        raise SystemExit(f"--average {name}: {first} and {second} are not the same network")
    b.state_dict = {k: (a.state_dict[k].float() + b.state_dict[k].float()).div(2).to(b.state_dict[k].dtype)
                    if b.state_dict[k].is_floating_point() else b.state_dict[k] for k in b.state_dict}
    manifest = dict(b.manifest or {})
    manifest.pop("operating_point", None)  # chosen for other weights
    manifest["weights_averaged"] = [first, second]
    b.manifest = manifest
    return b.save(work / name / "model")


def _scoring(text: str) -> dict:
    """'tta,5,mean' -> the operating-point fields the scoring reads."""
    try:
        tta, window, ranking = (part.strip() for part in text.split(","))
        if tta not in ("tta", "none") or ranking not in ("max", "mean"):
            raise ValueError
        return {"tta": tta == "tta", "window": int(window), "instance_score": ranking}
    except ValueError:
        raise SystemExit(f"--scoring {text!r}: expected TTA,WINDOW,RANKING such as 'tta,5,mean' or 'none,15,max'") from None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candidate", action="append", default=[], help="NAME=MODEL (a folder, .zip or shipped name)")
    parser.add_argument("--average", action="append", default=[], help="NAME=MODEL_A,MODEL_B: their mean weights")
    parser.add_argument("--ensemble", action="append", default=[], help="NAME=MODEL_A,MODEL_B,...: their ensemble")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "fracatlas")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--note", default="", help="how the candidates were trained (into the results)")
    parser.add_argument("--scoring", default=None,
                        help="scoring for all, e.g. 'tta,5,mean' (flip TTA or none, image-score window in px, detection "
                             "ranking); default: the first candidate's operating point")
    parser.add_argument("--rule", choices=sorted(RULES), default="mask_AP50",
                        help="the winner: highest holdout mask AP50 (default), or mask AP50 + image AUC")
    parser.add_argument("--results", type=Path, default=HERE / "results" / "fracatlas_candidates.md")
    args = parser.parse_args()
    models = dict(c.split("=", 1) for c in args.candidate)
    for spec in args.average:
        name, pair = spec.split("=", 1)
        models[name] = str(_average(name, pair, args.work))
    commands = []
    for spec in args.ensemble:
        name, members = spec.split("=", 1)
        target = args.work / name / "model.zip"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.unlink(missing_ok=True)
        commands.append([*RADSEG, "models", "ensemble", *members.split(","), "-o", str(target), "--no-onnx"])
        _run(commands[-1])
        models[name] = str(target)
    if len(models) < 2:
        raise SystemExit("give two candidates or more")

    from radseg.evaluate.operating_point import model_operating_point
    from radseg.models.bundle import load_bundle

    first = next(iter(models.values()))
    point = _scoring(args.scoring) if args.scoring else model_operating_point(load_bundle(first, weights=False).manifest)
    if point is None:
        raise SystemExit(f"{first}: the first candidate carries no operating point; give --scoring (used for all)")
    scoring = [*(["--tta"] if point.get("tta") else ["--no-tta"]), "--window", str(point.get("window", 5)),
               "--instance-score", str(point.get("instance_score", "max"))]
    rows, cases = [], {}
    for name, model in models.items():
        out = args.work / f"candidate-{name}"
        cmd = [*RADSEG, "evaluate-detection", "-m", model, "--data", str(args.work / "prepared"), "--split", "holdout",
               "--threshold", "0.5", "--sensitivity", str(SENSITIVITY), "--device", args.device, "-q", "-o", str(out),
               *scoring]
        commands.append(cmd)
        seconds = _run(cmd)
        summary = json.loads((out / "summary.json").read_text())
        cases[name] = sorted(pd.read_csv(out / "per_case.csv")["case"])
        here = summary.get("operating_point_here") or {}
        rows.append({"candidate": name, "model": model, **{k: summary.get(k) for k in COLUMNS},
                     "specificity": here.get("specificity"), "sensitivity": here.get("sensitivity"), "seconds": seconds})
    if len({tuple(c) for c in cases.values()}) != 1:
        raise SystemExit("the candidates hold out different images: their holdout figures cannot be compared")
    unranked = [r["candidate"] for r in rows if any(r[k] is None or r[k] != r[k] for k in RULES[args.rule])]
    if unranked:
        raise SystemExit(f"--rule {args.rule}: no figure for {', '.join(unranked)} (an AUC needs normal images in the holdout)")
    best = max(rows, key=lambda r: sum(r[k] for k in RULES[args.rule]))
    n = len(next(iter(cases.values())))
    source = f"--scoring {args.scoring}" if args.scoring else "the first candidate's stored settings"
    lines = ["# FracAtlas candidates on the holdout (training images none of them trained on); valid not looked at",
             "", f"{time.strftime('%Y-%m-%d %H:%M')}; {n} held-out train images, the same for every candidate "
             f"(checked). Scoring for all: {source} ({' '.join(scoring)}).", "",
             "Commands:", ""]
    lines += [f"    {shlex.join(c).replace(sys.executable, '.venv/bin/python')}" for c in commands]
    if args.average:
        lines += ["", "Averaged weights: " + "; ".join(f"`{s}`" for s in args.average) + " (`--average`)."]
    if args.note:
        lines += ["", args.note]
    lines += ["", f"| candidate | mask AP50 | box AP50 | AUC | Dice | precision | recall | specificity at sensitivity >= "
              f"{SENSITIVITY} |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        mark = "**" if r is best else ""
        auc = f"{mark}{_fmt(r['auc'])}{mark}" if "auc" in RULES[args.rule] else _fmt(r["auc"])
        lines.append(f"| {mark}{r['candidate']}{mark} | {mark}{_fmt(r['mask_AP50'])}{mark} | {_fmt(r['box_AP50'])} | "
                     f"{auc} | {_fmt(r['dice'])} | {_fmt(r['precision'])} | {_fmt(r['recall'])} | "
                     f"{_fmt(r['specificity'])} (sensitivity {_fmt(r['sensitivity'])}) |")
    lines += ["", f"By the rule (highest holdout {args.rule.replace('auc', 'image AUC')}, fixed before scoring): "
              f"**{best['candidate']}** (`{best['model']}`). "
              f"With {n} images the differences of a few hundredths are within the holdout's noise; "
              "precision and recall: instances at probability >= 0.5, IoU >= 0.5."]
    publish(lines, args.results)


if __name__ == "__main__":
    main()
