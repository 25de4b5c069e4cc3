"""Two FracAtlas models prepared in different layouts, scored on the valid images neither trained on.

    .venv/bin/python benchmarks/fracatlas_common_valid.py \\
        --model previous=runs/fracatlas/ensemble/shipped-dc0c30f55be4.zip:runs/fracatlas/prepared \\
        --model round5=src/radseg/models/shipped/fracatlas.zip:runs/fracatlas5/prepared --work runs/common-valid

Each ``--model NAME=BUNDLE:PREPARED`` names a bundle and the prepared dataset it was trained on. A round
prepared with another negative split has another valid set, and ``evaluate-detection`` refuses to score
a model on a split holding images it trained on. The common set is the first dataset's val split less
every image in any model's train split (trained on, or held out to select it): the official valid
fractured images, which every layout keeps in val, and the normal images no model saw. Each model is
scored there with its own stored operating point (threshold, window, ranking, TTA). This is a report,
made after the shipping decision: it picks nothing. Writes ``benchmarks/results/fracatlas_common_valid.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RADSEG = [sys.executable, "-m", "radseg"]


def _common_view(prepared: list[Path], view: Path) -> list[str]:
    """Write a prepared-dataset view of ``prepared[0]`` whose only split, val, is the common set."""
    first = json.loads((prepared[0] / "dataset.json").read_text())
    seen = set()
    for folder in prepared:
        seen |= set(json.loads((folder / "dataset.json").read_text())["splits"].get("train", []))
    common = [case for case in first["splits"]["val"] if case not in seen]
    view.mkdir(parents=True, exist_ok=True)
    for name in ("images", "labels", "instances", "metadata.csv"):
        link = view / name
        if (prepared[0] / name).exists() and not link.exists():
            os.symlink((prepared[0] / name).resolve(), link)
    data = {**first, "splits": {"val": common}, "numTraining": len(common),
            "cases": {k: v for k, v in first["cases"].items() if k in set(common)}}
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
    view = args.work / "prepared"
    common = _common_view([m[2] for m in models], view)
    commands, rows = [], []
    for name, bundle, _ in models:
        point = (load_bundle(bundle, weights=False).manifest or {}).get("operating_point") or {}
        out = args.work / name
        cmd = [*RADSEG, "evaluate-detection", "-m", str(bundle), "--data", str(view), "--split", "val",
               "--by", "body_part,hardware", "--sensitivity", "0.85", "--device", "cpu", "-q", "-o", str(out)]
        cmd += ["--tta"] if point.get("tta") else []
        commands.append(shlex.join(cmd[2:]))
        start = time.perf_counter()
        subprocess.run(cmd, check=True)
        summary = json.loads((out / "summary.json").read_text())
        rows.append((name, bundle, summary, time.perf_counter() - start))
    lines = ["# FracAtlas: models of different layouts on the valid images none trained on",
             "", f"Made by `benchmarks/fracatlas_common_valid.py` ({time.strftime('%Y-%m-%d')}); a report after the "
             "shipping decision, not a selection.", "",
             "",
             "| model | mask AP50 | box AP50 | AUC (95% CI) | sensitivity / specificity at its stored point |",
             "| --- | --- | --- | --- | --- |"]
    for name, bundle, summary, _ in rows:
        at_point = summary.get("at_model_operating_point") or {}
        point_text = (f"{at_point['sensitivity']:.3f} / {at_point['specificity']:.3f}" if at_point else "n/a")
        lines.append(f"| {name} (`{bundle}`) | {summary['mask_AP50']:.3f} | {summary['box_AP50']:.3f} | "
                     f"{summary['auc']:.3f} ({summary['auc_ci_low']:.3f}-{summary['auc_ci_high']:.3f}) | {point_text} |")
    images, with_finding = rows[0][2]["images"], rows[0][2]["with_finding"]
    lines.insert(4, f"Common set: {images} images ({with_finding} fractured) of `{models[0][2]}`'s val split that "
                    "are in no model's train split.")
    lines += ["", "Commands:", "", *[f"    {c}" for c in commands]]
    sys.path.insert(0, str(HERE))
    from fracatlas_baseline import publish

    publish(lines, args.out)


if __name__ == "__main__":
    main()
