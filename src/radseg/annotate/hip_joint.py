"""Acetabulum / femoral-head split on hip CT (the THA paper's AFS), per side.

1. **Bone** from :func:`radseg.annotate.bone_extraction.extract_bone` (the whole bone; or a given mask).
2. **Seed**: the thickest bone of each side, away from the midline (maximum of the distance
   transform of the bone mask, pooled so the joint space survives): a point inside the
   femoral head and a first radius.
3. **Initial slice**: from the seed's axial slice upwards, the first slice where the head's
   2D component no longer reaches the greater trochanter (nothing lateral beyond 1.3 radii).
4. **Rough circle** through three hull points of the bone in a region of interest around the
   seed (:func:`~radseg.annotate.hip_circles.rough_circle`), shrunk by 1.7; when that
   construction fails or leaves the head, the largest inscribed circle (recorded in
   ``rough_method``).
5. **Candidates** along 90 rays (FSG, L-NMS; switchable) and a **Hough circle** chosen by the
   anatomy radius (AHS; switchable).
6. **Propagation** slice by slice with snakes (scikit-image ``active_contour``) and Hough
   circles, then a **sphere model** fitted to all slice circles (least squares on
   ``r^2 + (z - z0)^2 = R^2``).
   With refinement (the default), the search runs on the bone mask with thin joint spaces
   opened from the image (:func:`~radseg.annotate.hip_seed.open_thin_gaps`), the sphere is
   refitted to the head's surface from several starts, and a head must sit on a neck.
7. **Split**: the radius is moved to the joint space (the minimum of bone occupancy on
   spherical shells within 15 % of the fitted radius); bone inside is femoral head, bone
   outside the ball that is not connected to the femur (neck, shaft) and lies within
   ``acetabulum_margin_mm`` of the head's surface is acetabulum; holes are filled.

A side holding a hip replacement (:data:`~radseg.annotate.hip_implant.MIN_IMPLANT_ML` of metal or
more) has no femoral head; its acetabulum is split off around the cup's sphere
(:func:`~radseg.annotate.hip_implant.cup_sphere`) and no head label is written. Its axial slab spans
the native head the cup replaced: the other side's femoral head when that was found (the two heads
of one person differ by well under a millimetre to about one), else the cup's outer radius less
:data:`~radseg.annotate.hip_implant.CUP_TO_HEAD_MM` (which varies with the reaming and the joint
space by a few millimetres: on the demo's implant side it left the slab's top slice out, Dice 0.87
against 0.91). The acetabulum then reaches the cup across the dark band the metal casts on the bone
it sits in (:func:`~radseg.annotate.hip_implant.bone_to_the_cup`; the demo's implant side 0.886 ->
0.938, and each of 9 implant phantoms better).

With refinement, once a head is accepted the joint space the bone mask closed around it is
opened from the image and the head refitted, in turn until the radius settles
(:func:`~radseg.annotate.hip_split.open_joint`): at 1.4 mm pixels the mask fills part of the joint
space, which inflated the fitted radius by 0.4-0.9 mm (the acetabulum's slab one 2 mm slice too
tall) and labelled the filled joint space acetabulum.

Labels (the values of the ``hip-ct`` phantom so ``radseg evaluate`` compares directly) are in
:data:`LABELS`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage
from threadpoolctl import threadpool_limits

from radseg.annotate.hip_circles import (SHRINK, Circle, propagate_circles, ray_candidates, rough_or_inscribed,
                                         select_circle)
from radseg.annotate.hip_implant import CUP_TO_HEAD_MM, MIN_IMPLANT_ML, bone_to_the_cup, cup_sphere, metal_ml
from radseg.annotate.hip_seed import (MIN_HEAD_RADIUS_MM, Candidate, choose_seeds, head_candidates, is_filled, midline,
                                      neck_fraction, open_thin_gaps, sphere_coverage)
from radseg.annotate.hip_split import FemoralHead, fit_head_surface, joint_space, open_joint, split_sides
from radseg.image import Image
from radseg.labels import METAL_HU, make_label_map
from radseg.orientation import canonical

__all__ = ["HipSide", "HipJointResult", "segment_hip_joint", "LABELS", "SIDES"]

#: The ``hip-ct`` phantom's label values and names (:data:`radseg.synth.hip_ct.LABELS`): all
#: other bone is 1, so ``radseg evaluate`` compares the output with the phantom directly.
LABELS = {1: "bone", 2: "right_acetabulum", 3: "left_acetabulum", 4: "right_femoral_head", 5: "left_femoral_head"}
_VALUES = {"right": (2, 4), "left": (3, 5)}
#: A sphere counts as a femoral head when coverage + 2 * socket (:func:`~radseg.annotate.hip_seed.sphere_coverage`)
#: reaches this: heads of the hip-ct phantom score 0.87-1.4, thick pelvic bone without a femur at most 0.55.
MIN_HEAD_SCORE = 0.7
#: With the thin gaps opened (:func:`~radseg.annotate.hip_seed.open_thin_gaps`) every joint shows a
#: socket (a sacroiliac joint scores 0.75): a head must also sit on a neck
#: (:func:`~radseg.annotate.hip_seed.neck_fraction` at least this).
MIN_NECK_FRACTION = 0.15
#: A femoral head meets its socket across the joint space in at least this fraction of directions
#: (heads found on the hip-ct phantoms: 0.16-0.48; a trochanter or a shaft taken for one: 0.02-0.04).
MIN_SOCKET = 0.1
#: Adult femoral heads measure 36-60 mm across; a smaller ball is a trochanter, a column or a cut.
MIN_ADULT_HEAD_RADIUS_MM = 15.0
#: A refit after the joint space is opened (:func:`~radseg.annotate.hip_split.open_joint`) moves the
#: radius by under a millimetre; one that moves it by more than this fraction left the head and is not used.
REFIT_TOLERANCE = 0.1
#: Seeds tried per side before giving up (the paired one first, then the next best).
MAX_SEEDS_TRIED = 3
SIDES = ("right", "left")


@dataclass
class HipSide:
    """What was found for one hip; positions are working-grid indices (slice, row, col) and mm."""

    side: str
    found: bool = False
    reason: str = ""
    seed_index: tuple[int, int, int] | None = None
    seed_radius_mm: float = 0.0
    initial_slice: int | None = None
    rough_method: str = ""
    anatomy_radius_mm: float = 0.0
    candidates: int = 0
    initial_circle: tuple[float, float, float] | None = None  # row, col, radius (px)
    slices: int = 0
    centre_index: tuple[float, float, float] | None = None
    radius_mm: float = 0.0
    split_radius_mm: float = 0.0
    coverage: float = 0.0
    socket: float = 0.0
    afs_failure: str = ""
    centre_mm: tuple[float, float, float] | None = None  # LPS world
    implant: bool = False  # a hip replacement: the acetabulum around its cup, no femoral head
    cup_radius_mm: float = 0.0

    def summary(self) -> dict[str, Any]:
        out = asdict(self)
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in out.items()}

    def status(self) -> str:
        """One phrase for tables: found, an implant's acetabulum, or not split and why."""
        if self.found:
            return "found"
        if self.implant and self.cup_radius_mm:
            return "hip implant: acetabulum around the cup, no femoral head"
        return f"not split: {self.reason or 'no femoral head found'}"


