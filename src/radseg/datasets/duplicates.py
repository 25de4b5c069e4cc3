"""The same picture twice in a dataset: groups of cases whose images have identical pixels.

A public dataset can hold one image under two ids, sometimes in two splits (FracAtlas: 9 of its
113 valid images have the pixels of a train-split image, and 3 valid images appear twice). A model
trained on one copy and scored on the other is scored on an image it has seen, and a duplicate
inside a split counts twice. Patient ids cannot reveal this (FracAtlas has none); the pixels can.

Only exact copies are found (same shape, type and values as read): a re-encoded or resized copy is not;
blank images (one value everywhere) are not compared.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Callable, Iterable, Optional, Sequence

import numpy as np

from radseg.case import Case
from radseg.datasets.base import CaseRecord
from radseg.errors import ReadError

__all__ = ["pixel_digest", "picture_digest", "case_digest", "DuplicateGroup", "duplicate_groups", "place_copies"]


def pixel_digest(array: np.ndarray) -> str:
    """SHA-256 of an image's shape, type and pixels: the same picture read the same way gives the same digest."""
    array = np.ascontiguousarray(array)
    digest = hashlib.sha256(str((array.shape, array.dtype.str)).encode())
    digest.update(array.tobytes())
    return digest.hexdigest()


def picture_digest(array: np.ndarray) -> str | None:
    """:func:`pixel_digest`, or None for a blank image (one value everywhere): blank frames and empty
    slices are not one picture under several ids, and linking them would pull unrelated cases together."""
    array = np.asarray(array)
    if array.size == 0 or array.min() == array.max():
        return None
    return pixel_digest(array)


def case_digest(case: Case, digest: Callable[[np.ndarray], str | None] = pixel_digest) -> str | None:
    """``digest`` of a case's image, read once and released (``case.unload``) whatever happens: a
    dataset is compared case by case, never held whole. Read errors propagate to the caller."""
    try:
        return digest(case.image.array)
    finally:
        case.unload()


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
    """``(groups, problems)``: every set of two or more cases with identical image pixels (blank images
    left out), and the cases that could not be read. Each image is read once and released (``case.unload``)."""
    seen: dict[str, list[tuple[str, Optional[str]]]] = {}
    problems = []
    for case in cases:
        try:
            digest = case_digest(case, picture_digest)
            if digest is not None:
                seen.setdefault(digest, []).append((case.case_id, case.split))
        except (ReadError, ValueError, OSError) as exc:
            problems.append((case.case_id, str(exc)))
        finally:
            if on_case:
                on_case()
    groups = [DuplicateGroup(digest, members) for digest, members in seen.items() if len(members) > 1]
    return groups, problems


def place_copies(records: Sequence[CaseRecord], digests: dict[str, str | None], given: set[str]
                 ) -> tuple[list[str], list[str], list[str]]:
    """Keep identical pictures in one split while preparing; ``(moved, conflicts, repeats)`` as sentences.

    ``digests`` maps case id -> :func:`picture_digest` (None: a blank image, linked to nothing); ``given``
    holds the patients whose split the dataset published (their other cases follow it). Cases joined by
    a patient or by a picture form a group; in a group holding a copy, every case whose patient has no
    published split goes to the group's first published split, or, when the dataset published none, to
    the split of its first case (so radseg's own splits never separate copies). Copies the dataset's published splits separate are
    ``conflicts`` (left there: leakage the caller refuses or reports); copies inside one split are
    ``repeats``.
    """
    parent = {r.case_id: r.case_id for r in records}

    def root(case_id: str) -> str:
        while parent[case_id] != case_id:
            parent[case_id] = parent[parent[case_id]]
            case_id = parent[case_id]
        return case_id

    first_of: dict[str, str] = {}
    by_digest: dict[str, list[CaseRecord]] = {}
    for record in records:
        digest = digests.get(record.case_id)
        keys = [f"patient:{record.patient}"] + ([f"pixels:{digest}"] if digest else [])
        for key in keys:
            parent[root(record.case_id)] = root(first_of.setdefault(key, record.case_id))
        if digest:
            by_digest.setdefault(digest, []).append(record)
    copies = [members for members in by_digest.values() if len(members) > 1]
    groups: dict[str, list[CaseRecord]] = {}
    for record in records:
        groups.setdefault(root(record.case_id), []).append(record)
    moved = []
    for members in {root(copy[0].case_id): groups[root(copy[0].case_id)] for copy in copies}.values():
        target = next((r.split for r in members if r.patient in given), members[0].split)
        movers = [r for r in members if r.patient not in given and r.split != target]
        if movers:
            origins = sorted({str(r.split) for r in movers})
            moved.append(f"{_listing([r.case_id for r in movers])} moved from {', '.join(origins)} to {target}, to "
                         f"stay with the identical pictures and patients they share ({len(members)} cases in all)")
        for record in movers:
            record.split = target
    conflicts, repeats = [], []
    for members in copies:
        listed = _listing([f"{r.case_id} ({r.split})" for r in members])
        if len({r.split for r in members}) > 1:
            conflicts.append(f"one picture in {len({r.split for r in members})} splits (identical pixels): {listed}")
        else:
            repeats.append(f"one picture under {len(members)} ids in {members[0].split} (identical pixels): {listed}")
    return moved, conflicts, repeats


def _listing(items: list[str], shown: int = 6) -> str:
    return ", ".join(items[:shown]) + (f" and {len(items) - shown} more" if len(items) > shown else "")
