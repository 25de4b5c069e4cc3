"""Unlabelled images for ``radseg pretrain --images``: every readable image or DICOM series under a folder.

Pretraining needs no labels, so an archive of unlabelled images (a hospital's radiographs) can be
used beside, or instead of, a prepared dataset's training cases. Files that cannot be read are
reported and the rest used. When a prepared dataset is given too, an image whose pixels are those
of one of its cases that pretraining must not see (held out, val, test) is left out and reported:
pretraining on it would flatter the checkpoint chosen, or the score reported, on that case.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from radseg.case import Case
from radseg.datasets.duplicates import case_digest, pixel_digest
from radseg.datasets.prepared import IMAGE, open_prepared
from radseg.errors import RadsegError, ReadError

__all__ = ["unlabelled_cases", "cases_to_keep_unseen"]


def unlabelled_cases(folder: str | Path, *, unseen: Sequence[tuple[Case, str]] = (), allowed: Sequence[Case] = (),
                     spatial_dims: int | None = None) -> tuple[list[Case], list[tuple[str, str]], dict[str, str]]:
    """``(cases, problems, digests)``: one image-only case per readable item under ``folder`` (ids prefixed
    ``unlabelled:``), the files left out with why, and each kept case's pixel digest.

    ``unseen``: ``(case, where)`` pairs that must not be pretrained on (matched by pixels; ``where`` says
    why, e.g. "the val split"), unless the same pixels are one of the ``allowed`` cases (those pretrained
    on anyway; the copy is then left out so the picture is not drawn twice as often). Images of another
    dimensionality than ``spatial_dims`` (default: the first image's) are left out. Pixels must match
    exactly: a copy re-encoded (another format, size or grey scale) is not recognised. A prepared
    dataset's folder is refused: its label maps are images too, and belong to ``--data``."""
    from radseg.infer.segment import SegmentReport, list_inputs

    folder = Path(folder)
    if (folder / "dataset.json").is_file():
        raise RadsegError(f"--images {folder}: a prepared dataset (it has dataset.json, and its label maps would be "
                          "read as images); give it as --data, which takes its training images only")
    report = SegmentReport()
    items = list_inputs(folder, report)
    problems = [(path, why) for path, why in report.failed]
    fine = {case_digest(case): case.case_id for case in allowed}
    forbidden: dict[str, tuple[str, str]] = {}
    for case, where in unseen:
        try:
            digest = case_digest(case)
        except (ReadError, ValueError, OSError):
            continue  # a dataset case that cannot be read cannot be matched either; the dataset reports it
        if digest not in fine:
            forbidden.setdefault(digest, (case.case_id, where))
    cases, digests = [], {}
    for item in items:
        try:
            image = item.load()
        except (ReadError, ValueError, OSError) as exc:
            problems.append((item.label, str(exc)))
            continue
        spatial_dims = spatial_dims or image.ndim
        if image.ndim != spatial_dims:
            problems.append((item.label, f"a {image.ndim}D image; this pretraining is {spatial_dims}D"))
            continue
        digest = pixel_digest(image.array)
        if digest in fine:  # drawn once, not twice as often as the other images
            problems.append((item.label, f"the same pixels as training case {fine[digest]}: pretrained on once"))
            continue
        twin = forbidden.get(digest)
        if twin is not None:
            problems.append((item.label, f"the same pixels as case {twin[0]} ({twin[1]}): left out, "
                                         "pretraining must not see it"))
            continue
        # read again when pretraining prepares it: an archive is not held in memory twice over
        case = Case(f"unlabelled:{item.case}", images={IMAGE: item.load}, sources={IMAGE: Path(item.label)})
        cases.append(case)
        digests[case.case_id] = digest
    return cases, problems, digests


def cases_to_keep_unseen(dataset, pretrained_on: Sequence[Case]) -> list[tuple[Case, str]]:
    """The prepared dataset's cases pretraining leaves out (held out, val, test), each with why."""
    chosen = {case.case_id for case in pretrained_on}
    every = open_prepared(dataset.root).cases if dataset.root is not None else dataset.cases
    named = [(case, f"the {case.split} split") for case in every
             if case.case_id not in chosen and case.split not in (None, "train")]
    # a named split first: the same picture twice in a dataset is reported by the split that forbids it
    return named + [(case, "held out of training") for case in every
                    if case.case_id not in chosen and case.split in (None, "train")]
