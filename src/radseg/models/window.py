"""Sliding-window inference: window positions, Gaussian weights, and the weighted average of windows.

One implementation for both backends: ``x`` and what ``forward`` returns are numpy arrays
(ONNX Runtime) or torch tensors (the torch network, any device); the positions and
weights are numpy either way. It reproduces MONAI's ``sliding_window_inference`` with
``mode="gaussian"`` (what radseg used before, and what training validation reports):

* an image smaller than the window along an axis is padded with zeros, split evenly
  (the extra pixel after), and the output cropped back;
* step ``int(window * (1 - overlap))`` (at least 1; a whole axis when it fits exactly);
  the last window along an axis is moved back to end at the image's edge;
* each window's logits are weighted by a Gaussian (sigma = 1/8 of the window, per axis;
  weights clamped to at least 1e-3 so borders still count), summed, and divided by the summed
  weights: centre pixels of a window, which see the most context, count the most.

``tests/infer/test_window.py`` checks positions and outputs against MONAI itself.
"""

from __future__ import annotations

import math
from itertools import product
from typing import Any, Callable, Sequence

import numpy as np

__all__ = ["window_starts", "importance_map", "pad_widths", "sliding_window"]


def pad_widths(image_size: Sequence[int], roi_size: Sequence[int]) -> list[tuple[int, int]]:
    """``(before, after)`` zero padding per axis so the image is at least one window."""
    widths = []
    for size, roi in zip(image_size, roi_size):
        diff = max(int(roi) - int(size), 0)
        widths.append((diff // 2, diff - diff // 2))
    return widths


def window_starts(image_size: Sequence[int], roi_size: Sequence[int], overlap: float) -> list[tuple[int, ...]]:
    """Start corner of every window over an image at least ``roi_size`` large (C order, as MONAI)."""
    per_axis = []
    for size, roi in zip(image_size, roi_size):
        size, roi = int(size), int(roi)
        step = roi if roi == size else max(int(roi * (1 - overlap)), 1)
        count = next((d + 1 for d in range(int(math.ceil(size / step))) if d * step + roi >= size), 1)
        per_axis.append([i * step - max(i * step + roi - size, 0) for i in range(count)])
    return [tuple(start) for start in product(*per_axis)]


def importance_map(roi_size: Sequence[int], *, sigma_scale: float = 0.125) -> np.ndarray:
    """Gaussian window weights (float32, peak about 1, at least 1e-3), as MONAI's ``compute_importance_map``."""
    weights = None
    for size in roi_size:
        half = (int(size) - 1) / 2.0
        x = np.arange(-half, half + 1, dtype=np.float32)[: int(size)]
        sigma = np.float32(int(size) * sigma_scale)
        g = np.exp(x ** 2 / (np.float32(-2) * sigma ** 2)).astype(np.float32)
        weights = g if weights is None else weights[..., None] * g
    return np.maximum(weights, max(float(weights.min()), 1e-3)).astype(np.float32)


def sliding_window(forward: Callable[[Any], Any], x: Any, roi_size: Sequence[int], *, overlap: float = 0.5,
                   sw_batch_size: int = 2) -> Any:
    """Weighted-average logits ``[B, C, *S]`` of ``forward`` over windows of ``x`` ``[B, 1, *S]``."""
    numpy = isinstance(x, np.ndarray)
    roi = tuple(int(r) for r in roi_size)
    pads = pad_widths(x.shape[2:], roi)
    if any(before or after for before, after in pads):
        if numpy:
            x = np.pad(x, [(0, 0), (0, 0), *pads])
        else:
            import torch.nn.functional as F

            x = F.pad(x, [w for pair in reversed(pads) for w in pair])
    size = tuple(int(s) for s in x.shape[2:])
    starts = window_starts(size, roi, overlap)
    weight = importance_map(roi)
    if numpy:
        count = np.zeros(size, np.float32)
    else:
        import torch

        weight = torch.from_numpy(weight).to(device=x.device, dtype=x.dtype)
        count = torch.zeros(size, dtype=x.dtype, device=x.device)
    boxes = [tuple(slice(s, s + r) for s, r in zip(start, roi)) for start in starts]
    for box in boxes:
        count[box] += weight
    jobs = [(b, box) for b in range(x.shape[0]) for box in boxes]
    output = None
    for first in range(0, len(jobs), max(1, int(sw_batch_size))):
        chunk = jobs[first:first + max(1, int(sw_batch_size))]
        parts = [x[b:b + 1][(slice(None), slice(None), *box)] for b, box in chunk]
        batch = np.concatenate(parts) if numpy else torch.cat(parts)
        logits = forward(batch)
        if output is None:
            shape = (x.shape[0], logits.shape[1], *size)
            output = np.zeros(shape, np.float32) if numpy else torch.zeros(shape, dtype=logits.dtype, device=x.device)
        for (b, box), window in zip(chunk, logits):
            output[(b, slice(None), *box)] += window * weight
    output = output / count
    crop = tuple(slice(before, s - after) for (before, after), s in zip(pads, size))
    return output[(slice(None), slice(None), *crop)]
