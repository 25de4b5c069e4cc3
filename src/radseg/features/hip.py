"""Hip measurements from an AP pelvis / hip radiograph label map, per hip.

Structures: ``"right femur"``, ``"right acetabulum"`` (and left) by name, else HexAI's values
(1/2 right/left acetabulum, 3/4 right/left ilium-ischium-pubis, 5/6 right/left femur).

* **Femoral head** (``femoral_head_diameter``; ``femoral_head_centre_row_mm``/``_col_mm``, mm
  from the centre of pixel [0, 0] along rows and columns): a circle fitted to the femur outline: a seeded RANSAC finds the longest circular stretch of
  the proximal outline (radius 8-40 mm), least squares refines it on its inliers. The note
  gives the RMS residual and how much of the circle the head outline covers.
* **min_jsw**: smallest distance (mm) between the femoral head outline (femur outline within
  1.2 radii of the head centre) and the acetabulum outline, edge to edge, the distance profile
  averaged over 5 pixels of outline (:func:`~radseg.features.geometry.min_gap`). When the
  acetabulum label borders the head over more than 30 degrees (a label that includes the
  acetabular walls, which overlap the head in an AP projection, as THA-style slab labels do)
  no joint space is visible in the labels, and it is reported as not measured.
* **lcea** (lateral centre-edge angle of Wiberg, degrees): between the vertical through the
  head centre and the line from the centre to the lateral acetabular rim, positive when the
  rim lies lateral of the vertical. The vertical is perpendicular to the line joining both
  head centres when both hips are labelled, else the image vertical (the note says which).
  The rim is the most lateral acetabulum outline point above the centre and within 1.5 head
  radii of it (of equally lateral points, the highest): the lateral end of the roof.
* **neck_shaft_angle** (degrees): between the neck axis and the shaft axis. Neck axis: from
  the head centre through the midpoint of the narrowest chord across the neck (searched
  1-1.8 head radii from the centre over all chord directions, a cut that parts the head from
  the shaft), averaged with the line through the middle of the opening the neck leaves in
  the head outline; when the two disagree by more than 4 degrees (a chord clipped by a large
  greater trochanter) the opening alone. Shaft axis: a line through the midpoints of the
  femur's rows in the straight part of the shaft (rows more than 2 radii below the head whose
  width stays within 25% of the distal width). Not measured when less than 10 mm of shaft is
  in the picture.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from radseg.features.base import Measurement, circle, line, missing, point
from radseg.features.geometry import angle_deg, contours, min_gap, ransac_circle
from radseg.features.structures import (
    SIDES,
    Structures,
    as_2d,
    largest_component,
    right_direction,
)
from radseg.image import Image

__all__ = ["HIP_VALUES", "compute", "fit_femoral_head"]

HIP_VALUES = {"right": {"acetabulum": 1, "pelvis": 3, "femur": 5}, "left": {"acetabulum": 2, "pelvis": 4, "femur": 6}}
HEAD_RADIUS_MM = (8.0, 40.0)
GAP_WINDOW_PX = 5
CONTACT_DEG = 30.0  # a longer contact than this is overlap in projection, not a closed joint
_HEAD = ("femoral_head_diameter", "femoral_head_centre_row_mm", "femoral_head_centre_col_mm")
_ALL = (*_HEAD, "min_jsw", "lcea", "neck_shaft_angle")
_UNITS = {"lcea": "deg", "neck_shaft_angle": "deg"}


def fit_femoral_head(femur: np.ndarray, spacing, *, radius_range=HEAD_RADIUS_MM, seed: int = 0):
    """``(Sphere, coverage_deg, outline points)`` of the femoral head, or None when no round head is found."""
    points = np.concatenate(contours(femur, spacing))
    proximal = points[points[:, 0] <= points[:, 0].min() + 2.5 * radius_range[1]]
    sample = proximal[:: max(1, len(proximal) // 3000)]
    tolerance = max(0.75 * float(max(spacing)), 0.3)
    head = ransac_circle(sample, radius_range=radius_range, tolerance=tolerance, seed=seed)
    if head is None:
        return None
    on_circle = np.abs(np.linalg.norm(points - head.centre, axis=1) - head.radius) <= tolerance
    angles = np.sort(np.arctan2(*(points[on_circle] - head.centre).T))
    gaps = np.diff(np.concatenate([angles, angles[:1] + 2 * np.pi]))
    coverage = float(np.degrees(2 * np.pi - gaps.max())) if len(angles) > 2 else 0.0
    return head, coverage, points


def _up_and_lateral(side: str, centres: dict, right_dir: int) -> tuple[np.ndarray, np.ndarray, str]:
    """Unit vectors (row, col) pointing superior and lateral for this hip, and how they were chosen."""
    if len(centres) == 2:
        across = centres["left"] - centres["right"]  # from the right head to the left head
        across /= np.linalg.norm(across)
        up = np.array([-across[1], across[0]])
        up = up if up[0] < 0 else -up
        lateral = -across if side == "right" else across
        return up, lateral, "vertical perpendicular to the line through both head centres"
    lateral_col = right_dir if side == "right" else -right_dir
    return np.array([-1.0, 0.0]), np.array([0.0, float(lateral_col)]), "image vertical (one hip only)"


def _separates(femur: np.ndarray, spacing, a: np.ndarray, b: np.ndarray, head: np.ndarray) -> bool:
    """True when cutting the femur along a-b leaves the head centre apart from the most distal femur."""
    from scipy import ndimage

    steps = int(np.ceil(np.linalg.norm(b - a) / (0.5 * float(min(spacing))))) + 2
    line_pts = a + np.linspace(-0.05, 1.05, steps)[:, None] * (b - a)
    cut = femur.copy()
    idx = np.rint(line_pts / spacing).astype(int)
    for dr, dc in ((0, 0), (1, 0), (0, 1), (-1, 0), (0, -1)):  # a cut two pixels thick, no 8-connected leak
        r, c = idx[:, 0] + dr, idx[:, 1] + dc
        ok = (r >= 0) & (r < femur.shape[0]) & (c >= 0) & (c < femur.shape[1])
        cut[r[ok], c[ok]] = False
    parts, _ = ndimage.label(cut)
    h = tuple(np.clip(np.rint(head / spacing).astype(int), 0, np.array(femur.shape) - 1))
    distal = np.argwhere(cut)[-1]  # the lowest femur pixel
    return parts[h] != 0 and parts[h] != parts[tuple(distal)]


def _neck_axis_gap(femur_pts, centre, radius, tolerance):
    """Unit vector from the head centre through the middle of the head outline's neck opening."""
    on_circle = np.abs(np.linalg.norm(femur_pts - centre, axis=1) - radius) <= tolerance
    angles = np.sort(np.arctan2(*(femur_pts[on_circle] - centre).T))
    gaps = np.diff(np.concatenate([angles, angles[:1] + 2 * np.pi]))
    k = int(np.argmax(gaps))
    mid = angles[k] + gaps[k] / 2
    return np.array([np.sin(mid), np.cos(mid)])


