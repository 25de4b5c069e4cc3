"""``radseg evaluate-detection``: a segmentation model as a detector and screener on a prepared split.

For every case of the split (a prepared dataset from ``radseg datasets prepare``, e.g.
FracAtlas with ``--option negatives=true``) the predictor gives the foreground probability
on the image grid; :func:`radseg.evaluate.detection_run.score_image` turns it into scored
instances, an image score and Dice, and :func:`~radseg.evaluate.detection_run.summarise`
into COCO mask/box AP, precision/recall, Dice and image-level AUC with bootstrap CIs,
overall and per ``--by`` subgroup. A case that cannot be read or predicted is reported in
``summary["failed"]`` and the rest are scored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from radseg.case import Case
from radseg.datasets.prepared import PreparedDataset, open_prepared
from radseg.errors import RadsegError
from radseg.evaluate.detection_run import DetectionResult, ScoredImage, score_image, summarise

__all__ = ["evaluate_detection"]


def evaluate_detection(predictor, prepared: str | Path, *, split: str = "val", by: Sequence[str] = (),
                       threshold: float = 0.5, min_pixels: int = 10, window: int = 5, resamples: int = 2000,
                       seed: int = 0, on_case: Callable[[str], None] | None = None) -> DetectionResult:
    """Score ``predictor`` (a :class:`radseg.infer.predictor.Predictor`) on ``split`` of ``prepared``."""
    dataset = open_prepared(prepared)
    chosen = dataset.split(split)
    if not chosen:
        raise RadsegError(f"{prepared}: split {split!r} has no cases (splits: {', '.join(dataset.splits)})")
    options = {"threshold": threshold, "min_pixels": min_pixels, "window": window}
    scored, failed = [], []
    for case in chosen:
        try:
            scored.append(_score_case(predictor, dataset, case, **options))
        except (RadsegError, ValueError, OSError) as exc:
            failed.append({"case": case.case_id, "error": str(exc)})
        finally:
            case.unload()
        if on_case:
            on_case(case.case_id)
    if not scored:
        raise RadsegError(f"{prepared}: no case of split {split!r} could be scored ({failed[0]['error']})")
    settings = {"split": split, **options, "resamples": resamples, "seed": seed}
    return summarise(scored, by=by, resamples=resamples, seed=seed, failed=failed, settings=settings)


def _score_case(predictor, dataset: PreparedDataset, case: Case, **options) -> ScoredImage:
    probs, grid = predictor.probabilities(case.image)
    probability = grid.restore_channel(probs[1] if probs.shape[0] > 1 else probs[0])
    instances = dataset.read_instances(case)
    truth_masks = [i.mask for i in instances] if instances else None
    return score_image(case.case_id, probability, case.label.array > 0, truth_masks, metadata=case.metadata, **options)
