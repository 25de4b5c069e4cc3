"""FracAtlas images that are the same picture under two ids, and what they do to the shipped model's valid figures.

    .venv/bin/python benchmarks/fracatlas_duplicates.py --data runs/fracatlas5/prepared \\
        --model runs/fracatlas5/train-hn/model --valid runs/fracatlas5/eval-val-tta \\
        --rescored runs/fracatlas5/eval-val-tta-without-copies

``radseg datasets duplicates`` finds the groups (identical pixels). For each group this says which
split each copy is in, whether the annotations agree, and what the shipped model did with each copy
(trained on it, held it out to choose its checkpoint and operating point, or never saw it). Then the
valid image AUC and Dice are recomputed from the model's saved valid scores (``per_case.csv`` of its
``evaluate-detection`` run, no model is run again) without the valid images it trained on, and with
one copy of each picture. Mask AP needs each detection: ``--rescored`` reads a second run of the model on
valid with ``--without-copies``.
Writes ``benchmarks/results/fracatlas_duplicates.md``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from fracatlas_baseline import publish

HERE = Path(__file__).resolve().parent


def _role(case_id: str, split: str | None, data: dict) -> str:
    if case_id in set(data.get("train_cases") or []):
        return "trained on"
    if case_id in set(data.get("val_cases") or []):
        return "held out (selection, operating point)"
    return f"scored ({split})" if split == "val" else "not used"


def valid_figures(per_case: pd.DataFrame, leave_out: set[str]) -> dict:
    """AUC (95% CI) and mean Dice of the fractured images, over the valid images not in ``leave_out``."""
    from radseg.evaluate.detection import roc_auc_ci

    kept = per_case[~per_case["case"].isin(leave_out)]
    auc = roc_auc_ci(kept["image_score"].to_numpy(float), kept["finding"].to_numpy(bool), resamples=2000, seed=0)
    dice = kept.loc[kept["finding"].astype(bool), "dice"].astype(float)
    return {"images": len(kept), "fractured": int(kept["finding"].astype(bool).sum()),
            "auc": f"{auc.estimate:.3f} ({auc.low:.3f}-{auc.high:.3f})", "dice": f"{dice.mean():.3f}"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--valid", type=Path, required=True, help="the model's evaluate-detection folder on val")
    parser.add_argument("--rescored", type=Path, help="the model's evaluate-detection folder on val with --without-copies")
    parser.add_argument("--results", type=Path, default=HERE / "results" / "fracatlas_duplicates.md")
    args = parser.parse_args(argv)

    from radseg.datasets.duplicates import duplicate_groups
    from radseg.datasets.prepared import open_prepared
    from radseg.models.bundle import load_bundle

    dataset = open_prepared(args.data)
    by_id = {case.case_id: case for case in dataset.cases}
    groups, unread = duplicate_groups(dataset.cases)
    data = (load_bundle(args.model, weights=False).manifest or {}).get("data") or {}
    rows = []
    for number, group in enumerate(groups, 1):
        labels = [by_id[case].label.array for case, _ in group.cases]
        agree = all(np.array_equal(labels[0], other) for other in labels[1:])
        for case, split in group.cases:
            rows.append({"group": number, "case": case, "split": split,
                         "fracture pixels": int((by_id[case].label.array > 0).sum()),
                         "annotations agree": agree, "shipped model": _role(case, split, data)})
    per_case = pd.read_csv(args.valid / "per_case.csv")
    val_ids = set(per_case["case"])
    trained = set(data.get("train_cases") or [])
    held = set(data.get("val_cases") or [])
    seen_copies = {case for g in groups if any(c in trained for c, _ in g.cases) for case, _ in g.cases if case in val_ids}
    held_copies = {case for g in groups if any(c in held for c, _ in g.cases) for case, _ in g.cases if case in val_ids}
    second_copies = {case for g in groups for case, _ in sorted((c for c in g.cases if c[0] in val_ids))[1:]}
    settings = [("all valid images (as reported)", set()),
                ("without the valid images the model trained on (same pixels)", seen_copies),
                ("... and without those of its held-out images", seen_copies | held_copies),
                ("... and one copy of each picture within valid", seen_copies | held_copies | second_copies)]
    figures = [(name, valid_figures(per_case, out)) for name, out in settings]

    lines = ["# FracAtlas: the same picture under two ids, and the shipped model's valid figures", "",
             "```", "python benchmarks/fracatlas_duplicates.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:])),
             "```", "",
             f"{len(dataset.cases)} prepared cases read ({len(unread)} unreadable); {len(groups)} pictures are under more "
             f"than one id, {sum(g.across_splits for g in groups)} of them in two splits (identical pixels as read; "
             "`radseg datasets duplicates` lists them). FracAtlas has no patient ids, so a split by patient cannot "
             "catch this.", "",
             "| group | case | split | fracture pixels | annotations agree | shipped model |",
             "| --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {r['group']} | {r['case']} | {r['split']} | {r['fracture pixels']} | {'yes' if r['annotations agree'] else 'no'} "
              f"| {r['shipped model']} |" for r in rows]
    lines += ["", f"Valid figures of the shipped model (`{args.valid}`, flip TTA), recomputed from its saved per-image "
              "scores; AUC with a stratified bootstrap 95% CI (2000 resamples):", "",
              "| valid images | images (fractured) | image AUC | mean Dice, fractured images |", "| --- | --- | --- | --- |"]
    lines += [f"| {name} | {f['images']} ({f['fractured']}) | {f['auc']} | {f['dice']} |" for name, f in figures]
    if args.rescored:
        lines += ["", "The model run again on valid with `radseg evaluate-detection -m fracatlas --split val --without-copies` "
                  f"(`{args.rescored}`; same settings as the reported figures: the shipped operating point's flip TTA, "
                  "window and ranking), beside the figures as reported:", "",
                  "| valid images | images | mask AP50 | box AP50 | image AUC (95% CI) | mean Dice |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for name, folder in (("all (as reported)", args.valid), ("without copies", args.rescored)):
            summary = json.loads((folder / "summary.json").read_text())
            lines.append(f"| {name} | {summary['images']} | {summary['mask_AP50']:.3f} | {summary['box_AP50']:.3f} | "
                         f"{summary['auc']:.3f} ({summary['auc_ci_low']:.3f}-{summary['auc_ci_high']:.3f}) | "
                         f"{summary['dice']:.3f} |")
        aside = json.loads((args.rescored / "summary.json").read_text()).get("copies_set_aside") or []
        lines += ["", f"Set aside there: {len(aside)} images ({', '.join(c for c, _ in aside)})."]
    lines += ["", f"Left out: trained-on copies {', '.join(sorted(seen_copies)) or 'none'}; copies of held-out images "
              f"{', '.join(sorted(held_copies - seen_copies)) or 'none'}; second copies within valid "
              f"{', '.join(sorted(second_copies - seen_copies - held_copies)) or 'none'}.", "",
              f"Written {pd.Timestamp.now(tz='UTC'):%Y-%m-%d %H:%M} UTC. The table from saved scores cannot give mask "
              "AP (it needs each detection); `--rescored` runs the model again for it. The reported valid figures stand "
              "as scored, with this caveat beside them."]
    publish(lines, args.results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