@dataclass
class HipJointResult:
    labels: Image
    sides: dict[str, HipSide] = field(default_factory=dict)
    bone: Image | None = None

    def summary(self) -> dict[str, Any]:
        return {"sides": {name: side.summary() for name, side in self.sides.items()}}


# The snakes invert a ~100 x 100 matrix per slice; OpenBLAS spreads that over every core and,
# on a busy machine, the threads' hand-off costs 100-200x the work (0.1 s instead of 0.6 ms).
@threadpool_limits.wrap(limits=1, user_api="blas")
def segment_hip_joint(
    ct: Image,
    *,
    bone: Image | None = None,
    fsg: bool = True,
    lnms: bool = True,
    ahs: bool = True,
    sides: tuple[str, ...] = SIDES,
    sigma_mm: float = 1.0,
    gate_percentile: float = 0.0,
    refine: bool = True,
) -> HipJointResult:
    """Acetabulum and femoral-head labels of each hip present; see the module docstring.

    ``refine=False`` keeps the paper's sphere (slice circles, snakes, sphere model) as it is:
    no refit to the head's surface and no search for the joint space (the split radius is the
    sphere's); the ablation of FSG, L-NMS and AHS is measured that way.
    """
    from radseg.annotate.bone_extraction import extract_bone

    unknown = set(sides) - set(SIDES)
    if unknown:
        raise ValueError(f"sides must be among {', '.join(SIDES)}, got {', '.join(sorted(unknown))}")
    if bone is None:
        bone = extract_bone(ct).mask
    # patient sides and axial slices must be what they say: an oblique volume is refused, not guessed
    work = canonical(ct, oblique="raise")
    mask = canonical(bone, oblique="raise").array > 0
    if mask.shape != work.array.shape:
        raise ValueError(f"bone mask {bone.shape} is not on the CT's grid {ct.shape}")
    spacing = work.spacing
    if abs(spacing[1] - spacing[2]) > 0.02 * spacing[1]:
        raise ValueError(f"in-plane pixels must be square, got {spacing[1]:.4g} x {spacing[2]:.4g} mm (resample first)")
    hu = ndimage.gaussian_filter(work.array.astype(np.float32), sigma=(0.0, sigma_mm / spacing[1], sigma_mm / spacing[2]))
    labels = mask.astype(np.uint8)  # every bone voxel is "bone" unless split off below
    result = HipJointResult(labels=bone, bone=bone)
    if refine:  # search and fit on the mask with the image's thin joint spaces opened
        mask = open_thin_gaps(mask, work.array, spacing)
    centre_col = midline(mask)
    seeds = choose_seeds({side: head_candidates(mask, spacing, side=side, centre_col=centre_col) for side in sides},
                         spacing, centre_col)
    spheres = []
    for side in sides:
        info = HipSide(side=side)
        result.sides[side] = info
        implant_ml = metal_ml(work.array, spacing, centre_col, side)
        if implant_ml >= MIN_IMPLANT_ML:
            info.implant = True
            info.reason = (f"a hip implant: {implant_ml:.0f} ml of metal (>= {METAL_HU:g} HU) on this side, no femoral "
                           "head to split")
            cup = cup_sphere(work.array, spacing, centre_col, side)
            if cup is not None:  # the acetabulum around the cup, sized by the native head the cup replaced
                centre, outer = cup
                spheres.append(FemoralHead(side=side, centre=centre, radius=outer - CUP_TO_HEAD_MM, split=outer))
                info.cup_radius_mm = round(outer, 2)
                info.centre_index = tuple(round(float(v), 2) for v in centre)
                info.centre_mm = tuple(round(float(v), 2) for v in ct.index_to_world(work.image_index(centre)))
                info.reason += f"; acetabulum labelled around the cup (outer radius {outer:.1f} mm)"
            continue
        tried = seeds.get(side, [])[:MAX_SEEDS_TRIED]
        found = _find_head(hu, mask, spacing, tried[0] if tried else None, side=side, info=info, fsg=fsg, lnms=lnms,
                           ahs=ahs, gate_percentile=gate_percentile)
        info.afs_failure = info.reason  # the paper's search may fail where the refit still finds the head
        found = _accept(mask, spacing, found, tried if refine else [], info) if (found is not None or refine) else None
        if found is None:
            continue
        centre, radius = found
        info.reason = ""
        if refine:
            mask, centre, radius = _open_joint_and_refit(mask, hu, centre, radius, spacing)
        split = joint_space(mask, centre, radius, spacing) if refine else radius
        spheres.append(FemoralHead(side=side, centre=centre, radius=radius, split=split))
        info.found = True
        info.centre_index = tuple(round(float(v), 2) for v in centre)
        info.radius_mm = round(float(radius), 2)
        info.split_radius_mm = round(float(split), 2)
        info.centre_mm = tuple(round(float(v), 2) for v in ct.index_to_world(work.image_index(centre)))
    native = [s.radius for s in spheres if not result.sides[s.side].implant]
    for sphere in spheres:  # a replaced hip's native head: the other side's, when that was found
        if result.sides[sphere.side].implant and native:
            sphere.radius = min(native[0], sphere.split - 1.0)
            result.sides[sphere.side].reason += (f"; its slab spans the other side's femoral head (radius "
                                                 f"{sphere.radius:.1f} mm)")
    by_side = {sphere.side: sphere for sphere in spheres}
    # metal is read only where a side has an implant (a whole-CT bool volume otherwise for nothing)
    metal = work.array >= METAL_HU if any(info.implant for info in result.sides.values()) else None
    for side, (head, acetabulum) in split_sides(mask, spheres, spacing, hu=hu, centre_col=centre_col).items():
        ace_value, head_value = _VALUES[side]
        labels[acetabulum & (labels == 1)] = ace_value
        if not result.sides[side].implant:  # a replaced hip has no femoral head
            labels[head] = head_value
        else:  # up to the cup, over the dark band the metal casts on the bone it sits in
            cup = by_side[side]
            labels[bone_to_the_cup(labels == ace_value, metal, cup.centre, cup.split, spacing) & (labels <= 1)] = ace_value
    result.labels = make_label_map(work.back(labels), dict(LABELS), like=ct)
    result.labels.metadata.update(source="radseg annotate hip-joint")
    return result


