"""A view of any 3D image in one working orientation, and the way back.

The annotation algorithms reason in patient terms (axial slices, patient right/left,
superior/inferior), so they work on the array reordered to the radseg default layout:
axis 0 -> +z (inferior to superior), axis 1 -> +y (anterior to posterior), axis 2 -> +x
(patient right to left). Only axis permutations and flips are used (no resampling), so a
result maps back onto the input grid voxel for voxel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from radseg.image import Image


@dataclass(frozen=True)
class Canonical:
    """``array`` in (S, P, L) axis order, its ``spacing`` (mm), and the mapping back to ``image``."""

    image: Image
    array: np.ndarray
    spacing: np.ndarray
    perm: tuple[int, int, int]  # image axis serving each working axis
    flips: tuple[bool, bool, bool]  # working axis runs against the image axis

    def back(self, array: np.ndarray) -> np.ndarray:
        """An array on the working grid, reordered onto the input image's grid."""
        out = array
        for axis, flip in enumerate(self.flips):
            if flip:
                out = np.flip(out, axis=axis)
        inverse = np.argsort(self.perm)
        return np.ascontiguousarray(np.transpose(out, inverse))


def canonical(image: Image) -> Canonical:
    """Reorder a 3D image's array to (S, P, L) by its affine (the dominant world axis of each array axis)."""
    if image.ndim != 3 or image.channels is not None:
        raise ValueError(f"needs a 3D scalar volume, got {image!r}")
    direction = image.direction  # columns: world direction of each array axis
    world_of_axis = np.argmax(np.abs(direction), axis=0)  # 0=x, 1=y, 2=z for each array axis
    if sorted(world_of_axis) != [0, 1, 2]:
        raise ValueError(f"cannot tell the patient axes of this volume (axes {image.axis_codes!r})")
    # working axis 0 is z (world 2), 1 is y (world 1), 2 is x (world 0)
    perm = tuple(int(np.where(world_of_axis == w)[0][0]) for w in (2, 1, 0))
    flips = tuple(bool(direction[w, perm[i]] < 0) for i, w in enumerate((2, 1, 0)))
    array = np.transpose(image.array, perm)
    for axis, flip in enumerate(flips):
        if flip:
            array = np.flip(array, axis=axis)
    spacing = image.spacing[list(perm)]
    return Canonical(image=image, array=array, spacing=np.asarray(spacing, dtype=float), perm=perm, flips=flips)
