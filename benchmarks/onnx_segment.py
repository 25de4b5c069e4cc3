"""`radseg segment --backend onnx` vs a plain MONAI/torch script, whole runs on real radiographs.

    .venv/bin/python benchmarks/onnx_segment.py --images 50 --threads 2

Both are timed as the user meets them: one process over a folder of ``--images`` FracAtlas
radiographs (``../shared/data/fracatlas``: half fractured, half not; 2304x2880 JPEGs), with
the shipped ``fracatlas`` model (512-px fit grid, 192-px Gaussian sliding window), the same
thread count, start-up and imports included. The baseline is ``benchmarks/_monai_segment.py``
(torch + MONAI: the network, ``sliding_window_inference``, ``F.interpolate``). Runs alternate
(so a change in the machine's load hits both) and the median of ``--repeats`` is kept. Then
the label PNGs of the two are compared pixel by pixel. Writes
benchmarks/results/onnx_segment.md and .json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from radseg.system import usable_cores  # the cores this process may use, not the host's

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
DATA = ROOT.parent / "shared" / "data" / "fracatlas" / "images"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tag", default="onnx_segment")
    args = parser.parse_args()
    from PIL import Image

    from radseg.models.bundle import model_path

    if not DATA.is_dir():
        sys.exit(f"{DATA} is not here")
    half = args.images // 2
    chosen = sorted((DATA / "Fractured").glob("*.jpg"))[:half] + \
        sorted((DATA / "Non_fractured").glob("*.jpg"))[:args.images - half]
    work = Path(tempfile.mkdtemp(prefix="radseg-onnx-segment-"))
    source = work / "in"
    source.mkdir()
    for path in chosen:
        shutil.copy(path, source / path.name)
    model = model_path("fracatlas")
    bin_dir = Path(sys.executable).parent
    commands = {
        "radseg segment --backend onnx": [str(bin_dir / "radseg"), "segment", "-i", str(source), "-o", str(work / "onnx"),
                                          "-m", "fracatlas", "--no-tta", "--backend", "onnx", "--threads", str(args.threads),
                                          "-q", "--overwrite"],
        "plain MONAI/torch script": [sys.executable, str(Path(__file__).parent / "_monai_segment.py"), str(model),
                                     str(source), str(work / "monai"), str(args.threads)],
    }
    load_before = os.getloadavg()
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.repeats):
        for name, command in commands.items():
            start = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True)
            times[name].append(time.perf_counter() - start)
    load_after = os.getloadavg()
    same = total = images_differing = 0
    for path in chosen:
        a = np.array(Image.open(work / "onnx" / f"{path.stem}.png"))
        b = np.array(Image.open(work / "monai" / f"{path.stem}.png"))
        assert a.shape == b.shape, (path, a.shape, b.shape)
        same += int((a == b).sum())
        total += a.size
        images_differing += int((a != b).any())
    rates = {name: len(chosen) / statistics.median(t) for name, t in times.items()}
    onnx_rate, monai_rate = rates["radseg segment --backend onnx"], rates["plain MONAI/torch script"]
    import onnxruntime
    import torch

    record = {
        "command": " ".join([".venv/bin/python", "benchmarks/onnx_segment.py", *sys.argv[1:]]),
        "date": datetime.date.today().isoformat(), "images": len(chosen), "threads": args.threads,
        "repeats": args.repeats, "cpu_count": os.cpu_count(), "usable_cores": usable_cores(), "load_avg_before": load_before,
        "load_avg_after": load_after, "seconds": times, "images_per_s": rates, "ratio": onnx_rate / monai_rate,
        "same_label_fraction": same / total, "pixels": total, "images_with_any_difference": images_differing,
        "timed_commands": {name: " ".join(c) for name, c in commands.items()},
        "torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.tag}.json").write_text(json.dumps(record, indent=2))
    lines = [
        "# `radseg segment --backend onnx` vs a plain MONAI/torch script (CPU, real radiographs)", "",
        f"Command: `{record['command']}` ({record['date']})", "",
        f"{len(chosen)} FracAtlas radiographs ({half} fractured, {len(chosen) - half} not; JPEGs up to 2304x2880), shipped "
        f"`fracatlas` model (512-px fit, 192-px Gaussian sliding window: 25 windows per image), {args.threads} threads "
        f"each, whole processes (imports and start-up included), median of {args.repeats} alternating runs; machine "
        f"{usable_cores()} usable cores, 1-min load average {load_before[0]:.2f} before, {load_after[0]:.2f} after "
        "(other jobs share the CPU).", "",
        "| path | median s | images / s | ratio |", "| --- | --- | --- | --- |",
        f"| plain MONAI/torch script (`benchmarks/_monai_segment.py`) | {statistics.median(times['plain MONAI/torch script']):.1f} "
        f"| {monai_rate:.2f} | 1.00 |",
        f"| `radseg segment --backend onnx` (no torch imported) | {statistics.median(times['radseg segment --backend onnx']):.1f} "
        f"| {onnx_rate:.2f} | {onnx_rate / monai_rate:.2f}x |", "",
        f"Agreement: same label on {100 * same / total:.5f}% of {total:,} pixels; {images_differing} of "
        f"{len(chosen)} images have any differing pixel.", "",
    ]
    (RESULTS / f"{args.tag}.md").write_text("\n".join(lines))
    print("\n".join(lines))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
