"""``radseg benchmark`` on the seed papers' task at a CPU-sized budget, with the commands that made it (issue 26).

    .venv/bin/python benchmarks/benchmark_models.py brain-ct [--work /tmp/radseg-bench] [--time-limit 120]
    .venv/bin/python benchmarks/benchmark_models.py hemorrhage-real [--data ../shared/data/brain-ct]

``brain-ct``: HemSeg-style table of the six HemSeg-200 architectures (UNet, VNet, SegResNet,
AttentionUnet, UNETR, SwinUNETR) on ``radseg synth brain-ct`` phantoms, 3-fold patient-grouped
cross-validation. ``hemorrhage-real``: the 72 real head-CT slices (BHSD + CT-ICH, 2D, hemorrhage
of any type), 5-fold patient-grouped cross-validation. Each step is a radseg command, printed
into the results file; a rerun resumes (finished model x fold pairs are skipped).
Writes benchmarks/results/benchmark_brain_ct.md or benchmark_hemorrhage_real.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path
from radseg.system import usable_cores  # the cores this process may use, not the host's

ROOT = Path(__file__).resolve().parents[1]
RADSEG = [sys.executable, "-m", "radseg"]
HEMSEG_SIX = "unet,vnet,segresnet,attention-unet,unetr,swin-unetr"


def _run(command: list[str], log: list[str]) -> None:
    shown = " ".join(shlex.quote(str(c)) for c in ["radseg", *command[3:]])
    log.append(shown)
    print("$", shown, flush=True)
    subprocess.run([str(c) for c in command], check=True)


def brain_ct(args, log: list[str]) -> tuple[Path, str]:
    work = Path(args.work) / "brain-ct"
    phantoms, prepared, out = work / "phantoms", work / "prepared", work / "benchmark"
    _run([*RADSEG, "synth", "brain-ct", "-n", "24", "--spacing", "5,2,2", "--shape", "32,112,112", "-o", phantoms,
          "-q"], log)
    _run([*RADSEG, "datasets", "prepare", "hemseg", "--root", phantoms, "-o", prepared, "-q"], log)
    _run([*RADSEG, "benchmark", "--data", prepared, "-o", out, "--arch", args.arch or HEMSEG_SIX, "--folds", "3",
          "--spacing", "5,2,2", "--patch-size", "32,64,64", "--epochs", "15", "--iters-per-epoch", "20",
          "--batch-size", "2", "--time-limit", str(args.time_limit), "--ci", "hemseg", "-q"], log)
    return out, "benchmark_brain_ct.md"


def hemorrhage_real(args, log: list[str]) -> tuple[Path, str]:
    work = Path(args.work) / "hemorrhage-real"
    prepared, out = work / "prepared", work / "benchmark"
    _run([*RADSEG, "datasets", "prepare", "brain-ct-slices", "--root", args.data, "-o", prepared, "-q"], log)
    _run([*RADSEG, "benchmark", "--data", prepared, "-o", out, "--arch", args.arch or "unet,attention-unet,segresnet",
          "--folds", "5", "--patch-size", "128,128", "--epochs", "25", "--iters-per-epoch", "20",
          "--time-limit", str(args.time_limit),
          "--by", "source", "--ci", "hemseg", "-q"], log)
    return out, "benchmark_hemorrhage_real.md"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task", choices=("brain-ct", "hemorrhage-real"))
    parser.add_argument("--work", default="/tmp/radseg-bench", help="Working folder (phantoms, prepared data, runs).")
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "brain-ct"))
    parser.add_argument("--arch", default=None, help="Architectures (default: the task's list).")
    parser.add_argument("--time-limit", type=float, default=120.0, help="Seconds per training run.")
    args = parser.parse_args()
    log: list[str] = []
    start = time.time()
    load_before = os.getloadavg()
    out, name = (brain_ct if args.task == "brain-ct" else hemorrhage_real)(args, log)
    minutes = (time.time() - start) / 60
    load_after = os.getloadavg()
    import pandas as pd

    runs = pd.read_csv(out / "runs.csv")
    compute = (runs["train_seconds"].sum() + (runs["inference_seconds_per_case"] * runs["n_test"]).sum()) / 60
    text = [f"# `radseg benchmark`: {args.task}", "",
            f"Made by `.venv/bin/python benchmarks/benchmark_models.py {args.task} --time-limit {args.time_limit:g}`"
            f" on {usable_cores()} usable CPU cores ({platform.processor() or platform.machine()}): {compute:.0f} min of "
            f"training and inference in all (this invocation: {minutes:.0f} min wall, load average "
            f"{load_before[0]:.1f} before, {load_after[0]:.1f} after; a rerun resumes and skips finished runs), "
            "which runs:", "",
            "```", *log, "```", "",
            "Network options: `unet` is the task preset's own U-Net (the preset names it, so its options apply); "
            "every other architecture takes radseg's registry defaults (`radseg models list`). The parameters "
            "column shows the difference. Every run has the same preprocessing, seed, epochs x iterations and time "
            "limit; a run the limit stops is budget-limited (see Caveats).", "",
            (out / "benchmark.md").read_text()]
    target = ROOT / "benchmarks" / "results" / name
    target.write_text("\n".join(text))
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
