"""``radseg benchmark``: several architectures, one protocol, per-case scores ready for paired statistics.

For each architecture and each fold (patient-grouped K-fold cross-validation,
:func:`radseg.datasets.folds.patient_folds`, or the dataset's own split) the same recipe is
trained (same preset, preprocessing, seed, epochs and time budget; only the network
differs) on the fold's training cases, with model selection on a validation part of those
cases only; then the fold's held-out cases are predicted and scored with radseg's metric
engine (:func:`radseg.evaluate.metrics.label_rows`). Existing bundles can stand in for
training (``bundles={"name": path}``, with the dataset's split only: a bundle saw one
training set, not K).

Output folder::

    OUT/plan.json                      what was asked and a fingerprint of the data (a resume must match)
    OUT/folds.json                     case ids per fold
    OUT/bundles.json                   name -> bundle of the models compared without training
    OUT/runs/ARCH/foldK/train/         the training run (resumable, see radseg.train.loop)
    OUT/runs/ARCH/foldK/per_case.json  held-out scores of that model
    OUT/runs/ARCH/foldK/result.json    written last, atomically: its presence = (ARCH, K) done

Model selection never sees a held-out case: the validation cases (early stopping, best
checkpoint) are a patient-grouped part of each fold's training cases. A rerun with the same
plan and data skips every finished (architecture, fold), reuses a finished training run
whose scoring was interrupted, resumes an interrupted training run from its last checkpoint,
and does the rest; architectures and bundles may be added to a finished benchmark. :func:`radseg.workflows.benchmark_output.write_benchmark`
turns the per-case rows into the tables and the report.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from radseg.case import Case
from radseg.datasets.folds import patient_folds
from radseg.datasets.prepared import open_prepared
from radseg.errors import RadsegError
from radseg.io.atomic import write_text_atomic

__all__ = ["BenchmarkPlan", "run_benchmark", "held_out_folds", "score_case", "data_fingerprint", "check_by"]

Event = Callable[[str], None]
TRAIN_OPTIONS = ("epochs", "iters_per_epoch", "batch_size", "lr", "time_limit", "patience", "val_every")


@dataclass
class BenchmarkPlan:
    """What to compare and how. ``folds=None``: the dataset's own split (train/val -> test, else val)."""

    data: Path
    output: Path
    architectures: list[str] = field(default_factory=list)
    bundles: dict[str, str] = field(default_factory=dict)
    folds: int | None = 5
    seed: int = 0
    preset: str | None = None
    preprocessing: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)  # TRAIN_OPTIONS, the same for every architecture
    device: str = "auto"
    threads: int | None = None

    def recipe(self) -> dict[str, Any]:
        """The part a resumed benchmark must share (architectures may be added; device and threads may change)."""
        out = {k: v for k, v in asdict(self).items() if k not in ("output", "architectures", "bundles", "device",
                                                                   "threads")}
        out["data"] = str(Path(self.data).resolve())
        return json.loads(json.dumps(out, default=list))


def held_out_folds(cases: list[Case], plan: BenchmarkPlan) -> list[list[str]]:
    """Case ids held out per fold: K patient-grouped folds, or one fold = the test (else val) split."""
    if plan.folds is not None:
        return patient_folds(cases, plan.folds, seed=plan.seed)
    held = [c.case_id for c in cases if c.split == "test"] or [c.case_id for c in cases if c.split == "val"]
    if not held:
        raise RadsegError(f"{plan.data}: the dataset has no test or val split; use --folds K")
    return [sorted(held)]


