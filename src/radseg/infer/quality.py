"""Per-image quality flags: should this prediction be trusted at all?

A segmentation network answers every input with confident-looking masks, also a lateral view
or a knee. A model bundle names a check in its manifest (``"quality_check": "chest-pa"``);
:func:`assess` runs it on each prediction and ``radseg segment`` writes the result to
``OUT/quality.csv`` (and the web page shows it).

``chest-pa`` (anatomical plausibility of a frontal chest radiograph; the limits are fractions
of the image so they hold without a pixel size):

* both lungs found, each 3-35% of the image, the smaller at least 40% of the larger;
* the right lung on the patient's right of the left lung (PA display: image left, unless the
  DICOM PatientOrientation says the columns run towards the patient's right), so a mirrored or
  non-frontal image is caught;
* the heart found (1.5-25% of the image), its centre between the lungs' centres and below
  their mean height;
* where the model segments clavicles: each at least 0.2% of the image and the smaller at least
  half the larger (in the 120 SCR train/val masks: at least 0.45% and 0.67x), so a clavicle the
  model largely missed is caught;
* the network's mean probability inside the heart and each lung at least ``min_confidence`` (for
  the shipped cxr-anatomy model the lowest on the 15 JSRT val images was 0.978, on its 30 test
  images 0.861; benchmarks/results/cxr_anatomy.md).

The area limits leave a wide margin around the SCR masks of the training and validation cases
(there each lung covers at least 8% of the image and the heart at least 5.8%).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from radseg.image import Image

__all__ = ["Quality", "CHECKS", "assess", "chest_pa"]


@dataclass
class Quality:
    check: str
    ok: bool
    reasons: list[str] = field(default_factory=list)
    details: dict[str, float] = field(default_factory=dict)

    def row(self, case: str) -> dict[str, Any]:
        return {"case": case, "check": self.check, "plausible": self.ok,
                "reasons": "; ".join(self.reasons), **{k: round(v, 4) for k, v in self.details.items()}}


def _masks(labels: Image) -> dict[str, np.ndarray]:
    from radseg.labels import iter_classes

    return {str(name).lower(): np.asarray(mask, bool) for _, name, mask in iter_classes(labels, include_empty=True)}


def chest_pa(labels: Image, *, min_confidence: float = 0.85) -> Quality:
    """Plausibility of a frontal chest radiograph's heart and lungs (see the module docstring)."""
    masks = _masks(labels)
    total = float(np.prod(labels.shape))
    result = Quality("chest-pa", True)
    centres = {}
    for name in ("right lung", "left lung", "heart"):
        mask = masks.get(name)
        share = float(mask.sum()) / total if mask is not None else 0.0
        result.details[f"{name.replace(' ', '_')}_share"] = share
        if share > 0:
            centres[name] = np.argwhere(mask).mean(axis=0)
    lungs = [result.details["right_lung_share"], result.details["left_lung_share"]]
    for name, share in zip(("right lung", "left lung"), lungs):
        if not 0.03 <= share <= 0.35:
            result.reasons.append(f"{name} covers {share:.1%} of the image (plausible: 3-35%)")
    if min(lungs) > 0 and min(lungs) / max(lungs) < 0.4:
        result.reasons.append(f"lungs differ in size {min(lungs) / max(lungs):.2f}x (plausible: >= 0.4x)")
    heart = result.details["heart_share"]
    if not 0.015 <= heart <= 0.25:
        result.reasons.append(f"heart covers {heart:.1%} of the image (plausible: 1.5-25%)")
    if {"right lung", "left lung"} <= set(centres):
        right, left = centres["right lung"], centres["left lung"]
        # the patient's right is at low columns unless the DICOM's PatientOrientation says the columns
        # run towards the patient's right (an image stored mirrored, and tagged so)
        orientation = str((labels.metadata.get("patient_orientation") or ["L"])[0]).upper()
        mirrored = orientation.startswith("R")
        if (right[1] >= left[1]) != mirrored:
            result.reasons.append("right lung is not on the patient's right (image mirrored or not a PA/AP view)")
        if "heart" in centres:
            h = centres["heart"]
            if not min(right[1], left[1]) < h[1] < max(right[1], left[1]):
                result.reasons.append("heart is not between the lungs")
            if h[0] < 0.5 * (right[0] + left[0]):
                result.reasons.append("heart lies above the lungs' centres")
    clavicles = [masks[n] for n in ("right clavicle", "left clavicle") if n in masks]
    if len(clavicles) == 2:  # only for models that segment them (SCR's classes)
        shares = [float(m.sum()) / total for m in clavicles]
        result.details.update(right_clavicle_share=shares[0], left_clavicle_share=shares[1])
        if min(shares) < 0.002:
            result.reasons.append(f"a clavicle covers only {min(shares):.2%} of the image (plausible: >= 0.2%)")
        elif min(shares) / max(shares) < 0.5:
            result.reasons.append(f"clavicles differ in size {min(shares) / max(shares):.2f}x (plausible: >= 0.5x): "
                                  "one is largely missed")
    confidence = labels.metadata.get("class_confidence") or {}
    for name, value in confidence.items():
        result.details[f"confidence_{str(name).replace(' ', '_')}"] = float(value)
        if str(name).lower() in ("heart", "right lung", "left lung") and value < min_confidence:
            result.reasons.append(f"low confidence for {name}: mean probability {value:.2f} < {min_confidence:.2f}")
    result.ok = not result.reasons
    return result


CHECKS: dict[str, Callable[..., Quality]] = {"chest-pa": chest_pa}


def assess(labels: Image, check: str | None) -> Quality | None:
    """The named check on one prediction (None when the model names no check)."""
    if not check:
        return None
    if check not in CHECKS:
        raise ValueError(f"unknown quality check {check!r} (known: {', '.join(CHECKS)})")
    return CHECKS[check](labels)
