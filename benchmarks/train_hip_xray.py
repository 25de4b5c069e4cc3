"""Accuracy under a CPU budget: a 2D U-Net trained on 60 hip-xray phantoms, tested on 20 more.

    .venv/bin/python benchmarks/train_hip_xray.py --budget 300 --threads 2

Cases 0-59 of ``radseg synth hip-xray`` (seed 0) train (90%) and validate (10%); cases 60-79
are never seen and are scored with ``Predictor.predict`` on their own grid (448 x 512,
0.78 mm), Dice per HexAI label (1-6) with :func:`radseg.evaluate.dice`. The time budget covers
the whole ``train()`` call (preprocessing, training, validation, writing the bundle); the
phantoms are made beforehand and cached. Writes benchmarks/results/train_hip_xray.md and
.json; the machine's load average is recorded because other jobs share the CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _phantoms import phantoms  # noqa: E402
from radseg.system import usable_cores  # the cores this process may use, not the host's

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=300.0, help="seconds for the whole train() call")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--train", type=int, default=60)
    parser.add_argument("--test", type=int, default=20)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/radseg-bench"))
    parser.add_argument("--run", type=Path, default=Path("/tmp/radseg-bench/hip-xray-run"))
    parser.add_argument("--model-args", default=None, help="JSON network options (default: the hip-xray preset's)")
    parser.add_argument("--size", type=int, default=None, help="fit size in pixels (default: the preset's)")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--epochs", type=int, default=10_000, help="epoch cap (default: the budget decides)")
    parser.add_argument("--iters-per-epoch", type=int, default=None)
    parser.add_argument("--val-every", type=int, default=None)
    parser.add_argument("--overhead", type=float, default=15.0,
                        help="seconds kept for the final validation and writing the bundle")
    parser.add_argument("--tag", default="train_hip_xray")
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder for TAG.md and TAG.json")
    args = parser.parse_args()

    import shutil

    # radseg before torch, as `radseg train` does: OpenMP threads then wait passively (radseg.models.cpu)
    from radseg.evaluate import dice
    from radseg.infer.predictor import Predictor
    from radseg.train.config import TrainConfig
    from radseg.train.data import from_pairs
    from radseg.train.loop import train

    import torch

    cases = phantoms("hip-xray", args.train + args.test, cache=args.cache)
    train_cases, test_cases = cases[:args.train], cases[args.train:]
    data = from_pairs([(img, lab) for _, img, lab in train_cases], case_ids=[c for c, _, _ in train_cases])
    shutil.rmtree(args.run, ignore_errors=True)
    load_before = os.getloadavg()
    # train()'s clock starts before reading and preprocessing; the loop stops early enough for
    # a last validation and the bundle, but an iteration on a loaded machine can overshoot.
    config = TrainConfig(output=args.run, preset="hip-xray", epochs=args.epochs, iters_per_epoch=args.iters_per_epoch,
                         val_every=args.val_every, time_limit=args.budget - args.overhead, threads=args.threads,
                         val_fraction=0.1, seed=0,
                         preprocessing={"size": (args.size, args.size)} if args.size else {},
                         arch_kwargs=json.loads(args.model_args) if args.model_args else {},
                         batch_size=args.batch_size, lr=args.lr, device="cpu")
    start = time.perf_counter()
    result = train(config, data)
    train_seconds = time.perf_counter() - start
    load_during = os.getloadavg()

    predictor = Predictor.load(result.model_path, device="cpu", threads=args.threads)
    names = predictor.label_names
    per_label = {v: [] for v in names}
    start = time.perf_counter()
    for _, image, truth in test_cases:
        pred = predictor.predict(image)
        for value in names:
            per_label[value].append(dice(pred.array == value, truth.array == value))
    infer_seconds = (time.perf_counter() - start) / len(test_cases)
    label_means = {names[v]: float(np.nanmean(d)) for v, d in per_label.items()}
    case_means = np.nanmean(np.array([per_label[v] for v in names]), axis=0)
    mean = float(np.mean(case_means))
    record = {
        "command": " ".join([".venv/bin/python", "benchmarks/train_hip_xray.py", *sys.argv[1:]]),
        "budget_s": args.budget, "train_call_s": round(train_seconds, 1), "threads": args.threads,
        "cpu_count": os.cpu_count(), "usable_cores": usable_cores(), "load_avg_before": load_before, "load_avg_after_training": load_during,
        "epochs": result.epochs_done, "iterations": result.history[-1]["iteration"] if result.history else 0,
        "stopped": result.stopped, "best_val_dice": result.best_dice,
        "test_mean_dice": mean, "test_min_case_dice": float(case_means.min()),
        "test_dice_per_label": label_means, "inference_s_per_image": round(infer_seconds, 3),
        "config": json.loads((args.run / "config.json").read_text()),
        "torch": torch.__version__, "platform": platform.platform(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
    }
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / f"{args.tag}.json").write_text(json.dumps(record, indent=2))
    lines = [
        "# 2D U-Net on hip-xray phantoms under a CPU time budget", "",
        f"Command: `{record['command']}`", "",
        f"- training: 60 phantoms (cases 0-59, seed 0; 54 train / 6 validation), whole `train()` call "
        f"{train_seconds:.0f} s for a budget of {args.budget:.0f} s on {args.threads} threads "
        f"({result.epochs_done} epochs, {record['iterations']} iterations of batch {record['config']['batch_size']}, stopped: {result.stopped})",
        f"- machine: {usable_cores()} usable cores, load average before {load_before[0]:.2f}, after training "
        f"{load_during[0]:.2f} (1-min); other jobs share this CPU, so a loaded machine trains fewer iterations",
        f"- model: {record['config']['architecture']} {record['config']['arch_kwargs']}, input "
        f"{'x'.join(map(str, record['config']['preprocessing']['size']))} (aspect kept, padded), percentile normalisation, Dice+CE, AdamW, flips with L/R label swap",
        "", f"**Test (20 unseen phantoms, cases 60-79): mean Dice {mean:.4f}** (worst case {case_means.min():.4f}); "
        f"best validation Dice {result.best_dice:.4f}; inference {infer_seconds:.2f} s per 448x512 image", "",
        "| label | Dice (mean of 20) |", "| --- | --- |",
        *[f"| {name} | {d:.4f} |" for name, d in label_means.items()], "",
    ]
    (args.results / f"{args.tag}.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
