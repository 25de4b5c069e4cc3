"""The training loop: ``train(config, cases=...)`` -> a run folder with a ready model bundle.

Run folder::

    RUN/config.json            the resolved configuration
    RUN/metrics.csv            one row per epoch: loss, learning rate, validation Dice (mean, per class)
    RUN/learning_curve.png     loss and validation Dice over epochs
    RUN/checkpoints/last.pt    after every epoch: weights, optimiser, RNG states, history (for --resume)
    RUN/checkpoints/best.pt    weights of the best validation Dice so far
    RUN/model/                 the model bundle (best weights): what `radseg segment -m` takes

Steps: every case is preprocessed once onto the network grid (cached in memory); each
iteration samples a batch of patches (foreground-balanced), augments it on the device,
and takes an AdamW step on Dice + cross-entropy; the learning rate warms up linearly then
follows a cosine. Validation runs the same inference code as ``radseg segment`` on the
held-out cases' network grid and reports Dice per class. Seeded: the same config and data
give the same weights (one process; a time limit only stops the run, the schedule follows
the planned iterations); ``resume`` restores weights, optimiser and every RNG state, so a
resumed run continues exactly where it stopped. ``nproc`` > 1 trains data-parallel over that
many processes, the same model up to float rounding (:mod:`radseg.train.distributed`). Ctrl-C (or SIGTERM under ``radseg train``)
stops after writing the bundle from the best (or last) checkpoint; checkpoints are written to
a temporary file and renamed, so the last end-of-epoch checkpoint stays intact, and a damaged
one is refused naming the file.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable, Collection, Iterable

from radseg.errors import ReadError, RadsegError
from radseg.train.config import TrainConfig
from radseg.train.data import TrainData, from_pairs, load_prepared
from radseg.train.distributed import check_nproc
from radseg.train.launcher import launch
from radseg.train.records import TrainResult, cosine_lr
from radseg.train.session import Session

__all__ = ["train", "TrainResult", "cosine_lr"]

Event = dict[str, Any]


def train(config: TrainConfig, cases: TrainData | Iterable | None = None, *, data: str | Path | None = None,
          on_event: Callable[[Event], None] | None = None, given: Collection[str] | None = None) -> TrainResult:
    """Train a model; returns the run folder and the model bundle's path.

    Data: ``cases`` (a :class:`TrainData`, or ``(image, labels)`` pairs) or ``data`` (a
    prepared dataset folder, see :mod:`radseg.train.data`). ``given``: the config fields the user
    set (the CLI knows); a resumed run refuses any of them that differs from its stored recipe.
    Without it, a field counts as set when it differs from its default.
    """
    clock_start = time.perf_counter()  # the time limit covers reading and preprocessing too
    if cases is None and data is None:
        raise ValueError("give the training data: cases=... or data=FOLDER")
    check_nproc(config.nproc)  # before reading the data
    dataset = load_prepared(data) if data is not None else (cases if isinstance(cases, TrainData) else from_pairs(cases))
    check_run_folder(config, "training")
    resolved = resolve_config(config, dataset, given)
    _check_mining(resolved)  # the resolved recipe: a resumed run keeps its stored mining settings
    if resolved.nproc > 1:
        # a folder is read by every process; cases in memory travel to them pickled
        payload = Path(data) if data is not None else _portable(dataset)
        del dataset
        return launch(resolved, payload, on_event=on_event or (lambda event: None), clock_start=clock_start)
    session = Session(resolved, dataset, on_event=on_event or (lambda event: None), clock_start=clock_start)
    return session.run()


def check_run_folder(config: TrainConfig, what: str) -> None:
    """``--resume`` needs the folder's last checkpoint; a new run refuses a folder that holds one."""
    run = Path(config.output)
    last = run / "checkpoints" / "last.pt"
    if config.resume and not last.exists():
        raise RadsegError(f"{run}: nothing to resume (no checkpoints/last.pt)")
    if not config.resume and last.exists():
        raise RadsegError(f"{run}: already holds a {what} run; resume it (--resume) or choose another folder")


def _check_mining(config: TrainConfig) -> None:
    if not 0.0 <= config.hard_negatives < 1.0:
        raise RadsegError(f"hard-negative share {config.hard_negatives}: give a share of patches in [0, 1)")
    if config.mine_every is not None and (config.mine_every < 1 or not config.hard_negatives):
        raise RadsegError(f"mining every {config.mine_every} epoch(s): give a whole number >= 1, with a "
                          "hard-negative share above 0 (--hard-negatives)")
    if config.hard_negatives and config.nproc > 1:
        # each process would mine on its own and draw different batches from the global one
        raise RadsegError("hard-negative mining runs in one process only: drop --nproc (a mining run resumes "
                          "in one process too)")


