"""Where the femoral heads are: candidates by the distance transform, scored by roundness and socket.

Candidates are the local maxima of the distance transform of the bone (on ~2 mm voxels, pooled
so that a voxel is bone only when all its fine voxels are: a joint space a voxel wide still
separates head and socket). Each is scored by :func:`sphere_coverage`: a femoral head is round
in every direction but its neck, and across a thin joint space it meets its socket; a
trochanter, a shaft or a pelvic column is at most round. The two heads of a patient lie at
about the same height and depth, mirrored about the midline, so the pair is chosen together
(:func:`choose_seeds`) and a clear side helps a doubtful one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from radseg.annotate import morphology
from radseg.geometry import ball_box, box_distances, fit_sphere, sphere_directions

__all__ = ["Candidate", "midline", "head_candidates", "choose_seeds", "sphere_coverage", "open_thin_gaps", "neck_fraction",
           "is_filled"]

MIN_HEAD_RADIUS_MM = 8.0
MIN_MIDLINE_DISTANCE_MM = 35.0
MAX_CANDIDATES = 30
#: Distance-transform maxima closer than this are one candidate (a ridge along a shaft is not many).
PEAK_SEPARATION_MM = 16.0
#: Score lost per millimetre of asymmetry between the two heads of a pair.
ASYMMETRY_PER_MM = 1.0 / 20.0
#: In-plane black top-hat (disc of this radius) and the contrast that marks a closed joint space.
GAP_RADIUS_MM = 2.0
GAP_CONTRAST_HU = 150.0
#: Axial-slice holes up to this area (mm^2) are pores, filled before the search (:func:`fill_pores`).
PORE_MM2 = 30.0
#: A candidate's centre must lie at least this many radii inside the first and last slice (its ball in the scan).
EDGE_FRACTION = 1.0


@dataclass(frozen=True)
class Candidate:
    score: float  # coverage + 2 * socket
    index: np.ndarray  # working-grid index (slice, row, col)
    radius: float  # mm


def midline(mask: np.ndarray) -> float:
    """Column of the body's midline: the middle of the bone's left-right extent."""
    cols = np.flatnonzero(mask.any(axis=(0, 1)))
    return (cols[0] + cols[-1]) / 2.0 if cols.size else mask.shape[2] / 2.0


def open_thin_gaps(mask: np.ndarray, ct: np.ndarray, spacing: np.ndarray, *, radius_mm: float = GAP_RADIUS_MM,
                   contrast_hu: float = GAP_CONTRAST_HU) -> np.ndarray:
    """The bone mask without the thin dark valleys between bright cortices that an in-plane black
    top-hat finds: a joint space of 0.5-2.5 mm that partial volume closed in the mask (there its
    HU is that of cancellous bone) but the image still shows as a valley. Cancellous bone wider
    than the disc is no valley and stays."""
    from radseg.annotate.bone_interior import thin_valleys

    zs = np.flatnonzero(mask.any(axis=(1, 2)))
    if zs.size == 0:
        return mask
    box = slice(zs[0], zs[-1] + 1)
    out = mask.copy()
    out[box] &= ~thin_valleys(ct[box], spacing, radius_mm=radius_mm, contrast_hu=contrast_hu)
    return out


def fill_pores(mask: np.ndarray, spacing: np.ndarray, *, max_mm2: float = PORE_MM2) -> np.ndarray:
    """``mask`` with the small holes of each axial slice filled: at fine pixels the fatty pores of a
    femoral head riddle it, and the pooled mask of :func:`head_candidates` (a coarse voxel is bone
    only when all its fine voxels are) would lose the head. A joint space is a long ring, far larger."""
    from radseg.annotate.morphology import fill_slice_holes

    max_voxels = max_mm2 / float(spacing[1] * spacing[2])
    return fill_slice_holes(mask, lambda where, labels, area: area <= max_voxels)


def head_candidates(mask: np.ndarray, spacing: np.ndarray, *, side: str, centre_col: float) -> list[Candidate]:
    """Scored candidate head centres of one side (``right``: columns below the midline), best first."""
    factors = np.maximum(1, np.round(2.0 / spacing)).astype(int)
    if factors[1:].min() > 1:  # pooled in-plane: pores would riddle it
        mask = fill_pores(mask, spacing)
    trimmed = mask[: mask.shape[0] // factors[0] * factors[0], : mask.shape[1] // factors[1] * factors[1],
                   : mask.shape[2] // factors[2] * factors[2]]
    shape = np.array(trimmed.shape) // factors
    if np.any(shape == 0):
        return []
    pooled = trimmed.reshape(shape[0], factors[0], shape[1], factors[1], shape[2], factors[2]).all(axis=(1, 3, 5))
    coarse = spacing * factors
    # outside the scan is not bone: a femoral shaft cut by the volume's edge is no thick ball
    depth = ndimage.distance_transform_edt(np.pad(pooled, 1), sampling=coarse)[1:-1, 1:-1, 1:-1]
    cols = (np.arange(shape[2]) + 0.5) * factors[2] - 0.5
    away = (cols - centre_col) * spacing[2]
    allowed = away <= -MIN_MIDLINE_DISTANCE_MM if side == "right" else away >= MIN_MIDLINE_DISTANCE_MM
    depth[:, :, ~allowed] = 0
    size = morphology.window_voxels(PEAK_SEPARATION_MM, coarse)
    peaks = np.argwhere((depth == ndimage.maximum_filter(depth, size=size)) & (depth >= MIN_HEAD_RADIUS_MM))
    peaks = peaks[np.argsort(-depth[tuple(peaks.T)])][:MAX_CANDIDATES]
    found = []
    for peak in peaks:
        radius = float(depth[tuple(peak)]) + float(coarse.mean()) / 2.0
        coverage, socket, index, radius = sphere_coverage(mask, (peak + 0.5) * factors - 0.5, radius, spacing)
        if min(index[0], mask.shape[0] - 1 - index[0]) * spacing[0] < EDGE_FRACTION * radius:
            continue  # a ball the scan cuts through (a femoral shaft at the last slice) cannot be judged
        found.append(Candidate(coverage + 2.0 * socket, index, radius))
    return sorted(found, key=lambda c: -c.score)


def choose_seeds(candidates: dict[str, list[Candidate]], spacing: np.ndarray, centre_col: float) -> dict[str, list[Candidate]]:
    """Per side the candidates in the order to try: first the member of the best pair (the two
    scores counting their mirror symmetry), then the rest by score."""
    sides = [side for side, found in candidates.items() if found]
    if len(sides) < 2:
        return {side: list(candidates[side]) for side in sides}
    best, pair = -np.inf, None
    for right in candidates["right"]:
        for left in candidates["left"]:
            mirrored = left.index.copy()
            mirrored[2] = 2 * centre_col - mirrored[2]
            asymmetry = float(np.linalg.norm((right.index - mirrored) * spacing))
            value = right.score + left.score - ASYMMETRY_PER_MM * asymmetry
            if value > best:
                best, pair = value, {"right": right, "left": left}
    return {side: [pair[side]] + [c for c in candidates[side] if c is not pair[side]] for side in sides}


def _exits(mask, centre, radius, spacing, directions, socket_mm):
    """Where each ray from ``centre`` first leaves the bone (mm, inf if not within reach), and
    whether it meets bone again within ``socket_mm`` after that."""
    steps = np.arange(0.2 * radius, 1.5 * radius + socket_mm, 0.5 * float(spacing.min()))
    points = centre[None, None, :] + directions[:, None, :] * steps[None, :, None] / spacing[None, None, :]
    inside = ndimage.map_coordinates(mask.astype(np.uint8), points.reshape(-1, 3).T, order=0, mode="constant")
    inside = inside.reshape(len(directions), len(steps)).astype(bool)
    first = np.argmax(~inside, axis=1)
    exits = np.where(inside.all(axis=1), np.inf, steps[first])
    # a ray that leaves the scan before it leaves the bone says nothing about roundness
    edge = points[np.arange(len(directions)), first]
    exits[np.any((edge < 0) | (edge > np.array(mask.shape) - 1), axis=1)] = np.inf
    again = (inside & (steps[None, :] > exits[:, None]) & (steps[None, :] <= exits[:, None] + socket_mm)).any(axis=1)
    return exits, again


def sphere_coverage(mask: np.ndarray, centre: np.ndarray, radius: float, spacing: np.ndarray, *,
                    rays: int = 160, rounds: int = 6, socket_mm: float = 8.0) -> tuple[float, float, np.ndarray, float]:
    """``(coverage, socket, centre, radius)`` of the sphere fitted to where rays from ``centre`` leave
    the bone (``rounds`` refits, accepting exits within 40 % of the radius at first and 15 % at the
    end; ``rounds=0`` scores the sphere as given): ``coverage`` is the fraction of rays leaving
    within 15 % of that sphere (a head is round everywhere but at its neck; a trochanter, a shaft
    or a pelvic column is not), ``socket`` the fraction that then meet bone again within
    ``socket_mm`` (the acetabulum across the joint space)."""
    directions = sphere_directions(rays)
    centre = np.asarray(centre, float)
    for tolerance in np.linspace(0.4, 0.15, rounds) if rounds else []:
        exits, _ = _exits(mask, centre, radius, spacing, directions, socket_mm)
        near = np.abs(exits - radius) <= tolerance * radius
        if near.sum() < 12:
            break
        fit = fit_sphere(directions[near] * exits[near, None], method="algebraic")  # mm, relative to centre
        fitted, new_radius = fit.centre, fit.radius
        if not np.isfinite(new_radius) or new_radius <= 0 or np.linalg.norm(fitted) > radius:
            break
        centre, radius = centre + fitted / spacing, new_radius
    exits, again = _exits(mask, centre, radius, spacing, directions, socket_mm)
    near = np.abs(exits - radius) <= 0.15 * radius
    return float(near.mean()), float((near & again).mean()), centre, radius


def neck_fraction(mask: np.ndarray, centre: np.ndarray, radius: float, spacing: np.ndarray, *, side: str) -> float:
    """Fraction of directions within 45 degrees of a typical neck axis (down and lateral, 40
    degrees below the horizontal) that are still in bone at 1.2 radii: a femoral head sits on a
    neck (the wide cone allows for neck-shaft angle and anteversion); a round bit of pelvis
    across a thin joint (sacroiliac) does not, nor a ball at a cut."""
    lateral = -1.0 if side == "right" else 1.0  # patient right is at low columns
    neck = np.array([-np.sin(np.radians(40)), 0.0, lateral * np.cos(np.radians(40))])
    directions = sphere_directions(600)
    directions = directions[directions @ neck >= np.cos(np.radians(45))]
    points = np.asarray(centre, float)[None, :] + directions * 1.2 * radius / spacing[None, :]
    inside = ndimage.map_coordinates(mask.astype(np.uint8), points.T, order=0, mode="constant")
    return float(inside.mean()) if inside.size else 0.0


def is_filled(mask, centre, radius, spacing) -> bool:
    """A femoral head is mostly bone (its cortex and its filled cancellous interior)."""
    box = ball_box(mask.shape, centre, radius, spacing)
    distance = box_distances(box, centre, spacing)
    inside = distance <= 0.9 * radius
    return inside.any() and float(mask[box][inside].mean()) >= 0.8
