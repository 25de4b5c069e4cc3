"""Clean-ups of a predicted label map: largest connected component per label, hole filling.

Both act per label on the original grid. Hole filling only turns background into the
label that encloses it (another label inside a hole is kept), in all dimensions at once
(a cavity closed in 3D). Connectivity is full (8 in 2D, 26 in 3D), so a structure touching
itself at a corner counts as one piece.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
from scipy import ndimage

__all__ = ["largest_component", "fill_holes", "postprocess"]


def _values(array: np.ndarray, values: Iterable[int] | None) -> list[int]:
    present = [int(v) for v in np.unique(array) if v != 0]
    return present if values is None else [int(v) for v in values if int(v) in present]


def largest_component(labels: np.ndarray, values: Iterable[int] | None = None) -> np.ndarray:
    """Keep, for each label value, only its largest connected piece (the rest -> background)."""
    out = labels.copy()
    structure = np.ones((3,) * labels.ndim, bool)
    for value in _values(labels, values):
        components, count = ndimage.label(labels == value, structure=structure)
        if count > 1:
            sizes = np.bincount(components.ravel())
            sizes[0] = 0
            out[(components != 0) & (components != int(np.argmax(sizes)))] = 0
    return out


def fill_holes(labels: np.ndarray, values: Iterable[int] | None = None) -> np.ndarray:
    """Fill background holes enclosed by one label with that label."""
    out = labels.copy()
    for value in _values(labels, values):
        mask = labels == value
        filled = ndimage.binary_fill_holes(mask)
        out[filled & ~mask & (out == 0)] = value
    return out


def postprocess(labels: np.ndarray, *, largest: bool | list[int] = False, holes: bool | list[int] = False) -> np.ndarray:
    """Apply the configured clean-ups to a label map (``True`` = every label, or a list of values).

    For a multi-label mask, call it on each channel (as a 0/1 map).
    """
    if not largest and not holes:
        return labels
    pick = lambda option: None if option is True else list(option)  # noqa: E731
    if largest:
        labels = largest_component(labels, pick(largest))
    if holes:
        labels = fill_holes(labels, pick(holes))
    return labels
