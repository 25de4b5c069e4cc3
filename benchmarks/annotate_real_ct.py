"""Bone extraction on real pelvic CT (PENGWIN crops) against the manual masks, the whole bone (the
default) beside the paper's cut (``--cortex-only``); the demo's own hip-ct phantoms (bone and the
acetabulum / femoral-head split per side); the TotalSegmentator example CT (3 mm, no labels: the
run, the hips found and an overlay picture); the HU table of ``ct_hu_quantiles.md`` (issue 22).

    .venv/bin/python benchmarks/annotate_real_ct.py [--data ../shared/data/ct/pengwin-crops] [--demo-ct DIR]
        [--demo-made-by "radseg synth hip-ct ..."]

Writes benchmarks/results/annotate_real_ct.md, .json and annotate_real_ct_totalseg.png. ``--demo-ct``
takes the hip-ct folder a ``radseg demo`` run made (``runs/demo/data/hip-ct``); without it that table
is left out.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
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


def demo_split(folder: Path) -> list[dict]:
    """The acetabulum / femoral-head split on the demo's CTs, Dice per side and why a side was not split."""
    import pandas as pd

    import radseg.io as rio
    from radseg.annotate.bone_extraction import extract_bone
    from radseg.annotate.hip_joint import segment_hip_joint
    from radseg.evaluate import dice

    rows = []
    for meta in pd.read_csv(folder / "metadata.csv").to_dict("records"):
        ct = rio.read(folder / meta["image"])
        truth = rio.read_labels(folder / meta["labels"]).array
        result = segment_hip_joint(ct, bone=extract_bone(ct).mask)
        labels = result.labels.array
        for side, (ace, head) in (("right", (2, 4)), ("left", (3, 5))):
            info = result.sides[side]
            rows.append({"case": meta["case_id"], "side": side, "implant": bool(meta.get(f"{side}_implant", False)),
                         "acetabulum": dice(labels == ace, truth == ace),
                         "femoral_head": dice(labels == head, truth == head) if (truth == head).any() else None,
                         "split": info.status()})
    return rows


