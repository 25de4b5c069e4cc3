"""Does a random holdout flatter the FracAtlas model? Held-out images split by whether a training image
has a neighbouring id.

    .venv/bin/python benchmarks/fracatlas_holdout_leak.py --model runs/fracatlas/ensemble/shipped-dc0c30f55be4.zip \\
        --scores holdout=runs/fracatlas/holdout-chosen/per_case.csv --scores valid=runs/fracatlas/eval-val/per_case.csv

FracAtlas's official splits are consecutive id ranges (train 19-3294, test 3297-3713, valid 3733-4376)
and neighbouring ids are often one patient's several views. ``radseg train --holdout`` draws its
held-out images at random from the train split, so many of them have a neighbour (id within
``--distance``) among the training images. For each ``--scores`` table (an ``evaluate-detection``
per_case.csv) this prints, for images with and without such a neighbour, the image AUC with its
stratified bootstrap CI, the mean image score and the mean Dice of fractured images. The training ids
come from the model's manifest: an ensemble made before 2026-12-06 22:00 lists none, so give one of its
members (they share the split; the shipped ensemble's first member above). Writes
``benchmarks/results/fracatlas_holdout_leak.md``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent


def _number(case_id: str) -> int:
    from radseg.datasets.fracatlas import image_number

    number = image_number(case_id)
    if number is None:
        raise SystemExit(f"{case_id}: no number in the case id; this check needs numbered ids")
    return number


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="the model whose training cases (manifest) are checked")
    parser.add_argument("--scores", action="append", required=True, help="NAME=per_case.csv of evaluate-detection")
    parser.add_argument("--distance", type=int, default=2, help="ids this close count as neighbours")
    parser.add_argument("--results", type=Path, default=HERE / "results" / "fracatlas_holdout_leak.md")
    args = parser.parse_args()

    from fracatlas_baseline import publish
    from radseg.evaluate.detection import roc_auc_ci
    from radseg.models.bundle import load_bundle

    manifest = load_bundle(args.model, weights=False).manifest or {}
    trained = (manifest.get("data") or {}).get("train_cases")
    if not trained:  # an ensemble made before its training cases were recorded: give one of its members
        raise SystemExit(f"{args.model}: its manifest lists no training cases (data.train_cases)")
    numbers = {_number(c) for c in trained}
    lines = ["# FracAtlas: held-out images with and without a neighbouring id in training", "",
             f"{time.strftime('%Y-%m-%d %H:%M')}. Command:", "",
             f"    {shlex.join([sys.executable, *sys.argv]).replace(sys.executable, '.venv/bin/python')}", "",
             f"Training images from `{args.model}`'s manifest: {len(trained)} (the scored model must share its split, "
             "as an ensemble's members do). Neighbour: a training image whose id is within "
             f"{args.distance} of the image's.", "",
             "| scored on | neighbour in training | images | fractured | image AUC (95% CI) | mean image score | "
             "Dice, fractured |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for spec in args.scores:
        name, path = spec.split("=", 1)
        table = pd.read_csv(path)
        table["neighbour"] = [any(_number(c) + d in numbers for d in range(-args.distance, args.distance + 1) if d)
                              for c in table["case"]]
        for flag, group in table.groupby("neighbour"):
            fractured = group[group["finding"]]
            if group["finding"].nunique() == 2:
                ci = roc_auc_ci(group["image_score"], group["finding"], resamples=2000, seed=0)
                auc = f"{ci.estimate:.3f} ({ci.low:.3f} - {ci.high:.3f})"
            else:
                auc = "n/a (one class)"
            dice = f"{fractured['dice'].mean():.3f}" if len(fractured) else "n/a"
            lines.append(f"| {name} | {'yes' if flag else 'no'} | {len(group)} | {len(fractured)} | {auc} | "
                         f"{group['image_score'].mean():.3f} | {dice} |")
    lines += ["", "Read: where images with a training neighbour score clearly better than those without, the random "
              "holdout likely shares patients with training and flatters what is chosen on it (checkpoint, TTA, "
              "ranking, the operating point's threshold); mind the group sizes: FracAtlas has no patient ids, and the "
              "groups differ in how many are fractured. `radseg train --holdout 0.15 --holdout-order last` holds out the "
              "last ids of the train split instead, a block as the official splits are."]
    publish(lines, args.results)


if __name__ == "__main__":
    main()
