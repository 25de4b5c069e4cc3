"""Pack FracAtlas training for a lent GPU machine: the prepared layout and the wheels it lacks, in 64 MiB.

    .venv/bin/python benchmarks/fracatlas_gpu_kit.py --prepared runs/fracatlas5/prepared [--max-side 1024]

The GPU machine (the session's ``run`` tool) has PyTorch with CUDA, numpy, pandas, scipy, scikit-image,
matplotlib and typer, but not MONAI or nibabel; it reaches no network and no ``../shared``, and takes at
most 64 MiB beside the repository (about 10 MiB of it tracked files). This writes ``.gpukit/`` (git-ignored):

* ``prepared/``: the prepared layout, with every image whose longer side exceeds ``--max-side`` px shrunk
  to it (radseg's antialiased linear resize; its label map nearest), so the case ids, splits and metadata
  are the same. The FracAtlas recipe fits each image into 512 px, so a 1024 px copy loses little of what it
  uses. ``kit.json`` (and ``benchmarks/results/fracatlas_gpu_kit.md``) says how little: at the 512 px
  grid, each shrunk image's label against the full image's (Dice) and the normalised images' mean
  difference. On runs/fracatlas5/prepared (2026-12-07): 102
  images shrunk (all train, all fractured; none in valid), label Dice 0.957 at the least (median 0.987),
  image difference at most 0.01 (normalised units).
  ``instances/`` are left out: training does not read them, and the holdout and valid are scored here on
  the full layout, by case id.
* ``wheels/``: MONAI and nibabel as installed here (pure Python), for the device's Python 3.12.

Then one device call (``carry: [".gpukit"]``; ``timeout_s`` about TRAIN_SECONDS + 240: the wheels install,
and the probe loads the data and trains 4 epochs, before the run; the machine's start comes on top)::

    TRAIN_SECONDS=300 bash benchmarks/fracatlas_gpu_run.sh --preset fracatlas --holdout 0.15 \\
        --holdout-order last --device cuda --model-args '{"channels": [32, 64, 128, 256, 512], ...}'

(``TRAIN_SECONDS``: a 4-epoch probe times an epoch and a validation, and ``--epochs`` is planned to fit,
so the learning-rate schedule completes; checked here on CPU with --iters-per-epoch 2 --batch-size 2
--val-every 4, where validation dominates: 5 epochs planned for 150 s, completed in 121 s)

brings the run folder back under ``$OUT`` (``model/``, ``metrics.csv``, ``config.json``, ``train.log``, the
kit's ``kit.json``); copy it to ``runs/<name>`` and score ``runs/<name>/model`` here with
``fracatlas_candidates.py`` (holdout) before ``fracatlas_baseline.py --skip-train`` (valid, once).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "fracatlas_gpu_kit.md"
BUDGET = 64 * 2**20  # what may travel with the working tree
#: what radseg's training path imports that the device lacks (found by listing the modules a training run
#: imports against the device's package list; fracatlas_gpu_run.sh imports them first to fail fast)
WHEELS = ("monai", "nibabel")
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")


def shrink_case(image_path: Path, label_path: Path, out: Path, max_side: int) -> bool:
    """Copy one case into ``out``/images and ``out``/labels, shrunk so its longer side is ``max_side`` px at
    most; True when it was shrunk. The image is read as radseg reads it (EXIF orientation applied, colour
    channels averaged) and written grey, so training sees what it would have; the label keeps its header."""
    import nibabel as nib
    from PIL import Image as PILImage

    from radseg.io import read
    from radseg.models.preprocess import grey
    from radseg.models.resample import resize

    pixels = grey(read(image_path))
    height, width = pixels.shape
    scale = max_side / max(width, height)
    if scale >= 1:
        shutil.copy2(image_path, out / "images" / image_path.name)
        shutil.copy2(label_path, out / "labels" / label_path.name)
        return False
    shape = (max(1, round(height * scale)), max(1, round(width * scale)))
    small = np.clip(np.rint(resize(pixels, shape, mode="linear")), 0, 255).astype(np.uint8)
    PILImage.fromarray(small).save(out / "images" / image_path.name, quality=95)
    label = nib.load(label_path)
    values = np.asarray(label.dataobj)  # a 2D NIfTI is [x, y]: width first
    if values.shape[:2] != (width, height):
        raise SystemExit(f"{label_path}: label grid {values.shape} is not the image's {width}x{height}")
    shrunk = resize(values.astype(np.float32), (shape[1], shape[0]), mode="nearest").astype(values.dtype)
    header = label.header.copy()
    header.set_data_shape(shrunk.shape)
    nib.save(nib.Nifti1Image(shrunk, label.affine, header), out / "labels" / label_path.name)
    return True


def pack_prepared(prepared: Path, out: Path, max_side: int) -> int:
    """The prepared layout without instances, large images shrunk; returns how many were shrunk."""
    from radseg.datasets import open_prepared

    dataset = open_prepared(prepared)
    for folder in ("images", "labels"):
        (out / folder).mkdir(parents=True)
    for name in ("dataset.json", "metadata.csv", "report.json"):
        if (prepared / name).exists():
            shutil.copy2(prepared / name, out / name)
    shrunk = 0
    for case in dataset.cases:
        image, label = Path(case.sources["image"]), Path(case.sources["labels"])
        shrunk += shrink_case(image, label, out, max_side)
    return shrunk


def shrink_effect(prepared: Path, kit: Path, preset: str = "fracatlas") -> dict:
    """What shrinking changed where training looks: on the preset's grid (512 px for fracatlas), the Dice
    of each shrunk image's label against the full image's, and the mean absolute difference of the
    normalised images."""
    from radseg.datasets import open_prepared
    from radseg.models.presets import PRESETS
    from radseg.models.preprocess import Preprocessing, prepare, prepare_labels

    pre = Preprocessing(spatial_dims=2, **PRESETS[preset].preprocessing)
    small = {case.case_id: case for case in open_prepared(kit).cases}
    dices, differences = [], []
    for case in open_prepared(prepared).cases:
        other = small[case.case_id]
        if case.image.shape != other.image.shape:
            (full_x, full_grid), (kit_x, kit_grid) = prepare(case.image, pre), prepare(other.image, pre)
            full_y, kit_y = prepare_labels(case.label, full_grid) > 0, prepare_labels(other.label, kit_grid) > 0
            total = int(full_y.sum() + kit_y.sum())
            dices.append(2 * int((full_y & kit_y).sum()) / total if total else 1.0)
            differences.append(float(np.abs(full_x - kit_x).mean()))
        case.unload()
        other.unload()
    if not dices:
        return {"images_compared": 0}
    return {"images_compared": len(dices), "grid_px": list(pre.size), "label_dice_min": round(min(dices), 4),
            "label_dice_median": round(float(np.median(dices)), 4),
            "image_mean_abs_difference_max": round(max(differences), 4)}


def download_wheels(out: Path) -> list[Path]:
    """The installed versions of WHEELS as pure-Python wheels for the device's Python."""
    out.mkdir(parents=True)
    for name in WHEELS:
        platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
        command = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                   "--python-version", "3.12", "--implementation", "cp", *platforms, "-d", str(out),
                   f"{name}=={metadata.version(name)}"]
        if subprocess.run(command).returncode:
            raise SystemExit(f"pip could not download {name}=={metadata.version(name)} (needs PyPI)")
    return sorted(out.glob("*.whl"))


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prepared", type=Path, default=ROOT / "runs" / "fracatlas5" / "prepared")
    parser.add_argument("--out", type=Path, default=ROOT / ".gpukit")
    parser.add_argument("--max-side", type=int, default=1024, help="longer side, px, of the images carried")
    args = parser.parse_args()
    if args.out.exists():
        raise SystemExit(f"{args.out} exists: remove it first (a kit is built whole or not at all)")
    work = args.out.with_name(args.out.name + ".partial")
    shutil.rmtree(work, ignore_errors=True)
    shrunk = pack_prepared(args.prepared, work / "prepared", args.max_side)
    wheels = download_wheels(work / "wheels")
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split("\0")
    tracked = sum((ROOT / f).stat().st_size for f in listed if f and (ROOT / f).is_file())  # what travels beside
    total = tracked + _size(work)
    summary = {"prepared": str(args.prepared), "max_side_px": args.max_side, "images_shrunk": shrunk,
               "at_training_grid": shrink_effect(args.prepared, work / "prepared"),
               "wheels": [w.name for w in wheels], "kit_bytes": _size(work), "with_tracked_files_bytes": total}
    (work / "kit.json").write_text(json.dumps(summary, indent=1))
    if total > BUDGET:
        raise SystemExit(f"{work}: {total / 2**20:.1f} MiB with the tracked files, over the 64 MiB a device call "
                         "carries; lower --max-side")
    work.rename(args.out)
    command = " ".join([".venv/bin/python benchmarks/fracatlas_gpu_kit.py", *sys.argv[1:]])
    RESULTS.write_text(f"# FracAtlas GPU kit\n\n{time.strftime('%Y-%m-%d %H:%M')}:\n\n    {command}\n\n"
                       f"```json\n{json.dumps(summary, indent=1)}\n```\n")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
