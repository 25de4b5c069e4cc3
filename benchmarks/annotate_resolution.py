"""Where the hip-CT annotation holds: a resolution sweep (pixel size x slice thickness -> Dice).

Each cell makes ``-n`` hip-ct phantoms (``radseg.synth.hip_ct.make_case``, seed ``--seed``, case
``i`` with pathology ``i % 3``, no implant so both sides have a head to find, defaults otherwise:
thin cortex, beam hardening, the table, partial field of view at its default rate) on the cell's
grid, runs ``extract_bone`` (the whole bone, the default) and ``segment_hip_joint`` on it, and
scores bone, acetabulum and femoral head (both sides) against the exact labels.

    .venv/bin/python benchmarks/annotate_resolution.py [-n 2] [--seed 7] [--workers 2]

Writes ``benchmarks/results/annotate_resolution.md`` and ``annotate_resolution.csv``.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
PIXELS = (0.6, 1.0, 1.4, 2.0)  # mm
SLICES = (1.0, 2.0, 3.0, 5.0)  # mm
AIMS = {"bone": 0.95, "acetabulum": 0.90, "femoral head": 0.90}


def run_cell(job) -> dict:
    index, seed, slice_mm, pixel_mm = job
    from radseg.annotate.bone_extraction import extract_bone
    from radseg.annotate.hip_joint import segment_hip_joint
    from radseg.evaluate import dice
    from radseg.synth import hip_ct
    from radseg.synth.cohort import make_subject

    case = hip_ct.make_case(make_subject(index, seed=seed, prefix=hip_ct.PREFIX), spacing=(slice_mm, pixel_mm, pixel_mm),
                            pathology=index % 3, implant_rate=0.0)
    truth = case.labels.array
    clock = time.perf_counter()
    bone = extract_bone(case.image)
    split = segment_hip_joint(case.image, bone=bone.mask)
    labels = split.labels.array
    return {"case": case.subject.case_id, "slice_mm": slice_mm, "pixel_mm": pixel_mm, "voxels": int(truth.size),
            "bone": dice(bone.mask.array > 0, truth > 0),
            "acetabulum": min(dice(labels == v, truth == v) for v in (2, 3)),
            "acetabulum_mean": float(np.mean([dice(labels == v, truth == v) for v in (2, 3)])),
            "femoral head": min(dice(labels == v, truth == v) for v in (4, 5)),
            "femoral_head_mean": float(np.mean([dice(labels == v, truth == v) for v in (4, 5)])),
            "sides_found": sum(side.found for side in split.sides.values()),
            "seconds": time.perf_counter() - clock}


def _cell(values: np.ndarray, aim: float) -> str:
    text = f"{values.mean():.3f} ({values.min():.3f})"
    return text if values.min() >= aim else f"**{text}**"


def main() -> None:
    import pandas as pd

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    clock = time.perf_counter()
    jobs = [(i, args.seed, dz, dx) for dz in SLICES for dx in PIXELS for i in range(args.n)]
    with ProcessPoolExecutor(args.workers) as pool:
        frame = pd.DataFrame(list(pool.map(run_cell, jobs)))
    RESULTS.mkdir(parents=True, exist_ok=True)
    frame.to_csv(RESULTS / "annotate_resolution.csv", index=False)
    lines = ["# Hip-CT annotation across resolutions (phantoms)", "",
             f"## {datetime.now():%Y-%m-%d %H:%M} on {platform.node()} ({platform.machine()}, 2 cores shared)", "",
             f"Command: `.venv/bin/python benchmarks/annotate_resolution.py -n {args.n} --seed {args.seed} "
             f"--workers {args.workers}` ({time.perf_counter() - clock:.0f} s). Per cell {args.n} hip-ct phantoms "
             f"(seed {args.seed}, pathology index % 3, no implant), `radseg annotate bone` (whole bone) and "
             "`radseg annotate hip-joint` on it, Dice against the exact labels. Each cell: mean (minimum); the "
             "acetabulum and femoral head columns take the worse side of each case. **Bold**: the minimum misses the "
             f"aim ({', '.join(f'{k} >= {v:.2f}' for k, v in AIMS.items())}). Per-case values in annotate_resolution.csv.", ""]
    for structure in AIMS:
        lines += [f"### {structure.capitalize()} Dice", "",
                  "| slice \\ pixel | " + " | ".join(f"{dx:g} mm" for dx in PIXELS) + " |",
                  "| --- | " + " | ".join("---" for _ in PIXELS) + " |"]
        for dz in SLICES:
            cells = [_cell(frame[(frame.slice_mm == dz) & (frame.pixel_mm == dx)][structure].to_numpy(), AIMS[structure])
                     for dx in PIXELS]
            lines.append(f"| {dz:g} mm | " + " | ".join(cells) + " |")
        lines.append("")
    found = int(frame.sides_found.sum())
    lines += [f"Sides found: {found} of {2 * len(frame)}. Seconds per case (bone + split): median "
              f"{frame.seconds.median():.1f}, max {frame.seconds.max():.1f}.", ""]
    text = "\n".join(lines)
    (RESULTS / "annotate_resolution.md").write_text(text)
    sys.stdout.write(text)


if __name__ == "__main__":
    main()
