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


def _boxes(array: np.ndarray, values: Iterable[int] | None) -> dict[int, tuple[slice, ...]]:
    """Bounding box of each present non-zero value (one pass; all its pixels lie inside)."""
    if array.dtype.kind == "b":
        array = array.view(np.uint8)
    if array.dtype.kind == "u" or (array.dtype.kind == "i" and array.min(initial=0) >= 0):
        boxes = {i + 1: box for i, box in enumerate(ndimage.find_objects(array)) if box is not None}
    else:  # negative values: not a label map radseg writes, but handled
        boxes = {int(v): ndimage.find_objects((array == v).view(np.uint8))[0] for v in np.unique(array) if v != 0}
    return boxes if values is None else {int(v): boxes[int(v)] for v in values if int(v) in boxes}


def largest_component(labels: np.ndarray, values: Iterable[int] | None = None) -> np.ndarray:
    """Keep, for each label value, only its largest connected piece (the rest -> background)."""
    out = labels.copy()
    structure = np.ones((3,) * labels.ndim, bool)
    for value, box in _boxes(labels, values).items():
        components, count = ndimage.label(labels[box] == value, structure=structure)
        if count > 1:
            sizes = np.bincount(components.ravel())
            sizes[0] = 0
            out[box][(components != 0) & (components != int(np.argmax(sizes)))] = 0
    return out


def fill_holes(labels: np.ndarray, values: Iterable[int] | None = None) -> np.ndarray:
    """Fill background holes enclosed by one label with that label.

    Works in the label's bounding box: the region outside it is one connected background, so
    a background piece reaching the box's edge is open, exactly as in the whole image. Holes
    are background pieces (face connectivity, as scipy's ``binary_fill_holes``) that do not.
    """
    out = labels.copy()
    for value, box in _boxes(labels, values).items():
        mask = labels[box] == value
        pieces, count = ndimage.label(~mask)
        if count == 0:
            continue
        edge = np.zeros(count + 1, bool)
        for axis in range(mask.ndim):
            for end in (0, -1):
                edge[np.take(pieces, end, axis=axis)] = True
        enclosed = ~edge[pieces]  # piece 0 is the mask itself: edge[0] stays False only if never on an edge
        enclosed &= ~mask
        region = out[box]
        region[enclosed & (region == 0)] = value
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
