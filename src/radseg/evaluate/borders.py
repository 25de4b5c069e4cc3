"""Where the surfaces are, fast: bounding boxes, crops with a background margin, border voxels,
and nearest-border distances (the machinery of :mod:`radseg.evaluate.surface`).

Only the bounding box of both masks plus a one-voxel margin is touched after one cheap pass
for the bounds; the borders come from six shifted ANDs on that box; the distances from a
k-d tree over one surface queried with the other (``scipy.spatial.cKDTree``, unbalanced,
non-compact nodes, leaf size 32: about 2x faster here than its defaults). Measured on the
benchmark's 3D pair (box 133x271x322, ~136k surface voxels per mask, 2 cores): k-d tree queries
0.3 s for both directions; ``scipy.ndimage.distance_transform_edt(sampling=spacing)`` on the
same box gives the same distances (to 1e-13) in 3.7 s, so the k-d tree is used. Whole call
(Dice + surfaces + HD, HD95, ASSD) 0.39 s and 211 MB peak for the process, vs MONAI 1.6.1
6.9 s and 1.78 GB; see ``benchmarks/surface_metrics.py`` and its results file.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

__all__ = ["bounds", "union_box", "margin_box", "with_margin", "border", "nearest", "crop_pair"]


def bounds(mask: np.ndarray) -> tuple[tuple[int, int], ...] | None:
    """``((lo, hi), ...)`` per axis (hi exclusive) of the True voxels, or None when empty.

    Two cheap passes: rows of the first axis (contiguous), then the OR of the occupied
    slices, recursively for the remaining axes.
    """
    if mask.size == 0:
        return None
    first = np.flatnonzero(mask.reshape(mask.shape[0], -1).any(axis=1))
    if first.size == 0:
        return None
    lo, hi = int(first[0]), int(first[-1]) + 1
    if mask.ndim == 1:
        return ((lo, hi),)
    rest = bounds(mask[lo:hi].any(axis=0))
    assert rest is not None
    return ((lo, hi), *rest)


def union_box(a: tuple[tuple[int, int], ...] | None, b: tuple[tuple[int, int], ...] | None):
    """The box holding both boxes (None stands for an empty mask's)."""
    if a is None:
        return b
    if b is None:
        return a
    return tuple((min(x[0], y[0]), max(x[1], y[1])) for x, y in zip(a, b))


def margin_box(box: tuple[tuple[int, int], ...], shape: tuple[int, ...]):
    """Slices of ``box`` grown by one voxel (clipped to the array), the zero padding that
    restores the margin where the array edge clipped it, and the array index of the first
    voxel inside the margin (where :func:`border`'s output starts)."""
    slices = tuple(slice(max(lo - 1, 0), min(hi + 1, n)) for (lo, hi), n in zip(box, shape))
    pad = tuple((int(lo == 0), int(hi == n)) for (lo, hi), n in zip(box, shape))
    return slices, pad, tuple(lo for lo, _ in box)


def with_margin(mask: np.ndarray, pad) -> np.ndarray:
    """``mask`` zero-padded where the array edge clipped the margin (see :func:`margin_box`)."""
    return np.pad(mask, pad) if any(any(p) for p in pad) else mask


def border(padded: np.ndarray) -> np.ndarray:
    """Border voxels of the inner part of ``padded`` (whose outer one-voxel shell is background):
    mask voxels with at least one face neighbour outside the mask."""
    ndim = padded.ndim
    centre = tuple(slice(1, n - 1) for n in padded.shape)
    core = padded[centre]
    interior = core.copy()
    for axis in range(ndim):
        for start in (0, 2):
            shifted = list(centre)
            shifted[axis] = slice(start, padded.shape[axis] - 2 + start)
            interior &= padded[tuple(shifted)]
    return core & ~interior


def nearest(points_to: np.ndarray, points_from: np.ndarray, workers: int) -> np.ndarray:
    """Distance from each of ``points_from`` to the nearest of ``points_to`` (both in mm)."""
    tree = cKDTree(points_to, leafsize=32, balanced_tree=False, compact_nodes=False)
    return tree.query(points_from, k=1, workers=workers)[0]


def crop_pair(pred: np.ndarray, truth: np.ndarray):
    """Both masks cut to the box of their union plus a background margin, or None if both empty."""
    box = union_box(bounds(pred), bounds(truth))
    if box is None:
        return None
    slices, pad, origin = margin_box(box, pred.shape)
    return with_margin(pred[slices], pad), with_margin(truth[slices], pad), origin
