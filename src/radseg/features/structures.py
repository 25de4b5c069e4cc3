"""Find the structures a measurement needs in a label map, by name first and by value second.

Names come from ``metadata["label_names"]`` (label maps) or ``metadata["class_names"]``
(multi-label masks such as CXAS's). A name matches when it is equal after normalising
(lower case, ``_``/``-`` as spaces) or has the same words in another order, so
``"right femur"``, ``"Femur_Right"`` and ``"femur right"`` all match. Value tables (HexAI's
knee 1-8 and hip 1-6) are the fallback, used only for values that carry no real name, so a
chest map's value 2 is never mistaken for a right femur.

Sides are decided from names ("right"/"left"), never from where a structure sits in the
picture. Where a measurement needs to know which way the patient's right is on the image
(medial/lateral), :func:`right_direction` decides it from anatomy when both sides are
present, else from the DICOM PatientOrientation, else the radiograph convention (patient
right at image left).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

import numpy as np
from scipy import ndimage

from radseg.image import Image
from radseg.labels import is_multilabel, label_names

__all__ = ["SIDES", "Structures", "as_2d", "largest_component", "normalise", "right_direction"]

SIDES = ("right", "left")
_GENERIC = re.compile(r"label[ _]?\d+")


def normalise(name: str) -> str:
    return " ".join(re.sub(r"[_\-/.,]+", " ", str(name).lower()).split())


def _words(name: str) -> tuple[str, ...]:
    return tuple(sorted(normalise(name).split()))


class Structures:
    """The named structures of one label map or multi-label mask."""

    def __init__(self, labels: Image) -> None:
        self.labels = labels
        self.multi = is_multilabel(labels)
        self.names = label_names(labels)  # value -> name, generic label_<v> for unnamed values
        self._channel = {v: i for i, v in enumerate(self.names)} if self.multi else {}
        self.named = {v for v, n in self.names.items() if not _GENERIC.fullmatch(normalise(n))}
        self.used: set[str] = set()  # names of the structures found so far

    def tag(self, measurements: list) -> list:
        """Record on each measurement which structures were used (the overlay shows only those)."""
        for m in measurements:
            m.sources = tuple(sorted(self.used))
        return measurements

    def mask(self, value: int) -> np.ndarray:
        if self.multi:
            return self.labels.array[..., self._channel[value]].astype(bool)
        return self.labels.array == value

    def value_of(self, aliases: Sequence[str], values: Sequence[int] = ()) -> int | None:
        """The label value for the first alias that matches a name, else the first unnamed fallback value."""
        exact = {normalise(self.names[v]): v for v in self.named}
        words = {_words(self.names[v]): v for v in self.named}
        for alias in aliases:
            if normalise(alias) in exact:
                return exact[normalise(alias)]
        for alias in aliases:
            if _words(alias) in words:
                return words[_words(alias)]
        for value in values:
            if value not in self.named and self._present(value):
                return value
        return None

    def _present(self, value: int) -> bool:
        if self.multi:
            return value in self._channel
        return bool(np.any(self.labels.array == value))

    def find(self, aliases: Sequence[str], values: Sequence[int] = ()) -> np.ndarray | None:
        """The structure's mask (None when it is absent or empty)."""
        value = self.value_of(aliases, values)
        if value is None:
            return None
        mask = self.mask(value)
        if not mask.any():
            return None
        self.used.add(self.names[value])
        return mask

    def matching(self, pattern: re.Pattern) -> Iterator[tuple[int, str, np.ndarray]]:
        """``(value, name, mask)`` of every non-empty named structure whose normalised name matches."""
        for value in sorted(self.named):
            match = pattern.fullmatch(normalise(self.names[value]))
            if match:
                mask = self.mask(value)
                if mask.any():
                    self.used.add(self.names[value])
                    yield value, self.names[value], mask


def right_direction(labels: Image, right: np.ndarray | None = None, left: np.ndarray | None = None) -> tuple[int, str]:
    """Which way the patient's right lies along the image columns: ``-1`` (towards column 0,
    the usual radiograph display) or ``+1``, and how that was decided."""
    if right is not None and left is not None and right.any() and left.any():
        right_col = np.argwhere(right)[:, -1].mean()
        left_col = np.argwhere(left)[:, -1].mean()
        if right_col != left_col:
            return (-1 if right_col < left_col else 1), "from where the right and left structures lie"
    orientation = labels.metadata.get("patient_orientation")
    if orientation:
        first = str(orientation[0]).upper()
        if first.startswith("L"):
            return -1, "from PatientOrientation (columns run towards the patient's left)"
        if first.startswith("R"):
            return 1, "from PatientOrientation (columns run towards the patient's right)"
    return -1, "assumed: patient right at image left (standard AP/PA display)"


def as_2d(labels: Image) -> Image:
    """A 2D label map from a 2D one or a 3D one with a single slice (as HexAI's NIfTI masks are)."""
    if labels.ndim == 2:
        return labels
    shape = labels.shape
    array = labels.array
    spacing = labels.spacing
    for axis in range(3):
        if shape[axis] == 1:
            keep = [a for a in range(3) if a != axis]
            return Image(np.take(array, 0, axis=axis), spacing=tuple(spacing[keep]),
                         metadata={**labels.metadata, "spacing_known": labels.metadata.get("spacing_known", True)})
    spatial = array if array.ndim == 3 else array.any(axis=-1)
    filled = np.flatnonzero(spatial.reshape(shape[0], -1).any(axis=1))
    if len(filled) == 1:
        return Image(array[filled[0]], spacing=tuple(spacing[1:]), metadata=dict(labels.metadata))
    raise ValueError(f"radiograph measurements need a 2D label map; this one is 3D {shape} "
                     f"with {len(filled)} labelled slices")


def largest_component(mask: np.ndarray, *, fill: bool = True) -> np.ndarray:
    """The largest connected part of a mask, holes filled (an overlapping patella leaves holes in a femur)."""
    labelled, count = ndimage.label(mask)
    if count > 1:
        sizes = np.bincount(labelled.ravel())
        sizes[0] = 0
        mask = labelled == int(np.argmax(sizes))
    return ndimage.binary_fill_holes(mask) if fill else mask.astype(bool)