def _neck_axis(femur: np.ndarray, spacing, centre: np.ndarray, radius: float, guess_vec=None, span=40.0):
    """``(unit vector from the head centre along the neck, narrowest chord ends)`` or None.

    The neck axis runs through the head centre and the midpoint of the neck's narrowest chord:
    for candidate axes within 40 degrees of the femur's mean direction 1.15-1.5 radii out, the
    femur is cut by lines perpendicular to the axis 1-1.8 radii from the centre; the shortest
    cut that separates the head from the shaft (a true cross-section of the neck, not a corner
    clipped off the trochanter) gives the midpoint.
    """
    spacing = np.asarray(spacing, float)
    offsets = np.argwhere(femur) * spacing - centre
    dist = np.linalg.norm(offsets, axis=1)
    ring = offsets[(dist >= 1.15 * radius) & (dist <= 1.5 * radius)]
    if len(ring) == 0:
        return None
    guess = np.arctan2(*np.mean(ring / np.linalg.norm(ring, axis=1)[:, None], axis=0)) if guess_vec is None else np.arctan2(*guess_vec)
    step = 0.5 * float(spacing.min())
    s = np.arange(-1.5 * radius, 1.5 * radius + step / 2, step)  # along each cut
    t = np.arange(1.0 * radius, 1.8 * radius, step)  # along the candidate axis: head to trochanters
    middle = len(s) // 2
    candidates = []
    for phi in guess + np.radians(np.arange(-span, span + 0.5, 1.0)):
        axis = np.array([np.sin(phi), np.cos(phi)])  # (row, col), arctan2(row, col) convention
        normal = np.array([-axis[1], axis[0]])
        pts = centre + t[:, None, None] * axis + s[None, :, None] * normal  # [t, s, 2]
        idx = np.rint(pts / spacing).astype(int)
        ok = np.all((idx >= 0) & (idx < femur.shape), axis=-1)
        inside = np.zeros(ok.shape, bool)
        inside[ok] = femur[idx[ok][:, 0], idx[ok][:, 1]]
        outside = ~inside  # the run of femur through the axis point ends at the first gap on each side
        left = np.where(outside[:, :middle].any(axis=1), middle - np.argmax(outside[:, middle - 1::-1], axis=1), 0)
        right = np.where(outside[:, middle:].any(axis=1), middle + np.argmax(outside[:, middle:], axis=1), len(s))
        valid = inside[:, middle] & (left > 0) & (right < len(s))
        for k in np.flatnonzero(valid):
            a = centre + t[k] * axis + s[left[k]] * normal
            b = centre + t[k] * axis + s[right[k] - 1] * normal
            candidates.append(((right[k] - left[k]) * step, a, b))
    candidates.sort(key=lambda item: item[0])
    # test on a crop around the head: the cut must part the head from the femur 3 radii below
    lo = np.maximum(np.floor((centre - 3 * radius) / spacing).astype(int), 0)
    hi = np.minimum(np.ceil((centre + 3 * radius) / spacing).astype(int) + 1, femur.shape)
    crop, shift = femur[lo[0]:hi[0], lo[1]:hi[1]], lo * spacing
    for _, a, b in candidates[:200]:
        if _separates(crop, spacing, a - shift, b - shift, centre - shift):
            mid = (a + b) / 2
            return (mid - centre) / np.linalg.norm(mid - centre), (a, b)
    return None


