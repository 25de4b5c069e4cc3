"""Fixed costs (issue 25), whole process, interleaved: radseg beside the native tools on the same inputs.

* ``radseg convert`` of a 300x512x512 CT series to ``.nii`` vs ``dcm2niix -z n`` (and SimpleITK);
* ``radseg info`` on it vs ``dcm2niix -b o`` (headers only: the BIDS sidecar, no image);
* ``radseg --help`` and ``radseg version`` (with ``python -c pass`` as the interpreter's floor);
* 2D metrics (Dice, HD, HD95, ASSD) of a 1024x1024 pair vs DeepMind surface-distance.

Every tool runs as a fresh process (start-up and imports count, as they do for a user); each round
runs every tool once, in turn, so load drift hits all alike; the table gives medians and the ratio
to the reference measured in the same run. The 1-minute load average is noted before and after.

radseg's own modules are compiled first (``compileall``, as ``make setup`` does): radseg is an
editable install, which pip leaves uncompiled, and where PYTHONDONTWRITEBYTECODE is set (this
machine) Python never caches the bytecode, so every run would compile ~25 modules again (~40 ms;
after an edit, the edited ones). A normal ``pip install`` compiles them, so this measures what a
user runs.

    .venv/bin/python benchmarks/fixed_costs.py [--runs 5] [--slices 300] [--keep /tmp/fc/s300]

Writes benchmarks/results/fixed_costs.md (the latest run; the command is at its top).
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
sys.path.insert(0, str(ROOT / "benchmarks"))

from dicom_to_nifti import SITK_SCRIPT, series_folder  # noqa: E402
from surface_metrics import CASES, DEEPMIND, RADSEG, blob  # noqa: E402


OTHER_FIGURES = "<!-- figures measured by other benchmarks (kept when this file is rewritten) -->"


def _seconds(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - start


def _load() -> str:
    return " / ".join(f"{v:.2f}" for v in os.getloadavg())


def _has(module: str) -> bool:
    return subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True).returncode == 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--keep", type=Path, default=None, help="reuse/keep the series in this folder")
    args = parser.parse_args()
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "src")], check=True)  # see the docstring
    work = Path(tempfile.mkdtemp(prefix="radseg-fixed-"))
    series = series_folder(args.keep or work / "series", args.slices)
    shape, spacing, truth_spec, pred_spec = CASES["2D 1024x1024"]
    np.save(work / "truth.npy", blob(shape, *truth_spec))
    np.save(work / "pred.npy", blob(shape, *pred_spec))
    masks = [str(work / "pred.npy"), str(work / "truth.npy"), json.dumps(list(spacing))]

    radseg = str(ROOT / ".venv" / "bin" / "radseg")
    py = sys.executable
    dcm2niix = shutil.which("dcm2niix")
    out = work / "out"

    def fresh() -> Path:
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
        return out

    # group -> {tool: command maker}; the first tool of a group is the one the ratios are to.
    groups: dict[str, dict] = {
        "convert 300x512x512 to .nii": {},
        "info (headers only)": {},
        "start-up": {"python -c pass": lambda: [py, "-c", "pass"],
                     "radseg --help": lambda: [radseg, "--help"], "radseg version": lambda: [radseg, "version"]},
        "2D metrics 1024x1024 (Dice, HD, HD95, ASSD)": {},
    }
    if dcm2niix:
        groups["convert 300x512x512 to .nii"]["dcm2niix -z n"] = lambda: [dcm2niix, "-z", "n", "-f", "d", "-o", str(fresh()), str(series)]
        groups["info (headers only)"]["dcm2niix -b o"] = lambda: [dcm2niix, "-b", "o", "-f", "d", "-o", str(fresh()), str(series)]
    groups["convert 300x512x512 to .nii"]["radseg convert"] = lambda: [radseg, "convert", str(series), str(fresh() / "r.nii"), "-q"]
    groups["convert 300x512x512 to .nii"]["SimpleITK"] = lambda: [py, "-c", SITK_SCRIPT, str(series), str(fresh() / "s.nii")]
    groups["info (headers only)"]["radseg info"] = lambda: [radseg, "info", str(series)]
    metrics = groups["2D metrics 1024x1024 (Dice, HD, HD95, ASSD)"]
    deepmind = _has("surface_distance")
    if deepmind:
        metrics["DeepMind surface-distance"] = lambda: [py, "-c", DEEPMIND, *masks]
    metrics["radseg.evaluate"] = lambda: [py, "-c", RADSEG, *masks]

    load_before = _load()
    times: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.runs + 1):  # the first round warms the page cache and is dropped
        for group, tools in groups.items():
            for name, make in tools.items():
                times.setdefault((group, name), []).append(_seconds(make()))
    load_after = _load()

    lines = [
        "# Fixed costs: radseg beside the native tools (whole process)",
        "",
        f"Command: `.venv/bin/python benchmarks/fixed_costs.py --runs {args.runs} --slices {args.slices}`",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M')} on {platform.node() or 'this machine'} ({platform.machine()}, "
        f"{len(os.sched_getaffinity(0))} cores); load average (1/5/15 min) {load_before} before, {load_after} after. "
        f"Median of {args.runs} interleaved rounds after one warm-up round; each tool a fresh process.",
        f"Series: {args.slices} slices of 512x512 int16, uncompressed, shuffled file names (benchmarks/dicom_to_nifti.py).",
        "radseg's modules are compiled to bytecode first, as `make setup` and a normal pip install do "
        "(the editable install does not, and PYTHONDONTWRITEBYTECODE would make every run compile them).",
        "",
        "| task | tool | median s | ratio to the first tool of the task |",
        "| --- | --- | --- | --- |",
    ]
    for group, tools in groups.items():
        reference = None
        for name in tools:
            median = statistics.median(times[(group, name)][1:])
            reference = reference or median
            lines.append(f"| {group} | {name} | {median:.3f} | {median / reference:.2f} |")
    if not dcm2niix:
        lines.append("\ndcm2niix is not on PATH: the conversion and info rows have no native reference.")
    if not deepmind:
        lines.append("\nsurface-distance is not installed: the 2D metrics row has no DeepMind reference.")
    report = "\n".join(lines) + "\n"
    print(report)
    results = ROOT / "benchmarks" / "results" / "fixed_costs.md"
    # the other figures come from their own benchmarks; their summary below the marker is kept
    kept = results.read_text().partition(OTHER_FIGURES)[2] if results.exists() else ""
    results.write_text(report + (f"\n{OTHER_FIGURES}{kept}" if kept else ""))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
