"""Flip test-time augmentation: average the scores of the image and of its left-right mirror.

Only the left-right axis is mirrored, and right/left class channels are swapped back (see
:mod:`radseg.models.mirror`): that is the one mirror the training augmentation used, so the
network has seen such images; mirroring other axes would show it anatomy it never saw.
Works on numpy arrays (the ONNX backend) and torch tensors alike.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

__all__ = ["mirror_tta"]


def _flip(x: Any, axis: int) -> Any:
    return np.flip(x, axis) if isinstance(x, np.ndarray) else x.flip(axis)


def mirror_tta(score: Callable[[Any], Any], x: Any, *, lr_axis: int, channel_perm: Sequence[int]) -> Any:
    """Mean of ``score(x)`` and the un-mirrored ``score(mirror(x))``; ``x`` is ``[B, 1, *S]``,
    ``score`` returns class probabilities ``[B, C, *S]``."""
    axis = 2 + lr_axis
    plain = score(x)
    mirrored = _flip(score(np.ascontiguousarray(_flip(x, axis)) if isinstance(x, np.ndarray) else _flip(x, axis)), axis)
    return (plain + mirrored[:, list(channel_perm)]) / 2
