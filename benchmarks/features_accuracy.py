"""Accuracy of ``radseg features`` on phantoms with known geometry, and the time per case.

For each phantom kind the measurements are compared with what the generator recorded:

* knee-xray: medial/lateral minimum JSW (``{side}_{compartment}_jsw_mm``);
* chest-xray: CTR (CXAS definition), MRD, MLD, ID (``ctr``, ``ctr_mrd_mm`` ...);
* hip-xray: femoral-head diameter and centre (``{side}_head_radius_mm``, ``_head_u_mm``/``_v_mm``)
  and the neck-shaft angle against the phantom's neck and shaft axes projected onto the image;
* hip-ct: femoral-head diameter, centre (world mm) and minimum joint space (``{side}_jsw_min_mm``).

The acceptance rule of the project is "within 2% or one pixel spacing, angles within 2 degrees,
CTR within 0.02"; the table counts the measurements that meet it.

    .venv/bin/python benchmarks/features_accuracy.py --cases 20 --ct-cases 5
"""

from __future__ import annotations

import argparse
import datetime
import platform
import time
from pathlib import Path

import numpy as np

from radseg.features import measure
from radseg.features.geometry import angle_deg
from radseg.synth import phantom_kind
from radseg.synth.cohort import make_subject

SEED = 7


def _case(kind: str, index: int, **options):
    module = phantom_kind(kind)
    return module.make_case(make_subject(index, seed=SEED, prefix=module.PREFIX), **options)


def _measure(case, feature_set):
    start = time.perf_counter()
    rows = {(m.structure, m.name): m.value for m in measure(case.labels, feature_set, image=case.image)}
    return rows, time.perf_counter() - start


def knee(n):
    errors, times = [], []
    for i in range(n):
        case = _case("knee-xray", i)
        rows, seconds = _measure(case, "knee")
        times.append(seconds)
        spacing = float(case.labels.spacing[0])
        for side in ("right", "left"):
            for comp in ("medial", "lateral"):
                truth = case.params[f"{side}_{comp}_jsw_mm"]
                errors.append(("min JSW (mm)", rows[(f"{side} knee", f"min_jsw_{comp}")] - truth, truth, spacing))
    return errors, times


def chest(n):
    errors, times = [], []
    for i in range(n):
        case = _case("chest-xray", i)
        rows, seconds = _measure(case, "chest")
        times.append(seconds)
        spacing = float(case.labels.spacing[1])
        p = case.params
        errors.append(("CTR", rows[("chest", "ctr")] - p["ctr"], None, 0.02))
        for name, key in (("MRD (mm)", "ctr_mrd_mm"), ("MLD (mm)", "ctr_mld_mm"), ("ID (mm)", "ctr_id_mm")):
            errors.append((name, rows[("chest", name.split()[0].lower() if name != "ID (mm)" else "thoracic_width")]
                           - p[key], p[key], spacing))
    return errors, times


def hip_xray(n):
    errors, times = [], []
    for i in range(n):
        case = _case("hip-xray", i)
        rows, seconds = _measure(case, "hip")
        times.append(seconds)
        spacing = float(case.labels.spacing[0])
        for side in ("right", "left"):
            s = f"{side} hip"
            truth = 2 * case.params[f"{side}_head_radius_mm"]
            errors.append(("head diameter (mm)", rows[(s, "femoral_head_diameter")] - truth, truth, spacing))
            found = np.array([rows[(s, "femoral_head_centre_row_mm")], rows[(s, "femoral_head_centre_col_mm")]])
            centre = np.array([case.params[f"{side}_head_v_mm"], case.params[f"{side}_head_u_mm"]])
            errors.append(("head centre (mm)", float(np.linalg.norm(found - centre)), None, spacing))
            geometry = case.extras["phantom"].side(side)
            neck, shaft = np.array(geometry.neck_axis), np.array(geometry.shaft_axis)
            projected = angle_deg((-neck[2], neck[0]), (-shaft[2], shaft[0]))
            errors.append(("neck-shaft angle (deg, projected)", rows[(s, "neck_shaft_angle")] - projected, None, 2.0))
    return errors, times


def hip_ct(n):
    errors, times = [], []
    for i in range(n):
        case = _case("hip-ct", i)
        rows, seconds = _measure(case, "ct")
        times.append(seconds)
        p = case.params
        voxel = float(max(case.labels.spacing))
        for side in ("right", "left"):
            name = f"{side}_femoral_head"
            truth = 2 * p[f"{side}_head_radius_mm"]
            errors.append(("head diameter (mm)", rows[(name, "femoral_head_diameter")] - truth, truth, voxel))
            found = np.array([rows[(name, f"femoral_head_centre_{a}_mm")] for a in "xyz"])
            centre = np.array([p[f"{side}_head_centre_{a}_mm"] for a in "xyz"])
            errors.append(("head centre (mm)", float(np.linalg.norm(found - centre)), None, voxel))
            truth = p[f"{side}_jsw_min_mm"]
            errors.append(("min JSW (mm)", rows[(name, "min_jsw")] - truth, truth, voxel))
    return errors, times


def table(kind, errors, times) -> list[str]:
    lines = []
    for name in dict.fromkeys(e[0] for e in errors):
        rows = [e for e in errors if e[0] == name]
        err = np.array([e[1] for e in rows])
        ok = [abs(e) <= (max(0.02 * t, tol) if t is not None else tol) for _, e, t, tol in rows]
        lines.append(f"| {kind} | {name} | {len(rows)} | {np.mean(err):+.3f} | {np.mean(np.abs(err)):.3f} | "
                     f"{np.max(np.abs(err)):.3f} | {sum(ok)}/{len(ok)} |")
    lines[0] += f" {np.median(times):.2f} |"
    lines[1:] = [line + " |" for line in lines[1:]]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=20, help="radiograph phantoms per kind")
    parser.add_argument("--ct-cases", type=int, default=5, help="hip-ct phantoms")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "features_accuracy.md")
    args = parser.parse_args()
    lines = ["| phantom | measurement | n | mean error | mean abs error | max abs error | within rule | s/case |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for kind, run, n in (("knee-xray", knee, args.cases), ("chest-xray", chest, args.cases),
                         ("hip-xray", hip_xray, args.cases), ("hip-ct", hip_ct, args.ct_cases)):
        errors, times = run(n)
        lines += table(kind, errors, times)
        print("\n".join(lines[-len({e[0] for e in errors}):]), flush=True)
    stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    setup = (f"Phantoms: `radseg synth` kinds, run seed {SEED}, cases 0..n-1, default sizes. "
             "Error = measured - recorded. Rule: within 2% or one pixel (CT: the largest voxel side), "
             "angles 2 deg, CTR 0.02. s/case = median time of `measure` alone (phantom making excluded).\n")
    text = ["# `radseg features` accuracy on phantoms\n", f"## {stamp} on {platform.node()} ({platform.machine()})\n",
            f"Command: `.venv/bin/python benchmarks/features_accuracy.py --cases {args.cases} --ct-cases {args.ct_cases}`",
            setup, *lines, ""]
    args.out.write_text("\n".join(text))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