def _open_joint_and_refit(mask, hu, centre, radius, spacing, *, rounds: int = 4):
    """``(mask, centre, radius)`` after opening the joint space the bone mask closed around a head
    (:func:`~radseg.annotate.hip_split.open_joint`) and refitting the head to the opened surface, in
    turn until the radius settles (0.1 mm) or after ``rounds``: each opening starts at the radius
    found, which the closed joint space inflated, so the next one reaches a little deeper."""
    for _ in range(rounds):
        mask = open_joint(mask, hu, centre, radius, spacing)
        refit = fit_head_surface(mask, centre, radius, spacing)
        if refit is None or abs(refit[1] - radius) > REFIT_TOLERANCE * radius:
            break
        moved = abs(refit[1] - radius)
        centre, radius = refit[0], refit[1]
        if moved < 0.1:
            break
    return mask, centre, radius


def _initial_slice(mask: np.ndarray, seed: np.ndarray, radius_px: float, *, lateral: int) -> int:
    """Lowest slice at or above the seed where the head's component does not reach the trochanter."""
    structure = np.ones((3, 3), bool)
    for z in range(int(seed[0]), min(mask.shape[0], int(seed[0] + 0.5 * radius_px + 1))):
        labelled, _ = ndimage.label(mask[z], structure=structure)
        value = labelled[seed[1], seed[2]]
        if value == 0:
            continue
        cols = np.flatnonzero((labelled == value).any(axis=0))
        reach = (cols - seed[2]) * lateral
        if reach.max() <= 1.3 * radius_px:
            return z
    return int(seed[0])


