"""Make a cohort of phantoms: cases in parallel, resumable, with ``metadata.csv`` and a gallery.

Per case the kind writes its files, then the driver records the case's metadata row in
``<out>/.radseg-synth/<case>.json``; a case with that record is complete and a rerun skips it.
The record of the run itself (kind, seed, shift, options) guards against mixing two runs in
one folder. ``metadata.csv`` and the kind's cohort-level files are written at the end from
all records, so they are always whole.
"""

from __future__ import annotations

import json
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from radseg.errors import RadsegError, WriteError
from radseg.io.atomic import write_text_atomic
from radseg.synth.cohort import Shift, Subject, make_cohort
from radseg.synth.kinds import phantom_kind
from radseg.system import usable_cores

STATE_DIR = ".radseg-synth"


@dataclass
class SynthResult:
    outdir: Path
    made: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)


def _run_settings(kind: str, seed: int, shift: Shift | None, options: dict[str, Any]) -> dict[str, Any]:
    return {"kind": kind, "seed": int(seed), "shift": str(shift) if shift else None, "options": options}


def _check_run(outdir: Path, settings: dict[str, Any]) -> None:
    path = outdir / STATE_DIR / "run.json"
    if path.exists():
        previous = json.loads(path.read_text())
        if previous != json.loads(json.dumps(settings)):  # as stored: tuples read back as lists
            raise WriteError(outdir, f"holds another synth run ({previous}); use an empty folder to make {settings}")
    else:
        write_text_atomic(path, json.dumps(settings, indent=2, sort_keys=True))


def _make_one(job: tuple[str, Subject, str, dict[str, Any], bool]) -> dict[str, Any]:
    """Worker: make and write one case; returns its metadata row or its error (never raises)."""
    name, subject, outdir_text, options, preview = job
    outdir = Path(outdir_text)
    try:
        kind = phantom_kind(name)
        case = kind.make_case(subject, **options)
        columns = kind.write_case(case, outdir)
        if preview:
            write_preview(kind, case, outdir / "preview" / f"{subject.case_id}.png")
        row = {**subject.columns(), **{k: v for k, v in case.params.items()}, **columns}
        write_text_atomic(outdir / STATE_DIR / f"{subject.case_id}.json", json.dumps(row, sort_keys=True, default=str))
        return {"case": subject.case_id, "row": row}
    except RadsegError as exc:
        return {"case": subject.case_id, "error": str(exc)}
    except Exception as exc:  # report with the case, keep the batch going
        return {"case": subject.case_id, "error": f"{type(exc).__name__}: {exc}"}


def write_preview(kind, case, path: Path) -> Path:
    from radseg.io.label_png import write_overlay
    from radseg.synth.common import coronal_preview

    if hasattr(kind, "preview"):
        image, labels = kind.preview(case)
    elif case.image.ndim == 2:
        image, labels = case.image, case.labels
    else:
        image, labels = coronal_preview(case.image, case.labels)
    return write_overlay(image, labels, path)


def _outcomes(jobs: list, workers: int):
    if workers == 1:
        yield from map(_make_one, jobs)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(_make_one, jobs, chunksize=1)


def synthesize(
    kind: str,
    n: int,
    outdir: str | Path,
    *,
    seed: int = 0,
    shift: str | Shift | None = None,
    preview: bool = False,
    options: dict[str, Any] | None = None,
    workers: int | None = 1,
    on_progress: Callable[[str], None] | None = None,
) -> SynthResult:
    """Make ``n`` cases of phantom ``kind`` in ``outdir`` (resuming a run with the same settings)."""
    import pandas as pd

    module = phantom_kind(kind)
    if n < 1:
        raise ValueError(f"-n must be at least 1, got {n}")
    shift = Shift.parse(shift) if isinstance(shift, str) or shift is None else shift
    options = dict(options or {})
    outdir = Path(outdir)
    _check_run(outdir, _run_settings(kind, seed, shift, options))
    result = SynthResult(outdir=outdir)
    jobs = []
    for subject in make_cohort(n, seed=seed, prefix=module.PREFIX, shift=shift):
        record = outdir / STATE_DIR / f"{subject.case_id}.json"
        if record.exists() and (not preview or (outdir / "preview" / f"{subject.case_id}.png").exists()):
            result.rows.append(json.loads(record.read_text()))
            result.skipped.append(subject.case_id)
            if on_progress:
                on_progress(subject.case_id)
        else:
            jobs.append((kind, subject, str(outdir), options, preview))
    workers = max(1, min(workers or usable_cores(), len(jobs) or 1))
    for outcome in _outcomes(jobs, workers):
        if "error" in outcome:
            result.failed.append((outcome["case"], outcome["error"]))
        else:
            result.rows.append(outcome["row"])
            result.made.append(outcome["case"])
        if on_progress:
            on_progress(outcome["case"])
    result.rows.sort(key=lambda row: row["case_id"])
    if result.rows:
        write_text_atomic(outdir / "metadata.csv", pd.DataFrame(result.rows).to_csv(index=False))
        if hasattr(module, "finish"):
            module.finish(result.rows, outdir)
    return result
