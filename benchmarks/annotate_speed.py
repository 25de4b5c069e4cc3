"""Speed of ``radseg annotate bone`` on a 512 x 512 x 300 CT, beside plain threshold + hole-fill pipelines.

The CT is a ``hip-ct`` phantom synthesized directly on a 300 x 512 x 512 grid (1.0 mm slices,
0.8 mm pixels; seed 7, pathology 1). Timed (wall clock, median of ``--repeat`` interleaved rounds):

* ``extract_bone`` in 3D mode (the default: one graph cut over the volume) and 2D mode (per slice);
* SimpleITK: ``DiscreteGaussian`` + ``OtsuThreshold`` + per-slice ``BinaryFillhole``;
* scikit-image / SciPy: ``gaussian_filter`` + ``threshold_otsu`` + per-slice ``binary_fill_holes``.

Dice against the phantom's exact bone is given for context. Writes
``benchmarks/results/annotate_speed.md``. Run it niced on a shared machine:

    nice -n 10 .venv/bin/python benchmarks/annotate_speed.py [--repeat 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np
from radseg.system import usable_cores  # the cores this process may use, not the host's

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SHAPE, SPACING = (300, 512, 512), (1.0, 0.8, 0.8)


def _phantom():
    from radseg.synth import hip_ct
    from radseg.synth.cohort import make_subject

    case = hip_ct.make_case(make_subject(0, seed=7, prefix=hip_ct.PREFIX), shape=SHAPE, spacing=SPACING, pathology=1,
                            implant_rate=0.0, fov_rate=0.0)
    return case.image, case.labels.array > 0


def _sitk(ct):
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(ct.array.astype(np.float32))
    image.SetSpacing([float(v) for v in ct.spacing[::-1]])
    blurred = sitk.DiscreteGaussian(image, variance=0.25, maximumKernelWidth=16, useImageSpacing=True)
    # Otsu on tissue only (> -200 HU), as radseg does; on the whole CT it would split air from tissue
    values = sitk.GetArrayViewFromImage(blurred)
    tissue = sitk.GetImageFromArray((values > -200).astype(np.uint8))
    tissue.CopyInformation(blurred)
    otsu = sitk.OtsuThresholdImageFilter()
    otsu.SetInsideValue(0)
    otsu.SetOutsideValue(1)
    otsu.SetMaskValue(1)
    mask = otsu.Execute(blurred, tissue)
    mask = sitk.Mask(mask, tissue)
    array = sitk.GetArrayFromImage(mask).astype(bool)
    for z in range(array.shape[0]):  # holes enclosed within each axial slice
        slice_ = sitk.GetImageFromArray(array[z].astype(np.uint8))
        array[z] = sitk.GetArrayViewFromImage(sitk.BinaryFillhole(slice_, fullyConnected=False, foregroundValue=1)) > 0
    return array


def _skimage(ct):
    from scipy import ndimage
    from skimage.filters import threshold_otsu

    blurred = ndimage.gaussian_filter(ct.array.astype(np.float32), sigma=0.5 / ct.spacing, truncate=3.0)
    values = blurred[::4, ::4, ::4]
    mask = blurred > threshold_otsu(values[values > -200])
    for z in range(mask.shape[0]):
        mask[z] = ndimage.binary_fill_holes(mask[z])
    return mask


def _radseg(mode, whole=True):
    def run(ct):
        from radseg.annotate.bone_extraction import extract_bone

        result = extract_bone(ct, mode=mode, whole=whole)
        run.summary = result.summary()
        return result.mask.array > 0
    return run


def _rss_gb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024 ** 2
    return float("nan")


def _child(method, ct, queue) -> None:
    import resource

    base = _rss_gb()
    start = time.perf_counter()
    mask = method(ct)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2  # kB -> GB
    queue.put((seconds, max(0.0, peak - base), mask, getattr(method, "summary", None)))


def _measured(method, ct):
    """``(seconds, peak memory above the input in GB, mask, summary)`` of one run in a forked child
    (the CT is shared with it, so the peak is what the method itself adds)."""
    import multiprocessing as mp

    context = mp.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_child, args=(method, ct, queue))
    child.start()
    result = queue.get()
    child.join()
    return result


def main() -> None:
    from radseg.evaluate import dice

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    clock = time.perf_counter()
    ct, truth = _phantom()
    synth_seconds = time.perf_counter() - clock
    methods = {"radseg annotate bone (whole bone, the default)": _radseg("3d"),
               "radseg annotate bone --cortex-only (3D graph cut)": _radseg("3d", whole=False),
               "radseg annotate bone --cortex-only --mode 2d": _radseg("2d", whole=False),
               "SimpleITK blur + Otsu + fill holes": _sitk, "scikit-image blur + Otsu + fill holes": _skimage}
    load_before = " / ".join(f"{v:.2f}" for v in os.getloadavg())
    runs: dict[str, list] = {name: [] for name in methods}
    for _ in range(args.repeat):  # interleaved rounds: load drift hits every method alike
        for name, method in methods.items():
            runs[name].append(_measured(method, ct))
            print(f"{name}: {runs[name][-1][0]:.1f} s", flush=True)
    load_after = " / ".join(f"{v:.2f}" for v in os.getloadavg())
    rows = []
    for name, measured in runs.items():
        seconds, memory = statistics.median(r[0] for r in measured), max(r[1] for r in measured)
        rows.append((name, seconds, memory, dice(measured[-1][2], truth), measured[-1][3]))
    plain = min(seconds for name, seconds, *_ in rows if not name.startswith("radseg"))
    niced = f"nice -n {os.nice(0)} " if os.nice(0) > 0 else ""  # the niceness it ran at
    lines = [
        "# Bone extraction speed: 512 x 512 x 300 CT", "",
        f"## {datetime.now():%Y-%m-%d %H:%M} on {platform.node()} ({platform.machine()}, {usable_cores()} usable cores, "
        "shared with other jobs)", "",
        f"Command: `{niced}.venv/bin/python benchmarks/annotate_speed.py --repeat {args.repeat}`. "
        f"CT: hip-ct phantom (seed 7, pathology 1) made directly on a {SHAPE[2]} x {SHAPE[1]} x {SHAPE[0]} grid "
        f"({SPACING[1]} mm pixels, {SPACING[0]} mm slices; {np.prod(SHAPE) / 1e6:.1f} M voxels, synthesized in "
        f"{synth_seconds:.0f} s, not timed). Wall clock, median of {args.repeat} interleaved rounds (every method once "
        f"per round), each run in a forked child; load average (1/5/15 min) {load_before} before, {load_after} after. "
        "Memory "
        "is the child's peak resident memory above what it started with (the CT itself, 157 MB, is shared with it); "
        "Dice against the phantom's exact bone. The issue's budget: 60 s and 4 GB. Threads: SimpleITK's filters use "
        "every core, radseg's whole-bone steps two (independent steps side by side; OpenCV, edt and cc3d release the "
        "GIL), scikit-image / SciPy one. radseg's masks are voxel-identical to its scipy.ndimage implementation of "
        "2026-12-06 09:00 (58.1 s, 2.46 GB; tests/annotate/test_morphology.py compares every replaced step with scipy).", "",
        "| method | seconds | x fastest plain pipeline | peak memory GB | Dice |", "| --- | --- | --- | --- | --- |",
    ]
    for name, seconds, memory, score, _ in rows:
        lines.append(f"| {name} | {seconds:.1f} | {seconds / plain:.1f} | {memory:.2f} | {score:.4f} |")
    for name, _, _, _, summary in rows[:2]:
        if summary:
            steps = ", ".join(f"{k} {v:.1f} s" for k, v in summary["seconds"].items())
            lines += ["", f"{name}: {summary['graph_nodes']:,} graph nodes (the band between the seeds), steps: {steps}."]
    text = "\n".join(lines) + "\n"
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "annotate_speed.md").write_text(text)
    sys.stdout.write(text)


if __name__ == "__main__":
    main()
