"""Demo stage 2: bone extraction and the acetabulum / femoral-head split on the phantom CTs.

Pseudo-labels and exact labels are compared structure by structure, matched by name
(``right acetabulum`` ...), so the two label tables need not share values. Each result is held
against the aims of the project's hip-CT annotation issue: bone Dice >= 0.95, acetabulum and
femoral head Dice >= 0.90 on each side; :func:`aim_warnings` words every miss as a sentence.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

STRUCTURES = ("right acetabulum", "left acetabulum", "right femoral head", "left femoral head")
AIMS = {"bone": 0.95, "acetabulum": 0.90, "femoral head": 0.90}  # Dice, per side for the split structures


def _masks_by_name(labels) -> dict[str, np.ndarray]:
    from radseg.labels import label_names

    out = {}
    for value, name in label_names(labels).items():
        key = " ".join(str(name).replace("_", " ").lower().split())
        out[key] = labels.array == value
    return out


def annotate_cts(ct_dir: Path, rows: list[dict[str, Any]], outdir: Path) -> tuple[Any, dict[str, Any]]:
    import pandas as pd

    import radseg.io as rio
    from radseg.annotate.bone_extraction import extract_bone
    from radseg.annotate.hip_joint import segment_hip_joint
    from radseg.evaluate import dice, surface_distances

    table = []
    for row in rows:
        case = row["case_id"]
        ct = rio.read(ct_dir / row["image"])
        truth = rio.read_labels(ct_dir / row["labels"])
        bone = extract_bone(ct)  # the whole bone, as annotators draw it
        split = segment_hip_joint(ct, bone=bone.mask)
        rio.write(bone.mask, outdir / "bone" / f"{case}.nii.gz", kind="nifti")
        rio.write(split.labels, outdir / "hip" / f"{case}.nii.gz", kind="nifti")
        spacing = tuple(ct.spacing)
        truth_masks, found = _masks_by_name(truth), _masks_by_name(split.labels)
        entry = {"case": case, "pathology": row.get("pathology_level", ""),
                 "bone_dice": dice(bone.mask.array > 0, truth.array > 0)}
        for side, info in split.sides.items():
            entry[f"{side} split"] = info.status()
        for name in STRUCTURES:
            if name in truth_masks:
                pred = found.get(name, np.zeros_like(truth_masks[name]))
                entry[f"{name} dice"] = dice(pred, truth_masks[name])
                entry[f"{name} hd95 mm"] = surface_distances(pred, truth_masks[name], spacing=spacing).hd95()
        table.append(entry)
    frame = pd.DataFrame(table)
    # a side whose femoral head was resected (a hip implant) has no head to score: nanmean over the rest
    acetabulum = np.nanmean(frame[[c for c in frame.columns if c.endswith("acetabulum dice")]].to_numpy(dtype=float))
    head = np.nanmean(frame[[c for c in frame.columns if c.endswith("femoral head dice")]].to_numpy(dtype=float))
    numbers = {"cases": len(frame), "bone_dice": float(frame["bone_dice"].mean()),
               "acetabulum_dice": float(acetabulum), "femoral_head_dice": float(head)}
    return frame, numbers


def aim_warnings(frame) -> list[str]:
    """A sentence for every structure whose Dice falls below its aim, naming the cases and sides that miss."""
    out = []
    bone = frame["bone_dice"].to_numpy(dtype=float)
    if np.any(bone < AIMS["bone"]):
        low = [f"{case} {value:.3f}" for case, value in zip(frame["case"], bone) if value < AIMS["bone"]]
        out.append(f"bone extraction Dice misses its aim of {AIMS['bone']:.2f} in {len(low)} of {len(bone)} case(s) "
                   f"({', '.join(low)}); mean {bone.mean():.3f}.")
    for structure in ("acetabulum", "femoral head"):
        columns = [c for c in frame.columns if c.endswith(f"{structure} dice")]
        if not columns:
            continue
        values = frame[columns].to_numpy(dtype=float)
        below = np.argwhere(values < AIMS[structure])
        if not len(below):
            continue
        misses = []
        for i, j in below:
            side = columns[j].split()[0]
            split = str(frame.iloc[i].get(f"{side} split", ""))
            why = f", {split}" if split.startswith("not split") else ""
            misses.append(f"{frame.iloc[i]['case']} {side} {values[i, j]:.3f}{why}")
        zeros = int(np.sum(values == 0))
        scored = int(np.isfinite(values).sum())
        out.append(f"{structure} Dice misses its aim of {AIMS[structure]:.2f} per side in {len(below)} of {scored} "
                   f"side(s)" + (f", {zeros} of them at 0" if zeros else "")
                   + f" ({'; '.join(misses)}); mean {np.nanmean(values):.3f}.")
    return out
