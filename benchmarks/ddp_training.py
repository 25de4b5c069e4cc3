"""Data-parallel training (issue 24): seconds per step and loss agreement, 1 vs 2 processes.

    .venv/bin/python benchmarks/ddp_training.py --rounds 3            # s/step and losses, interleaved
    .venv/bin/python benchmarks/ddp_training.py --control threads     # 1 process: 1 thread vs 2 threads
    .venv/bin/python benchmarks/ddp_training.py --control one-thread  # 1 process x 1 thread vs 2 processes x 1 thread

Trains on 10 disc phantoms (tests/train/shapes.py) with the same seed; `--nproc 2` uses gloo on CPU.
The numbers are in benchmarks/results/scale_out_ddp.md (appended to scale_out.md).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from radseg.train.config import TrainConfig  # noqa: E402
from radseg.train.data import from_pairs  # noqa: E402
from radseg.train.loop import train  # noqa: E402
from tests.train.shapes import disc_case  # noqa: E402

NETS = {"tiny": {"channels": [8, 16, 32], "strides": [2, 2], "num_res_units": 1},
        "unet16": {"channels": [16, 32, 64, 128, 256], "strides": [2, 2, 2, 2], "num_res_units": 2}}


def run(out: Path, data, net: str, size: int, batch: int, iters: int, nproc: int, threads: int):
    """(median s/step, per-step losses) of one training run."""
    stamps, losses = [], []

    def on_event(event):
        if event["kind"] == "iteration":
            stamps.append(time.perf_counter())
            losses.append(event["loss"])

    config = TrainConfig(output=out, preprocessing={"size": (size, size)}, arch_kwargs=NETS[net], epochs=1,
                         iters_per_epoch=iters, batch_size=batch, lr=1e-2, threads=threads, nproc=nproc, val_every=100)
    train(config, data, on_event=on_event)
    return float(np.median(np.diff(stamps))), np.array(losses)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--control", choices=["threads", "one-thread"], default=None)
    args = parser.parse_args()
    out = Path(tempfile.mkdtemp(prefix="radseg-ddp-"))
    rng = np.random.default_rng(0)
    data = from_pairs([disc_case(rng, shape=(140, 180)) for _ in range(10)])
    if args.control:  # (threads, nproc) pairs whose losses are compared on the 16-256 U-Net
        pairs = ((1, 1), (2, 1)) if args.control == "threads" else ((1, 1), (2, 2))
        losses = [run(out / f"c{t}{n}", data, "unet16", 128, 8, 20, n, t)[1] for t, n in pairs]
        print("relative loss difference per step:", np.array2string(np.abs(losses[0] - losses[1]) / losses[0], precision=1))
        return
    rows = []
    for net, size, batch, iters in (("tiny", 64, 8, 30), ("unet16", 128, 8, 20)):
        times, losses = {1: [], 2: []}, {}
        for r in range(args.rounds):
            for n in (1, 2):
                seconds, losses[n] = run(out / f"{net}-r{r}-n{n}", data, net, size, batch, iters, n, 2)
                times[n].append(seconds)
                print(net, "round", r + 1, "nproc", n, f"{seconds:.4f} s/step", flush=True)
        diff = np.abs(losses[1] - losses[2])
        rows.append({"net": net, "patch": size, "batch": batch, "steps": iters, "s_per_step_1": times[1],
                     "s_per_step_2": times[2], "max_abs": float(diff.max()), "max_rel": float((diff / np.abs(losses[1])).max())})
        print(json.dumps(rows[-1]), flush=True)


if __name__ == "__main__":
    main()
