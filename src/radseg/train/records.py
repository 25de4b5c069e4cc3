"""What a training run records: its result, per-epoch metrics and curve, environment and data summary.

Shared by the loop (:mod:`radseg.train.loop`) and the session that runs the epochs
(:mod:`radseg.train.session`); also the schedule and the validation Dice they use.
"""

from __future__ import annotations

import csv
import io
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from radseg.case import Case
from radseg.evaluate.overlap import dice
from radseg.io.atomic import atomic_path, write_text_atomic
from radseg.system import usable_cores
from radseg.train.data import TrainData, data_hash

__all__ = ["TrainResult", "write_metrics", "environment", "class_dice", "mean_dice", "cosine_lr", "seconds",
           "case_list", "dataset_summary"]


@dataclass
class TrainResult:
    run_dir: Path
    model_path: Path
    best_dice: float | None
    epochs_done: int
    stopped: str  # "completed", "early-stopping", "time-limit", "interrupted"
    history: list[dict[str, Any]] = field(default_factory=list)


def write_metrics(run: Path, history: list[dict[str, Any]], loss_label: str = "Dice + CE loss") -> None:
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
    _plot(run / "learning_curve.png", history, loss_label)


def _plot(path: Path, history: list[dict[str, Any]], loss_label: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [row["epoch"] for row in history]
    fig, loss_axis = plt.subplots(figsize=(7, 4), dpi=100)
    loss_axis.plot(epochs, [row["train_loss"] for row in history], color="tab:blue", label="training loss")
    loss_axis.set_xlabel("epoch")
    loss_axis.set_ylabel(loss_label, color="tab:blue")
    val = [(row["epoch"], row["val_dice"]) for row in history if row.get("val_dice") is not None]
    if val or "val_dice" in history[0]:  # a training run draws its Dice axis even before the first validation
        dice_axis = loss_axis.twinx()
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
            "cpu_count": os.cpu_count(), "usable_cores": usable_cores()}


def class_dice(pred: np.ndarray, truth: np.ndarray) -> float | None:
    """Dice of two masks; None when the class is absent from both (left out of the mean)."""
    value = dice(pred, truth)
    return None if math.isnan(value) else value


def mean_dice(pred: np.ndarray, truth: np.ndarray, channels: int) -> list[float | None]:
    """Dice per class channel 1..channels-1 of two channel-index maps (None: absent in both)."""
    return [class_dice(pred == c, truth == c) for c in range(1, channels)]


def cosine_lr(base: float, progress: float, warmup: float) -> float:
    """Linear warm-up over the first ``warmup`` fraction, then cosine decay to 1% of ``base``."""
    progress = min(max(progress, 0.0), 1.0)
    if warmup > 0 and progress < warmup:
        return base * (0.1 + 0.9 * progress / warmup)
    t = (progress - warmup) / max(1e-9, 1.0 - warmup)
    return base * (0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * t)))


def seconds(start: float) -> float:
    return time.perf_counter() - start


def case_list(cases: list[Case]) -> list[str]:
    return [c.case_id for c in cases]


def case_split(train_cases: list[Case], val_cases: list[Case]) -> dict[str, list[str]]:
    """Which cases a run trains and validates on (kept in its checkpoint, checked on resume)."""
    return {"train": case_list(train_cases), "val": case_list(val_cases)}


def check_same_split(stored: dict[str, list[str]] | None, train_cases: list[Case], val_cases: list[Case],
                     checkpoint: Path) -> None:
    """Refuse to resume a run on other cases (another --data, or the dataset prepared again otherwise).

    A checkpoint written before the split was kept in it (None) is not checked.
    """
    if stored is None:
        return
    from radseg.errors import RadsegError

    now = case_split(train_cases, val_cases)
    for part in ("train", "val"):
        gone, new = sorted(set(stored[part]) - set(now[part])), sorted(set(now[part]) - set(stored[part]))
        if gone or new:
            example = f"e.g. {gone[0]!r} is gone" if gone else f"e.g. {new[0]!r} is new"
            raise RadsegError(f"{checkpoint}: this run's {part} cases differ from the data given ({len(gone)} gone, "
                              f"{len(new)} new; {example}): resume it with the dataset it was trained on")


def dataset_summary(dataset: TrainData, train_cases, val_cases) -> dict[str, Any]:
    return {"data_hash": data_hash(dataset.cases), "n_train": len(train_cases), "n_val": len(val_cases),
            "train_cases": case_list(train_cases), "val_cases": case_list(val_cases),
            "source": str(dataset.root) if dataset.root else "in-memory cases",
            "problems": [list(p) for p in dataset.problems]}
