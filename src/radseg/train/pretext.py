"""Image restoration as a self-supervised task: corrupt a patch, train the network to restore it.

The corruptions are those of Models Genesis (Zhou et al., MICCAI 2019 / MedIA 2021), which
pretrains a whole U-Net (encoder and decoder) on unlabelled scans this way, each with its chance:

* **non-linear intensity** (0.9): grey levels mapped through a random Bezier curve, so the network
  must learn what tissue looks like, not one contrast; half of the curves are made monotone;
* **local pixel shuffling** (0.5): pixels permuted inside small blocks, so it must learn texture
  and the edges of structures;
* **in-painting** (0.9 x 0.2) or **out-painting** (0.9 x 0.8): boxes replaced by noise, or all but a
  few boxes, so it must learn anatomy from context.

The corruption works on grey levels rescaled to [0, 1] within the patch and returns them on the
patch's own scale, so the network sees inputs in the range a fine-tuned model will see.
All randomness comes from the ``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

import numpy as np

__all__ = ["corrupt", "bezier_map", "shuffle_blocks", "in_paint", "out_paint"]

P_NONLINEAR, P_SHUFFLE, P_PAINT, P_INPAINT = 0.9, 0.5, 0.9, 0.2


def corrupt(patch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A corrupted copy of one patch ``[C, *S]`` (float), each corruption drawn with its chance."""
    low, high = float(patch.min()), float(patch.max())
    scale = high - low if high > low else 1.0
    unit = (np.asarray(patch, np.float64) - low) / scale
    if rng.random() < P_NONLINEAR:
        unit = bezier_map(unit, rng)
    if rng.random() < P_SHUFFLE:
        unit = shuffle_blocks(unit, rng)
    if rng.random() < P_PAINT:
        unit = in_paint(unit, rng) if rng.random() < P_INPAINT else out_paint(unit, rng)
    return (unit * scale + low).astype(patch.dtype)


def bezier_map(unit: np.ndarray, rng: np.random.Generator, samples: int = 1000) -> np.ndarray:
    """Grey levels in [0, 1] through a cubic Bezier curve from (0, 0) to (1, 1) with two random control
    points. Half the time the curve's y values are sorted too, so the map keeps the grey-level order;
    otherwise it may invert or fold it."""
    control = np.array([[0.0, 0.0], rng.random(2), rng.random(2), [1.0, 1.0]])
    t = np.linspace(0.0, 1.0, samples)[:, None]
    weights = np.hstack([(1 - t) ** 3, 3 * (1 - t) ** 2 * t, 3 * (1 - t) * t ** 2, t ** 3])
    xs, ys = (weights @ control).T
    order = np.argsort(xs)
    xs, ys = xs[order], (np.sort(ys) if rng.random() < 0.5 else ys[order])
    return np.interp(unit, xs, ys)


def shuffle_blocks(unit: np.ndarray, rng: np.random.Generator, blocks: int | None = None) -> np.ndarray:
    """Pixels permuted inside random blocks (each side up to a tenth of the patch's); the values in
    each block stay the same, only their places change."""
    out = unit.copy()
    spatial = out.shape[1:]
    count = blocks if blocks is not None else max(1, int(np.prod(spatial)) // 180)
    for _ in range(count):
        size = [int(rng.integers(1, max(2, s // 10) + 1)) for s in spatial]
        corner = [int(rng.integers(0, s - b + 1)) for s, b in zip(spatial, size)]
        window = (slice(None),) + tuple(slice(c, c + b) for c, b in zip(corner, size))
        block = out[window]
        flat = block.reshape(block.shape[0], -1)
        out[window] = flat[:, rng.permutation(flat.shape[1])].reshape(block.shape)
    return out


def _box(spatial: tuple[int, ...], rng: np.random.Generator, low: float, high: float) -> tuple[slice, ...]:
    """A random box whose sides are between ``low`` and ``high`` of the patch's."""
    size = [int(rng.integers(max(1, int(s * low)), max(2, int(s * high)) + 1)) for s in spatial]
    size = [min(b, s) for b, s in zip(size, spatial)]
    corner = [int(rng.integers(0, s - b + 1)) for s, b in zip(spatial, size)]
    return (slice(None),) + tuple(slice(c, c + b) for c, b in zip(corner, size))


def in_paint(unit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One to five boxes (sides 1/6-1/3 of the patch) replaced by uniform noise."""
    out = unit.copy()
    for _ in range(int(rng.integers(1, 6))):
        window = _box(out.shape[1:], rng, 1 / 6, 1 / 3)
        out[window] = rng.random(out[window].shape)
    return out


def out_paint(unit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Everything but one to five boxes (sides 3/7-4/7 of the patch) replaced by uniform noise."""
    out = rng.random(unit.shape)
    for _ in range(int(rng.integers(1, 6))):
        window = _box(unit.shape[1:], rng, 3 / 7, 4 / 7)
        out[window] = unit[window]
    return out
