"""Bone extraction on real pelvic CT (PENGWIN crops) against the manual masks, with and without
the whole-bone step, plus the demo's own hip-ct phantoms (issue 22).

    .venv/bin/python benchmarks/annotate_real_ct.py [--data ../shared/data/ct/pengwin-crops] [--demo-ct DIR]

Writes benchmarks/results/annotate_real_ct.md and .json. ``--demo-ct`` takes the hip-ct folder a
``radseg demo`` run made (``runs/demo/data/hip-ct``); without it that table is left out.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _score(ct, truth, whole: bool) -> dict:
    from radseg.annotate.bone_extraction import extract_bone
    from radseg.evaluate import dice, surface_distances

    start = time.perf_counter()
    mask = extract_bone(ct, whole=whole).mask.array > 0
    seconds = time.perf_counter() - start
    return {"dice": dice(mask, truth), "hd95_mm": surface_distances(mask, truth, spacing=tuple(ct.spacing)).hd95(),
            "over": float((mask & ~truth).sum() / truth.sum()), "under": float((truth & ~mask).sum() / truth.sum()),
            "seconds": seconds}


def pengwin(root: Path) -> list[dict]:
    from radseg.io import read

    rows = []
    for case in sorted(p for p in root.iterdir() if p.is_dir()):
        for bone in ("LI", "RI", "SA"):
            ct = read(case / f"{case.name}_{bone}.nii.gz")
            truth = read(case / f"{case.name}_{bone}_mask.nii.gz").array > 0
            row = {"crop": f"{case.name}_{bone}", "spacing_mm": [round(float(s), 3) for s in ct.spacing]}
            for whole in (False, True):
                row["whole" if whole else "cut"] = _score(ct, truth, whole)
            rows.append(row)
            print(row["crop"], round(row["cut"]["dice"], 3), round(row["whole"]["dice"], 3), flush=True)
    return rows


def demo_cts(folder: Path) -> list[dict]:
    import pandas as pd

    import radseg.io as rio

    rows = []
    for meta in pd.read_csv(folder / "metadata.csv").to_dict("records"):
        ct = rio.read(folder / meta["image"])
        truth = rio.read_labels(folder / meta["labels"]).array > 0
        row = {"crop": meta["case_id"], "spacing_mm": [round(float(s), 3) for s in ct.spacing]}
        for whole in (False, True):
            row["whole" if whole else "cut"] = _score(ct, truth, whole)
        rows.append(row)
    return rows


def _table(rows: list[dict]) -> list[str]:
    lines = ["| case | spacing (mm) | Dice, cut only | Dice, whole bone | HD95 mm, cut | HD95 mm, whole | over / under (whole) | s (whole) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        c, w = r["cut"], r["whole"]
        lines.append(f"| {r['crop']} | {' x '.join(f'{s:g}' for s in r['spacing_mm'])} | {c['dice']:.3f} | "
                     f"{w['dice']:.3f} | {c['hd95_mm']:.2f} | {w['hd95_mm']:.2f} | {w['over']:.3f} / {w['under']:.3f} | "
                     f"{w['seconds']:.1f} |")
    cut, whole = [r["cut"]["dice"] for r in rows], [r["whole"]["dice"] for r in rows]
    lines.append(f"| **mean (min)** | | **{np.mean(cut):.3f} ({np.min(cut):.3f})** | **{np.mean(whole):.3f} "
                 f"({np.min(whole):.3f})** | | | | |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "ct" / "pengwin-crops")
    parser.add_argument("--demo-ct", type=Path, default=None)
    args = parser.parse_args()
    results = {"command": "python " + " ".join(sys.argv), "machine": platform.platform(),
               "pengwin": pengwin(args.data)}
    if args.demo_ct:
        results["demo"] = demo_cts(args.demo_ct)
    out = ROOT / "benchmarks" / "results"
    (out / "annotate_real_ct.json").write_text(json.dumps(results, indent=1))
    lines = ["# Bone extraction on real pelvic CT (PENGWIN crops)", "", f"Command: `{results['command']}`", "",
             "Reference: the PENGWIN fragment masks (all fragments = the bone). `cut` is the THA paper's pipeline "
             "(`radseg annotate bone`); `whole` adds `--whole` (`radseg.annotate.bone_interior`: enclosed holes in "
             "three slice orientations, growth through cancellous HU less the partial-volume rim, fatty marrow). "
             "The crops are zero outside the bone.", "", *_table(results["pengwin"])]
    if "demo" in results:
        lines += ["", "## The demo's hip-ct phantoms (as `radseg demo` makes them: 1.4 mm pixels, 2 mm slices)", "",
                  *_table(results["demo"])]
    (out / "annotate_real_ct.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
