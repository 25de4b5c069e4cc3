"""Scoring a segmentation model as a detector and screener: per image, then over a split.

:func:`score_image` takes one image's foreground probability (on the image grid) and its
true objects; the workflow that runs the model over a prepared split is
:func:`radseg.workflows.detection.evaluate_detection`. Per image: the probability's
connected components as scored instances
(:func:`~radseg.evaluate.detection.instances_from_probability`); one image score
(:func:`~radseg.evaluate.detection.image_score`); the thresholded mask for Dice. Then:

* mask and box AP50, AP75, AP50:95 the COCO way over all images (images without a finding
  count: their detections are false positives);
* instance precision and recall at the threshold, IoU >= 0.5, greedy by score (what YOLO
  reports as P and R);
* Dice on the images that have a finding, with a bootstrap CI;
* image-level ROC AUC (has a finding vs not) with a stratified bootstrap CI;
* the same per subgroup of each ``--by`` column of the metadata (e.g. body_part, hardware).

Masks are RLE-encoded as each image is done, so full-size radiographs do not pile up in memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from radseg.evaluate.detection import image_score, instances_from_probability, roc_auc, roc_auc_ci
from radseg.evaluate.instances import coco_instance_ap, encode_mask

__all__ = ["DetectionResult", "ScoredImage", "match_at_iou", "score_image", "summarise", "write_detection"]


@dataclass
class ScoredImage:
    """One image's truths and detections (RLE), image score and Dice (None without a finding)."""

    case_id: str
    truths: list[dict]
    detections: list[tuple[dict, float]]
    score: float
    dice: float | None
    metadata: dict[str, Any]


@dataclass
class DetectionResult:
    per_case: Any  # pandas DataFrame
    summary: dict[str, Any]
    groups: Any  # pandas DataFrame
    settings: dict[str, Any] = field(default_factory=dict)


def match_at_iou(truths: Sequence[dict], detections: Sequence[tuple[dict, float]], iou: float = 0.5) -> int:
    """True positives: detections (by falling score) matched one-to-one to a truth with IoU >= ``iou``."""
    from pycocotools import mask as mask_api

    if not truths or not detections:
        return 0
    ordered = sorted(detections, key=lambda d: -d[1])
    overlaps = mask_api.iou([d for d, _ in ordered], list(truths), [0] * len(truths))
    used, hits = set(), 0
    for row in np.atleast_2d(overlaps):
        candidates = [j for j in np.argsort(-row) if j not in used and row[j] >= iou]
        if candidates:
            used.add(candidates[0])
            hits += 1
    return hits


def score_image(case_id: str, probability: np.ndarray, foreground: np.ndarray, truth_masks: Sequence[np.ndarray] | None,
                *, threshold: float, min_pixels: int, window: int, instance_score: str = "max",
                metadata: dict[str, Any] | None = None) -> ScoredImage:
    """Detections, image score and Dice of one image (masks RLE-encoded, so memory stays flat).

    ``foreground`` is the true label mask; ``truth_masks`` its objects (None: its connected
    components). Dice is None on an image without a finding. ``instance_score``: how a detection is
    ranked, by its highest or its mean probability (:func:`instances_from_probability`).
    """
    from radseg.evaluate.overlap import dice

    if truth_masks is None:
        from scipy import ndimage

        components, n = ndimage.label(foreground, structure=np.ones((3,) * foreground.ndim, bool))
        truth_masks = [components == k for k in range(1, n + 1)]
    found = instances_from_probability(probability, threshold=threshold, min_pixels=min_pixels, score=instance_score)
    value = dice(probability >= threshold, foreground) if len(truth_masks) else None
    return ScoredImage(case_id, [encode_mask(m) for m in truth_masks], [(encode_mask(m), s) for m, s in found],
                       image_score(probability, window=window), value, dict(metadata or {}))


def _metrics(cases: list[ScoredImage], *, resamples: int, seed: int) -> dict[str, Any]:
    from radseg.evaluate.bootstrap import bootstrap_ci

    out: dict[str, Any] = {"images": len(cases), "with_finding": sum(bool(c.truths) for c in cases)}
    truths = [c.truths for c in cases]
    detections = [c.detections for c in cases]
    for iou_type, tag in (("segm", "mask"), ("bbox", "box")):
        ap = coco_instance_ap(truths, detections, iou_type=iou_type)
        out.update({f"{tag}_{k}": v for k, v in ap.items()})
    hits = sum(match_at_iou(c.truths, c.detections) for c in cases)
    n_det, n_truth = sum(len(d) for d in detections), sum(len(t) for t in truths)
    out["precision"] = hits / n_det if n_det else float("nan")
    out["recall"] = hits / n_truth if n_truth else float("nan")
    dices = np.array([c.dice if c.dice is not None else 0.0 for c in cases if c.truths], float)
    nan = float("nan")  # resamples=0 (--bootstrap 0): the estimates without confidence intervals
    if dices.size:
        if resamples > 0:
            ci = bootstrap_ci(dices, resamples=resamples, seed=seed)
            out.update(dice=ci.estimate, dice_ci_low=ci.low, dice_ci_high=ci.high)
        else:
            out.update(dice=float(dices.mean()), dice_ci_low=nan, dice_ci_high=nan)
    labels = np.array([bool(c.truths) for c in cases])
    if labels.any() and not labels.all():
        scores = [c.score for c in cases]
        if resamples > 0:
            auc = roc_auc_ci(scores, labels, resamples=resamples, seed=seed)
            out.update(auc=auc.estimate, auc_ci_low=auc.low, auc_ci_high=auc.high)
        else:
            out.update(auc=roc_auc(scores, labels), auc_ci_low=nan, auc_ci_high=nan)
    return out


def summarise(cases: list[ScoredImage], *, by: Sequence[str] = (), resamples: int = 2000, seed: int = 0,
              failed: list[dict] | None = None, settings: dict[str, Any] | None = None) -> DetectionResult:
    """Per-image table, overall metrics and one row of metrics per subgroup of each ``by`` column."""
    import pandas as pd

    from radseg.errors import RadsegError

    per_case = pd.DataFrame([{
        "case": c.case_id, "finding": bool(c.truths), "truth_instances": len(c.truths),
        "detections": len(c.detections), "top_detection_score": max((s for _, s in c.detections), default=0.0),
        "image_score": c.score, "dice": c.dice, **c.metadata} for c in cases])
    summary = {**_metrics(cases, resamples=resamples, seed=seed), "failed": list(failed or [])}
    rows = []
    for column in by:
        if column not in per_case.columns:
            raise RadsegError(f"--by {column}: no such metadata column (have: {', '.join(map(str, per_case.columns))})")
        for value, members in per_case.groupby(column, dropna=False):
            subset = [cases[i] for i in members.index]
            rows.append({"attribute": column, "group": value, **_metrics(subset, resamples=resamples, seed=seed)})
    return DetectionResult(per_case=per_case, summary=summary, groups=pd.DataFrame(rows), settings=dict(settings or {}))


def write_detection(result: DetectionResult, out: str | Path) -> list[Path]:
    """per_case.csv, groups.csv and summary.json in ``out`` (each written atomically)."""
    import json

    from radseg.io.atomic import write_text_atomic

    out = Path(out)
    files = [out / "per_case.csv", out / "groups.csv", out / "summary.json"]
    write_text_atomic(files[0], result.per_case.to_csv(index=False))
    write_text_atomic(files[1], result.groups.to_csv(index=False))
    write_text_atomic(files[2], json.dumps({"settings": result.settings, **result.summary}, indent=1, default=str))
    return files
