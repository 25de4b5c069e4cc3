"""Image restoration as a self-supervised task: corrupt a patch, train the network to restore it.

The corruptions are those of Models Genesis (Zhou et al., MICCAI 2019 / MedIA 2021), which
pretrains a whole U-Net (encoder and decoder) on unlabelled scans this way, each with its chance:

* **non-linear intensity** (0.9): grey levels mapped through a random Bezier curve, half of them
  upside down (bright becomes dark), so the network must learn what tissue looks like, not one contrast;
* **local pixel shuffling** (0.5): pixels permuted inside small blocks (covering the patch about
  twice over), so it must learn texture and the edges of structures;
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
    points: half the time as drawn (the grey-level order kept), half the time upside down (0 -> 1,
    1 -> 0: the order inverted), as Models Genesis pairs its sorted x values with reversed y values."""
    control = np.array([[0.0, 0.0], rng.random(2), rng.random(2), [1.0, 1.0]])
    t = np.linspace(0.0, 1.0, samples)[:, None]
    weights = np.hstack([(1 - t) ** 3, 3 * (1 - t) ** 2 * t, 3 * (1 - t) * t ** 2, t ** 3])
    xs, ys = (weights @ control).T
    order = np.argsort(xs)
    # with control points in the unit square the curve's y rises with its x: sorting both keeps the pairs
    xs, ys = xs[order], np.sort(ys)
    if rng.random() >= 0.5:
        ys = ys[::-1]
    return np.interp(unit, xs, ys)


#: How many times over local shuffling covers a patch on average (Models Genesis: 10,000 blocks of up to
#: a tenth of each side in a 64x64x32 cube, about 1.9 times over).
SHUFFLE_COVERAGE = 2.0


def shuffle_blocks(unit: np.ndarray, rng: np.random.Generator, blocks: int | None = None) -> np.ndarray:
    """Pixels permuted inside random blocks (each side up to a tenth of the patch's), each block taken
    from the uncorrupted patch: the values in a block stay the same, only their places change."""
    out = unit.copy()
    spatial = out.shape[1:]
    largest = [max(1, s // 10) for s in spatial]
    if blocks is None:
        mean_block = float(np.prod([(1 + m) / 2 for m in largest]))
        blocks = max(1, round(SHUFFLE_COVERAGE * int(np.prod(spatial)) / mean_block))
    for _ in range(blocks):
        size = [int(rng.integers(1, m + 1)) for m in largest]
        corner = [int(rng.integers(0, s - b + 1)) for s, b in zip(spatial, size)]
        window = (slice(None),) + tuple(slice(c, c + b) for c, b in zip(corner, size))
        block = unit[window]
        flat = block.reshape(block.shape[0], -1)
        out[window] = flat[:, rng.permutation(flat.shape[1])].reshape(block.shape)
    return out


def _boxes(rng: np.random.Generator, first: int, more: int) -> int:
    """``first`` boxes, then up to ``more`` others, each drawn with chance 0.95 (Models Genesis' counts)."""
    count = first
    while more > 0 and rng.random() < 0.95:
        count, more = count + 1, more - 1
    return count


def _box(spatial: tuple[int, ...], rng: np.random.Generator, low: float, high: float) -> tuple[slice, ...]:
    """A random box whose sides are between ``low`` and ``high`` of the patch's."""
    size = [int(rng.integers(max(1, int(s * low)), max(2, int(s * high)) + 1)) for s in spatial]
    size = [min(b, s) for b, s in zip(size, spatial)]
    corner = [int(rng.integers(0, s - b + 1)) for s, b in zip(spatial, size)]
    return (slice(None),) + tuple(slice(c, c + b) for c, b in zip(corner, size))


def in_paint(unit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Up to five boxes (sides 1/6-1/3 of the patch) replaced by uniform noise."""
    out = unit.copy()
    for _ in range(_boxes(rng, 0, 5)):
        window = _box(out.shape[1:], rng, 1 / 6, 1 / 3)
        out[window] = rng.random(out[window].shape)
    return out


def out_paint(unit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Everything but one to five boxes (sides 3/7-4/7 of the patch) replaced by uniform noise."""
    out = rng.random(unit.shape)
    for _ in range(_boxes(rng, 1, 4)):
        window = _box(unit.shape[1:], rng, 3 / 7, 4 / 7)
        out[window] = unit[window]
    return out
