"""Phantom cohorts for the training/inference benchmarks, made once and cached as .npz."""

from __future__ import annotations

import json
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from radseg.image import Image


def _make(job):
    kind, index, seed = job
    from radseg.synth import phantom_kind
    from radseg.synth.cohort import make_subject

    module = phantom_kind(kind)
    case = module.make_case(make_subject(index, seed=seed, prefix=module.PREFIX))
    return (case.subject.case_id, case.image.array, case.image.affine, case.labels.array,
            {k: v for k, v in case.image.metadata.items() if k == "photometric"},
            {int(k): v for k, v in case.labels.metadata["label_names"].items() if int(k) != 0})


def phantoms(kind: str, n: int, *, seed: int = 0, cache: Path, workers: int = 2):
    """``[(case_id, image, labels)]`` for cases 0..n-1 of ``kind`` (cached in ``cache``)."""
    cache.mkdir(parents=True, exist_ok=True)
    file = cache / f"{kind}-seed{seed}-n{n}.npz"
    if not file.exists():
        with ProcessPoolExecutor(workers) as pool:
            made = list(pool.map(_make, [(kind, i, seed) for i in range(n)]))
        arrays = {}
        for i, (case_id, image, affine, labels, meta, names) in enumerate(made):
            arrays[f"image{i}"], arrays[f"affine{i}"], arrays[f"labels{i}"] = image, affine, labels
        arrays["meta"] = np.array(json.dumps([[m[0], m[4], m[5]] for m in made]))
        np.savez(file, **arrays)
    data = np.load(file)
    out = []
    for i, (case_id, meta, names) in enumerate(json.loads(str(data["meta"]))):
        image = Image(data[f"image{i}"], affine=data[f"affine{i}"], metadata=meta)
        labels = Image(data[f"labels{i}"], affine=data[f"affine{i}"],
                       metadata={"label_names": {int(k): v for k, v in names.items()}})
        out.append((case_id, image, labels))
    return out