def _portable(dataset: TrainData) -> TrainData:
    """The dataset with every image loaded (lazy loaders need not pickle)."""
    from dataclasses import replace

    from radseg.case import Case
    from radseg.datasets.prepared import IMAGE, LABELS

    cases = [Case(c.case_id, images={IMAGE: c.image}, labels={LABELS: c.label}, subject=dict(c.subject),
                  label_names=dict(c.label_names), metadata=dict(c.metadata), split=c.split, sources=dict(c.sources))
             for c in dataset.cases]
    return replace(dataset, cases=cases)


def resolve_config(config: TrainConfig, dataset: TrainData, given: Collection[str] | None = None) -> TrainConfig:
    """The run's recipe: the preset filled in, or on ``--resume`` the stored one (only how long and how it runs may change)."""
    if config.resume:
        saved = Path(config.output) / "config.json"
        if saved.exists():
            try:
                stored = TrainConfig.from_dict(json.loads(saved.read_text()))
            except (ValueError, TypeError, AttributeError) as exc:
                raise ReadError(saved, f"damaged run configuration, cannot resume ({exc})") from None
            # A resumed run keeps its recipe; only how long it may run can change.
            _refuse_recipe_changes(config, stored, saved, given)
            for name in _HOW_LONG:
                if getattr(config, name) is not None:
                    setattr(stored, name, getattr(config, name))
            # how it runs, not what it learns: N processes continue a run of M (same model up to rounding)
            stored.device, stored.nproc, stored.backend = config.device, config.nproc, config.backend
            stored.resume, stored.output = True, Path(config.output)
            stored.save_zip = config.save_zip or stored.save_zip
            return stored
    info = dataset.info or {}
    updates = dict(config.preprocessing)
    if info.get("window") and "window" not in updates:
        updates["window"] = tuple(info["window"])
    preset = config.preset or info.get("preset")
    if dataset.multilabel and config.head != "multilabel":
        config = _with(config, head="multilabel")
    return _with(config, preset=preset, preprocessing=updates).resolved(dataset.spatial_dims)


#: What a resumed run may change: how long (taken when given) and how it runs, not what it learns.
_HOW_LONG = ("epochs", "time_limit", "patience", "threads")
_RUN_OPTIONS = {*_HOW_LONG, "device", "nproc", "backend", "resume", "output", "save_zip"}


def _refuse_recipe_changes(config: TrainConfig, stored: TrainConfig, saved: Path,
                           given: Collection[str] | None) -> None:
    """Refuse a resume that asks for a recipe option other than the stored one, rather than ignore it.

    An option counts when it is in ``given`` (else: when it differs from the dataclass default).
    Preprocessing is compared as the run used it (a preset's unset patch size is its fit size).
    """
    from dataclasses import fields

    from radseg.models.preprocess import Preprocessing

    default = TrainConfig()
    for f in fields(TrainConfig):
        name = f.name
        asked, kept = getattr(config, name), getattr(stored, name)
        if name in _RUN_OPTIONS or not (name in given if given is not None else _differs(asked, getattr(default, name))):
            continue
        if name == "preprocessing":
            try:  # compared as used: a patch size left to follow the fit size is no change when spelled out
                same = not Preprocessing.from_dict({**kept, **asked}).differences(Preprocessing.from_dict(kept))
            except (ValueError, TypeError):  # the given fields do not make a preprocessing with the run's
                same = False
            changed = "" if same else ", ".join(f"{k}={_stored(v)!r} (run: {_stored(kept.get(k))!r})"
                                                for k, v in asked.items() if _differs(v, kept.get(k)))
        else:
            changed = f"{asked!r} (run: {kept!r})" if _differs(asked, kept) else ""
        if changed:
            raise ValueError(f"{saved.parent}: --resume continues the run's own recipe, but {name} was given as "
                             f"{changed}; drop it to continue, or train into a new output folder")


def _stored(value):
    """A recipe value as config.json stores it (tuples become lists)."""
    return json.loads(json.dumps(value, default=list))


def _differs(a, b) -> bool:
    return _stored(a) != _stored(b)


def _with(config: TrainConfig, **changes) -> TrainConfig:
    from dataclasses import replace

    return replace(config, **changes)


