"""DICOM series -> NIfTI, whole process, side by side: radseg vs dcm2niix vs SimpleITK.

Makes a 300-slice 512x512 CT series (CT-like content, uncompressed, shuffled file names),
then times each tool as a fresh process (so imports count, as they do for a user),
median of N runs, and records peak memory. Ratios are what matter: these machines are
noisy, so all tools run in the same session, interleaved.

    .venv/bin/python benchmarks/dicom_to_nifti.py [--slices 300] [--runs 3]

Results are appended to benchmarks/results/dicom_to_nifti.md with the command line.
"""

from __future__ import annotations

import argparse
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
sys.path.insert(0, str(ROOT / "src"))

from radseg.image import Image  # noqa: E402
from radseg.io.dicom_write import write_dicom_series  # noqa: E402
from radseg.system import usable_cores  # noqa: E402

SITK_SCRIPT = """
import sys, SimpleITK as sitk
reader = sitk.ImageSeriesReader()
reader.SetFileNames(reader.GetGDCMSeriesFileNames(sys.argv[1]))
sitk.WriteImage(reader.Execute(), sys.argv[2])
"""


def make_series(folder: Path, slices: int) -> None:
    rng = np.random.default_rng(0)
    j, i = np.ogrid[:512, :512]
    body = ((j - 256) ** 2 / 200**2 + (i - 256) ** 2 / 230**2) <= 1
    bone = ((j - 300) ** 2 + (i - 180) ** 2 <= 30**2) | ((j - 300) ** 2 + (i - 330) ** 2 <= 30**2)
    for start in range(0, slices, 50):  # in chunks to bound memory
        n = min(50, slices - start)
        volume = np.full((n, 512, 512), -1000, np.int16)
        volume[:, body] = 40
        volume[:, bone] = 700
        volume = volume + rng.normal(0, 12, size=volume.shape).astype(np.int16) * body[np.newaxis]
        affine = np.eye(4)
        affine[:3, :3] = np.array([[0, 0, 0.78], [0, 0.78, 0], [1.0, 0, 0]])
        affine[:3, 3] = [-200.0, -200.0, -300.0 + start]
        write_dicom_series(Image(volume, affine=affine), folder, series_uid="1.2.826.0.1.3680043.8.498.1",
                           study_uid="1.2.826.0.1.3680043.8.498.2", file_pattern="{uid}.dcm")


def timed(cmd: list[str]) -> tuple[float, float]:
    """Wall seconds and peak resident MB of one command (GNU time when present)."""
    gnu_time = shutil.which("time") or ("/usr/bin/time" if Path("/usr/bin/time").exists() else None)
    if gnu_time:
        with tempfile.NamedTemporaryFile("r") as log:
            start = time.perf_counter()
            subprocess.run([gnu_time, "-f", "%M", "-o", log.name, *cmd], check=True, capture_output=True)
            seconds = time.perf_counter() - start
            peak = float(log.read().strip().splitlines()[-1]) / 1024
        return seconds, peak
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - start, float("nan")


def series_folder(folder: Path, slices: int) -> Path:
    """``folder`` holding the benchmark series: reused when it has files, else written."""
    if not folder.exists() or not any(folder.iterdir()):
        print(f"writing {slices}-slice series to {folder} ...", flush=True)
        make_series(folder, slices)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keep", type=Path, default=None, help="reuse/keep the series in this folder")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="radseg-bench-"))
    series = series_folder(args.keep or work / "series", args.slices)
    radseg = str(ROOT / ".venv" / "bin" / "radseg") if (ROOT / ".venv" / "bin" / "radseg").exists() else "radseg"
    dcm2niix = shutil.which("dcm2niix")
    results: dict[str, list[tuple[float, float]]] = {}
    for suffix, d2n_flag in ((".nii", "n"), (".nii.gz", "y")):
        tools = {
            f"radseg convert ({suffix})": lambda out: [radseg, "convert", str(series), str(out / f"r{suffix}"), "-q"],
            f"SimpleITK ({suffix})": lambda out: [sys.executable, "-c", SITK_SCRIPT, str(series), str(out / f"s{suffix}")],
        }
        if dcm2niix:
            tools[f"dcm2niix -z {d2n_flag} ({suffix})"] = lambda out: [dcm2niix, "-z", d2n_flag, "-f", "d", "-o", str(out), str(series)]
        for run in range(args.runs):
            for name, make_cmd in tools.items():  # interleaved so drift hits every tool alike
                out = work / f"out-{run}-{len(results.get(name, []))}-{abs(hash(name))}"
                out.mkdir()
                results.setdefault(name, []).append(timed(make_cmd(out)))
                shutil.rmtree(out)
    lines = [
        f"\n## {time.strftime('%Y-%m-%d %H:%M')} on {platform.node() or 'this machine'} "
        f"({platform.processor() or platform.machine()}, {usable_cores()} cores)",
        "",
        f"Command: `.venv/bin/python benchmarks/dicom_to_nifti.py --slices {args.slices} --runs {args.runs}`",
        f"Series: {args.slices} slices of 512x512 int16, uncompressed, shuffled file names. Median of {args.runs} runs, whole process.",
        "",
        "| tool | median s | peak MB | radseg / tool |",
        "| --- | --- | --- | --- |",
    ]
    for suffix in (".nii", ".nii.gz"):
        ours = statistics.median(s for s, _ in results[f"radseg convert ({suffix})"])
        for name, runs in results.items():
            if not name.endswith(f"({suffix})"):
                continue
            seconds = statistics.median(s for s, _ in runs)
            peak = max(m for _, m in runs)
            lines.append(f"| {name} | {seconds:.2f} | {peak:.0f} | {ours / seconds:.2f} |")
    report = "\n".join(lines) + "\n"
    print(report)
    results_file = ROOT / "benchmarks" / "results" / "dicom_to_nifti.md"
    results_file.parent.mkdir(exist_ok=True)
    if not results_file.exists():
        results_file.write_text("# DICOM series -> NIfTI: radseg vs dcm2niix vs SimpleITK\n")
    with results_file.open("a") as handle:
        handle.write(report)
    if not args.keep:
        shutil.rmtree(work)



if __name__ == "__main__":
    main()
