"""Speed of ``radseg annotate bone`` on a 512 x 512 x 300 CT, beside plain threshold + hole-fill pipelines.

The CT is a ``hip-ct`` phantom synthesized directly on a 300 x 512 x 512 grid (1.0 mm slices,
0.8 mm pixels; seed 7, pathology 1). Timed (wall clock, best of ``--repeat``):

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
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SHAPE, SPACING = (300, 512, 512), (1.0, 0.8, 0.8)


def _phantom():
    from radseg.synth import hip_ct
    from radseg.synth.cohort import make_subject

    case = hip_ct.make_case(make_subject(0, seed=7, prefix=hip_ct.PREFIX), shape=SHAPE, spacing=SPACING, pathology=1)
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


def _radseg(mode):
    def run(ct):
        from radseg.annotate.bone_extraction import extract_bone

        result = extract_bone(ct, mode=mode)
        run.summary = result.summary()
        return result.mask.array > 0
    return run


def main() -> None:
    from radseg.evaluate import dice

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    clock = time.perf_counter()
    ct, truth = _phantom()
    synth_seconds = time.perf_counter() - clock
    methods = {"radseg annotate bone (3D graph cut)": _radseg("3d"), "radseg annotate bone --mode 2d": _radseg("2d"),
               "SimpleITK blur + Otsu + fill holes": _sitk, "scikit-image blur + Otsu + fill holes": _skimage}
    rows = []
    for name, method in methods.items():
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            mask = method(ct)
            times.append(time.perf_counter() - start)
        rows.append((name, min(times), dice(mask, truth), getattr(method, "summary", None)))
        print(f"{name}: {min(times):.1f} s, Dice {rows[-1][2]:.4f}", flush=True)
    plain = min(seconds for name, seconds, _, _ in rows if not name.startswith("radseg"))
    lines = [
        "# Bone extraction speed: 512 x 512 x 300 CT", "",
        f"## {datetime.now():%Y-%m-%d %H:%M} on {platform.node()} ({platform.machine()}, {os.cpu_count()} cores, "
        "shared with other jobs)", "",
        f"Command: `nice -n 10 .venv/bin/python benchmarks/annotate_speed.py --repeat {args.repeat}`. "
        f"CT: hip-ct phantom (seed 7, pathology 1) made directly on a {SHAPE[2]} x {SHAPE[1]} x {SHAPE[0]} grid "
        f"({SPACING[1]} mm pixels, {SPACING[0]} mm slices; {np.prod(SHAPE) / 1e6:.1f} M voxels, synthesized in "
        f"{synth_seconds:.0f} s, not timed). Wall clock, best of {args.repeat}; Dice against the phantom's exact bone.", "",
        "| method | seconds | x fastest plain pipeline | Dice |", "| --- | --- | --- | --- |",
    ]
    for name, seconds, score, _ in rows:
        lines.append(f"| {name} | {seconds:.1f} | {seconds / plain:.1f} | {score:.4f} |")
    summary = rows[0][3] or {}
    if summary:
        steps = ", ".join(f"{k} {v:.1f} s" for k, v in summary["seconds"].items())
        lines += ["", f"3D run: {summary['graph_nodes']:,} graph nodes (the band between the seeds), steps: {steps}."]
    text = "\n".join(lines) + "\n"
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "annotate_speed.md").write_text(text)
    sys.stdout.write(text)


if __name__ == "__main__":
    main()
