"""A screener's operating point: the image-score threshold for a stated sensitivity, and its rates.

* :func:`choose_operating_point`: on scored images with known truth, the highest threshold
  whose sensitivity (share of images with a finding scoring ``>= threshold``) reaches the
  target, and the specificity there. Choose it on training data (a held-out part of the train
  split): chosen on the split you report, its sensitivity is met by construction.
* :func:`rates_at`: sensitivity and specificity of a fixed threshold on a split, each with a
  percentile bootstrap CI over that class's images (the two classes resampled apart), as the
  image-level AUC's CI is made (:func:`radseg.evaluate.detection.roc_auc_ci`).

An image is "flagged" when its score is ``>= threshold``; the threshold is a score, unitless.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

__all__ = ["choose_operating_point", "rates_at", "flagged", "model_operating_point", "unusable_operating_point",
           "operating_point_mismatch", "operating_point_tta"]


def _scores_truth(scores: Sequence[float], truth: Sequence[bool]) -> tuple[np.ndarray, np.ndarray]:
    from radseg.evaluate.detection import _split

    _split(scores, truth)  # the checks ROC AUC makes: 1-D, same length, finite, both classes present
    return np.asarray(scores, dtype=float), np.asarray(truth).astype(bool)


def flagged(scores: Sequence[float] | np.ndarray, threshold: float) -> np.ndarray:
    """Which images the threshold flags (score ``>= threshold``)."""
    return np.asarray(scores, dtype=float) >= float(threshold)


def choose_operating_point(scores: Sequence[float], truth: Sequence[bool], *, sensitivity: float = 0.85
                           ) -> dict[str, Any]:
    """The highest threshold reaching ``sensitivity`` on these images, with the rates it gives there.

    Sensitivity only falls as the threshold rises, so the answer is the k-th highest score among
    the images with the finding, k = ceil(sensitivity x their number); ties at that score are
    all flagged, so the sensitivity reached can exceed the target.
    """
    if not 0.0 < sensitivity <= 1.0:
        raise ValueError(f"sensitivity {sensitivity}: a fraction in (0, 1]")
    scores, truth = _scores_truth(scores, truth)
    positives = np.sort(scores[truth])[::-1]
    # the small tolerance keeps 0.85 x 20 = 17 from rounding up to 18 in floating point
    k = max(1, int(np.ceil(sensitivity * positives.size - 1e-9)))
    threshold = float(positives[k - 1])
    hit = flagged(scores, threshold)
    return {"threshold": threshold, "target_sensitivity": float(sensitivity),
            "sensitivity": float(hit[truth].mean()), "specificity": float((~hit[~truth]).mean()),
            "images_with_finding": int(truth.sum()), "images_without": int((~truth).sum())}


def rates_at(scores: Sequence[float], truth: Sequence[bool], threshold: float, *, resamples: int = 2000,
             seed: int = 0, confidence: float = 0.95) -> dict[str, Any]:
    """Sensitivity and specificity at ``threshold`` with percentile bootstrap CIs (NaN bounds without resamples)."""
    from radseg.evaluate.bootstrap import bootstrap_ci

    scores, truth = _scores_truth(scores, truth)
    hit = flagged(scores, threshold)
    out: dict[str, Any] = {"threshold": float(threshold), "images_with_finding": int(truth.sum()),
                           "images_without": int((~truth).sum())}
    for name, correct in (("sensitivity", hit[truth]), ("specificity", ~hit[~truth])):
        values = correct.astype(float)
        if resamples > 0:
            ci = bootstrap_ci(values, resamples=resamples, seed=seed, confidence=confidence)
            out.update({name: ci.estimate, f"{name}_ci_low": ci.low, f"{name}_ci_high": ci.high})
        else:
            out.update({name: float(values.mean()), f"{name}_ci_low": float("nan"), f"{name}_ci_high": float("nan")})
    return out


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and bool(np.isfinite(value))


def model_operating_point(manifest: dict | None) -> dict | None:
    """The operating point a model bundle carries (``manifest["operating_point"]``), else None.

    None too when it cannot be applied as stored: a threshold that is not a finite number, or a
    ``window`` (the image score's square it was chosen on) that is not a whole number of pixels
    >= 1 (a hand-edited manifest): scores made on another square would not match its threshold.
    """
    point = (manifest or {}).get("operating_point")
    if not isinstance(point, dict) or not _is_number(point.get("threshold")):
        return None
    window = point.get("window", 1)
    return point if isinstance(window, int) and not isinstance(window, bool) and window >= 1 else None


def operating_point_tta(manifest: dict | None) -> bool:
    """Whether the model's operating point was chosen on flip-TTA scores: the default of ``segment`` and
    ``evaluate-detection``, so that its threshold applies to the scores they make (False without one)."""
    point = model_operating_point(manifest)
    return bool(point and point.get("tta"))


def unusable_operating_point(manifest: dict | None) -> str | None:
    """Why a stored operating point is ignored (see :func:`model_operating_point`), else None (none
    stored, or usable)."""
    point = (manifest or {}).get("operating_point")
    if point is None or model_operating_point(manifest) is not None:
        return None
    if not isinstance(point, dict):
        return f"the model's stored operating point is not a table of settings ({type(point).__name__}): ignored"
    shown = {k: point.get(k) for k in ("threshold", "window") if k in point}
    return (f"the model's stored operating point cannot be applied as stored ({shown}: the threshold must be a "
            "finite number, the window a whole number of pixels >= 1): ignored, no image is flagged")


def operating_point_mismatch(point: dict, *, tta: bool, window: int | None = None) -> str | None:
    """Why ``point``'s threshold does not apply to image scores made on a ``window``-pixel square
    (None: the point's own, as the predictor scores), with or without flip TTA (its sensitivity and
    specificity would not carry over), else None."""
    if window is not None and int(point.get("window", window)) != int(window):
        return f"the model's operating point was chosen on {point['window']}-pixel image scores, these are {window}-pixel ones"
    if "tta" in point and bool(point["tta"]) != bool(tta):
        return (f"the model's operating point was chosen on scores {'with' if point['tta'] else 'without'} flip TTA, "
                f"these are {'with' if tta else 'without'}")
    return None
