"""Segmentation metrics of one mask pair, side by side: radseg vs MONAI (vs DeepMind surface-distance).

Two organ-sized blobs (ellipsoids with a smooth random boundary, slightly different centre,
radii and boundary noise) in a 3D 512x512x200 volume (spacing 0.8 x 0.8 x 2.5 mm; arrays are
[slice, row, col] = 200x512x512 with spacing (2.5, 0.8, 0.8)) and a 2D 1024x1024 pair.
Each tool runs as a fresh process (imports and loading the two .npy masks count, as for a
user), interleaved, median of N runs; peak memory from GNU time (%M).

* radseg: ``dice`` + one ``surface_distances`` call -> HD, HD95, ASSD.
* SciPy alone: border voxels by erosion, a ``cKDTree`` query each way (radseg's definitions).
* MONAI: ``compute_dice`` + ``compute_hausdorff_distance`` (percentile None and 95) +
  ``compute_average_surface_distance(symmetric=True)``, with ``spacing``.
* DeepMind ``surface-distance`` (when installed): ``compute_surface_distances`` -> robust
  Hausdorff 100 and 95, and the mean of its two directed average distances. Its surface is at
  voxel corners and its HD95 / ASSD are surface-area weighted: other definitions, other values.

radseg and MONAI use the same definitions (border voxels, max of the directed 95th
percentiles, pooled mean): their values must agree (MONAI is float32: 1e-4 relative).

    .venv/bin/python benchmarks/surface_metrics.py [--runs 3] [--no-deepmind]

Results are appended to benchmarks/results/surface_metrics.md with the command line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

CASES = {
    # name: (shape, spacing, (centre, radii, seed) of truth, of prediction)
    "3D 512x512x200": ((200, 512, 512), (2.5, 0.8, 0.8),
                       ((100, 256, 256), (60, 120, 150), 0), ((102, 259, 253), (59, 122, 148), 1)),
    "2D 1024x1024": ((1024, 1024), (0.2, 0.15),
                     ((512, 500), (300, 260), 2), ((516, 506), (296, 264), 3)),
}

RADSEG = """
import json, sys, time
t0 = time.perf_counter()
import numpy as np
from radseg.evaluate import dice, surface_distances
pred, truth = np.load(sys.argv[1]), np.load(sys.argv[2])
spacing = tuple(json.loads(sys.argv[3]))
t1 = time.perf_counter()
d = dice(pred, truth)
sd = surface_distances(pred, truth, spacing=spacing)
out = {"dice": d, "hd": sd.hausdorff(), "hd95": sd.hd95(), "assd": sd.assd()}
out["compute_s"] = time.perf_counter() - t1
print(json.dumps(out))
"""

MONAI = """
import json, sys, time, warnings
warnings.simplefilter("ignore")
import numpy as np, torch
from monai.metrics import compute_average_surface_distance, compute_dice, compute_hausdorff_distance
pred, truth = np.load(sys.argv[1]), np.load(sys.argv[2])
spacing = tuple(json.loads(sys.argv[3]))
t1 = time.perf_counter()
yp, yt = torch.from_numpy(pred)[None, None], torch.from_numpy(truth)[None, None]
out = {
    "dice": float(compute_dice(yp.float(), yt.float(), include_background=True)),
    "hd": float(compute_hausdorff_distance(yp, yt, include_background=True, spacing=spacing)),
    "hd95": float(compute_hausdorff_distance(yp, yt, include_background=True, spacing=spacing, percentile=95)),
    "assd": float(compute_average_surface_distance(yp, yt, include_background=True, spacing=spacing,
                                                   symmetric=True)),
}
out["compute_s"] = time.perf_counter() - t1
print(json.dumps(out))
"""

DEEPMIND = """
import json, sys, time, warnings
warnings.simplefilter("ignore")
import numpy as np
from surface_distance import metrics
pred, truth = np.load(sys.argv[1]), np.load(sys.argv[2])
spacing = tuple(json.loads(sys.argv[3]))
t1 = time.perf_counter()
sd = metrics.compute_surface_distances(truth, pred, spacing)
gt_to_pred, pred_to_gt = metrics.compute_average_surface_distance(sd)
out = {"dice": float(metrics.compute_dice_coefficient(truth, pred)),
       "hd": float(metrics.compute_robust_hausdorff(sd, 100)),
       "hd95": float(metrics.compute_robust_hausdorff(sd, 95)),
       "assd": float((gt_to_pred + pred_to_gt) / 2)}
