"""Hard-negative mining: the background voxels a network calls foreground in its training cases.

:class:`~radseg.train.session.Session` runs it every ``mine_every`` epochs when ``hard_negatives``
is set, and :class:`~radseg.train.sampler.PatchSampler` centres that share of patches on the
voxels found, so the network sees its own false positives again (they are rare under uniform
sampling: a false blob on a normal radiograph is a few hundred of its 260,000 pixels).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from radseg.train.sampler import GridCase

__all__ = ["MAX_MINED", "false_positives", "mine"]

MAX_MINED = 4000  # voxels kept per case: enough to centre patches on, small in a checkpoint


def false_positives(probs: np.ndarray, target: np.ndarray, *, multilabel: bool) -> np.ndarray:
    """Voxels predicted as some class (argmax; multi-label: any channel > 0.5) where the target has none."""
    if multilabel:
        return (probs > 0.5).any(0) & ~target.any(0)
    return (probs.argmax(0) > 0) & (target == 0)


def mine(cases: Sequence[GridCase], probabilities: Callable[[GridCase], np.ndarray], *, multilabel: bool,
         rng: np.random.Generator, cap: int = MAX_MINED) -> dict[int, np.ndarray]:
    """Case index -> ``[N, dims]`` false-positive voxels (at most ``cap``, drawn by ``rng``); cases without any left out."""
    mined = {}
    for index, case in enumerate(cases):
        points = np.argwhere(false_positives(np.asarray(probabilities(case)), case.target, multilabel=multilabel))
        if len(points) > cap:
            points = points[rng.choice(len(points), cap, replace=False)]
        if len(points):
            mined[index] = points.astype(np.int32)
    return mined