def _accept(mask, spacing, found, seeds: list[Candidate], info: HipSide):
    """The first sphere that looks like a femoral head in its socket, or None (``info.reason`` says why).

    Without seeds (``refine=False``) the paper's sphere is judged as it is. With seeds, the
    paper's sphere and each seed's sphere (in turn) start a refit to the head's surface
    (:func:`~radseg.annotate.hip_split.fit_head_surface`) and the best-scoring fit of each
    attempt is judged: coverage + 2 * socket at least :data:`MIN_HEAD_SCORE`, filled with bone, and
    (with seeds) on a neck.
    """
    if not seeds:
        attempts = [[found]] if found is not None else []
    else:  # a seed's radius is too large where head and socket merge: each seed also starts at 0.85 of it
        attempts = [([found] if found is not None and k == 0 else []) + [(s.index, s.radius), (s.index, 0.85 * s.radius)]
                    for k, s in enumerate(seeds)]
    for starts in attempts:
        scored = []
        for start in starts:
            fit = fit_head_surface(mask, start[0], start[1], spacing) if seeds else (*start, 0.0)
            if fit is not None:
                coverage, socket, _, _ = sphere_coverage(mask, fit[0], fit[1], spacing, rounds=0)
                scored.append((coverage + 2.0 * socket, coverage, socket, fit[:2]))
        if not scored:
            continue
        score, coverage, socket, (centre, radius) = max(scored, key=lambda item: item[0])
        info.coverage, info.socket = round(coverage, 3), round(socket, 3)
        if radius < MIN_ADULT_HEAD_RADIUS_MM:
            info.reason = (f"no femoral head here: the best sphere (radius {radius:.1f} mm) is smaller than an adult "
                           f"femoral head ({MIN_ADULT_HEAD_RADIUS_MM:g} mm or more)")
        elif score < MIN_HEAD_SCORE or (seeds and socket < MIN_SOCKET):
            info.reason = (f"no femoral head here: the best sphere (radius {radius:.1f} mm) is round in {coverage:.0%} "
                           f"of directions and meets a socket in {socket:.0%}")
        elif not is_filled(mask, centre, radius, spacing):
            info.reason = f"the sphere found (radius {radius:.1f} mm) is not filled with bone: no femoral head here"
        elif seeds and neck_fraction(mask, centre, radius, spacing, side=info.side) < MIN_NECK_FRACTION:
            info.reason = f"the sphere found (radius {radius:.1f} mm) sits on no femoral neck: no femoral head here"
        else:
            info.reason = ""
            return centre, radius
    return None


