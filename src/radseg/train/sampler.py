"""Patch sampling with a foreground/background balance, on preprocessed (network-grid) cases.

A share ``foreground_fraction`` of patches is centred (with jitter) on a voxel of a labelled
class, the class drawn uniformly among those present in the case, so small structures are
seen as often as large ones (as nnU-Net's oversampling does); the rest are placed uniformly.
With ``hard_fraction`` > 0 that share of patches is centred on a *hard negative* (the others are
drawn as above): a background voxel the network itself called foreground when it was last run
over the training images (see :meth:`PatchSampler.set_hard_negatives`), so the patches a
detector most needs to see again (its false positives, e.g. on normal radiographs) are not left
to uniform sampling, which rarely lands on them. Without mined voxels the usual draw is used.
With ``case_weights`` the cases of the other patches (all but the hard-negative share) are drawn
with those probabilities instead of uniformly, e.g.
:func:`finding_balance`: within each group of a metadata column (a FracAtlas body part), images
with and without a finding drawn equally often, so a group where most training images hold a
finding (hands) does not teach the network that the group itself is the finding.
Cases smaller than the patch are padded (image: its minimum, labels: background).
All randomness comes from one ``numpy.random.Generator`` the caller seeds and checkpoints.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

__all__ = ["GridCase", "PatchSampler", "finding_balance"]

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
        # the padding value, once: a memory-mapped image (pretrain --images) is not read whole per patch
        self.fill = float(self.image.min())
        classes = self.target if self.target.ndim == self.image.ndim else None
        self.points: list[np.ndarray] = []
        if classes is None and all(step == 0 for step in self.target.strides) and not self.target.flat[0]:
            return  # a broadcast empty target (pretraining): no labelled centres, nothing to sort
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


def finding_balance(groups: Sequence, has_finding: Sequence[bool]) -> np.ndarray:
    """Per-case draw probabilities: each group keeps its share of the draws (its share of the cases),
    split half to its cases with a finding and half to those without (uniform within each half).
    A group with only one kind keeps uniform draws. Groups are compared as text (``str``)."""
    has_finding = np.asarray(has_finding, bool)
    if len(groups) != has_finding.size or not len(groups):
        raise ValueError(f"{len(groups)} groups for {has_finding.size} cases")
    _, group = np.unique([str(g) for g in groups], return_inverse=True)
    weights = np.empty(has_finding.size)  # every case is in one group (np.unique), so all are set
    for g in range(group.max() + 1):
        members = group == g
        present = [kind for kind in (members & has_finding, members & ~has_finding) if kind.any()]
        for kind in present:
            weights[kind] = members.sum() / len(present) / kind.sum()
    return weights / weights.sum()


class PatchSampler:
    def __init__(self, cases: list[GridCase], patch_size: tuple[int, ...], *, foreground_fraction: float,
                 rng: np.random.Generator, hard_fraction: float = 0.0, case_weights: Sequence[float] | None = None) -> None:
        if not cases:
            raise ValueError("no training cases")
        if not 0.0 <= hard_fraction < 1.0:
            raise ValueError(f"the hard-negative share of patches must be in [0, 1), not {hard_fraction}")
        self.case_p = None
        if case_weights is not None:
            weights = np.asarray(case_weights, float)
            if weights.shape != (len(cases),) or not np.all(np.isfinite(weights)) or weights.min() < 0 or weights.sum() <= 0:
                raise ValueError(f"case weights: one finite non-negative weight per case ({len(cases)}), not all zero")
            self.case_p = weights / weights.sum()
        self.cases, self.patch, self.fg, self.rng = cases, tuple(patch_size), float(foreground_fraction), rng
        self.hard = float(hard_fraction)
        self.hard_points: dict[int, np.ndarray] = {}  # case index -> mined voxels [N, dims]

    def set_hard_negatives(self, points: dict[int, np.ndarray]) -> None:
        """Replace the mined voxels: case index -> ``[N, dims]`` grid coordinates (cases without any left out)."""
        self.hard_points = {i: np.asarray(p, np.int32) for i, p in points.items() if len(p)}

    def _hard_corner(self) -> tuple[GridCase, np.ndarray]:
        # a case with false positives first, uniformly, then one of its voxels: an image with one
        # small false blob is revisited as often as one with a large false area
        keys = sorted(self.hard_points)
        index = keys[self.rng.integers(len(keys))]
        points = self.hard_points[index]
        case = self.cases[index]
        return case, self._around(case, points[self.rng.integers(len(points))])

    def _room(self, case: GridCase) -> np.ndarray:
        return np.maximum(np.array(case.shape) - np.array(self.patch), 0)

    def _around(self, case: GridCase, centre: np.ndarray) -> np.ndarray:
        """A patch corner that puts ``centre`` anywhere in the central half of the patch."""
        patch = np.array(self.patch)
        offset = patch // 2 + self.rng.integers(-(patch // 4), patch // 4 + 1)
        return np.clip(centre - offset, 0, self._room(case))

    def _corner(self, case: GridCase) -> np.ndarray:
        if case.points and self.rng.random() < self.fg:
            points = case.points[self.rng.integers(len(case.points))]
            return self._around(case, points[self.rng.integers(len(points))])
        return np.array([self.rng.integers(r + 1) for r in self._room(case)])

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
            # no extra draw without hard negatives: runs without them keep their exact sequence
            if self.hard and self.hard_points and self.rng.random() < self.hard:
                case, corner = self._hard_corner()
            else:
                # uniform draws stay integers(), so runs without weights keep their exact sequence
                pick = self.rng.integers(len(self.cases)) if self.case_p is None else self.rng.choice(len(self.cases), p=self.case_p)
                case = self.cases[pick]
                corner = self._corner(case)
            spatial = len(self.patch)
            images.append(self._crop(case.image, corner, spatial, case.fill))
            target = self._crop(case.target, corner, spatial, 0)
            targets.append(target[None] if target.ndim == spatial else target)
        return np.stack(images), np.stack(targets)
