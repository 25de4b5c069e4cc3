"""Bone extraction from CT: Gaussian blur, Otsu seeds, graph cut, hole filling, small-component removal.

The THA dataset paper's BE step (Boykov and Funka-Lea 2006 graph cut seeded by an Otsu
threshold). Energy, with source = bone and sink = background:

* **seeds**: voxels clearly above the Otsu threshold ``t`` (past half the way to the bone
  class mean) are fixed bone, voxels clearly below it (past half the way to the soft-tissue
  class mean) fixed background; everything between is the *band* the cut decides.
* **data term** ``R_p``: ``-ln P(bone | I_p)`` and ``-ln P(background | I_p)`` with a
  logistic ``P(bone | I)`` centred on ``t`` (slope from the band's width on each side).
* **boundary term** ``B(p, q) = exp(-(I_p - I_q)^2 / (2 sigma^2)) / dist(p, q)`` with
  ``2 sigma^2`` the mean squared neighbour difference in the band (as GrabCut sets beta),
  weighted by ``smoothness`` (the paper's lambda); 6-neighbourhood in 3D, 4 in-plane for
  ``mode="2d"`` (each axial slice cut on its own).

Only band voxels become graph nodes; an edge to a fixed neighbour becomes a terminal link,
which gives exactly the cut of the full grid with hard seeds at a fraction of the memory
(a 512x512x300 CT is cut in seconds). Holes enclosed in an axial slice up to
``max_hole_mm2`` are filled (marrow, cancellous bone below the threshold; the bound keeps
the pelvic ring from swallowing the pelvic cavity) except 3D regions of filled voxels
thinner than ``joint_space_mm`` (the joint space, enclosed in slices through the acetabular
roof), then 3D components smaller than
``min_component_mm3`` are dropped (noise, calcifications).

By default (``whole=True``) the mask is then grown to the whole bone an annotator draws
(:mod:`radseg.annotate.bone_interior`); ``whole=False`` (``--cortex-only``) keeps the paper's
steps. Metal (:data:`METAL_HU` and above: implants) is never bone and stays out of the Otsu
histogram; the ring its blur brightens (1.5 pixels, at least 2 mm) takes the label of the nearest
voxel beyond it. Within ``streak_mm`` of metal, bone the whole-bone growth added (not the cut's dense
bone) is dropped where an in-plane opening by a disc of ``streak_open_mm`` radius removes it: the
bright beam-hardening streaks that radiate from an implant are thin lines, and growth runs along
them into soft tissue; bone beside a cup or stem is thicker than the disc, or dense.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from radseg.annotate import morphology
from radseg.annotate.bone_interior import whole_bone
from radseg.image import Image
from radseg.labels import METAL_HU, make_label_map
from radseg.orientation import canonical

__all__ = ["BoneExtraction", "extract_bone", "otsu_bone_threshold", "threshold_bone", "BONE_LABEL", "MODES"]

BONE_LABEL = 1
MODES = ("3d", "2d")
# Below this the voxel is air or lung: kept out of the Otsu histogram (it would split air from tissue).
TISSUE_FLOOR_HU = -200.0
# An Otsu split below this separated fat (about -100 HU) from muscle (about 40 HU), not bone.
FAT_SPLIT_HU = 100.0
# Dense contrast is clipped to this before Otsu.
DENSE_CLIP_HU = 2000.0
# Metal (radseg.labels.METAL_HU) and the ring the scan's blur spreads it over are kept out of the Otsu
# histogram (a hip stem alone moves the split to ~1000 HU); metal is kept out of the bone mask.


@dataclass
class BoneExtraction:
    """The bone label map (on the CT's grid) and what the run found and how long it took."""

    mask: Image
    threshold_hu: float
    band_hu: tuple[float, float]
    graph_nodes: int
    seconds: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        voxel_ml = float(np.prod(self.mask.spacing)) / 1000.0
        return {"threshold_hu": round(self.threshold_hu, 1), "band_hu": [round(v, 1) for v in self.band_hu],
                "graph_nodes": self.graph_nodes, "bone_ml": round(float((self.mask.array > 0).sum()) * voxel_ml, 2),
                "seconds": {k: round(v, 3) for k, v in self.seconds.items()}}


def otsu_bone_threshold(hu: np.ndarray, *, floor: float = TISSUE_FLOOR_HU, sample: int = 2_000_000) -> tuple[float, float, float]:
    """Otsu threshold between soft tissue and bone, with both class means: ``(t, soft_mean, bone_mean)``.

    Computed on voxels above ``floor`` (air would otherwise be the split Otsu finds), on an
    evenly strided sample of at most ``sample`` voxels. In a whole-body CT bone is a few
    percent of the tissue, and Otsu may split fat from muscle instead: when the first split
    lies below :data:`FAT_SPLIT_HU` the upper threshold of a three-class Otsu (fat, soft
    tissue, bone) is used instead. Metal (:data:`METAL_HU` and above) is left out and values are
    clipped at :data:`DENSE_CLIP_HU`, so implants and dense contrast do not pull the split up.
    """
    from skimage.filters import threshold_multiotsu, threshold_otsu

    flat = hu.ravel()
    step = max(1, flat.size // sample)
    values = flat[::step]
    values = np.minimum(values[(values > floor) & (values < METAL_HU)], DENSE_CLIP_HU)
    if values.size < 100 or np.ptp(values) <= 0:
        raise ValueError(f"no tissue above {floor:g} HU to threshold: is this a CT in Hounsfield units?")
    t = float(threshold_otsu(values, nbins=512))
    if t < FAT_SPLIT_HU:
        t = float(threshold_multiotsu(values, classes=3, nbins=256)[-1])
    low, high = values[values <= t], values[values > t]
    return t, float(low.mean()), float(high.mean()) if high.size else t


def threshold_bone(ct: Image, *, sigma_mm: float = 0.5, threshold_hu: float | None = None) -> Image:
    """The plain baseline: Gaussian blur then the Otsu (or given) threshold, nothing else."""
    work = canonical(ct, oblique="raise")
    blurred = morphology.gaussian(work.array, sigma_mm / work.spacing)
    t = otsu_bone_threshold(blurred)[0] if threshold_hu is None else float(threshold_hu)
    return make_label_map(work.back((blurred > t).astype(np.uint8)), {BONE_LABEL: "bone"}, like=ct)


def extract_bone(
    ct: Image,
    *,
    mode: str = "3d",
    sigma_mm: float = 0.5,
    threshold_hu: float | None = None,
    seed_margin: float = 0.5,
    smoothness: float = 2.0,
    fill_holes: bool = True,
    edge_window_mm: float = 3.0,
    max_hole_mm2: float = 2500.0,
    marrow_hu: float = 100.0,
    joint_space_mm: float = 4.0,
    min_component_mm3: float = 500.0,
    whole: bool = True,
    cancellous_hu: float = 100.0,
    fatty_marrow_hu: float = 20.0,
    grow_mm: float = 20.0,
    streak_mm: float = 25.0,
    streak_open_mm: float = 3.0,
    label: int = BONE_LABEL,
) -> BoneExtraction:
    """Bone mask of a CT (HU) by Otsu-seeded graph cut; see the module docstring for the energy.

    ``mode`` "3d" cuts the volume at once, "2d" each axial slice; ``seed_margin`` is the fraction
    of the way from ``t`` to each class mean beyond which a voxel is a hard seed (0 makes it a
    plain threshold); ``smoothness`` weighs the boundary term; ``max_hole_mm2`` 0 and
    ``min_component_mm3`` 0 switch those steps off. Filled holes forming a 3D region thinner
    than ``joint_space_mm`` are opened again (0: never): a slice through the acetabular roof
    encloses the joint space, which is no marrow. ``whole`` (the default) adds the interior an
    annotator draws (cancellous bone and marrow, :func:`radseg.annotate.bone_interior.whole_bone`
    with ``cancellous_hu``, ``fatty_marrow_hu`` and ``grow_mm``); False keeps the THA paper's steps
    only (dense bone and the slice holes it encloses: on real CT much of the cancellous interior is lost).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if not 0.0 <= seed_margin < 1.0:
        raise ValueError(f"seed_margin must be in [0, 1), got {seed_margin}")
    seconds: dict[str, float] = {}
    clock = time.perf_counter()
    # holes, joint spaces and "2d" cuts are per axial slice: an oblique volume has none, so it is refused
    work = canonical(ct, oblique="raise")
    spacing = work.spacing
    blurred = morphology.gaussian(work.array, sigma_mm / spacing)
    seconds["blur"] = time.perf_counter() - clock

    clock = time.perf_counter()
    metal = _metal(work.array, spacing)
    t, soft_mean, bone_mean = otsu_bone_threshold(blurred[~metal] if metal.any() else blurred)
    if threshold_hu is not None:
        t = float(threshold_hu)
    low = t - seed_margin * max(t - soft_mean, 1.0)
    high = t + seed_margin * max(bone_mean - t, 1.0)
    flat = blurred.ravel()
    index = np.flatnonzero(flat >= low)  # everything not a background seed
    values = flat[index]
    centre = np.full(index.size, t, np.float32)
    top = np.full(index.size, max(bone_mean, high), np.float32)
    if edge_window_mm > 0:
        window = morphology.window_voxels(edge_window_mm, spacing, minimum=(1, 3, 3))
        local_max, local_min = _local_extremes(blurred, index, window=window)
        # where the window spans a whole soft-tissue-to-bone edge the boundary sits at its half
        # maximum (the 50 % partial-volume point of any contrast), never below t; elsewhere at t
        # (inside cancellous bone the texture has edges too, but its dark side is not soft tissue)
        edge = (local_min < low) & (local_max > high)  # the window spans a whole soft-tissue-to-bone edge
        centre[edge] = np.maximum(t, (local_max[edge] + local_min[edge]) / 2)
        top[edge] = local_max[edge]
        del local_max, local_min
    seed = (values > high) & (values - centre > seed_margin * (top - centre)) if seed_margin > 0 else values > centre
    bone = np.zeros(blurred.shape, bool)
    bone.ravel()[index[seed]] = True
    band = np.zeros(blurred.shape, bool)
    in_band = ~seed if seed_margin > 0 else np.zeros(index.size, bool)
    band.ravel()[index[in_band]] = True
    seconds["seeds"] = time.perf_counter() - clock

    clock = time.perf_counter()
    nodes = int(in_band.sum())
    if nodes:
        scale = np.maximum(np.where(values[in_band] >= centre[in_band], top[in_band] - centre[in_band],
                                    centre[in_band] - low), 1e-3) * seed_margin / np.log(19.0)
        bone.ravel()[index[in_band]] = _cut_band(blurred, band, bone, centre=centre[in_band], scale=scale,
                                                 spacing=spacing, smoothness=smoothness, inplane_only=mode == "2d")
    seconds["graph_cut"] = time.perf_counter() - clock

    clock = time.perf_counter()
    pixel_mm2 = float(spacing[1] * spacing[2])
    if fill_holes and max_hole_mm2 > 0 and not whole:  # the whole-bone step fills by its own rules
        bone = _fill_slice_holes(bone, blurred, spacing=spacing, max_pixels=int(max_hole_mm2 / pixel_mm2),
                                 marrow_hu=marrow_hu, thin_mm=joint_space_mm)
    metal_voxels = work.array >= METAL_HU
    if whole:
        dense = bone
        bone = whole_bone(bone, work.array, spacing=spacing, cancellous_hu=cancellous_hu, marrow_hu=fatty_marrow_hu,
                          grow_mm=grow_mm, max_hole_mm2=max_hole_mm2, joint_space_mm=joint_space_mm)
        if streak_mm > 0 and streak_open_mm > 0 and metal_voxels.any():
            bone = _without_streaks(bone, dense, metal_voxels, spacing, reach_mm=streak_mm, radius_mm=streak_open_mm)
    bone &= ~metal_voxels
    if metal.any():
        bone = _across_bloom(bone, metal_voxels, metal, spacing)
    if min_component_mm3 > 0:
        bone = morphology.drop_small(bone, min_voxels=int(np.ceil(min_component_mm3 / float(np.prod(spacing)))))
    seconds["cleanup"] = time.perf_counter() - clock

    labels = work.back(bone.astype(np.uint8) * np.uint8(label))
    mask = make_label_map(labels, {label: "bone"}, like=ct)
    mask.metadata.update(source="radseg annotate bone", otsu_threshold_hu=round(t, 2))
    return BoneExtraction(mask=mask, threshold_hu=t, band_hu=(low, high), graph_nodes=nodes, seconds=seconds)


def _metal(hu: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """Metal voxels and the ring of 1.5 pixels (at least 2 mm) around them, where the scan's blur
    spreads the metal's brightness over the bone and tissue it touches (metal's own HU lie far above
    the 3071 HU the scale saturates at, so its blur tail reads as bone for a millimetre or two even at
    fine pixels)."""
    metal = hu >= METAL_HU
    if not metal.any():
        return metal
    bloom_mm = max(2.0, 1.5 * float(np.max(spacing[1:])))
    return morphology.dilate_ball(metal, spacing, bloom_mm)


def _without_streaks(bone: np.ndarray, dense: np.ndarray, metal: np.ndarray, spacing: np.ndarray, *, reach_mm: float,
                     radius_mm: float) -> np.ndarray:
    """``bone`` less the grown (not ``dense``) voxels within ``reach_mm`` of ``metal`` that an in-plane
    opening by a disc of ``radius_mm`` removes: growth along thin beam-hardening streaks."""
    near = morphology.within_distance(metal, spacing, reach_mm)
    box = morphology.bounding_box(near)
    if box is None:  # no metal: no streaks
        return bone
    opened = morphology.open_inplane(bone[box], morphology.disc(spacing[1:], radius_mm))
    out = bone.copy()
    out[box] &= ~(near[box] & ~dense[box] & ~opened)
    return out


def _across_bloom(bone: np.ndarray, metal: np.ndarray, bloom: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """``bone`` with the ring the scan's blur spreads metal over (``bloom`` less ``metal``) labelled as
    the nearest voxel beyond it. There the HU read the metal's brightness (1000-2500 HU next to a cup
    or a stem), not the tissue: the liner between a prosthetic ball and its cup, and the soft tissue
    at a prosthetic neck, read as dense bone, while bone that touches the metal stays bone."""
    box = morphology.bounding_box(bloom, margin=2)
    if box is None:  # no metal
        return bone
    ring = bloom[box] & ~metal[box]
    nearest = ndimage.distance_transform_edt(bloom[box], sampling=spacing, return_distances=False, return_indices=True)
    local = bone[box]
    local[ring] = local[tuple(nearest)][ring]
    return bone


def _local_extremes(image: np.ndarray, index: np.ndarray, *, window: tuple[int, int, int], chunk: int = 48):
    """Local max and min over ``window`` at the flat ``index`` voxels, slab by slab (bounded memory)."""
    pad = window[0] // 2
    per_slice = image.shape[1] * image.shape[2]
    maxima, minima = np.empty(index.size, np.float32), np.empty(index.size, np.float32)
    bounds = np.searchsorted(index, np.arange(0, image.shape[0] + chunk, chunk) * per_slice)
    for k, z0 in enumerate(range(0, image.shape[0], chunk)):
        a, b = bounds[k], bounds[k + 1]
        if a == b:
            continue
        lo, hi = max(0, z0 - pad), min(image.shape[0], z0 + chunk + pad)
        slab = image[lo:hi]
        local = index[a:b] - lo * per_slice
        with ThreadPoolExecutor(max_workers=2) as pool:  # OpenCV releases the GIL: both filters at once
            high = pool.submit(morphology.maximum_filter, slab, window)
            minima[a:b] = morphology.minimum_filter(slab, window).ravel()[local]
            maxima[a:b] = high.result().ravel()[local]
    return maxima, minima


def _cut_band(
    hu: np.ndarray, band: np.ndarray, bone: np.ndarray, *, centre: np.ndarray, scale: np.ndarray,
    spacing: np.ndarray, smoothness: float, inplane_only: bool,
) -> np.ndarray:
    """Min cut over the band voxels; returns True (bone) per band voxel in ``np.flatnonzero(band)`` order."""
    import maxflow

    shape = hu.shape
    flat_hu = hu.ravel()
    flat_band = band.ravel()
    flat_bone = bone.ravel()
    index = np.flatnonzero(flat_band)  # sorted: a neighbour's node is found by binary search
    values = flat_hu[index].astype(np.float64)

    # Data term: a logistic around each voxel's boundary level (P = 0.05 / 0.95 at the band's edges).
    p_bone = np.clip(1.0 / (1.0 + np.exp(-(values - centre) / scale)), 1e-4, 1.0 - 1e-4)
    cap_source = -np.log(1.0 - p_bone)  # paid when the voxel goes to background (sink)
    cap_sink = -np.log(p_bone)  # paid when it stays bone (source)

    strides = (shape[1] * shape[2], shape[2], 1)
    axes = (1, 2) if inplane_only else (0, 1, 2)
    pairs = []  # (band positions p, flat neighbour q, 1/dist, forward?) per axis and direction
    for axis in axes:
        coordinate = (index // strides[axis]) % shape[axis]
        inv_dist = float(spacing.min() / spacing[axis])
        forward = np.flatnonzero(coordinate < shape[axis] - 1)
        pairs.append((forward, index[forward] + strides[axis], inv_dist, True))
        backward = np.flatnonzero(coordinate > 0)
        pairs.append((backward, index[backward] - strides[axis], inv_dist, False))
        del coordinate
    # 2 sigma^2 = mean squared neighbour difference over the band (GrabCut's choice of beta)
    total, count = 0.0, 0
    for p, q, _, _ in pairs:
        total += float(np.sum((flat_hu[q].astype(np.float64) - values[p]) ** 2))
        count += p.size
    beta_den = 2.0 * max(total / max(count, 1), 1e-6)

    graph = maxflow.Graph[float](index.size, index.size * len(axes))
    nodes = graph.add_nodes(index.size)
    for p, q, inv_dist, is_forward in pairs:
        weight = smoothness * inv_dist * np.exp(-((flat_hu[q].astype(np.float64) - values[p]) ** 2) / beta_den)
        inside = flat_band[q]
        if is_forward:  # band-band edges once, from the forward pass
            q_node = np.searchsorted(index, q[inside])
            graph.add_edges(nodes[p[inside]], nodes[q_node], weight[inside], weight[inside])
        outside = ~inside
        q_bone = flat_bone[q[outside]]
        p_out, w_out = p[outside], weight[outside]
        # A fixed neighbour: disagreeing with it costs the edge weight on the terminal link.
        cap_source += np.bincount(p_out[q_bone], weights=w_out[q_bone], minlength=index.size)
        cap_sink += np.bincount(p_out[~q_bone], weights=w_out[~q_bone], minlength=index.size)
    graph.add_grid_tedges(nodes, cap_source, cap_sink)
    graph.maxflow()
    return ~graph.get_grid_segments(nodes)


def _fill_slice_holes(mask: np.ndarray, hu: np.ndarray, *, spacing: np.ndarray, max_pixels: int,
                      marrow_hu: float, thin_mm: float) -> np.ndarray:
    """Fill holes enclosed within each axial slice.

    A hole is filled when it is not thin (its widest inscribed circle at least ``thin_mm``
    across: a thinner ring is a joint space around a bone, such as the femoral head in a slice
    through the acetabular roof, not marrow) and either its mean HU reaches ``marrow_hu``
    (cancellous bone, whatever the size) or it is at most ``max_pixels`` (darker marrow; the
    bound keeps a closed pelvic ring from swallowing the pelvic cavity). One labelling of the
    background with an in-plane neighbourhood finds the holes (components not touching their
    slice's border).
    """
    def choose(where: tuple, labels: np.ndarray, area: np.ndarray) -> np.ndarray:
        sums = np.bincount(labels.ravel(), weights=hu[where].ravel(), minlength=area.size)
        return (sums >= marrow_hu * area) | (area <= max_pixels)

    return morphology.fill_slice_holes(mask, choose, step=spacing[1:], thin_mm=thin_mm)
