"""What every phantom kind shares: the case it makes, and small helpers for writing it.

A kind is a module in :mod:`radseg.synth` with

``NAME``, ``PREFIX`` (case ids are ``PREFIX0001`` ...), ``DESCRIPTION``, ``LABELS`` (value -> name)
``make_case(subject, **options) -> SynthCase``
    Pure computation: the image, its exact label map and the recorded parameters.
``write_case(case, outdir) -> dict``
    Writes the case's files in its dataset layout; returns extra ``metadata.csv`` columns
    (paths relative to ``outdir``).
``finish(rows, outdir)`` (optional)
    Cohort-level files (a JSONL selection, ``dataset.csv``, one COCO JSON ...), from all rows.
``preview(case) -> (image2d, labels2d)`` (optional)
    The 2D view the gallery shows; default: the case itself if 2D, else a coronal slice.

Writers must be deterministic: the same subject gives byte-identical files (UIDs come from
:func:`case_uid_seed`, no clocks, no unseeded randomness).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from radseg.image import Image
from radseg.synth.cohort import Subject


@dataclass
class SynthCase:
    """One phantom case: ``image`` (HU for CT, detector values for radiographs), ``labels`` (exact
    label map with names), ``params`` (flat generating parameters and recorded geometry, in mm
    and degrees, copied into ``metadata.csv``) and ``extras`` (kind-specific, e.g. polygons)."""

    subject: Subject
    image: Image
    labels: Image
    params: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)


def case_uid_seed(subject: Subject, kind: str) -> str:
    """The string every DICOM UID of a case derives from (same subject and seed, same UIDs)."""
    return f"radseg-synth/{kind}/{subject.case_id}/{subject.seed}"


def patient_attributes(subject: Subject) -> dict[str, Any]:
    """Synthetic DICOM patient module values for ``write_dicom_*(patient=...)``."""
    return {"name": f"PHANTOM^{subject.case_id}", "id": subject.case_id, "sex": subject.sex, "age": subject.age}


def coronal_preview(image: Image, labels: Image) -> tuple[Image, Image]:
    """A coronal slice through the labels' centre, resampled to square pixels (for 3D LPS images)."""
    from scipy import ndimage

    foreground = np.argwhere(labels.array > 0)
    row = int(np.median(foreground[:, 1])) if foreground.size else image.shape[1] // 2
    slice_spacing, _, col_spacing = (float(s) for s in image.spacing)
    zoom = (slice_spacing / col_spacing, 1.0)
    # array axis 0 runs inferior->superior in the default LPS layout: flip so the head is up
    grey = ndimage.zoom(image.array[:, row, :].astype(np.float32), zoom, order=1)[::-1]
    mask = ndimage.zoom(labels.array[:, row, :], zoom, order=0)[::-1]
    meta = {k: v for k, v in labels.metadata.items() if k == "label_names"}
    return Image(grey, spacing=(col_spacing, col_spacing)), Image(mask, spacing=(col_spacing, col_spacing), metadata=meta)