def _combined_neck_axis(femur, femur_pts, spacing, centre, radius):
    """``(unit neck direction, waist chord or None, how)``: the waist and the head-outline opening
    agree within 4 degrees -> their mean; else the opening alone (a waist clipped by a big
    greater trochanter is the usual culprit). On projected ``hip-xray`` hips the neck-shaft
    angle comes within about 1 degree of the phantom's on average, worst about 6 where a high
    greater trochanter hides most of a short, anteverted neck."""
    gap = _neck_axis_gap(femur_pts, centre, radius, max(0.75 * float(max(spacing)), 0.3))
    found = _neck_axis(femur, spacing, centre, radius)
    if found is None:
        return gap, None, "through the middle of the head outline's neck opening"
    waist, chord = found
    if angle_deg(waist, gap) <= 4.0:
        mean = waist + gap
        return mean / np.linalg.norm(mean), chord, "mean of the narrowest-neck and head-opening axes"
    return gap, None, "through the middle of the head outline's neck opening (the narrowest neck chord disagreed)"


def _shaft_axis(femur: np.ndarray, spacing, centre: np.ndarray, radius: float):
    """(point, unit direction pointing distally, rows used) of the shaft axis, or None."""
    sr, sc = spacing
    first = int(np.ceil((centre[0] + 2.0 * radius) / sr))
    rows = [r for r in range(max(first, 0), femur.shape[0]) if femur[r].any()]
    if not rows:
        return None
    lo = np.array([np.flatnonzero(femur[r])[0] for r in rows], float)
    hi = np.array([np.flatnonzero(femur[r])[-1] for r in rows], float)
    width = hi - lo + 1
    distal = np.median(width[-max(1, len(width) // 3):])
    keep = len(width)
    while keep > 0 and width[keep - 1] <= 1.25 * distal:  # the straight part, from the bottom up
        keep -= 1
    rows_used = np.asarray(rows[keep:], float)
    if len(rows_used) * sr < 10.0 or len(rows_used) < 5:
        return None
    mid_col = (lo[keep:] + hi[keep:]) / 2.0 * sc
    slope, intercept = np.polyfit(rows_used * sr, mid_col, 1)
    direction = np.array([1.0, slope]) / np.hypot(1.0, slope)
    top = np.array([rows_used[0] * sr, slope * rows_used[0] * sr + intercept])
    return top, direction, rows_used


def _intersection(p, u, q, v) -> np.ndarray | None:
    matrix = np.column_stack([u, -v])
    if abs(np.linalg.det(matrix)) < 1e-9:
        return None
    t, _ = np.linalg.solve(matrix, q - p)
    return p + t * u


def _joint_space(side: str, femur, cup: np.ndarray, head, femur_pts: np.ndarray, spacing) -> Measurement:
    c, r = head.centre, head.radius
    pixel = float(max(spacing))
    arc = femur_pts[np.abs(np.linalg.norm(femur_pts - c, axis=1) - r) <= max(0.75 * pixel, 0.3)]
    touching = cKDTree(cup).query(arc)[0] <= pixel
    if touching.any():
        contact = len(np.unique(np.floor(np.degrees(np.arctan2(*(arc[touching] - c).T)))))  # 1-degree bins
        if contact > CONTACT_DEG:
            return Measurement(f"{side} hip", "min_jsw", None, "mm",
                               f"the acetabulum label borders the femoral head over about {contact:.0f} deg (its walls "
                               "overlap the head in this projection): no joint space is visible in the labels")
    near_head = lambda pts: np.linalg.norm(pts - c, axis=1) <= 1.2 * r
    gap, p, q = min_gap(contours(femur, spacing), cup, window=GAP_WINDOW_PX * pixel, keep=near_head)
    return Measurement(f"{side} hip", "min_jsw", gap, "mm",
                       f"closest femoral head - acetabulum outlines (distance averaged over {GAP_WINDOW_PX} pixels of outline)",
                       marks=[line(p, q, text=f"{side} min JSW {gap:.1f} mm", colour=(255, 80, 80))])


def _lcea(side: str, cup: np.ndarray, c, r, up, lateral, how: str, spacing) -> Measurement:
    v = cup - c
    above = (v @ up > 0) & (np.linalg.norm(v, axis=1) <= 1.5 * r)
    if not above.any():
        return Measurement(f"{side} hip", "lcea", None, "deg", "no acetabulum above the femoral head")
    candidates = cup[above]
    reach = (candidates - c) @ lateral
    margin = candidates[reach >= reach.max() - 0.5 * float(min(spacing))]  # the most lateral points ...
    rim = margin[int(np.argmax((margin - c) @ up))]  # ... and of those the highest: the roof's lateral edge
    angle = float(np.degrees(np.arctan2((rim - c) @ lateral, (rim - c) @ up)))
    return Measurement(f"{side} hip", "lcea", angle, "deg",
                       f"rim = most lateral (then highest) acetabular point above the head, within 1.5 radii; {how}",
                       marks=[line(c, c + 1.6 * r * up, colour=(255, 255, 255)),
                              line(c, rim, text=f"{side} LCEA {angle:.1f} deg", colour=(255, 200, 0)),
                              point(rim, colour=(255, 200, 0))])


def measure_hip(side: str, femur: np.ndarray, acetabulum: np.ndarray | None, head_fit, spacing,
                up: np.ndarray, lateral: np.ndarray, how: str) -> list[Measurement]:
    structure = f"{side} hip"
    head, coverage, femur_pts = head_fit
    c, r = head.centre, head.radius
    out = [Measurement(structure, "femoral_head_diameter", 2 * r, "mm",
                       f"circle fit: RMS {head.rms:.2f} mm, outline covers {coverage:.0f} deg of the circle",
                       marks=[circle(c, r, text=f"{side} head d={2 * r:.1f} mm"), point(c, colour=(0, 255, 255))])]
    out += [Measurement(structure, "femoral_head_centre_row_mm", float(c[0]), "mm", "row index x row spacing"),
            Measurement(structure, "femoral_head_centre_col_mm", float(c[1]), "mm", "column index x column spacing")]
    if acetabulum is None:
        out += missing(structure, ("min_jsw", "lcea"), "mm", f"no {side} acetabulum in the label map")
    else:
        cup = np.concatenate(contours(acetabulum, spacing))
        out.append(_joint_space(side, femur, cup, head, femur_pts, spacing))
        out.append(_lcea(side, cup, c, r, up, lateral, how, spacing))
    neck, waist, neck_how = _combined_neck_axis(femur, femur_pts, spacing, c, r)
    shaft = _shaft_axis(femur, spacing, c, r)
    if neck is None or shaft is None:
        why = "femoral neck not found" if neck is None else "less than 10 mm of straight femoral shaft in the picture"
        out.append(Measurement(structure, "neck_shaft_angle", None, "deg", why))
        return out
    top, down, rows = shaft
    nsa = angle_deg(-neck, down)
    meet = _intersection(c, neck, top, down)
    meet = meet if meet is not None else top
    bottom = top + down * (rows[-1] - rows[0]) * spacing[0] / down[0]
    out.append(Measurement(structure, "neck_shaft_angle", nsa, "deg",
                           f"neck axis: {neck_how}; shaft axis fitted over {len(rows)} rows",
                           marks=[line(c, meet, colour=(0, 255, 0)), line(meet, bottom, colour=(0, 255, 0)),
                                  *([line(*waist, colour=(0, 160, 0))] if waist is not None else []),
                                  point(meet, text=f"{side} NSA {nsa:.1f} deg", colour=(0, 255, 0))]))
    return out


def compute(labels: Image, *, image: Image | None = None) -> list[Measurement]:
    """Femoral head, joint space, LCEA and neck-shaft angle of each hip in the label map."""
    labels = as_2d(labels)
    spacing = labels.spacing
    found = Structures(labels)
    femurs = {side: found.find([f"{side} femur"], [HIP_VALUES[side]["femur"]]) for side in SIDES}
    cups = {side: found.find([f"{side} acetabulum"], [HIP_VALUES[side]["acetabulum"]]) for side in SIDES}
    right_dir, _ = right_direction(labels, femurs["right"], femurs["left"])
    fits, out = {}, {}
    for side in SIDES:
        if femurs[side] is None:
            if cups[side] is not None:
                out[side] = missing(f"{side} hip", _ALL, "mm", f"no {side} femur in the label map")
            continue
        femurs[side] = largest_component(femurs[side])
        fit = fit_femoral_head(femurs[side], spacing)
        if fit is None or fit[1] < 120.0:
            out[side] = missing(f"{side} hip", _ALL, "mm", f"no round {side} femoral head found "
                                f"(radius {HEAD_RADIUS_MM[0]:g}-{HEAD_RADIUS_MM[1]:g} mm covering >= 120 deg)")
            continue
        fits[side] = fit
    centres = {side: fit[0].centre for side, fit in fits.items()}
    for side, fit in fits.items():
        up, lateral, how = _up_and_lateral(side, centres, right_dir)
        out[side] = measure_hip(side, femurs[side], cups[side], fit, spacing, up, lateral, how)
    rows = [m for side in SIDES for m in out.get(side, [])]
    for m in rows:
        if m.value is None and m.name in _UNITS:
            m.unit = _UNITS[m.name]
    if not rows:
        rows = missing("hip", _ALL, "mm", "no femur found (names like 'right femur', or HexAI values 5/6)")
    return found.tag(rows)
