"""Two FracAtlas models prepared in different layouts, scored on the valid images neither trained on.

    .venv/bin/python benchmarks/fracatlas_common_valid.py \\
        --model previous=runs/fracatlas/ensemble/shipped-dc0c30f55be4.zip:runs/fracatlas/prepared \\
        --model round5=src/radseg/models/shipped/fracatlas.zip:runs/fracatlas5/prepared --work runs/common-valid

Each ``--model NAME=BUNDLE:PREPARED`` names a bundle and the prepared dataset it was trained on (checked
against the data hash in its manifest, or its members'). A round prepared with another negative split
has another valid set, and ``evaluate-detection`` refuses to score a model on a split holding images it
trained on. The common set is the first dataset's val split less every image any model trained on or
was selected on (its dataset's train split and the manifest's train and held-out cases): the official
valid fractured images, which every layout keeps in val, and the normal images no model saw. A model
trained without ``--holdout`` picked its checkpoint on val and is refused. Each model is scored there
with its own stored operating point (threshold, window, ranking, TTA). This is a report, made after the
shipping decision: it picks nothing. Writes ``benchmarks/results/fracatlas_common_valid.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import pandas as pd

from fracatlas_baseline import RADSEG, publish

HERE = Path(__file__).resolve().parent


def _seen(bundle: Path, prepared: Path) -> set[str]:
    """Every image the model trained on or was selected on; refuses a PREPARED it was not trained on."""
    from radseg.models.bundle import load_bundle
    from radseg.train.data import data_hash, load_prepared

    manifest = load_bundle(bundle, weights=False).manifest or {}
    if (manifest.get("config") or {}).get("holdout") is None:
        raise SystemExit(f"{bundle}: trained without --holdout, so it picked its checkpoint on its val split; "
                         "no valid image is unseen by it")
    members = ((manifest.get("ensemble") or {}).get("members")) or [manifest.get("data") or {}]
    hashes = {m.get("data_hash") for m in members}
    if hashes != {data_hash(load_prepared(prepared).cases)}:
        raise SystemExit(f"{bundle}: was not trained on {prepared} (data hashes differ)")
    data = manifest.get("data") or {}
    train_split = json.loads((prepared / "dataset.json").read_text())["splits"].get("train", [])
    return set(train_split) | set(data.get("train_cases") or []) | set(data.get("val_cases") or [])


def _common_view(first: Path, seen: set[str], view: Path) -> list[str]:
    """Write a prepared-dataset view of ``first`` whose only split, val, is its val images none has seen."""
    info = json.loads((first / "dataset.json").read_text())
    common = [case for case in info["splits"]["val"] if case not in seen]
    shutil.rmtree(view, ignore_errors=True)  # rebuilt every run: old links could point at another dataset
    view.mkdir(parents=True)
    for name in ("images", "labels", "instances", "metadata.csv"):
        if (first / name).exists():
            os.symlink((first / name).resolve(), view / name)
    data = {**info, "splits": {"val": common}, "numTraining": len(common),
            "cases": {k: v for k, v in info["cases"].items() if k in set(common)}}
    (view / "dataset.json").write_text(json.dumps(data, indent=1))
    return common


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", required=True, help="NAME=BUNDLE:PREPARED (two or more)")
    parser.add_argument("--work", type=Path, default=Path("runs/common-valid"))
    parser.add_argument("--out", type=Path, default=HERE / "results" / "fracatlas_common_valid.md")
    args = parser.parse_args()
    from radseg.models.bundle import load_bundle

    models = []
    for spec in args.model:
        name, _, rest = spec.partition("=")
        bundle, _, prepared = rest.rpartition(":")
        if not (name and bundle and prepared):
            raise SystemExit(f"--model {spec!r}: expected NAME=BUNDLE:PREPARED")
        models.append((name, Path(bundle), Path(prepared)))
    if len(models) < 2:
        raise SystemExit("give two --model or more")
    seen = set().union(*(_seen(bundle, prepared) for _, bundle, prepared in models))
    view = args.work / "prepared"
    _common_view(models[0][2], seen, view)
    commands, rows, cases = [], [], {}
    for name, bundle, _ in models:
        point = (load_bundle(bundle, weights=False).manifest or {}).get("operating_point") or {}
        out = args.work / name
        cmd = [*RADSEG, "evaluate-detection", "-m", str(bundle), "--data", str(view), "--split", "val",
               "--by", "body_part,hardware", "--sensitivity", "0.85", "--device", "cpu", "-q", "-o", str(out)]
        cmd += ["--tta"] if point.get("tta") else ["--no-tta"]
        commands.append(shlex.join(cmd[2:]))
        start = time.perf_counter()
        subprocess.run(cmd, check=True)
        summary = json.loads((out / "summary.json").read_text())
        if summary.get("failed"):
            raise SystemExit(f"{bundle}: failed on {len(summary['failed'])} image(s), e.g. {summary['failed'][0]}")
        cases[name] = sorted(pd.read_csv(out / "per_case.csv")["case"])
        rows.append((name, bundle, summary, time.perf_counter() - start))
    lines = ["# FracAtlas: models of different layouts on the valid images none trained on",
             "", f"Made by `benchmarks/fracatlas_common_valid.py` ({time.strftime('%Y-%m-%d')}); a report after the "
             "shipping decision, not a selection.", "",
             "",
             "| model | mask AP50 | box AP50 | AUC (95% CI) | sensitivity / specificity at its stored point |",
             "| --- | --- | --- | --- | --- |"]
    for name, bundle, summary, _ in rows:
        at_point = summary.get("at_model_operating_point") or {}
        point_text = (f"{at_point['sensitivity']:.3f} / {at_point['specificity']:.3f}" if at_point
                      else f"n/a: {summary.get('operating_point_note', 'no stored point')}")
        lines.append(f"| {name} (`{bundle}`) | {summary['mask_AP50']:.3f} | {summary['box_AP50']:.3f} | "
                     f"{summary['auc']:.3f} ({summary['auc_ci_low']:.3f}-{summary['auc_ci_high']:.3f}) | {point_text} |")
    if len({tuple(c) for c in cases.values()}) != 1:
        raise SystemExit("the models were scored on different images")
    images, with_finding = rows[0][2]["images"], rows[0][2]["with_finding"]
    lines.insert(4, f"Common set: {images} images ({with_finding} fractured) of `{models[0][2]}`'s val split that "
                    "are in no model's train split.")
    lines += ["", "Commands:", "", *[f"    {c}" for c in commands]]
    publish(lines, args.out)


if __name__ == "__main__":
    main()
