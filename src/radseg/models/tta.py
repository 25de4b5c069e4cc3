"""Flip test-time augmentation: average the scores of the image and of its left-right mirror.

Only the left-right axis is mirrored, and right/left class channels are swapped back (see
:mod:`radseg.models.mirror`): that is the one mirror the training augmentation used, so the
network has seen such images; mirroring other axes would show it anatomy it never saw.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

__all__ = ["mirror_tta"]


def mirror_tta(score: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, *, lr_axis: int,
               channel_perm: Sequence[int]) -> torch.Tensor:
    """Mean of ``score(x)`` and the un-mirrored ``score(mirror(x))``; ``x`` is ``[B, 1, *S]``,
    ``score`` returns class probabilities ``[B, C, *S]``."""
    axis = 2 + lr_axis
    plain = score(x)
    mirrored = score(x.flip(axis)).flip(axis)[:, list(channel_perm)]
    return (plain + mirrored) / 2
