"""Overlap and volume metrics of two boolean masks, and the one empty-mask policy of radseg.

All functions take ``pred`` and ``truth`` as boolean arrays of the same shape (2D
``[row, col]`` or 3D ``[slice, row, col]``; 0/1 integer arrays are accepted, anything else is
an error, so a label map is never silently binarised). Options are keyword-only.

Definitions (P = predicted voxels, T = ground-truth voxels, TP = |P ∩ T|):

* ``dice`` = 2 TP / (|P| + |T|)
* ``iou`` (Jaccard) = TP / |P ∪ T|
* ``precision`` = TP / |P|         (positive predictive value)
* ``sensitivity`` = TP / |T|       (recall, true positive rate)
* ``volume_difference`` = (|P| − |T|) x voxel volume, signed, in mm³ (mm² for 2D)
* ``relative_volume_difference`` = (|P| − |T|) / |T|, signed (0.1 = prediction 10% too large)

Empty masks — one policy for every metric in radseg (:class:`EmptyPolicy`, keyword ``empty=``)
----------------------------------------------------------------------------------------------

A metric needs the policy in exactly two situations; everywhere else it has its plain value.

* **Both masks empty** (the structure is absent and correctly not predicted): every ratio is
  0/0 and there is no surface to measure. ``EmptyPolicy.both``:

  - ``"nan"`` (default): NaN. The case says nothing about quality; summaries count NaNs
    separately instead of averaging a made-up value in.
  - ``"perfect"``: the metric's best value (Dice, IoU, precision, sensitivity, NSD 1.0;
    HD, HD95, ASSD 0.0 mm; relative volume difference 0.0), as MONAI's
    ``DiceMetric(ignore_empty=False)`` does for Dice.

* **Exactly one mask empty** (a missed structure or a pure false positive). Dice and IoU are 0,
  sensitivity is 0 when only the prediction is empty, precision is 0 when only the truth is
  empty and the volume difference is ± the other volume: these are well defined and never
  changed. What is undefined then — surface distances (no surface to measure to), precision
  of an empty prediction (0/0), sensitivity against an empty truth (0/0), relative volume
  difference against an empty truth (x/0) — follows ``EmptyPolicy.one``:

  - ``"worst"`` (default): the worst value: distances +inf mm, precision / sensitivity 0.0,
    relative volume difference +inf. A failure stays visible as a failure.
  - ``"nan"``: NaN.

  (NSD is 0 when one mask is empty: every surface point of the other is infinitely far, a
  well-defined 0, as in MONAI.)

``empty="nan"`` (default) is ``EmptyPolicy(both="nan", one="worst")``; ``empty="perfect"`` is
``EmptyPolicy(both="perfect", one="worst")``; pass an :class:`EmptyPolicy` for anything else.

How the reference libraries differ: MONAI's ``DiceMetric`` default (``ignore_empty=True``)
returns NaN whenever the ground truth is empty, *even if the prediction is not* (a false
positive disappears from the mean); radseg returns 0 there. MONAI's Hausdorff and average
surface distance give NaN for both empty and inf (with a warning) for one empty, its surface
Dice NaN / 0 — the same as radseg's default. DeepMind's ``surface-distance`` gives NaN Dice for
both empty and inf distances when one mask is empty.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple, Sequence, Union

import numpy as np

__all__ = [
    "EmptyPolicy",
    "empty_policy",
    "dice",
    "iou",
    "precision",
    "sensitivity",
    "volume_difference",
    "relative_volume_difference",
    "overlap_metrics",
]

_BOTH = ("nan", "perfect")
_ONE = ("worst", "nan")


@dataclass(frozen=True)
class EmptyPolicy:
    """What a metric returns when both masks are empty (``both``) or when one is and the
    metric is undefined (``one``). See the module docstring for the exact rules."""

    both: str = "nan"
    one: str = "worst"

    def __post_init__(self) -> None:
        if self.both not in _BOTH:
            raise ValueError(f"EmptyPolicy.both must be one of {_BOTH}, got {self.both!r}")
        if self.one not in _ONE:
            raise ValueError(f"EmptyPolicy.one must be one of {_ONE}, got {self.one!r}")

    def both_empty(self, best: float) -> float:
        """Value of a metric whose best value is ``best`` when both masks are empty."""
        return float(best) if self.both == "perfect" else math.nan

    def one_empty(self, worst: float) -> float:
        """Value of a metric that is undefined with one empty mask (``worst`` = its worst value)."""
        return float(worst) if self.one == "worst" else math.nan


EmptyArg = Union[str, EmptyPolicy]
_NAMED = {"nan": EmptyPolicy(), "perfect": EmptyPolicy(both="perfect")}


def empty_policy(empty: EmptyArg = "nan") -> EmptyPolicy:
    """The :class:`EmptyPolicy` for an ``empty=`` argument (``"nan"``, ``"perfect"`` or a policy)."""
    if isinstance(empty, EmptyPolicy):
        return empty
    try:
        return _NAMED[empty]
    except (KeyError, TypeError):
        raise ValueError(f"empty= must be one of {sorted(_NAMED)} or an EmptyPolicy, got {empty!r}") from None


# --- inputs ----------------------------------------------------------------------------


def as_mask(array: Any, name: str = "mask") -> np.ndarray:
    """A boolean view/copy of ``array``; 0/1 numbers are accepted, other values are an error."""
    mask = np.asarray(array)
    if mask.dtype == bool:
        return mask
    if mask.dtype.kind not in "iuf":
        raise ValueError(f"{name}: expected a boolean mask, got dtype {mask.dtype}")
    if mask.size and not np.all((mask == 0) | (mask == 1)):
        raise ValueError(
            f"{name}: expected a boolean (0/1) mask, found other values; "
            "for a label map compare with the label (labels == value) or use per_label_metrics"
        )
    return mask != 0


def mask_pair(pred: Any, truth: Any) -> tuple[np.ndarray, np.ndarray]:
    pred_mask, truth_mask = as_mask(pred, "pred"), as_mask(truth, "truth")
    if pred_mask.shape != truth_mask.shape:
        raise ValueError(f"pred and truth differ in shape: {pred_mask.shape} vs {truth_mask.shape}")
    if pred_mask.ndim == 0:
        raise ValueError("masks need at least one axis")
    return pred_mask, truth_mask


def as_spacing(spacing: float | Sequence[float] | None, ndim: int) -> tuple[float, ...]:
    """Spacing in mm per array axis: ``None`` -> 1.0 each, a number -> isotropic."""
    if spacing is None:
        return (1.0,) * ndim
    values = np.atleast_1d(np.asarray(spacing, dtype=float))
    if values.size == 1 and ndim != 1:
        values = np.repeat(values, ndim)
    if values.shape != (ndim,):
        raise ValueError(f"spacing needs {ndim} values (one per array axis), got {list(values)}")
    if not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise ValueError(f"spacing must be positive and finite (mm), got {list(values)}")
    return tuple(float(v) for v in values)


# --- counts and metrics ----------------------------------------------------------------


class OverlapCounts(NamedTuple):
    """Voxel counts: ``both`` = |P ∩ T|, ``pred`` = |P|, ``truth`` = |T|."""

    both: int
    pred: int
    truth: int


def overlap_counts(pred: np.ndarray, truth: np.ndarray) -> OverlapCounts:
    """Counts of two boolean arrays of one shape (no validation: internal fast path)."""
    return OverlapCounts(
        int(np.count_nonzero(pred & truth)), int(np.count_nonzero(pred)), int(np.count_nonzero(truth))
    )


def _ratio(numerator: int, denominator: int, counts: OverlapCounts, policy: EmptyPolicy) -> float:
    if denominator:
        return numerator / denominator
    if counts.pred == 0 and counts.truth == 0:
        return policy.both_empty(1.0)
    return policy.one_empty(0.0)


def _dice(c: OverlapCounts, policy: EmptyPolicy) -> float:
    return _ratio(2 * c.both, c.pred + c.truth, c, policy)


def _iou(c: OverlapCounts, policy: EmptyPolicy) -> float:
    return _ratio(c.both, c.pred + c.truth - c.both, c, policy)


def _precision(c: OverlapCounts, policy: EmptyPolicy) -> float:
    return _ratio(c.both, c.pred, c, policy)


def _sensitivity(c: OverlapCounts, policy: EmptyPolicy) -> float:
    return _ratio(c.both, c.truth, c, policy)


def _relative_volume_difference(c: OverlapCounts, policy: EmptyPolicy) -> float:
    if c.truth:
        return (c.pred - c.truth) / c.truth
    if c.pred == 0:
        return policy.both_empty(0.0)
    return policy.one_empty(math.inf)


def metrics_from_counts(counts: OverlapCounts, *, voxel_volume: float, policy: EmptyPolicy) -> dict[str, float]:
    """Every overlap metric from one set of counts (what :func:`overlap_metrics` returns)."""
    return {
        "dice": _dice(counts, policy),
        "iou": _iou(counts, policy),
        "precision": _precision(counts, policy),
        "sensitivity": _sensitivity(counts, policy),
        "volume_difference": (counts.pred - counts.truth) * voxel_volume,
        "relative_volume_difference": _relative_volume_difference(counts, policy),
    }


def dice(pred: Any, truth: Any, *, empty: EmptyArg = "nan") -> float:
    """Dice = 2|P∩T| / (|P|+|T|); both empty -> the ``empty`` policy (default NaN)."""
    return _dice(overlap_counts(*mask_pair(pred, truth)), empty_policy(empty))


def iou(pred: Any, truth: Any, *, empty: EmptyArg = "nan") -> float:
    """Intersection over union (Jaccard) = |P∩T| / |P∪T|; both empty -> the ``empty`` policy."""
    return _iou(overlap_counts(*mask_pair(pred, truth)), empty_policy(empty))


def precision(pred: Any, truth: Any, *, empty: EmptyArg = "nan") -> float:
    """|P∩T| / |P|; empty prediction: both empty -> ``empty.both``, truth not empty -> ``empty.one`` (0.0)."""
    return _precision(overlap_counts(*mask_pair(pred, truth)), empty_policy(empty))


def sensitivity(pred: Any, truth: Any, *, empty: EmptyArg = "nan") -> float:
    """|P∩T| / |T|; empty truth: both empty -> ``empty.both``, prediction not empty -> ``empty.one`` (0.0)."""
    return _sensitivity(overlap_counts(*mask_pair(pred, truth)), empty_policy(empty))


def volume_difference(pred: Any, truth: Any, *, spacing: float | Sequence[float] | None = None) -> float:
    """Signed volume of ``pred`` minus volume of ``truth``, in mm³ (3D) or mm² (2D).

    ``spacing`` is mm per array axis (default 1.0 each). Always defined (0.0 when both are empty).
    """
    pred_mask, truth_mask = mask_pair(pred, truth)
    voxel = float(np.prod(as_spacing(spacing, pred_mask.ndim)))
    return (int(np.count_nonzero(pred_mask)) - int(np.count_nonzero(truth_mask))) * voxel


def relative_volume_difference(pred: Any, truth: Any, *, empty: EmptyArg = "nan") -> float:
    """(|P| − |T|) / |T| (spacing cancels); empty truth: both empty -> ``empty.both`` (0.0 when
    perfect), prediction not empty -> ``empty.one`` (+inf when worst)."""
    return _relative_volume_difference(overlap_counts(*mask_pair(pred, truth)), empty_policy(empty))


def overlap_metrics(
    pred: Any, truth: Any, *, spacing: float | Sequence[float] | None = None, empty: EmptyArg = "nan"
) -> dict[str, float]:
    """Dice, IoU, precision, sensitivity, volume difference (mm³/mm²) and relative volume
    difference from one pass over the masks."""
    pred_mask, truth_mask = mask_pair(pred, truth)
    voxel = float(np.prod(as_spacing(spacing, pred_mask.ndim)))
    return metrics_from_counts(overlap_counts(pred_mask, truth_mask), voxel_volume=voxel, policy=empty_policy(empty))
