"""Training data: the cases a model learns from, as :class:`radseg.case.Case` objects.

From disk, :func:`load_prepared` takes the cases of a prepared dataset folder (read by
:func:`radseg.datasets.prepared.open_prepared`, the one reader of that format: see there
for the folder layout, pairing and label-table rules), loads each one that is not in the
``test`` split, and reports unreadable ones in ``problems``. In Python, :func:`from_pairs`
takes ``(image, labels)`` Image pairs (e.g. phantoms made in memory). Both return a
:class:`TrainData`; ``test`` cases are never used for training or validation.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from radseg.case import Case
from radseg.datasets.base import labels_on_grid
from radseg.datasets.prepared import IMAGE, LABELS, open_prepared
from radseg.errors import ReadError
from radseg.image import Image

__all__ = ["TrainData", "load_prepared", "from_pairs", "split_cases", "data_hash", "balance_weights",
           "fitted_preprocessing"]


@dataclass
class TrainData:
    """Loaded training cases (each with ``case.image`` and ``case.label``) and their label table."""

    cases: list[Case]
    label_names: dict[int, str]
    splits: dict[str, list[str]] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    problems: list[tuple[str, str]] = field(default_factory=list)
    root: Path | None = None

    @property
    def spatial_dims(self) -> int:
        return self.cases[0].image.ndim

    @property
    def multilabel(self) -> bool:
        from radseg.labels import is_multilabel

        return is_multilabel(self.cases[0].label)


def load_prepared(folder: str | Path) -> TrainData:
    """The non-test cases of a prepared dataset folder, loaded; unreadable cases land in ``problems``."""
    from radseg.labels import label_names

    dataset = open_prepared(folder, strict_grid=True)
    names = dict(dataset.label_names)
    cases, problems = [], list(dataset.problems)
    for case in sorted(dataset.cases, key=lambda c: c.sources[IMAGE].name):  # file order: seeded splits
        if case.split == "test":
            continue
        try:
            labels = case.label
            if labels.ndim != case.image.ndim:
                raise ReadError(case.sources[LABELS], f"labels are {labels.ndim}D but the image is {case.image.ndim}D")
        except (ReadError, ValueError, OSError) as exc:
            problems.append((str(case.sources[IMAGE]), str(exc)))
            continue
        cases.append(case)
        if not dataset.label_names:
            names.update({k: v for k, v in label_names(labels).items() if k not in names})
    if not cases:
        detail = "; ".join(f"{Path(p).name}: {m}" for p, m in problems[:3])
        raise ReadError(dataset.root, "no readable image/label pair" + (f" ({detail})" if detail else ""))
    return TrainData(cases=cases, label_names=names, splits=dataset.splits, info=dataset.info,
                     problems=problems, root=dataset.root)


def from_pairs(pairs: Iterable[tuple[Image, Image] | Case], *, label_names: dict[int, str] | None = None,
               case_ids: Sequence[str] | None = None, info: dict[str, Any] | None = None) -> TrainData:
    """TrainData from in-memory ``(image, labels)`` pairs or Cases (labels on the image's grid)."""
    from radseg.labels import is_multilabel, label_names as names_of

    cases = []
    for index, item in enumerate(pairs):
        if isinstance(item, Case):
            case = item
        else:
            image, labels = item
            case = Case(case_ids[index] if case_ids else f"case{index:04d}", images={IMAGE: image},
                        labels={LABELS: labels})
        image, labels = case.image, case.label
        if labels.ndim != image.ndim:
            raise ReadError(case.case_id, f"labels are {labels.ndim}D but the image is {image.ndim}D")
        cases.append(Case(case.case_id, images={IMAGE: image},
                          labels={LABELS: labels_on_grid(labels, image, name=case.case_id, strict=True)},
                          subject=dict(case.subject), label_names=dict(case.label_names),
                          metadata=dict(case.metadata), split=case.split, sources=dict(case.sources)))
    if not cases:
        raise ValueError("no training cases given")
    if len({c.image.ndim for c in cases}) != 1:
        raise ValueError("cases mix 2D and 3D images")
    names = dict(label_names or {})
    if not names:
        for case in cases:
            if is_multilabel(case.label):
                names = dict(zip(range(1, 1 + len(case.label.metadata["class_names"])),
                                 case.label.metadata["class_names"]))
                break
            names.update({k: v for k, v in names_of(case.label).items() if k not in names})
    return TrainData(cases=cases, label_names=dict(sorted(names.items())), info=dict(info or {}))


HOLDOUT_ORDERS = ("random", "last")


def split_cases(data: TrainData, *, val_fraction: float, seed: int, holdout: float | None = None,
                holdout_order: str = "random") -> tuple[list[Case], list[Case]]:
    """(train, val): the dataset's own split when it has one, else a seeded random one.

    With ``holdout`` (a fraction in (0, 1)) validation comes from the training cases instead:
    a seeded share of the dataset's ``train`` split (without one: of the cases no split names) is held out
    and the dataset's ``val`` split is neither trained on nor looked at, so a model selected on
    the held-out cases can be scored on ``val`` last, as an independent check.

    ``holdout_order="last"`` holds out the last cases in case-id order instead of a seeded draw: a
    block, as datasets split by id ranges do (FracAtlas's official splits are consecutive ids).
    There neighbouring ids are likely the same patient (several views), so a random holdout probably
    shares patients with training and flatters what is chosen on it (FracAtlas, round 3: image
    AUC 0.91 on 95 held-out images with a training image within 2 ids, 0.69 (95% CI 0.48-0.86) on
    the 33 without, 6 of them fractured; benchmarks/results/fracatlas_holdout_leak.md).
    """
    if holdout_order not in HOLDOUT_ORDERS:
        raise ValueError(f"holdout order {holdout_order!r}: one of {', '.join(HOLDOUT_ORDERS)}")
    by_id = {c.case_id: c for c in data.cases}
    pool = list(data.cases)
    if holdout is not None:
        if not 0.0 < holdout < 1.0:
            raise ValueError(f"holdout {holdout}: a fraction between 0 and 1 of the training cases")
        if data.splits.get("train"):
            missing = [c for c in data.splits["train"] if c not in by_id]
            if missing:
                raise ValueError(f"dataset.json's train split names cases that were not read: {', '.join(missing[:5])}")
            pool = [by_id[c] for c in data.splits["train"]]
        else:  # no train split: every case no other split claims
            claimed = {c for name, ids in data.splits.items() for c in ids}
            pool = [c for c in data.cases if c.case_id not in claimed]
            if not pool:
                raise ValueError("holdout: every case belongs to a named split and none to train")
        val_fraction = holdout
    elif data.splits.get("train") and data.splits.get("val"):
        missing = [c for c in data.splits["train"] + data.splits["val"] if c not in by_id]
        if missing:
            raise ValueError(f"dataset.json splits name cases that were not read: {', '.join(missing[:5])}")
        return [by_id[c] for c in data.splits["train"]], [by_id[c] for c in data.splits["val"]]
    order = np.random.default_rng(seed).permutation(len(pool))
    if holdout is not None and holdout_order == "last":  # the block at the end of the id order is held out
        keys = [_natural(c.case_id) for c in pool]
        order = np.array(sorted(range(len(pool)), key=keys.__getitem__, reverse=True))
    if len(pool) < 2:
        return list(pool), list(pool)  # nothing to hold out: validate on the training case
    n_val = min(len(pool) - 1, max(1, round(val_fraction * len(pool))))
    val = sorted(order[:n_val])
    return [pool[i] for i in sorted(order[n_val:])], [pool[i] for i in val]


def _natural(case_id: str) -> tuple:
    """Sort key that orders ids by their numbers (``case2`` before ``case10``)."""
    import re

    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", case_id) if part)


def balance_weights(cases: Sequence[Case], column: str) -> np.ndarray:
    """Draw probabilities that balance images with and without a finding within each value of the
    metadata ``column`` (:func:`radseg.train.sampler.finding_balance`); the cases without a value
    (absent, empty or NaN) form one group of their own. A column no case has a value in is refused."""
    from radseg.errors import RadsegError
    from radseg.train.sampler import finding_balance

    def value(case: Case) -> str:
        found = (case.metadata or {}).get(column)
        return "" if found is None or (isinstance(found, float) and found != found) else str(found)

    groups = [value(case) for case in cases]
    if not any(groups):
        known = sorted({k for case in cases for k in (case.metadata or {})})
        raise RadsegError(f"--balance-by {column}: no training case has a value in the metadata column {column!r} "
                          f"(columns: {', '.join(known) or 'none'})")
    return finding_balance(groups, [bool(np.any(case.label.array)) for case in cases])


def data_hash(cases: Sequence[Case]) -> str:
    """SHA-256 over case ids, pixel data and geometry: names the exact data a model saw."""
    digest = hashlib.sha256()
    for case in sorted(cases, key=lambda c: c.case_id):
        digest.update(case.case_id.encode())
        for image in (case.image, case.label):
            array = np.ascontiguousarray(image.array)
            digest.update(str((array.shape, array.dtype.str)).encode())
            digest.update(array.tobytes())
            digest.update(np.round(image.affine, 6).tobytes())
    return digest.hexdigest()


def fitted_preprocessing(options: dict[str, Any], train_cases: Sequence[Case], *, multilabel: bool, seed: int,
                         release: bool = False):
    """The run's :class:`~radseg.models.preprocess.Preprocessing`; a CT window without a mean gets the
    training cases' statistics inside the window over labelled voxels (nnU-Net's CT scheme), drawn with
    ``seed``, so pretraining and training on the same cases normalise alike; ``release`` frees each image after."""
    from radseg.models.preprocess import Preprocessing

    pre = Preprocessing.from_dict(options)
    if pre.intensity == "window" and pre.mean is None:
        low, high = pre.window
        samples = []
        rng = np.random.default_rng(seed)
        for case in train_cases:
            values = np.asarray(case.image.array, np.float32)
            mask = None
            if len(case.labels):  # unlabelled images (pretraining) give all their pixels
                mask = case.label.array.any(axis=-1) if multilabel else case.label.array > 0
            chosen = values[mask] if mask is not None and mask.any() else values.ravel()
            samples.append(rng.choice(np.clip(chosen, low, high), min(len(chosen), 50000), replace=False))
            if release:  # an unlabelled archive: read again when needed rather than held whole
                case.unload()
        pooled = np.concatenate(samples)
        pre.mean, pre.std = float(pooled.mean()), float(max(pooled.std(), 1e-3))
    return pre
