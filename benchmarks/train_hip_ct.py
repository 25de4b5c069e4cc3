"""3D end to end on hip-ct phantoms: train a 3D U-Net, then `radseg segment` DICOM series to DICOM-SEG.

    .venv/bin/python benchmarks/train_hip_ct.py --budget 300 --threads 2

Cases 0-11 of ``radseg synth hip-ct`` (seed 0) train (10) and validate (2) with the
``hip-ct`` preset (3 mm voxels here, to fit a CPU budget); cases 12-15 are written as DICOM
CT series and segmented by the ``radseg segment`` command (``-ot dicom-seg`` and
``-ot nifti``), then the DICOM-SEG is read back and scored against the phantom's exact
labels on the CT grid: Dice per label, and the distance (mm) between the centroid of each
label in the SEG and in the truth, which checks that the SEG overlays the CT in place.
Writes benchmarks/results/train_hip_ct.md and .json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _phantoms import phantoms  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=300.0, help="seconds for the whole train() call")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--spacing", type=float, default=3.0)
    parser.add_argument("--patch", default="32,64,64")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--lr", type=float, default=None, help="default: the hip-ct preset's")
    parser.add_argument("--model-args", default=None, help="JSON network options (default: the hip-ct preset's)")
    parser.add_argument("--overhead", type=float, default=15.0,
                        help="seconds kept for the final validation and writing the bundle")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/radseg-bench"))
    parser.add_argument("--work", type=Path, default=Path("/tmp/radseg-bench/hip-ct"))
    args = parser.parse_args()

    from typer.testing import CliRunner

    import radseg.io as rio
    from radseg.cli import app
    from radseg.evaluate import dice
    from radseg.io.dicom_write import write_dicom_series
    from radseg.train.config import TrainConfig
    from radseg.train.data import from_pairs
    from radseg.train.loop import train

    cases = phantoms("hip-ct", 16, cache=args.cache, workers=1)
    train_cases, test_cases = cases[:12], cases[12:]
    shutil.rmtree(args.work, ignore_errors=True)
    data = from_pairs([(i, l) for _, i, l in train_cases], case_ids=[c for c, _, _ in train_cases])
    patch = tuple(int(p) for p in args.patch.split(","))
    config = TrainConfig(output=args.work / "run", preset="hip-ct", epochs=10_000, iters_per_epoch=20, val_every=3,
                         batch_size=args.batch_size, lr=args.lr, time_limit=args.budget - args.overhead,
                         threads=args.threads, val_fraction=0.17, seed=0,
                         arch_kwargs=json.loads(args.model_args) if args.model_args else {},
                         preprocessing={"spacing": (args.spacing,) * 3, "patch_size": patch}, device="cpu")
    load_before = os.getloadavg()
    start = time.perf_counter()
    result = train(config, data)
    train_seconds = time.perf_counter() - start
    load_after = os.getloadavg()

    # End to end through the CLI: DICOM series folders in, DICOM-SEG and NIfTI out.
    series_root = args.work / "dicom"
    for case_id, image, _ in test_cases:
        write_dicom_series(image, series_root / case_id)
    model = str(result.model_path)
    timings = {}
    for output_type in ("dicom-seg", "nifti"):
        t0 = time.perf_counter()
        outcome = CliRunner().invoke(app, ["segment", "-i", str(series_root), "-o", str(args.work / output_type),
                                           "-m", model, "-ot", output_type, "-q", "--threads", str(args.threads)])
        timings[output_type] = (time.perf_counter() - t0) / len(test_cases)
        if outcome.exit_code != 0:
            raise SystemExit(f"segment -ot {output_type} failed: {outcome.output}")
    names = result_names(result.model_path)
    per_label = {v: [] for v in names}
    centroid_mm = {v: [] for v in names}
    nifti_same = []
    for case_id, image, truth in test_cases:
        seg = rio.read_labels(args.work / "dicom-seg" / f"{case_id}.dcm")
        nifti = rio.read_labels(args.work / "nifti" / f"{case_id}.nii.gz")
        assert seg.shape == truth.shape and np.allclose(seg.affine, truth.affine, atol=1e-3), case_id
        nifti_same.append(float((nifti.array == seg.array).mean()))
        for value in names:
            p, t = seg.array == value, truth.array == value
            per_label[value].append(dice(p, t))
            if p.any() and t.any():
                centroid_mm[value].append(float(np.linalg.norm(
                    seg.index_to_world(np.argwhere(p).mean(0)) - truth.index_to_world(np.argwhere(t).mean(0)))))
    label_means = {names[v]: float(np.nanmean(d)) for v, d in per_label.items()}
    mean = float(np.nanmean([np.nanmean(d) for d in per_label.values()]))
    record = {
        "command": " ".join([".venv/bin/python", "benchmarks/train_hip_ct.py", *sys.argv[1:]]),
        "train_call_s": round(train_seconds, 1), "budget_s": args.budget, "threads": args.threads,
        "load_avg_before": load_before, "load_avg_after_training": load_after,
        "epochs": result.epochs_done, "iterations": result.history[-1]["iteration"], "stopped": result.stopped,
        "best_val_dice": result.best_dice, "test_mean_dice": mean, "test_dice_per_label": label_means,
        "centroid_error_mm_mean": {names[v]: float(np.mean(c)) if c else None for v, c in centroid_mm.items()},
        "segment_s_per_series": timings, "nifti_equals_dicom_seg": float(np.mean(nifti_same)),
        "config": json.loads((args.work / "run" / "config.json").read_text()),
        "test_shapes": [list(i.shape) for _, i, _ in test_cases],
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "train_hip_ct.json").write_text(json.dumps(record, indent=2))
    lines = [
        "# 3D U-Net on hip-ct phantoms, end to end to DICOM-SEG", "", f"Command: `{record['command']}`", "",
        f"- training: 12 phantoms (10 train / 2 validation), {args.spacing:g} mm voxels, patches {args.patch}, "
        f"{record['config']['arch_kwargs']}; `train()` {train_seconds:.0f} s ({result.epochs_done} epochs, "
        f"{record['iterations']} iterations of batch {args.batch_size}, lr {record['config']['lr']:g}, stopped: {result.stopped}); load average "
        f"{load_before[0]:.2f} before, {load_after[0]:.2f} after (2 cores shared with other jobs)",
        f"- test: 4 unseen phantoms written as DICOM CT series, `radseg segment -i DICOM_ROOT -ot dicom-seg` "
        f"({timings['dicom-seg']:.1f} s per series) and `-ot nifti`; SEG read back and scored on the CT grid",
        "", f"**Mean Dice {mean:.4f}** (best validation Dice {result.best_dice:.4f}); the NIfTI and the DICOM-SEG "
        f"outputs agree on {100 * float(np.mean(nifti_same)):.3f}% of voxels.", "",
        "| label | Dice (mean of 4) | centroid distance SEG vs truth (mm) |", "| --- | --- | --- |",
        *[f"| {names[v]} | {label_means[names[v]]:.4f} | "
          f"{record['centroid_error_mm_mean'][names[v]] if record['centroid_error_mm_mean'][names[v]] is None else round(record['centroid_error_mm_mean'][names[v]], 2)} |"
          for v in names], "",
    ]
    (RESULTS / "train_hip_ct.md").write_text("\n".join(lines))
    print("\n".join(lines))


def result_names(model_path) -> dict[int, str]:
    from radseg.models.bundle import load_bundle

    return load_bundle(model_path, weights=False).label_names


if __name__ == "__main__":
    main()
