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
give the same weights (one process, no binding time limit); ``resume`` restores weights,
optimiser and every RNG state, so a resumed run continues exactly where it stopped.
Ctrl-C stops after writing the bundle from the best (or last) checkpoint; the last
end-of-epoch checkpoint stays intact.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from radseg.errors import RadsegError
from radseg.io.atomic import atomic_path, write_text_atomic
from radseg.train.config import TrainConfig
from radseg.train.data import TrainCase, TrainData, data_hash, from_pairs, load_prepared

__all__ = ["train", "TrainResult"]

Event = dict[str, Any]


@dataclass
class TrainResult:
    run_dir: Path
    model_path: Path
    best_dice: float | None
    epochs_done: int
    stopped: str  # "completed", "early-stopping", "time-limit", "interrupted"
    history: list[dict[str, Any]] = field(default_factory=list)


def train(config: TrainConfig, cases: TrainData | Iterable | None = None, *, data: str | Path | None = None,
          on_event: Callable[[Event], None] | None = None) -> TrainResult:
    """Train a model; returns the run folder and the model bundle's path.

    Data: ``cases`` (a :class:`TrainData`, or ``(image, labels)`` pairs) or ``data`` (a
    prepared dataset folder, see :mod:`radseg.train.data`).
    """
    from radseg.train.session import Session

    clock_start = time.perf_counter()  # the time limit covers reading and preprocessing too
    if cases is None and data is None:
        raise ValueError("give the training data: cases=... or data=FOLDER")
    dataset = load_prepared(data) if data is not None else (cases if isinstance(cases, TrainData) else from_pairs(cases))
    run = Path(config.output)
    last = run / "checkpoints" / "last.pt"
    if config.resume:
        if not last.exists():
            raise RadsegError(f"{run}: nothing to resume (no checkpoints/last.pt)")
    elif last.exists():
        raise RadsegError(f"{run}: already holds a training run; resume it (--resume) or choose another folder")
    resolved = _resolve(config, dataset)
    session = Session(resolved, dataset, on_event=on_event or (lambda event: None), clock_start=clock_start)
    return session.run()


def _resolve(config: TrainConfig, dataset: TrainData) -> TrainConfig:
    if config.resume:
        saved = Path(config.output) / "config.json"
        if saved.exists():
            stored = TrainConfig.from_dict(json.loads(saved.read_text()))
            # A resumed run keeps its recipe; only how long it may run can change.
            for name in ("epochs", "time_limit", "patience", "threads"):
                if getattr(config, name) is not None:
                    setattr(stored, name, getattr(config, name))
            stored.device = config.device
            stored.resume, stored.output = True, Path(config.output)
            return stored
    info = dataset.info or {}
    updates = dict(config.preprocessing)
    if info.get("window") and "window" not in updates:
        updates["window"] = tuple(info["window"])
    preset = config.preset or info.get("preset")
    if data_multilabel(dataset) and config.head != "multilabel":
        config = _with(config, head="multilabel")
    return _with(config, preset=preset, preprocessing=updates).resolved(dataset.spatial_dims)


def data_multilabel(dataset: TrainData) -> bool:
    return dataset.multilabel


def _with(config: TrainConfig, **changes) -> TrainConfig:
    from dataclasses import replace

    return replace(config, **changes)


def write_metrics(run: Path, history: list[dict[str, Any]]) -> None:
    """metrics.csv (atomically) and learning_curve.png from the per-epoch history."""
    if not history:
        return
    columns: list[str] = []
    for row in history:
        columns += [k for k in row if k not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    for row in history:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns})
    write_text_atomic(run / "metrics.csv", buffer.getvalue())
    _plot(run / "learning_curve.png", history)


def _plot(path: Path, history: list[dict[str, Any]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [row["epoch"] for row in history]
    fig, loss_axis = plt.subplots(figsize=(7, 4), dpi=100)
    loss_axis.plot(epochs, [row["train_loss"] for row in history], color="tab:blue", label="training loss")
    loss_axis.set_xlabel("epoch")
    loss_axis.set_ylabel("Dice + CE loss", color="tab:blue")
    dice_axis = loss_axis.twinx()
    val = [(row["epoch"], row["val_dice"]) for row in history if row.get("val_dice") is not None]
    if val:
        dice_axis.plot(*zip(*val), "o-", color="tab:orange", label="validation Dice")
    dice_axis.set_ylabel("mean validation Dice", color="tab:orange")
    dice_axis.set_ylim(0, 1)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def environment() -> dict[str, Any]:
    import platform

    import monai
    import torch

    from radseg import __version__

    return {"radseg": __version__, "torch": torch.__version__, "monai": monai.__version__,
            "numpy": np.__version__, "python": platform.python_version(), "platform": platform.platform(),
            "cpu_count": os.cpu_count()}


def mean_dice(pred: np.ndarray, truth: np.ndarray, channels: int) -> list[float | None]:
    """Dice per class channel 1..channels-1 of two channel-index maps (None: absent in both)."""
    out = []
    for c in range(1, channels):
        p, t = pred == c, truth == c
        total = int(p.sum()) + int(t.sum())
        out.append(None if total == 0 else 2.0 * int((p & t).sum()) / total)
    return out


def cosine_lr(base: float, progress: float, warmup: float) -> float:
    """Linear warm-up over the first ``warmup`` fraction, then cosine decay to 1% of ``base``."""
    progress = min(max(progress, 0.0), 1.0)
    if warmup > 0 and progress < warmup:
        return base * (0.1 + 0.9 * progress / warmup)
    t = (progress - warmup) / max(1e-9, 1.0 - warmup)
    return base * (0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * t)))


def seconds(start: float) -> float:
    return time.perf_counter() - start


def case_list(cases: list[TrainCase]) -> list[str]:
    return [c.case_id for c in cases]


def dataset_summary(dataset: TrainData, train_cases, val_cases) -> dict[str, Any]:
    return {"data_hash": data_hash(dataset.cases), "n_train": len(train_cases), "n_val": len(val_cases),
            "train_cases": case_list(train_cases), "val_cases": case_list(val_cases),
            "source": str(dataset.root) if dataset.root else "in-memory cases",
            "problems": [list(p) for p in dataset.problems]}
