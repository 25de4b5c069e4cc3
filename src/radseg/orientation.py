"""The one rule that brings a 3D volume's array axes into radseg's working order, and back.

Working order (the default radseg layout, ``SPL``): axis 0 runs inferior -> superior (+z),
axis 1 anterior -> posterior (+y), axis 2 patient right -> left (+x). Only permutations and
flips are used (no resampling), so a result maps back onto the input grid voxel for voxel.

**Rule.** Each array axis serves the world axis its direction lies closest to (its largest
direction cosine) and is flipped when it runs against it; a few degrees of tilt change
nothing. A volume turned by about 45 degrees can have two array axes closest to one world axis,
and then no such order exists. ``oblique`` says what happens then:

* ``"nearest"`` (default; the models' preprocessing): the axis pairs are matched greedily,
  the largest direction cosine first, and an :class:`ObliqueWarning` says so. This is the
  nearest axis order, the same idea as nibabel's ``io_orientation`` (TorchIO's
  ``ToCanonical``): a network still gets the volume, roughly upright.
* ``"raise"`` (the hip annotation): ``ValueError``. Its axial slices and patient sides would
  be neither, and a wrong side is worse than no label.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from radseg.image import Image, axis_codes

__all__ = ["Canonical", "ObliqueWarning", "OBLIQUE_RULES", "canonical", "canonical_axes", "to_canonical",
           "from_canonical"]

OBLIQUE_RULES = ("nearest", "raise")
# world axis (LPS x=0, y=1, z=2) served by working axes 0, 1, 2
_WORLD_OF_WORKING = (2, 1, 0)


class ObliqueWarning(UserWarning):
    """A volume was put in the nearest axis order although two of its axes were equally far off."""


def _greedy_match(weights: np.ndarray) -> np.ndarray:
    """World axis of each array axis: the largest remaining ``weights[world, axis]`` first."""
    out = np.full(3, -1)
    for _ in range(3):
        masked = np.where((out[None, :] >= 0) | np.isin(np.arange(3), out[out >= 0])[:, None], -1, weights)
        world, axis = np.unravel_index(np.argmax(masked), masked.shape)
        out[axis] = world
    return out


def canonical_axes(affine: np.ndarray, *, oblique: str = "nearest") -> tuple[tuple[int, ...], tuple[bool, ...]]:
    """``(perm, flips)`` that bring a 3D LPS image's axes to working order (module docstring).

    ``perm[i]`` is the array axis serving working axis ``i``; ``flips[i]`` says it runs against
    it. :func:`to_canonical` applies them, :func:`from_canonical` undoes them.
    """
    if oblique not in OBLIQUE_RULES:
        raise ValueError(f"oblique must be one of {OBLIQUE_RULES}, got {oblique!r}")
    affine = np.asarray(affine, dtype=float)
    direction = affine[:3, :3] / np.linalg.norm(affine[:3, :3], axis=0)
    world_of_axis = np.argmax(np.abs(direction), axis=0)  # world axis (x=0, y=1, z=2) of each array axis
    if sorted(world_of_axis) != [0, 1, 2]:
        codes = axis_codes(affine)
        if oblique == "raise":
            raise ValueError(f"cannot tell the patient axes of this volume (axes {codes!r}): two of its axes are "
                             "closest to the same patient axis (an oblique volume; resample it first)")
        world_of_axis = _greedy_match(np.abs(direction))
        warnings.warn(f"oblique volume (axes {codes!r}): two axes are closest to the same patient axis; "
                      "using the nearest axis order", ObliqueWarning, stacklevel=2)
    perm = tuple(int(np.where(world_of_axis == w)[0][0]) for w in _WORLD_OF_WORKING)
    flips = tuple(bool(direction[w, a] < 0) for w, a in zip(_WORLD_OF_WORKING, perm))
    return perm, flips


def to_canonical(array: np.ndarray, perm: Sequence[int], flips: Sequence[bool]) -> np.ndarray:
    """``array`` (spatial axes only) in working order: a view, no copy."""
    out = np.transpose(array, perm)
    axes = tuple(i for i, f in enumerate(flips) if f)
    return np.flip(out, axes) if axes else out


def from_canonical(array: np.ndarray, perm: Sequence[int], flips: Sequence[bool]) -> np.ndarray:
    """An array in working order put back in the input's axis order (contiguous)."""
    axes = tuple(i for i, f in enumerate(flips) if f)
    out = np.flip(array, axes) if axes else array
    return np.ascontiguousarray(np.transpose(out, np.argsort(perm)))


@dataclass(frozen=True)
class Canonical:
    """``array`` in working order, its ``spacing`` (mm), and the mapping back to ``image``."""

    image: Image
    array: np.ndarray
    spacing: np.ndarray
    perm: tuple[int, ...]  # image axis serving each working axis
    flips: tuple[bool, ...]  # working axis runs against the image axis

    def back(self, array: np.ndarray) -> np.ndarray:
        """An array on the working grid, reordered onto the input image's grid."""
        return from_canonical(array, self.perm, self.flips)

    def image_index(self, index) -> np.ndarray:
        """A working-grid index (possibly fractional) as an index of the input image."""
        index = np.asarray(index, float).copy()
        for axis, flip in enumerate(self.flips):
            if flip:
                index[axis] = self.array.shape[axis] - 1 - index[axis]
        out = np.zeros(3)
        out[list(self.perm)] = index
        return out


def canonical(image: Image, *, oblique: str = "nearest") -> Canonical:
    """A 3D scalar image's array in working order (a view), by :func:`canonical_axes`."""
    if image.ndim != 3 or image.channels is not None:
        raise ValueError(f"needs a 3D scalar volume, got {image!r}")
    perm, flips = canonical_axes(image.affine, oblique=oblique)
    spacing = np.asarray(image.spacing[list(perm)], dtype=float)
    return Canonical(image=image, array=to_canonical(image.array, perm, flips), spacing=spacing, perm=perm,
                     flips=flips)
