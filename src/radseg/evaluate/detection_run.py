"""``radseg evaluate-detection``: a segmentation model as a detector and screener on a prepared split.

For every case of the split (a prepared dataset from ``radseg datasets prepare``, e.g.
FracAtlas with ``--option negatives=true``): the model's foreground probability on the
image grid; its connected components as scored instances
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
from typing import Any, Callable, Sequence

import numpy as np

from radseg.evaluate.detection import image_score, instances_from_probability, roc_auc_ci
from radseg.evaluate.instances import coco_instance_ap, encode_mask

__all__ = ["DetectionResult", "evaluate_detection", "match_at_iou"]


@dataclass
class _Case:
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


def _dice(pred: np.ndarray, truth: np.ndarray) -> float | None:
    total = pred.sum() + truth.sum()
    return None if total == 0 else float(2.0 * np.logical_and(pred, truth).sum() / total)


def _score_case(predictor, dataset, case, *, threshold: float, min_pixels: int, window: int) -> _Case:
    image = dataset.read_image(case)
    labels = dataset.read_labels(case, like=image)
    probs, grid = predictor.probabilities(image)
    probability = grid.restore_channel(probs[1]) if probs.shape[0] > 1 else grid.restore_channel(probs[0])
    found = instances_from_probability(probability, threshold=threshold, min_pixels=min_pixels)
    truth_masks = [i.mask for i in (dataset.read_instances(case) or [])]
    if not truth_masks and np.any(labels.array):  # no instance file: components of the label map
        from scipy import ndimage

        components, n = ndimage.label(labels.array > 0, structure=np.ones((3, 3), bool))
        truth_masks = [components == k for k in range(1, n + 1)]
    has_finding = bool(truth_masks)
    dice = _dice(probability >= threshold, labels.array > 0) if has_finding else None
    return _Case(case.case_id, [encode_mask(m) for m in truth_masks],
                 [(encode_mask(m), s) for m, s in found], image_score(probability, window=window), dice,
                 dict(case.metadata))


def _metrics(cases: list[_Case], *, resamples: int, seed: int) -> dict[str, Any]:
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
    if dices.size:
        ci = bootstrap_ci(dices, resamples=resamples, seed=seed)
        out.update(dice=ci.estimate, dice_ci_low=ci.low, dice_ci_high=ci.high)
    labels = np.array([bool(c.truths) for c in cases])
    if labels.any() and not labels.all():
        auc = roc_auc_ci([c.score for c in cases], labels, resamples=resamples, seed=seed)
        out.update(auc=auc.estimate, auc_ci_low=auc.low, auc_ci_high=auc.high)
    return out


def evaluate_detection(predictor, prepared: str | Path, *, split: str = "val", by: Sequence[str] = (),
                       threshold: float = 0.5, min_pixels: int = 10, window: int = 5, resamples: int = 2000,
                       seed: int = 0, on_case: Callable[[str], None] | None = None) -> DetectionResult:
    """Score ``predictor`` (a :class:`radseg.infer.predictor.Predictor`) on ``split`` of ``prepared``."""
    import pandas as pd

    from radseg.datasets.prepared import open_prepared
    from radseg.errors import RadsegError

    dataset = open_prepared(prepared)
    chosen = dataset.split(split)
    if not chosen:
        raise RadsegError(f"{prepared}: split {split!r} has no cases (splits: {', '.join(dataset.info.get('splits', {}))})")
    cases, failed = [], []
    for case in chosen:
        try:
            cases.append(_score_case(predictor, dataset, case, threshold=threshold, min_pixels=min_pixels,
                                     window=window))
        except (RadsegError, ValueError, OSError) as exc:
            failed.append({"case": case.case_id, "error": str(exc)})
        if on_case:
            on_case(case.case_id)
    if not cases:
        raise RadsegError(f"{prepared}: no case of split {split!r} could be scored ({failed[0]['error']})")
    per_case = pd.DataFrame([{
        "case": c.case_id, "finding": bool(c.truths), "truth_instances": len(c.truths),
        "detections": len(c.detections), "top_detection_score": max((s for _, s in c.detections), default=0.0),
        "image_score": c.score, "dice": c.dice, **c.metadata} for c in cases])
    summary = {**_metrics(cases, resamples=resamples, seed=seed), "failed": failed}
    rows = []
    for column in by:
        if column not in per_case.columns:
            raise RadsegError(f"--by {column}: no such metadata column (have: {', '.join(map(str, per_case.columns))})")
        for value, members in per_case.groupby(column, dropna=False):
            subset = [cases[i] for i in members.index]
            rows.append({"attribute": column, "group": value, **_metrics(subset, resamples=resamples, seed=seed)})
    settings = {"split": split, "threshold": threshold, "min_pixels": min_pixels, "window": window,
                "resamples": resamples, "seed": seed}
    return DetectionResult(per_case=per_case, summary=summary, groups=pd.DataFrame(rows), settings=settings)


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
