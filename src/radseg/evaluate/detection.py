"""From a segmentation model's probability map to detections, and image-level ROC AUC.

A fracture model (FracAtlas) is a segmentation network; detection metrics need instances with
confidences, and screening needs one probability per image:

* :func:`instances_from_probability`: connected components of ``probability >= threshold``
  (8-connected in 2D, 26 in 3D), components smaller than ``min_pixels`` dropped; each
  instance's score is the highest probability inside it (``score="max"``) or the mean
  (``"mean"``). COCO AP then ranks instances by that score (:func:`coco_instance_ap`).
* :func:`image_score`: the highest probability of the image after averaging over a small
  square (``window`` pixels), so one hot pixel does not decide the image.
* :func:`roc_auc`: the Mann-Whitney statistic, ties counted one half (the area under the
  empirical ROC curve, as ``sklearn.metrics.roc_auc_score`` computes it);
  :func:`roc_auc_ci` bootstraps it by resampling positives and negatives separately
  (stratified, so every resample has both classes), percentile interval.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from radseg.evaluate.bootstrap import ConfidenceInterval

__all__ = ["instances_from_probability", "image_score", "roc_auc", "roc_auc_ci", "IMAGE_SCORE_WINDOW", "INSTANCE_SCORES"]

#: Pixels of the square the image score averages over, unless a model's operating point was chosen
#: with another (evaluate-detection, segment, serve and library callers agree).
IMAGE_SCORE_WINDOW = 5
#: How a detection's confidence is taken from the probability inside it (``instances_from_probability``'s ``score``).
INSTANCE_SCORES = ("max", "mean")


def instances_from_probability(probability: np.ndarray, *, threshold: float = 0.5, min_pixels: int = 1,
                               score: str = "max") -> list[tuple[np.ndarray, float]]:
    """``[(mask, score), ...]``: the connected components of ``probability >= threshold``."""
    from scipy import ndimage

    if score not in INSTANCE_SCORES:
        raise ValueError(f"score must be 'max' or 'mean', not {score!r}")
    probability = np.asarray(probability, dtype=np.float32)
    components, count = ndimage.label(probability >= threshold, structure=np.ones((3,) * probability.ndim, bool))
    if count == 0:
        return []
    index = np.arange(1, count + 1)
    sizes = np.bincount(components.ravel(), minlength=count + 1)[1:]
    reduce = ndimage.maximum if score == "max" else ndimage.mean
    scores = np.asarray(reduce(probability, components, index), dtype=float)
    objects = ndimage.find_objects(components)
    out = []
    for value, size, value_score, box in zip(index, sizes, scores, objects):
        if size < min_pixels:
            continue
        mask = np.zeros(probability.shape, bool)
        mask[box] = components[box] == value
        out.append((mask, float(value_score)))
    out.sort(key=lambda item: -item[1])
    return out


def image_score(probability: np.ndarray, *, window: int = IMAGE_SCORE_WINDOW) -> float:
    """Highest ``window``-averaged probability of the image (its 'contains the finding' score)."""
    from scipy import ndimage

    probability = np.asarray(probability, dtype=np.float32)
    if probability.size == 0:
        raise ValueError("empty probability map")
    smoothed = ndimage.uniform_filter(probability, size=window, mode="nearest") if window > 1 else probability
    return float(smoothed.max())


def _split(scores, truth) -> tuple[np.ndarray, np.ndarray]:
    scores, truth = np.asarray(scores, dtype=float), np.asarray(truth)
    if scores.shape != truth.shape or scores.ndim != 1:
        raise ValueError(f"scores {scores.shape} and truth {truth.shape} must be 1-D and the same length")
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores must be finite")
    truth = truth.astype(bool)
    positives, negatives = scores[truth], scores[~truth]
    if positives.size == 0 or negatives.size == 0:
        raise ValueError(f"needs both classes, images with and without the finding: {positives.size} with, "
                         f"{negatives.size} without")
    return positives, negatives


def _auc(positives: np.ndarray, negatives: np.ndarray) -> np.ndarray:
    """AUC of positives/negatives along the last axis (rank sums, ties averaged)."""
    from scipy.stats import rankdata

    n_pos, n_neg = positives.shape[-1], negatives.shape[-1]
    ranks = rankdata(np.concatenate([positives, negatives], axis=-1), axis=-1)
    u = ranks[..., :n_pos].sum(axis=-1) - n_pos * (n_pos + 1) / 2.0
    return u / (n_pos * n_neg)


def roc_auc(scores: Sequence[float], truth: Sequence[bool]) -> float:
    """Area under the ROC curve of ``scores`` for the binary ``truth``."""
    positives, negatives = _split(scores, truth)
    return float(_auc(positives, negatives))


def roc_auc_ci(scores: Sequence[float], truth: Sequence[bool], *, resamples: int = 2000, seed: int = 0,
               confidence: float = 0.95) -> ConfidenceInterval:
    """AUC with a stratified percentile bootstrap CI (positives and negatives resampled apart)."""
    positives, negatives = _split(scores, truth)
    rng = np.random.default_rng(seed)
    boot = np.empty(int(resamples))
    chunk = max(1, 2_000_000 // (positives.size + negatives.size))
    for start in range(0, boot.size, chunk):
        n = min(chunk, boot.size - start)
        pos = positives[rng.integers(0, positives.size, size=(n, positives.size))]
        neg = negatives[rng.integers(0, negatives.size, size=(n, negatives.size))]
        boot[start:start + n] = _auc(pos, neg)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(boot, [alpha, 1.0 - alpha])
    return ConfidenceInterval(estimate=float(_auc(positives, negatives)), low=float(low), high=float(high),
                              method="percentile (stratified)", resamples=int(resamples),
                              n=int(positives.size + negatives.size), confidence=confidence)