out["compute_s"] = time.perf_counter() - t1
print(json.dumps(out))
"""

# What a user would write with SciPy alone: border voxels (the mask less its face-connected erosion),
# their coordinates in mm, nearest neighbours through a k-d tree both ways; radseg's definitions.
CKDTREE = """
import json, sys, time
import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree
pred, truth = np.load(sys.argv[1]), np.load(sys.argv[2])
spacing = np.array(json.loads(sys.argv[3]))
t1 = time.perf_counter()
def border(mask):
    return np.argwhere(mask & ~ndimage.binary_erosion(mask, ndimage.generate_binary_structure(mask.ndim, 1))) * spacing
a, b = border(pred), border(truth)
ab, ba = cKDTree(b).query(a)[0], cKDTree(a).query(b)[0]
both = np.concatenate([ab, ba])
out = {"dice": float(2 * (pred & truth).sum() / (pred.sum() + truth.sum())), "hd": float(both.max()),
       "hd95": float(max(np.percentile(ab, 95), np.percentile(ba, 95))), "assd": float(both.mean())}
out["compute_s"] = time.perf_counter() - t1
print(json.dumps(out))
"""


def blob(shape, centre, radii, seed, amplitude=0.05):
    """An ellipsoid (ellipse) whose radius varies smoothly by ~±5% (noise on a 1/16 grid)."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    coarse = ndimage.gaussian_filter(rng.standard_normal(tuple(max(4, s // 16) for s in shape)), 1.0)
    coarse = (coarse / coarse.std()).astype(np.float32)
    noise = ndimage.zoom(coarse, [s / c for s, c in zip(shape, coarse.shape)], order=1)
    noise = noise[tuple(slice(0, s) for s in shape)]
    grids = np.ogrid[tuple(slice(0, s) for s in shape)]
    r2 = sum(((g - c) / r) ** 2 for g, c, r in zip(grids, centre, radii)).astype(np.float32)
    return r2 <= (1 + amplitude * noise) ** 2


