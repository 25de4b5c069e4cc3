"""Surface-distance metrics (Hausdorff, HD95, ASSD, NSD) of two boolean masks, in millimetres.

Compute once, derive all: :func:`surface_distances` finds both surfaces and the two sets of
directed distances; :func:`hausdorff`, :func:`hd95`, :func:`assd` and :func:`nsd` (also methods
of :class:`SurfaceDistances`) are cheap reductions of that one object. :func:`surface_metrics`
and :func:`segmentation_metrics` return them as a dict; :func:`per_label_metrics` does a whole
label map, each label's surfaces computed once.

Definitions
-----------

* **Surface** of a mask: its border voxels, the mask minus its erosion by the face-connected
  (6-neighbour in 3D, 4-neighbour in 2D) structuring element; outside the array counts as
  background, so mask voxels on the array edge are border voxels. This is exactly MONAI's
  ``get_mask_edges`` without sub-voxels (``scipy.ndimage.binary_erosion`` with its default
  structure, XOR the mask) and medpy's surface (``connectivity=1``). Points
  sit at voxel centres, in mm: index x spacing.
* **Directed distances** ``pred_to_truth``: for each surface voxel of the prediction, the
  Euclidean distance (mm, anisotropic spacing) to the nearest surface voxel of the truth; and
  ``truth_to_pred`` the other way. Exact: nearest neighbours among all surface voxels, in
  float64 (MONAI's are float32).
* ``hausdorff`` (HD): the largest distance of both directions.
* ``hd95`` (default ``variant="max"``): the larger of the two directed 95th percentiles (linear
  interpolation between order statistics, ``numpy.percentile``'s default), which is MONAI's
  ``compute_hausdorff_distance(percentile=95)``. ``variant="pooled"``: the 95th percentile of
  both directions pooled (medpy's ``hd95``). Other percentiles: ``percentile=``.
* ``assd`` (default ``variant="pooled"``): the mean of all distances of both directions pooled,
  (Σ d(p→T) + Σ d(t→P)) / (|∂P| + |∂T|) — MONAI's
  ``compute_average_surface_distance(symmetric=True)`` (it concatenates both directions before
  the mean) and the ASSD of Heimann et al. 2009. ``variant="mean_of_means"``: the mean of the
  two directed means, (mean d(p→T) + mean d(t→P)) / 2: medpy's ``assd``, and the usual way of
  averaging DeepMind's pair of directed averages into one number. The two differ when the
  surfaces differ in size.
* ``nsd`` (normalised surface Dice at tolerance τ mm): (#{d(p→T) ≤ τ} + #{d(t→P) ≤ τ}) /
  (|∂P| + |∂T|), MONAI's ``compute_surface_dice(use_subvoxels=False)``, whose thresholds are in
  mm when a spacing is given.

DeepMind's ``surface-distance`` uses a different surface: points at voxel *corners* (2x2x2
neighbourhoods with mixed values), each weighted by the area of its marching-cubes surface
element; its HD95, average distance and surface Dice are area-weighted. radseg does not
implement that variant (no surface-element areas are computed). Its Hausdorff (percent=100)
equals radseg's on box-shaped masks and on smooth blobs, and in general differs by at most one
voxel diagonal (each surface lies within half a voxel diagonal of the other kind). Its
area-weighted HD95 and ASSD come out lower: on the benchmark's 3D pair, HD95 16.66 mm
(radseg/MONAI) vs 15.28 (DeepMind), ASSD 6.50 vs 5.90. Say which definition a number uses.

Empty masks follow the policy of :mod:`radseg.evaluate.overlap` (``empty=``): both empty ->
NaN (or the best value with ``empty="perfect"``); one empty -> distances +inf and NSD 0 by
default (MONAI: inf with a warning, NSD 0), NaN with ``EmptyPolicy(one="nan")``.

Speed
-----

Only the bounding box of both masks plus a one-voxel margin is touched after one cheap pass
for the bounds; the borders come from six shifted ANDs on that box; the distances from a
k-d tree over one surface queried with the other (``scipy.spatial.cKDTree``, unbalanced,
non-compact nodes, leaf size 32: about 2x faster here than its defaults). Measured on the
benchmark's 3D pair (box 133x271x322, ~136k surface voxels per mask, 2 cores): k-d tree queries
0.3 s for both directions; ``scipy.ndimage.distance_transform_edt(sampling=spacing)`` on the
same box gives the same distances (to 1e-13) in 3.7 s, so the k-d tree is used. Whole call
(Dice + surfaces + HD, HD95, ASSD) 0.39 s and 211 MB peak for the process, vs MONAI 1.6.1
6.9 s and 1.78 GB; see ``benchmarks/surface_metrics.py`` and its results file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
from scipy.spatial import cKDTree

from radseg.evaluate.overlap import (
    EmptyArg,
    EmptyPolicy,
    OverlapCounts,
    as_spacing,
    empty_policy,
    mask_pair,
    metrics_from_counts,
    overlap_counts,
)

__all__ = [
    "SurfaceDistances",
    "surface_distances",
    "hausdorff",
    "hd95",
    "assd",
    "nsd",
    "surface_metrics",
    "segmentation_metrics",
    "per_label_metrics",
]

_HD_VARIANTS = ("max", "pooled")
_ASSD_VARIANTS = ("pooled", "mean_of_means")
# Above this many labels, per_label_metrics finds all bounding boxes in one find_objects pass
# (~0.1 s for 512x512x200) instead of one comparison + bounds per label (~15 ms per label and map).
_FIND_OBJECTS_FROM = 8


@dataclass(frozen=True, eq=False)
class SurfaceDistances:
    """The two sets of directed surface distances of a mask pair, in mm (float64).

    ``pred_to_truth[i]`` is the distance from the i-th surface voxel of the prediction (C order
    of the array, as ``np.argwhere`` lists them) to the nearest surface voxel of the truth; ``truth_to_pred``
    the other way. An empty mask has no surface voxels: its own array is empty and the other
    direction is all +inf. ``empty`` is the policy the derived metrics apply.
    """

    pred_to_truth: np.ndarray
    truth_to_pred: np.ndarray
    spacing: tuple[float, ...]
    empty: EmptyPolicy = field(default_factory=EmptyPolicy)

    @property
    def pred_empty(self) -> bool:
        return self.pred_to_truth.size == 0

    @property
    def truth_empty(self) -> bool:
        return self.truth_to_pred.size == 0

    def hausdorff(self) -> float:
        return hausdorff(self)

    def hd95(self, *, percentile: float = 95.0, variant: str = "max") -> float:
        return hd95(self, percentile=percentile, variant=variant)

    def assd(self, *, variant: str = "pooled") -> float:
        return assd(self, variant=variant)

    def nsd(self, tolerance_mm: float) -> float:
        return nsd(self, tolerance_mm)


# --- bounding boxes and borders --------------------------------------------------------


def _bounds(mask: np.ndarray) -> tuple[tuple[int, int], ...] | None:
    """``((lo, hi), ...)`` per axis (hi exclusive) of the True voxels, or None when empty.

    Two cheap passes: rows of the first axis (contiguous), then the OR of the occupied
    slices, recursively for the remaining axes.
    """
    if mask.size == 0:
        return None
    first = np.flatnonzero(mask.reshape(mask.shape[0], -1).any(axis=1))
    if first.size == 0:
        return None
    lo, hi = int(first[0]), int(first[-1]) + 1
    if mask.ndim == 1:
        return ((lo, hi),)
    rest = _bounds(mask[lo:hi].any(axis=0))
    assert rest is not None
    return ((lo, hi), *rest)


def _union(a: tuple[tuple[int, int], ...] | None, b: tuple[tuple[int, int], ...] | None):
    if a is None:
        return b
    if b is None:
        return a
    return tuple((min(x[0], y[0]), max(x[1], y[1])) for x, y in zip(a, b))


def _margin_box(box: tuple[tuple[int, int], ...], shape: tuple[int, ...]):
    """Slices of ``box`` grown by one voxel (clipped to the array), the zero padding that
    restores the margin where the array edge clipped it, and the array index of the first
    voxel inside the margin (where :func:`_border`'s output starts)."""
    slices = tuple(slice(max(lo - 1, 0), min(hi + 1, n)) for (lo, hi), n in zip(box, shape))
    pad = tuple((int(lo == 0), int(hi == n)) for (lo, hi), n in zip(box, shape))
    return slices, pad, tuple(lo for lo, _ in box)


def _with_margin(mask: np.ndarray, pad) -> np.ndarray:
    return np.pad(mask, pad) if any(any(p) for p in pad) else mask


def _border(padded: np.ndarray) -> np.ndarray:
    """Border voxels of the inner part of ``padded`` (whose outer one-voxel shell is background):
    mask voxels with at least one face neighbour outside the mask."""
    ndim = padded.ndim
    centre = tuple(slice(1, n - 1) for n in padded.shape)
    core = padded[centre]
    interior = core.copy()
    for axis in range(ndim):
        for start in (0, 2):
            shifted = list(centre)
            shifted[axis] = slice(start, padded.shape[axis] - 2 + start)
            interior &= padded[tuple(shifted)]
    return core & ~interior


def _nearest(points_to: np.ndarray, points_from: np.ndarray, workers: int) -> np.ndarray:
    """Distance from each of ``points_from`` to the nearest of ``points_to`` (both in mm)."""
    tree = cKDTree(points_to, leafsize=32, balanced_tree=False, compact_nodes=False)
    return tree.query(points_from, k=1, workers=workers)[0]


def _distances_padded(
    pred: np.ndarray,
    truth: np.ndarray,
    origin: tuple[int, ...],
    spacing: tuple[float, ...],
    policy: EmptyPolicy,
    workers: int,
) -> SurfaceDistances:
    """Surface distances of two masks cropped to their box with a background margin.

    Points are placed at their index in the whole array (``origin`` = index of the box's first
    voxel) times the spacing, so the floating-point values are those of a brute-force
    computation on the uncropped masks, bit for bit.
    """
    scale = np.asarray(spacing, dtype=float)
    offset = np.asarray(origin, dtype=np.int64)
    pred_points = (np.argwhere(_border(pred)) + offset) * scale
    truth_points = (np.argwhere(_border(truth)) + offset) * scale
    if len(pred_points) and len(truth_points):
        to_truth = _nearest(truth_points, pred_points, workers)
        to_pred = _nearest(pred_points, truth_points, workers)
    else:  # the distance to an empty set is +inf (derived metrics apply the policy)
        to_truth = np.full(len(pred_points), math.inf) if not len(truth_points) else np.empty(0)
        to_pred = np.full(len(truth_points), math.inf) if not len(pred_points) else np.empty(0)
    return SurfaceDistances(to_truth, to_pred, spacing, policy)


def _crop_pair(pred: np.ndarray, truth: np.ndarray):
    """Both masks cut to the box of their union plus a background margin, or None if both empty."""
    box = _union(_bounds(pred), _bounds(truth))
    if box is None:
        return None
    slices, pad, origin = _margin_box(box, pred.shape)
    return _with_margin(pred[slices], pad), _with_margin(truth[slices], pad), origin


def _empty_distances(spacing: tuple[float, ...], policy: EmptyPolicy) -> SurfaceDistances:
    return SurfaceDistances(np.empty(0), np.empty(0), spacing, policy)


# --- public ----------------------------------------------------------------------------


def surface_distances(
    pred: Any,
    truth: Any,
    *,
    spacing: float | Sequence[float] | None = None,
    empty: EmptyArg = "nan",
    workers: int = -1,
) -> SurfaceDistances:
    """Directed distances (mm) between the surfaces of two boolean masks, 2D or 3D.

    ``spacing``: mm per array axis (``[slice, row, col]`` order; default 1.0 each).
    ``empty``: the empty-mask policy the derived metrics use. ``workers``: threads of the
    nearest-neighbour queries (-1 = all cores; use 1 inside a process pool).
    """
    pred_mask, truth_mask = mask_pair(pred, truth)
    spacing_t = as_spacing(spacing, pred_mask.ndim)
    policy = empty_policy(empty)
    cropped = _crop_pair(pred_mask, truth_mask)
    if cropped is None:
        return _empty_distances(spacing_t, policy)
    return _distances_padded(*cropped, spacing_t, policy, workers)


def _check_variant(variant: str, allowed: tuple[str, ...], name: str) -> None:
    if variant not in allowed:
        raise ValueError(f"{name} variant must be one of {allowed}, got {variant!r}")


def _empty_case(sd: SurfaceDistances, *, best: float, worst: float) -> float | None:
    """The policy's value when a mask is empty, None when both have surfaces."""
    if sd.pred_empty and sd.truth_empty:
        return sd.empty.both_empty(best)
    if sd.pred_empty or sd.truth_empty:
        return sd.empty.one_empty(worst)
    return None


def hausdorff(sd: SurfaceDistances) -> float:
    """Hausdorff distance (mm): the largest surface distance of both directions."""
    special = _empty_case(sd, best=0.0, worst=math.inf)
    if special is not None:
        return special
    return float(max(sd.pred_to_truth.max(), sd.truth_to_pred.max()))


def hd95(sd: SurfaceDistances, *, percentile: float = 95.0, variant: str = "max") -> float:
    """Percentile Hausdorff distance (mm).

    ``variant="max"`` (default, MONAI): the larger of the two directed percentiles;
    ``"pooled"``: the percentile of both directions pooled. Linear interpolation.
    """
    _check_variant(variant, _HD_VARIANTS, "hd95")
    if not 0 <= percentile <= 100:
        raise ValueError(f"percentile must be within [0, 100], got {percentile}")
    special = _empty_case(sd, best=0.0, worst=math.inf)
    if special is not None:
        return special
    if variant == "pooled":
        return float(np.percentile(np.concatenate([sd.pred_to_truth, sd.truth_to_pred]), percentile))
    return float(max(np.percentile(sd.pred_to_truth, percentile), np.percentile(sd.truth_to_pred, percentile)))


def assd(sd: SurfaceDistances, *, variant: str = "pooled") -> float:
    """Average symmetric surface distance (mm).

    ``variant="pooled"`` (default, MONAI ``symmetric=True``): mean of all distances of both
    directions; ``"mean_of_means"``: mean of the two directed means.
    """
    _check_variant(variant, _ASSD_VARIANTS, "assd")
    special = _empty_case(sd, best=0.0, worst=math.inf)
    if special is not None:
        return special
    if variant == "mean_of_means":
        return float((sd.pred_to_truth.mean() + sd.truth_to_pred.mean()) / 2)
    total = sd.pred_to_truth.sum() + sd.truth_to_pred.sum()
    return float(total / (sd.pred_to_truth.size + sd.truth_to_pred.size))


def nsd(sd: SurfaceDistances, tolerance_mm: float) -> float:
    """Normalised surface Dice: fraction of surface voxels of both masks within
    ``tolerance_mm`` of the other surface (distance <= tolerance counts)."""
    tolerance = float(tolerance_mm)
    if not math.isfinite(tolerance) or tolerance < 0:
        raise ValueError(f"NSD tolerance must be finite and >= 0 mm, got {tolerance_mm}")
    if sd.pred_empty and sd.truth_empty:
        return sd.empty.both_empty(1.0)
    close = np.count_nonzero(sd.pred_to_truth <= tolerance) + np.count_nonzero(sd.truth_to_pred <= tolerance)
    return float(close / (sd.pred_to_truth.size + sd.truth_to_pred.size))


def _hd_key(percentile: float) -> str:
    return f"hd{percentile:g}"


def _surface_dict(
    sd: SurfaceDistances, *, percentile: float, nsd_tolerance: float | None, hd_variant: str, assd_variant: str
) -> dict[str, float]:
    out = {
        "hd": hausdorff(sd),
        _hd_key(percentile): hd95(sd, percentile=percentile, variant=hd_variant),
        "assd": assd(sd, variant=assd_variant),
    }
    if nsd_tolerance is not None:
        out["nsd"] = nsd(sd, nsd_tolerance)
    return out


def surface_metrics(
    pred: Any,
    truth: Any,
    *,
    spacing: float | Sequence[float] | None = None,
    percentile: float = 95.0,
    nsd_tolerance: float | None = None,
    empty: EmptyArg = "nan",
    hd_variant: str = "max",
    assd_variant: str = "pooled",
    workers: int = -1,
) -> dict[str, float]:
    """``{"hd", "hd95", "assd"[, "nsd"]}`` (mm) from one :func:`surface_distances` call.

    The percentile key is ``f"hd{percentile:g}"`` (``"hd95"`` by default); ``"nsd"`` only when
    ``nsd_tolerance`` (mm) is given.
    """
    sd = surface_distances(pred, truth, spacing=spacing, empty=empty, workers=workers)
    return _surface_dict(sd, percentile=percentile, nsd_tolerance=nsd_tolerance,
                         hd_variant=hd_variant, assd_variant=assd_variant)


def _all_metrics(
    pred: np.ndarray | None,
    truth: np.ndarray | None,
    origin: tuple[int, ...] | None,
    *,
    spacing: tuple[float, ...],
    policy: EmptyPolicy,
    percentile: float,
    nsd_tolerance: float | None,
    hd_variant: str,
    assd_variant: str,
    workers: int,
) -> dict[str, float]:
    """Overlap + surface metrics of two cropped, margin-padded masks (Nones: both empty)."""
    voxel = float(np.prod(spacing))
    if pred is None or truth is None:
        counts = OverlapCounts(0, 0, 0)
        sd = _empty_distances(spacing, policy)
    else:
        counts = overlap_counts(pred, truth)
        sd = _distances_padded(pred, truth, origin, spacing, policy, workers)
    return {
        **metrics_from_counts(counts, voxel_volume=voxel, policy=policy),
        **_surface_dict(sd, percentile=percentile, nsd_tolerance=nsd_tolerance,
                        hd_variant=hd_variant, assd_variant=assd_variant),
    }


def segmentation_metrics(
    pred: Any,
    truth: Any,
    *,
    spacing: float | Sequence[float] | None = None,
    nsd_tolerance: float | None = None,
    hd_percentile: float = 95.0,
    empty: EmptyArg = "nan",
    hd_variant: str = "max",
    assd_variant: str = "pooled",
    workers: int = -1,
) -> dict[str, float]:
    """Every metric of one mask pair from one crop: dice, iou, precision, sensitivity,
    volume_difference (mm³/mm²), relative_volume_difference, hd, hd95, assd[, nsd]."""
    pred_mask, truth_mask = mask_pair(pred, truth)
    spacing_t = as_spacing(spacing, pred_mask.ndim)
    cropped = _crop_pair(pred_mask, truth_mask) or (None, None, None)
    return _all_metrics(*cropped, spacing=spacing_t, policy=empty_policy(empty), percentile=hd_percentile,
                        nsd_tolerance=nsd_tolerance, hd_variant=hd_variant, assd_variant=assd_variant,
                        workers=workers)


def _as_label_map(array: Any, name: str) -> np.ndarray:
    labels = np.asarray(array)
    if labels.dtype == bool:
        return labels.view(np.uint8)
    if labels.dtype.kind in "iu":
        return labels
    if labels.dtype.kind == "f" and np.all(np.isfinite(labels)) and np.array_equal(labels, np.round(labels)):
        return labels.astype(np.int64)
    raise ValueError(f"{name}: a label map needs integer values, got dtype {labels.dtype}")


def _label_boxes(labels_map: np.ndarray, values: list[int]) -> dict[int, Any]:
    """Bounding box per label value (None when absent)."""
    many = len(values) >= _FIND_OBJECTS_FROM and min(values) > 0 and labels_map.size > 0
    if many and (labels_map.dtype.kind == "u" or labels_map.min() >= 0):
        from scipy import ndimage

        found = ndimage.find_objects(labels_map, max_label=max(values))
        return {v: (None if found[v - 1] is None else tuple((s.start, s.stop) for s in found[v - 1]))
                for v in values}
    return {v: _bounds(labels_map == v) for v in values}


def per_label_metrics(
    pred_labels: Any,
    truth_labels: Any,
    *,
    labels: Sequence[int],
    spacing: float | Sequence[float] | None = None,
    nsd_tolerance: float | None = None,
    hd_percentile: float = 95.0,
    empty: EmptyArg = "nan",
    hd_variant: str = "max",
    assd_variant: str = "pooled",
    workers: int = -1,
) -> dict[int, dict[str, float]]:
    """Metrics of each label of two label maps: ``{label: {metric: value}}``.

    Metrics as :func:`segmentation_metrics` (dice, iou, precision, sensitivity,
    volume_difference, relative_volume_difference, hd, hd95, assd, and nsd when
    ``nsd_tolerance`` is given). Each label is cropped to its own box and its surfaces are
    computed once. A label absent from both maps gets the ``empty`` policy's values.
    """
    pred_map, truth_map = _as_label_map(pred_labels, "pred_labels"), _as_label_map(truth_labels, "truth_labels")
    if pred_map.shape != truth_map.shape:
        raise ValueError(f"pred and truth label maps differ in shape: {pred_map.shape} vs {truth_map.shape}")
    spacing_t = as_spacing(spacing, pred_map.ndim)
    policy = empty_policy(empty)
    values = [int(v) for v in labels]
    if len(set(values)) != len(values):
        raise ValueError(f"labels repeat a value: {values}")
    pred_boxes, truth_boxes = _label_boxes(pred_map, values), _label_boxes(truth_map, values)
    out: dict[int, dict[str, float]] = {}
    for value in values:
        box = _union(pred_boxes[value], truth_boxes[value])
        if box is None:
            cropped: tuple[Any, Any, Any] = (None, None, None)
        else:
            slices, pad, origin = _margin_box(box, pred_map.shape)
            cropped = (_with_margin(pred_map[slices] == value, pad), _with_margin(truth_map[slices] == value, pad),
                       origin)
        out[value] = _all_metrics(*cropped, spacing=spacing_t, policy=policy, percentile=hd_percentile,
                                  nsd_tolerance=nsd_tolerance, hd_variant=hd_variant,
                                  assd_variant=assd_variant, workers=workers)
    return out

