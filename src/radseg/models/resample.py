"""Resizing a spatial array in numpy, as ``torch.nn.functional.interpolate`` does it.

The network grid is reached (and left) by resampling: linear with pixel edges aligned
(``align_corners=False``), antialiased when a 2D image shrinks (torch's ``antialias=True``,
a triangle filter as wide as the scale, like PIL), and ``nearest-exact`` for labels. Both
inference backends and training use this one implementation, so the ONNX path needs no
torch; ``tests/models/test_resample.py`` checks it against ``F.interpolate`` (float32
rounding apart, the same numbers).

Each axis is resampled on its own (all three modes are separable): plain linear and nearest
by indexing, antialiased linear by a sparse weight matrix (a few taps per output pixel).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["resize", "MODES"]

MODES = ("linear", "nearest")


def _along(array: np.ndarray, axis: int, fn) -> np.ndarray:
    moved = np.moveaxis(array, axis, 0)
    flat = moved.reshape(moved.shape[0], -1)
    out = fn(flat)
    return np.moveaxis(out.reshape((out.shape[0], *moved.shape[1:])), 0, axis)


def _linear_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """torch's bilinear source indices and weights (align_corners=False)."""
    scale = np.float32(n_in) / np.float32(n_out)  # float32 throughout, as torch computes it for float input
    src = np.maximum(scale * (np.arange(n_out, dtype=np.float32) + np.float32(0.5)) - np.float32(0.5), np.float32(0))
    i0 = np.minimum(src.astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    w1 = src - i0.astype(np.float32)
    return i0, i1, w1


def _antialias_matrix(n_in: int, n_out: int):
    """torch's antialiased bilinear weights (``_compute_weights_aa``) as a sparse ``[n_out, n_in]`` matrix."""
    from scipy import sparse

    scale = n_in / n_out
    support = scale if scale >= 1.0 else 1.0  # interp_size 2, times 0.5, times the scale when shrinking
    invscale = 1.0 / scale if scale >= 1.0 else 1.0
    center = scale * (np.arange(n_out) + 0.5)
    xmin = np.maximum(np.trunc(center - support + 0.5).astype(np.int64), 0)
    xmax = np.minimum(np.trunc(center + support + 0.5).astype(np.int64), n_in)
    taps = int(max(1, (xmax - xmin).max()))
    j = xmin[:, None] + np.arange(taps)[None, :]
    inside = j < xmax[:, None]
    weights = np.where(inside, np.maximum(0.0, 1.0 - np.abs((j - center[:, None] + 0.5) * invscale)), 0.0)
    total = weights.sum(axis=1, keepdims=True)
    weights = np.divide(weights, total, out=np.zeros_like(weights), where=total != 0)
    rows = np.broadcast_to(np.arange(n_out)[:, None], j.shape)
    keep = inside & (weights != 0)
    return sparse.csr_matrix((weights[keep].astype(np.float32), (rows[keep], j[keep])), shape=(n_out, n_in))


def resize(array: np.ndarray, shape: Sequence[int], *, mode: str = "linear", antialias: bool | None = None) -> np.ndarray:
    """``array`` (spatial axes only) resized to ``shape``, as float32.

    ``mode="linear"``: bilinear / trilinear, ``align_corners=False``; ``antialias`` defaults to
    what the preprocessing always used: on for a 2D image that shrinks along any axis.
    ``mode="nearest"``: torch's ``nearest-exact``.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    shape = tuple(int(s) for s in shape)
    array = np.asarray(array, dtype=np.float32)
    if array.shape == shape:
        return array
    if len(shape) != array.ndim:
        raise ValueError(f"cannot resize a {array.ndim}D array to {shape}")
    if antialias is None:
        antialias = mode == "linear" and array.ndim == 2 and any(n < o for n, o in zip(shape, array.shape))
    out = array
    # torch runs the last axis first (horizontal pass, then vertical); the same order keeps the rounding alike
    for axis in reversed(range(array.ndim)):
        n_in, n_out = out.shape[axis], shape[axis]
        if n_in == n_out and not antialias:
            continue
        if mode == "nearest":
            scale = np.float32(n_in) / np.float32(n_out)
            index = np.minimum(np.floor((np.arange(n_out, dtype=np.float32) + np.float32(0.5)) * scale).astype(np.int64),
                               n_in - 1)
            out = np.take(out, index, axis=axis)
        elif antialias:
            matrix = _antialias_matrix(n_in, n_out)
            out = _along(out, axis, lambda flat, m=matrix: np.asarray(m @ flat, dtype=np.float32))
        else:
            i0, i1, w1 = _linear_taps(n_in, n_out)
            view = [1] * out.ndim
            view[axis] = n_out
            w1 = w1.reshape(view)
            out = np.take(out, i0, axis=axis) * (np.float32(1) - w1) + np.take(out, i1, axis=axis) * w1
    return np.ascontiguousarray(out, dtype=np.float32)
