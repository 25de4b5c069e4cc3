"""Patch sampling with a foreground/background balance, on preprocessed (network-grid) cases.

A share ``foreground_fraction`` of patches is centred (with jitter) on a voxel of a labelled
class, the class drawn uniformly among those present in the case, so small structures are
seen as often as large ones (as nnU-Net's oversampling does); the rest are placed uniformly.
Cases smaller than the patch are padded (image: its minimum, labels: background).
All randomness comes from one ``numpy.random.Generator`` the caller seeds and checkpoints.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["GridCase", "PatchSampler"]

_MAX_POINTS = 20000  # per class per case: enough to pick centres from, small in memory


@dataclass
class GridCase:
    """One case on the network grid: image ``[1, *grid]`` float32, target ``[*grid]`` channel
    indices (multi-class) or ``[C, *grid]`` bool (multi-label)."""

    case_id: str
    image: np.ndarray
    target: np.ndarray

    def __post_init__(self) -> None:
        rng = np.random.default_rng(0)
        classes = self.target if self.target.ndim == self.image.ndim else None
        self.points: list[np.ndarray] = []
        channels = classes if classes is not None else [self.target == c for c in np.unique(self.target) if c != 0]
        for mask in channels:
            points = np.argwhere(mask)
            if len(points) > _MAX_POINTS:
                points = points[rng.choice(len(points), _MAX_POINTS, replace=False)]
            if len(points):
                self.points.append(points.astype(np.int32))

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.image.shape[1:])


class PatchSampler:
    def __init__(self, cases: list[GridCase], patch_size: tuple[int, ...], *, foreground_fraction: float,
                 rng: np.random.Generator) -> None:
        if not cases:
            raise ValueError("no training cases")
        self.cases, self.patch, self.fg, self.rng = cases, tuple(patch_size), float(foreground_fraction), rng

    def _corner(self, case: GridCase) -> np.ndarray:
        shape, patch = np.array(case.shape), np.array(self.patch)
        room = np.maximum(shape - patch, 0)
        if case.points and self.rng.random() < self.fg:
            points = case.points[self.rng.integers(len(case.points))]
            centre = points[self.rng.integers(len(points))]
            # the chosen voxel lands anywhere in the central half of the patch
            offset = patch // 2 + self.rng.integers(-(patch // 4), patch // 4 + 1)
            corner = centre - offset
        else:
            corner = np.array([self.rng.integers(r + 1) for r in room])
        return np.clip(corner, 0, room)

    def _crop(self, array: np.ndarray, corner: np.ndarray, spatial: int, fill) -> np.ndarray:
        lead = array.ndim - spatial
        window = tuple(slice(c, c + p) for c, p in zip(corner, self.patch))
        out = array[(slice(None),) * lead + window]
        if out.shape[lead:] != self.patch:
            pad = [(0, 0)] * lead + [(0, p - s) for p, s in zip(self.patch, out.shape[lead:])]
            out = np.pad(out, pad, constant_values=fill)
        return out

    def batch(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        """``(images [B, 1, *patch], targets [B, 1, *patch] or [B, C, *patch])``."""
        images, targets = [], []
        for _ in range(size):
            case = self.cases[self.rng.integers(len(self.cases))]
            corner = self._corner(case)
            spatial = len(self.patch)
            images.append(self._crop(case.image, corner, spatial, float(case.image.min())))
            target = self._crop(case.target, corner, spatial, 0)
            targets.append(target[None] if target.ndim == spatial else target)
        return np.stack(images), np.stack(targets)
