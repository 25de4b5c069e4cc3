"""Left/right label pairs, so mirroring an image can swap side-specific labels.

A hip radiograph labels the right and left femur differently (HexAI: 5 and 6). Mirroring the
image left-right (an augmentation, or flip test-time augmentation) moves the right femur to
where the left one was: its label must become the left femur's. Without the swap, flip
augmentation teaches the network that side does not matter and flip TTA averages the two
sides' scores into mush.
"""

from __future__ import annotations

import re
from typing import Mapping, Sequence

__all__ = ["mirror_pairs", "mirror_permutation", "LR_AXIS"]

#: Array axis that runs right -> left in the network grid: columns of a 2D radiograph (AP
#: view, patient's right on the viewer's left), and axis 2 (x) of a canonical SPL volume.
LR_AXIS = {2: 1, 3: 2}

_SIDES = {"right": "left", "left": "right", "r": "l", "l": "r", "rt": "lt", "lt": "rt"}


def _swap_side(name: str) -> str | None:
    words = re.split(r"([^A-Za-z]+)", name.lower())
    if not any(w in _SIDES for w in words):
        return None
    return "".join(_SIDES.get(w, w) for w in words)


def mirror_pairs(names: Mapping[int, str]) -> list[tuple[int, int]]:
    """Pairs of label values whose names differ only by right <-> left (each pair once)."""
    by_name = {str(n).lower(): int(v) for v, n in names.items()}
    pairs = []
    for value, name in names.items():
        other = _swap_side(str(name))
        partner = by_name.get(other) if other else None
        if partner is not None and int(value) < partner:
            pairs.append((int(value), partner))
    return pairs


def mirror_permutation(pairs: Sequence[Sequence[int]], class_values: Sequence[int], *, background: bool) -> list[int]:
    """Channel order after a left-right mirror: ``scores[perm]`` swaps paired classes.

    ``class_values`` are the label values of the class channels; ``background`` says channel 0
    is background (multi-class head) and the class channels start at 1.
    """
    offset = 1 if background else 0
    channel = {int(v): i + offset for i, v in enumerate(class_values)}
    perm = list(range(len(class_values) + offset))
    for a, b in pairs:
        if int(a) in channel and int(b) in channel:
            perm[channel[int(a)]], perm[channel[int(b)]] = channel[int(b)], channel[int(a)]
    return perm