def totalsegmentator(path: Path, picture: Path) -> dict:
    """``annotate bone`` and ``annotate hip-joint`` on the TotalSegmentator example CT, and a coronal
    overlay through the femoral head found (or the lowest third of the scan)."""
    import radseg.io as rio
    from radseg.annotate.bone_extraction import extract_bone
    from radseg.annotate.hip_joint import segment_hip_joint
    from radseg.image import Image
    from radseg.io.label_png import write_overlay
    from radseg.orientation import canonical

    ct = rio.read(path)
    start = time.perf_counter()
    bone = extract_bone(ct)
    bone_seconds = time.perf_counter() - start
    cut = extract_bone(ct, whole=False)
    start = time.perf_counter()
    split = segment_hip_joint(ct, bone=bone.mask)
    split_seconds = time.perf_counter() - start
    work, labels = canonical(ct), canonical(split.labels).array
    found = [s for s in split.sides.values() if s.found]
    row = int(round(found[0].centre_index[1])) if found else work.array.shape[1] // 2
    spacing = work.spacing
    # coronal slice, head up, square pixels (the CT has 3 mm voxels in every direction)
    from scipy import ndimage

    # the lower half (pelvis and hips), three times enlarged so 3 mm voxels are visible
    lower = slice(work.array.shape[0] // 2, None, -1)
    grey = ndimage.zoom(work.array[lower, row, :].astype(np.float32), 3, order=1)
    mask = ndimage.zoom(labels[lower, row, :], 3, order=0)
    names = {1: "bone", 2: "right acetabulum", 3: "left acetabulum", 4: "right femoral head", 5: "left femoral head"}
    write_overlay(Image(grey, spacing=(spacing[0] / 3, spacing[2] / 3)),
                  Image(mask, spacing=(spacing[0] / 3, spacing[2] / 3), metadata={"label_names": names}), picture,
                  window=(-200.0, 1300.0))
    ml = float(np.prod(ct.spacing)) / 1000.0
    return {"spacing_mm": [round(float(v), 3) for v in ct.spacing], "shape": list(ct.shape),
            "bone_ml_whole": round(float((bone.mask.array > 0).sum()) * ml, 1),
            "bone_ml_cut": round(float((cut.mask.array > 0).sum()) * ml, 1),
            "bone_seconds": round(bone_seconds, 1), "split_seconds": round(split_seconds, 1),
            "sides": {name: ({"found": True, "radius_mm": s.radius_mm, "centre_mm": list(s.centre_mm)} if s.found
                             else {"found": False, "reason": s.reason}) for name, s in split.sides.items()},
            "coronal_row": row}


def _quantile_lines(text: str) -> list[str]:
    """The tables of ct_hu_quantiles.md with their headings (a level down) and difference lines."""
    out = []
    for line in text.splitlines():
        if line.startswith("|"):
            out.append(line)
        elif line.startswith("## ") or (line[:1].isalpha() and " - real " in line):
            out += ["", "##" + line if line.startswith("## ") else line, ""]
    return out


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


NOTES = "<!-- notes (kept when this file is rewritten) -->"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "ct" / "pengwin-crops")
    parser.add_argument("--demo-ct", type=Path, default=None)
    parser.add_argument("--demo-made-by", default=None,
                        help="how the --demo-ct folder was made (a radseg demo run, or the synth command), for the report")
    args = parser.parse_args()
    results = {"command": "python " + shlex.join(sys.argv), "machine": platform.platform(),
               "pengwin": pengwin(args.data)}
    out = ROOT / "benchmarks" / "results"
    if args.demo_ct:
        results["demo"] = demo_cts(args.demo_ct)
        results["demo_split"] = demo_split(args.demo_ct)
    example = args.data.parent / "totalsegmentator-example" / "example_ct.nii.gz"
    if example.is_file():
        results["totalsegmentator"] = totalsegmentator(example, out / "annotate_real_ct_totalseg.png")
    (out / "annotate_real_ct.json").write_text(json.dumps(results, indent=1))
    lines = ["# Bone extraction on real pelvic CT (PENGWIN crops)", "", f"Command: `{results['command']}`", "",
             "Reference: the PENGWIN fragment masks (all fragments = the bone). `whole` is `radseg annotate bone` "
             "(the default: `radseg.annotate.bone_interior`, enclosed holes in three slice orientations, growth through "
             "cancellous HU less the partial-volume rim, the outline closed over a thin cortex, fatty marrow); `cut` "
             "is `--cortex-only`, the THA paper's pipeline. The crops are zero outside the bone, so over-segmentation "
             "into soft tissue cannot show here (the phantoms below and annotate_resolution.md show it).", "",
             *_table(results["pengwin"])]
    if "demo" in results:
        made = f"`{args.demo_ct}`" + (f", made by `{args.demo_made_by}`" if args.demo_made_by else "")
        lines += ["", "## The demo's hip-ct phantoms (as `radseg demo` makes them: 1.4 mm pixels, 2 mm slices)", "",
                  f"Data: {made}.", "", *_table(results["demo"]), "", "Acetabulum / femoral head (`radseg annotate hip-joint` on the whole "
                  "bone), Dice per side against the exact labels:", "",
                  "| case | side | implant | acetabulum | femoral head | split |", "| --- | --- | --- | --- | --- | --- |"]
        for r in results["demo_split"]:
            head = "no head (resected)" if r["femoral_head"] is None else f"{r['femoral_head']:.3f}"
            lines.append(f"| {r['case']} | {r['side']} | {'yes' if r['implant'] else 'no'} | {r['acetabulum']:.3f} | "
                         f"{head} | {r['split']} |")
    if "totalsegmentator" in results:
        t = results["totalsegmentator"]
        sides = "; ".join(f"{name}: head radius {v['radius_mm']:.1f} mm at {', '.join(f'{c:.0f}' for c in v['centre_mm'])} mm"
                          if v["found"] else f"{name}: {v['reason']}" for name, v in t["sides"].items())
        lines += ["", "## TotalSegmentator example CT (3 mm voxels, no reference labels)", "",
                  f"`radseg annotate bone` on `{example.name}` ({' x '.join(map(str, t['shape']))}, "
                  f"{' x '.join(f'{v:g}' for v in t['spacing_mm'])} mm): whole bone {t['bone_ml_whole']} ml "
                  f"({t['bone_seconds']} s; the cut alone {t['bone_ml_cut']} ml); `radseg annotate hip-joint` "
                  f"({t['split_seconds']} s): {sides}.", "",
                  "![coronal slice through the femoral head found: bone, acetabulum, femoral head]"
                  "(annotate_real_ct_totalseg.png)"]
    quantiles = out / "ct_hu_quantiles.md"
    if quantiles.is_file():
        lines += ["", "## HU of bone: real (PENGWIN) and the hip-ct phantoms", "",
                  "From `ct_hu_quantiles.md` (its own command and date there):", "",
                  *_quantile_lines(quantiles.read_text())]
    target = out / "annotate_real_ct.md"
    # hand-written analysis below the marker (what was tried and why) survives a re-run
    kept = target.read_text().partition(NOTES)[2] if target.exists() else ""
    target.write_text("\n".join(lines) + "\n" + (f"\n{NOTES}{kept}" if kept else ""))


if __name__ == "__main__":
    main()