def _check_plan(plan: BenchmarkPlan) -> None:
    from radseg.models.registry import ARCHITECTURES

    if not plan.architectures and not plan.bundles:
        raise RadsegError("nothing to compare: give --arch and/or --model")
    names = [*plan.architectures, *plan.bundles]
    if len(set(names)) != len(names):
        raise RadsegError(f"a name is given twice: {', '.join(names)}")
    for arch in plan.architectures:
        ARCHITECTURES[arch]  # unknown names fail here, with the list of known ones
    if plan.bundles and plan.folds is not None:
        raise RadsegError("trained bundles (--model) saw one training set; compare them on the dataset's split "
                          "(--split), not in cross-validation")
    unknown = set(plan.training) - set(TRAIN_OPTIONS)
    if unknown:
        raise RadsegError(f"unknown training option(s): {', '.join(sorted(unknown))}")


def data_fingerprint(cases: list[Case]) -> str:
    """SHA-256 over every case's id and the bytes of its files: relabelled data under old ids is caught."""
    digest = hashlib.sha256()
    for case in sorted(cases, key=lambda c: c.case_id):
        digest.update(case.case_id.encode())
        for role in sorted(case.sources):
            path = Path(case.sources[role])
            digest.update(role.encode())
            with open(path, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()


def _start(plan: BenchmarkPlan, folds: list[list[str]], cases: list[Case]) -> None:
    """Write plan.json, folds.json and bundles.json, or check that a resumed benchmark asks the same."""
    out = Path(plan.output)
    out.mkdir(parents=True, exist_ok=True)
    recipe = {**plan.recipe(), "data_fingerprint": data_fingerprint(cases)}
    for name, value in (("plan.json", recipe), ("folds.json", folds)):
        path = out / name
        if path.exists():
            if json.loads(path.read_text()) != value:
                raise RadsegError(f"{path}: this folder holds a benchmark with another plan (data, folds, seed, "
                                  f"preset or budget changed); use a new output folder")
        else:
            write_text_atomic(path, json.dumps(value, indent=2))
    path = out / "bundles.json"
    known = json.loads(path.read_text()) if path.exists() else {}
    clash = [n for n, b in plan.bundles.items() if n in known and known[n] != str(Path(b).resolve())]
    if clash:
        raise RadsegError(f"{path}: {', '.join(clash)} named another bundle before; use a new name or folder")
    if plan.bundles:
        write_text_atomic(path, json.dumps({**known, **{n: str(Path(b).resolve()) for n, b in plan.bundles.items()}},
                                           indent=2))


def _unit(case: Case) -> str:
    known = all(image.metadata.get("spacing_known", True) is not False for image in (case.image, case.label))
    return "mm" if known else "px"


def _reserved(row: dict[str, Any], facts: dict[str, Any]) -> dict[str, Any]:
    """Subject facts and metadata (sex, source, site ...) for --by; the scores' own columns win."""
    return {k: v for k, v in facts.items() if k not in row and isinstance(v, (str, int, float, bool))}


def score_case(case: Case, prediction, label_names: dict[int, str]) -> list[dict[str, Any]]:
    """Metric rows of one held-out case (distances in mm, or px when the files have no pixel size).

    ``max_distance`` is the image's diagonal in the same unit: the penalty a paired comparison
    gives an infinite distance (see :mod:`radseg.evaluate.benchmark_table`). The labels scored
    are the dataset's (else the truth's own values), so a spurious predicted label adds no row.
    """
    from radseg.evaluate.metrics import label_rows

    truth = case.label
    if prediction.array.shape != truth.array.shape:
        raise RadsegError(f"{case.case_id}: prediction {prediction.array.shape} and truth {truth.array.shape} differ")
    unit = _unit(case)
    spacing = tuple(truth.spacing) if unit == "mm" else (1.0,) * truth.ndim
    labels = label_names or {int(v): f"label_{int(v)}" for v in np.unique(truth.array) if v != 0}
    diagonal = float(np.sqrt(sum((n * s) ** 2 for n, s in zip(truth.array.shape, spacing))))
    rows = label_rows(case.case_id, prediction.array, truth.array, labels=labels, names=labels, spacing=spacing)
    facts = {**case.metadata, **case.subject}
    return [{**_reserved(row, facts), **row, "unit": unit, "max_distance": diagonal, "patient": case.patient}
            for row in rows]


def _validation_split(cases: list[Case], plan: BenchmarkPlan) -> dict[str, list[str]]:
    """The training cases' train/val split: the dataset's own (``--split`` with a test split held out),
    else a patient-grouped one (about a fifth of the patients validate)."""
    from radseg.datasets.folds import patient_of

    if plan.folds is None:
        own = {s: [c.case_id for c in cases if c.split == s] for s in ("train", "val")}
        if own["train"] and own["val"]:
            return own
    patients = {patient_of(c) for c in cases}
    if len(patients) < 2:
        return {}  # one patient: the trainer validates on its training case(s)
    val = set(patient_folds(cases, min(5, len(patients)), seed=plan.seed)[0])
    return {"train": [c.case_id for c in cases if c.case_id not in val], "val": sorted(val)}


def _train(plan: BenchmarkPlan, arch: str, cases: list[Case], run: Path, info: dict, label_names: dict,
           on_event: Event) -> Path:
    from radseg.models.bundle import load_bundle
    from radseg.train.config import TrainConfig
    from radseg.train.data import from_pairs
    from radseg.train.loop import train

    model = run / "model"
    if (model / "model.json").exists():  # trained before, scoring was interrupted: the same model, not more training
        stopped = ((load_bundle(model, weights=False).manifest or {}).get("metrics") or {}).get("stopped")
        if stopped in ("completed", "early-stopping", "time-limit"):
            on_event(f"{arch}: training finished before ({stopped}), reused")
            return model
    data = from_pairs(cases, label_names=label_names, info=info)
    data.splits = _validation_split(cases, plan)
    resume = (run / "checkpoints" / "last.pt").exists()
    config = TrainConfig(output=run, preset=plan.preset, architecture=arch, preprocessing=dict(plan.preprocessing),
                         seed=plan.seed, device=plan.device, threads=plan.threads, resume=resume,
                         **{k: v for k, v in plan.training.items() if v is not None})
    on_event(f"{'resuming' if resume else 'training'} {arch} on {len(cases)} case(s)")
    try:
        result = train(config, data)
    finally:
        for case in cases:
            case.unload()
    if result.stopped == "interrupted":
        raise KeyboardInterrupt
    return result.model_path


def _unit_of_work(plan: BenchmarkPlan, name: str, fold: int, held: list[Case], training: list[Case],
                  info: dict, label_names: dict, on_event: Event) -> dict[str, Any]:
    from radseg.infer.predictor import Predictor
    from radseg.models.bundle import load_bundle
    from radseg.models.registry import count_parameters

    folder = Path(plan.output) / "runs" / name / f"fold{fold}"
    model = _bundle_path(plan.bundles[name]) if name in plan.bundles else _train(
        plan, name, training, folder / "train", info, label_names, on_event)
    predictor = Predictor.load(model, device=plan.device, backend="torch", threads=plan.threads)
    predictor.predict(held[0].image)  # warm-up (first-call allocations), not timed
    rows, seconds = [], []
    for case in held:
        start = time.perf_counter()
        prediction = predictor.predict(case.image)
        seconds.append(time.perf_counter() - start)
        rows.extend({**row, "architecture": name, "fold": fold} for row in score_case(case, prediction, label_names))
        case.unload()
    manifest = (load_bundle(model, weights=False).manifest or {}).get("metrics", {})
    result = {"architecture": name, "fold": fold, "model": str(model), "trained_here": name not in plan.bundles,
              "n_train": len(training), "n_test": len(held), "parameters": count_parameters(predictor.forward),
              "device": str(predictor.device), "train_seconds": manifest.get("train_seconds"),
              "epochs_done": manifest.get("epochs_done"), "stopped": manifest.get("stopped"),
              "best_val_dice": manifest.get("best_val_dice"),
              "inference_seconds_per_case": float(np.mean(seconds)) if seconds else None}
    write_text_atomic(folder / "per_case.json", json.dumps(rows, default=_jsonable))
    write_text_atomic(folder / "result.json", json.dumps(result, indent=2))
    return result


def _bundle_path(given: str) -> Path:
    """A bundle folder or zip, or a `radseg train` run folder (its model/ inside)."""
    path = Path(given)
    return path / "model" if (path / "model" / "model.json").exists() and not (path / "model.json").exists() else path


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def _training_cases(cases: list[Case], held_ids: list[str], plan: BenchmarkPlan, say: Event) -> list[Case]:
    """A fold's training cases; refuses a split whose held-out patients also appear in training."""
    from radseg.datasets.folds import patient_of

    held = set(held_ids)
    if plan.folds is not None:
        return [c for c in cases if c.case_id not in held]
    unsplit = [c.case_id for c in cases if c.split not in ("train", "val", "test")]
    if unsplit:
        say(f"{len(unsplit)} case(s) without a train/val/test split are not used: {', '.join(unsplit[:5])}")
    training = [c for c in cases if c.split in ("train", "val") and c.case_id not in held]
    shared = {patient_of(c) for c in training} & {patient_of(c) for c in cases if c.case_id in held}
    if shared:
        raise RadsegError(f"{plan.data}: the split puts {len(shared)} patient(s) on both sides "
                          f"({', '.join(sorted(shared)[:3])}); held-out scores would leak")
    return training


def _check_labels(cases: list[Case]) -> None:
    from radseg.labels import is_multilabel

    if is_multilabel(cases[0].label):
        raise RadsegError(f"{cases[0].case_id}: multi-label masks (overlapping classes) are not supported by "
                          "radseg benchmark yet; benchmark label maps")
    cases[0].unload()


def check_by(data: str | Path, by: list[str]) -> None:
    """Refuse ``--by`` columns the cases do not have, before hours of training."""
    if not by:
        return
    cases = open_prepared(data).cases
    known = {k for c in cases for k in (*c.metadata, *c.subject)}
    missing = [b for b in by if b not in known]
    if missing:
        raise RadsegError(f"{data}: no column(s) {', '.join(missing)} in the cases' metadata "
                          f"(known: {', '.join(sorted(known)) or 'none'})")


def _read_rows(folder: Path):
    import pandas as pd

    return pd.DataFrame(json.loads((folder / "per_case.json").read_text()))


def run_benchmark(plan: BenchmarkPlan, *, on_event: Event | None = None):
    """Train (or load), predict and score every (architecture, fold); returns (per_case, runs) DataFrames."""
    import pandas as pd

    say = on_event or (lambda message: None)
    _check_plan(plan)
    dataset = open_prepared(plan.data, strict_grid=True)
    if not dataset.cases:
        raise RadsegError(f"{plan.data}: no cases")
    _check_labels(dataset.cases)
    folds = held_out_folds(dataset.cases, plan)
    _start(plan, folds, dataset.cases)
    by_id = {c.case_id: c for c in dataset.cases}
    runs = []
    for name in [*plan.architectures, *plan.bundles]:
        for fold, held_ids in enumerate(folds):
            folder = Path(plan.output) / "runs" / name / f"fold{fold}"
            if (folder / "result.json").exists():
                say(f"{name} fold {fold}: done before, skipped")
                runs.append(json.loads((folder / "result.json").read_text()))
                continue
            held = [by_id[c] for c in held_ids]
            training = _training_cases(dataset.cases, held_ids, plan, say)
            say(f"{name} fold {fold + 1}/{len(folds)}: {len(training)} training, {len(held)} held-out case(s)")
            runs.append(_unit_of_work(plan, name, fold, held, training, dataset.info, dataset.label_names, say))
    per_case = pd.concat([_read_rows(Path(plan.output) / "runs" / r["architecture"] / f"fold{r['fold']}")
                          for r in runs], ignore_index=True)
    return per_case, pd.DataFrame(runs)
