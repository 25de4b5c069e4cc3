"""Instance metrics for detection-style tasks (FracAtlas): box and mask AP50 and AP50:95, the COCO way.

pycocotools does the matching and the 101-point interpolated average precision, so the
numbers are those of the COCO evaluation every detection paper quotes (YOLOv8's
``mAP50`` / ``mAP50-95`` on one class). Inputs are per-image lists of binary instance masks
(ground truth) and of (mask, score) pairs (predictions); boxes are derived from the masks.
"""

from __future__ import annotations

import contextlib
import io
from typing import Sequence

import numpy as np


def encode_mask(mask) -> dict:
    """COCO RLE of a binary mask (a dict with ``size`` and ``counts`` is passed through), so
    callers with many large images can encode as they go instead of keeping every mask."""
    from pycocotools import mask as mask_api

    if isinstance(mask, dict):
        return mask
    rle = mask_api.encode(np.asfortranarray(np.asarray(mask).astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def _shape(mask) -> tuple[int, int]:
    return tuple(mask["size"]) if isinstance(mask, dict) else np.shape(mask)


def coco_instance_ap(
    truths: Sequence[Sequence[np.ndarray]],
    predictions: Sequence[Sequence[tuple[np.ndarray, float]]],
    *,
    iou_type: str = "segm",
    max_detections: int = 100,
) -> dict[str, float]:
    """AP50, AP75 and AP50:95 (and AR) over images, one class.

    ``truths[i]`` are the ground-truth instance masks of image i; ``predictions[i]`` the
    predicted (mask, confidence) pairs. A mask may be given as its COCO RLE (:func:`encode_mask`). ``iou_type`` is ``"segm"`` (mask AP) or ``"bbox"``.
    Images without any ground truth still count (their detections are false positives).
    AP is NaN when there is no ground-truth instance at all (COCO's -1).
    """
    from pycocotools import mask as mask_api
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if iou_type not in ("segm", "bbox"):
        raise ValueError(f"iou_type must be 'segm' or 'bbox', not {iou_type!r}")
    if len(truths) != len(predictions):
        raise ValueError(f"{len(truths)} ground-truth images but {len(predictions)} prediction images")
    images, annotations, results = [], [], []
    for image_id, (gt_masks, detections) in enumerate(zip(truths, predictions), start=1):
        shape = next((_shape(m) for m in gt_masks), None) or next((_shape(m) for m, _ in detections), (1, 1))
        images.append({"id": image_id, "height": int(shape[0]), "width": int(shape[1])})
        for mask in gt_masks:
            rle = encode_mask(mask)
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": 1, "iscrowd": 0,
                                "segmentation": rle, "area": float(mask_api.area(rle)),
                                "bbox": [float(v) for v in mask_api.toBbox(rle)]})
        for mask, score in detections:
            rle = encode_mask(mask)
            results.append({"image_id": image_id, "category_id": 1, "score": float(score), "segmentation": rle,
                            "bbox": [float(v) for v in mask_api.toBbox(rle)]})
    if not annotations:
        return {"AP50": float("nan"), "AP75": float("nan"), "AP50_95": float("nan"), "AR100": float("nan")}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        ground = COCO()
        ground.dataset = {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "object"}]}
        ground.createIndex()
        detected = ground.loadRes(results) if results else COCO()
        if not results:
            detected.dataset = {"images": images, "annotations": [], "categories": ground.dataset["categories"]}
            detected.createIndex()
        evaluator = COCOeval(ground, detected, iou_type)
        evaluator.params.maxDets = [1, 10, max_detections]
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    stats = [float(v) if v >= 0 else float("nan") for v in evaluator.stats]
    return {"AP50_95": stats[0], "AP50": stats[1], "AP75": stats[2], "AR100": stats[8]}
