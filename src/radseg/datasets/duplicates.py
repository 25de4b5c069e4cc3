"""The same picture twice in a dataset: groups of cases whose images have identical pixels.

A public dataset can hold one image under two ids, sometimes in two splits (FracAtlas: 9 of its
113 valid images have the pixels of a train-split image, and 3 valid images appear twice). A model
trained on one copy and scored on the other is scored on an image it has seen, and a duplicate
inside a split counts twice. Patient ids cannot reveal this (FracAtlas has none); the pixels can.

Only exact copies are found (same shape, type and values as read): a re-encoded or resized copy is not.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Callable, Iterable, Optional

import numpy as np

from radseg.case import Case
from radseg.errors import ReadError

__all__ = ["pixel_digest", "DuplicateGroup", "duplicate_groups"]


def pixel_digest(array: np.ndarray) -> str:
    """SHA-256 of an image's shape, type and pixels: the same picture read the same way gives the same digest."""
    array = np.ascontiguousarray(array)
    digest = hashlib.sha256(str((array.shape, array.dtype.str)).encode())
    digest.update(array.tobytes())
    return digest.hexdigest()


@dataclass
class DuplicateGroup:
    digest: str
    cases: list[tuple[str, Optional[str]]]  # (case id, split) in dataset order

    @property
    def splits(self) -> list[Optional[str]]:
        return sorted({split for _, split in self.cases}, key=str)

    @property
    def across_splits(self) -> bool:
        """In more than one split; a case without a split counts as training data (as training takes it)."""
        return len({split or "train" for _, split in self.cases}) > 1


def duplicate_groups(cases: Iterable[Case], *, on_case: Callable[[], None] | None = None
                     ) -> tuple[list[DuplicateGroup], list[tuple[str, str]]]:
    """``(groups, problems)``: every set of two or more cases with identical image pixels, and the cases
    that could not be read. Each image is read once and released (``case.unload``)."""
    seen: dict[str, list[tuple[str, Optional[str]]]] = {}
    problems = []
    for case in cases:
        try:
            seen.setdefault(pixel_digest(case.image.array), []).append((case.case_id, case.split))
        except (ReadError, ValueError, OSError) as exc:
            problems.append((case.case_id, str(exc)))
        finally:
            case.unload()
            if on_case:
                on_case()
    groups = [DuplicateGroup(digest, members) for digest, members in seen.items() if len(members) > 1]
    return groups, problems