def _find_head(hu, mask, spacing, seed: Candidate | None, *, side, info: HipSide, fsg, lnms, ahs, gate_percentile):
    """The femoral head sphere ``(centre index (slice, row, col), radius mm)`` of one side, or None."""
    if seed is None:
        info.reason = f"no bone {MIN_HEAD_RADIUS_MM:g} mm thick on this side"
        return None
    index, radius_mm = np.round(seed.index).astype(int), seed.radius
    index = np.clip(index, 0, np.array(mask.shape) - 1)
    info.seed_index, info.seed_radius_mm = tuple(int(v) for v in index), round(radius_mm, 2)
    if radius_mm < MIN_HEAD_RADIUS_MM:
        info.reason = f"no bone thick enough for a femoral head (thickest {radius_mm:.1f} mm radius)"
        return None
    px = float(spacing[1])
    lateral = -1 if side == "right" else 1  # patient right is at low columns
    radius_px = radius_mm / px
    z0 = _initial_slice(mask, index, radius_px, lateral=lateral)
    info.initial_slice = z0
    half = int(np.ceil(1.6 * radius_px))
    r0, c0 = max(0, index[1] - half), max(0, index[2] - half)
    window = (slice(r0, index[1] + half + 1), slice(c0, index[2] + half + 1))
    image, bone2d = hu[z0][window], mask[z0][window]
    anatomy, rough, method = rough_or_inscribed(bone2d, (index[1] - r0, index[2] - c0), radius_px, medial=-lateral)
    info.rough_method = method
    info.anatomy_radius_mm = round(anatomy.radius * px, 2)
    # candidates only in bone: the bone mask, or its brightest part (the cortex) with gate_percentile
    gate = bone2d if gate_percentile <= 0 else bone2d & (image > np.percentile(image[bone2d], gate_percentile)) if bone2d.any() else bone2d
    points = ray_candidates(image, rough, gate=gate, fsg=fsg, lnms=lnms)
    info.candidates = int(len(points))
    radii = np.arange(int(rough.radius), int(np.ceil(rough.radius * SHRINK * 1.5)) + 1)
    circle = select_circle(points, image.shape, radii, anatomy_radius=anatomy.radius, ahs=ahs)
    if circle is None:
        info.reason = f"no circle fits the {len(points)} boundary candidates of slice {z0}"
        return None
    circle = Circle(circle.row + r0, circle.col + c0, circle.radius, circle.score)
    info.initial_circle = (circle.row, circle.col, circle.radius)
    circles = propagate_circles(hu, circle, z0, spacing)
    info.slices = len(circles)
    fit = _fit_sphere(circles, spacing)
    if fit is None:
        info.reason = f"the slice circles ({len(circles)}) do not fit a sphere"
        return None
    return fit


def _fit_sphere(circles: list[tuple[int, Circle]], spacing: np.ndarray) -> tuple[np.ndarray, float] | None:
    """Sphere ``(centre index, radius mm)`` from slice circles: ``r^2 + z^2 = 2 z z0 + (R^2 - z0^2)``, robustly."""
    if len(circles) < 3:
        return None
    z = np.array([c[0] for c in circles], float) * spacing[0]
    r = np.array([c[1].radius for c in circles]) * spacing[1]
    rows = np.array([c[1].row for c in circles])
    cols = np.array([c[1].col for c in circles])
    keep = np.ones(len(z), bool)
    for _ in range(3):
        if keep.sum() < 3:
            return None
        design = np.stack([2 * z[keep], np.ones(keep.sum())], axis=1)
        (z0, k), *_ = np.linalg.lstsq(design, r[keep] ** 2 + z[keep] ** 2, rcond=None)
        big_r2 = k + z0 ** 2
        if big_r2 <= 0:
            return None
        predicted = np.sqrt(np.clip(big_r2 - (z - z0) ** 2, 0, None))
        keep = np.abs(predicted - r) <= max(2.0, 2.0 * spacing[1])
    centre = np.array([z0 / spacing[0], np.median(rows[keep]), np.median(cols[keep])])
    return centre, float(np.sqrt(big_r2))