def timed(cmd: list[str]) -> tuple[float, float, dict]:
    """Wall seconds, peak resident MB (GNU time) and the JSON the command printed."""
    gnu_time = shutil.which("time") or ("/usr/bin/time" if Path("/usr/bin/time").exists() else None)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    with tempfile.NamedTemporaryFile("r") as log:
        full = [gnu_time, "-f", "%M", "-o", log.name, *cmd] if gnu_time else cmd
        start = time.perf_counter()
        done = subprocess.run(full, check=True, capture_output=True, text=True, env=env)
        seconds = time.perf_counter() - start
        peak = float(log.read().strip().splitlines()[-1]) / 1024 if gnu_time else float("nan")
    return seconds, peak, json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-deepmind", action="store_true", help="skip DeepMind surface-distance")
    parser.add_argument("--keep", type=Path, default=None, help="reuse/keep the masks in this folder")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="radseg-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    from importlib import metadata

    tools = {"radseg": RADSEG, "SciPy cKDTree (border voxels)": CKDTREE}
    for package, label, script in (("monai", "MONAI", MONAI), ("surface-distance", "DeepMind surface-distance", DEEPMIND)):
        if package == "surface-distance" and args.no_deepmind:
            continue
        try:
            tools[f"{label} {metadata.version(package)}"] = script
        except metadata.PackageNotFoundError:
            print(f"{package} not installed: not compared", file=sys.stderr)
    rows = []
    for case, (shape, spacing, truth_spec, pred_spec) in CASES.items():
        paths = [work / f"{case.split()[0]}-{name}.npy" for name in ("pred", "truth")]
        if not all(p.exists() for p in paths):
            print(f"making {case} masks ...", flush=True)
            np.save(paths[0], blob(shape, *pred_spec))
            np.save(paths[1], blob(shape, *truth_spec))
        results: dict[str, list] = {name: [] for name in tools}
        for _ in range(args.runs):
            for name, script in tools.items():  # interleaved so drift hits every tool alike
                results[name].append(timed([sys.executable, "-c", script, *map(str, paths), json.dumps(spacing)]))
        ours = statistics.median(r[0] for r in results["radseg"])
        for name, runs in results.items():
            values = runs[0][2]
            rows.append({
                "case": case, "tool": name, "seconds": statistics.median(r[0] for r in runs),
                "compute": statistics.median(r[2]["compute_s"] for r in runs),
                "peak": max(r[1] for r in runs), **{k: values[k] for k in ("dice", "hd", "hd95", "assd")},
                "speedup": statistics.median(r[0] for r in runs) / ours,
            })
    report = render(rows, args)
    print(report)
    results_file = ROOT / "benchmarks" / "results" / "surface_metrics.md"
    results_file.parent.mkdir(exist_ok=True)
    if not results_file.exists():
        results_file.write_text("# Segmentation metrics of one mask pair: radseg vs MONAI vs DeepMind surface-distance\n")
    with results_file.open("a") as handle:
        handle.write(report)
    if not args.keep:
        shutil.rmtree(work)


def render(rows: list[dict], args) -> str:
    from radseg.system import usable_cores

    command = "benchmarks/surface_metrics.py" + (f" --runs {args.runs}") + (" --no-deepmind" if args.no_deepmind else "")
    lines = [
        f"\n## {time.strftime('%Y-%m-%d %H:%M')} on {platform.node() or 'this machine'} "
        f"({platform.processor() or platform.machine()}, {usable_cores()} cores)",
        "",
        f"Command: `.venv/bin/python {command}`",
        f"Whole process (Python start, imports, loading two .npy masks, metrics), median of {args.runs} runs; "
        "compute = the metric calls only. Spacing 0.8 x 0.8 x 2.5 mm (3D; arrays [slice, row, col] with spacing (2.5, 0.8, 0.8)), 0.2 mm rows x 0.15 mm columns (2D).",
        "Same definitions for radseg and MONAI (border voxels, HD95 = max of the directed 95th percentiles, "
        "ASSD = mean of both directions pooled); DeepMind: corner surface, area-weighted HD95, "
        "mean of its two directed averages.",
        "",
        "| case | tool | wall s | compute s | peak MB | Dice | HD mm | HD95 mm | ASSD mm | tool / radseg wall |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['case']} | {r['tool']} | {r['seconds']:.2f} | {r['compute']:.2f} | {r['peak']:.0f} | "
            f"{r['dice']:.5f} | {r['hd']:.4f} | {r['hd95']:.4f} | {r['assd']:.4f} | {r['speedup']:.1f}x |"
        )
    checks = []
    for case in dict.fromkeys(r["case"] for r in rows):
        by_tool = {r["tool"]: r for r in rows if r["case"] == case}
        monai = next((v for k, v in by_tool.items() if k.startswith("MONAI")), None)
        if monai is None:
            continue
        worst = max(abs(by_tool["radseg"][k] - monai[k]) / max(abs(monai[k]), 1e-12) for k in ("dice", "hd", "hd95", "assd"))
        checks.append(f"{case}: radseg vs MONAI largest relative difference {worst:.1e}"
                      + (" (agree)" if worst <= 1e-4 else " (DISAGREE)"))
    if checks:
        lines += ["", *[f"- {c}" for c in checks]]
    return "\n".join(lines) + "\n"



if __name__ == "__main__":
    main()
