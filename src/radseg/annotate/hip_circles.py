"""The 2D steps of the femoral-head search on one axial slice (the THA paper's AFS).

Coordinates are (row, col) in pixels of the slice, rows anterior->posterior, columns patient
right->left (the working layout of :mod:`radseg.orientation`); in-plane pixels are
assumed square (the caller resamples radii in mm).

* :func:`rough_circle` - the rough anatomic circle through three convex-hull points.
* :func:`ray_candidates` - rays along the normals of the rough circle; boundary candidates by
  the second-order test, optionally with the first-order test (FSG) and line non-maximum
  suppression (L-NMS).
* :func:`select_circle` - Hough circles on the candidates; the one whose radius is closest to
  the anatomy radius (AHS) or the strongest.
* :func:`snake_circle` - one propagation step: an active contour on the next slice started
  from the previous circle, then a Hough circle with radius within 0.8-1.2 of the previous.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from radseg.geometry import circles_through

__all__ = ["Circle", "rough_circle", "ray_candidates", "select_circle", "snake_circle", "SHRINK"]

#: The paper's factor between the anatomy radius and the rough circle (which must lie inside the head).
SHRINK = 1.7
#: Rays reach out to this multiple of the rough radius (the released code's 1.7 * 1.5).
RAY_REACH = 2.55


@dataclass(frozen=True)
class Circle:
    """A circle on one slice, in pixels (a Hough circle keeps its accumulator score)."""

    row: float
    col: float
    radius: float  # pixels
    score: float = 0.0


def rough_circle(mask: np.ndarray, *, medial: int) -> tuple[Circle, Circle] | None:
    """``(anatomy circle, rough circle)`` from the convex hull of a slice's bone around one head.

    As in the paper: centroid ``p_c`` of the hull, ``p_u`` where the anterior ray from ``p_c``
    leaves the hull, ``p_r`` where the medial ray does, ``p_m`` the hull point farthest from
    ``p_c`` in the posterolateral quadrant (towards the greater trochanter); the anatomy
    circle passes through ``p_u`` and the midpoints of ``p_c``-``p_r`` and ``p_c``-``p_m``
    (the released code's choice), and the rough circle is it shrunk by :data:`SHRINK`.
    ``medial`` is +1 when the midline lies towards larger columns (a right hip), else -1.
    """
    from scipy.spatial import ConvexHull, QhullError
    from skimage.draw import polygon

    points = np.argwhere(mask)
    if len(points) < 10:
        return None
    try:
        hull = ConvexHull(points)
    except QhullError:
        return None
    vertices = points[hull.vertices]
    centre = vertices.mean(axis=0)
    rr, cc = polygon(vertices[:, 0], vertices[:, 1], mask.shape)
    if rr.size == 0:
        return None
    crow, ccol = int(round(centre[0])), int(round(centre[1]))
    on_col, on_row = cc == ccol, rr == crow
    if not on_col.any() or not on_row.any():
        return None
    p_u = (rr[on_col].min(), ccol)
    p_r = (crow, cc[on_row].max() if medial > 0 else cc[on_row].min())
    quadrant = (rr > crow) & ((cc - ccol) * medial < 0)
    if not quadrant.any():
        return None
    far = np.argmax(np.abs(rr[quadrant] - crow) + np.abs(cc[quadrant] - ccol))  # city-block, as released
    p_m = (rr[quadrant][far], cc[quadrant][far])
    centre, radius = circles_through(p_u, ((crow + p_r[0]) / 2, (ccol + p_r[1]) / 2),
                                     ((crow + p_m[0]) / 2, (ccol + p_m[1]) / 2), min_det=1e-6)
    if not radius >= 2:  # NaN: the three points are (nearly) collinear
        return None
    circle = Circle(float(centre[0]), float(centre[1]), float(radius))
    return circle, Circle(circle.row, circle.col, circle.radius / SHRINK)


def ray_candidates(image: np.ndarray, rough: Circle, *, gate: np.ndarray, fsg: bool = True, lnms: bool = True,
                   rays: int = 90, reach: float = RAY_REACH) -> np.ndarray:
    """Candidate boundary points (``[n, 2]`` row, col) on rays from the rough circle outwards.

    Along each ray the profile ``S`` is sampled every pixel from the rough radius to
    ``reach`` times it. A point ``p + 1`` is a candidate when ``dS(p+1) - dS(p) > 0`` (the
    second-order test, eq. 3), with FSG also ``dS(p+1) > 0`` (intensity rising outwards, from
    the cancellous interior or the joint space into cortex, eq. 4), and only where ``S``
    exceeds ``gate`` (cortical brightness, as the released code keeps points above a
    percentile). L-NMS drops a candidate whose outer neighbour on the ray is also one, so
    each run keeps its outermost point (eq. 5).
    """
    angles = np.linspace(0.0, 2.0 * np.pi, rays, endpoint=False)
    steps = np.arange(0.0, max(2, int(np.ceil(rough.radius * (reach - 1.0)))) + 1.0)
    radii = rough.radius + steps
    rows = rough.row + radii[None, :] * np.sin(angles)[:, None]
    cols = rough.col + radii[None, :] * np.cos(angles)[:, None]
    profile = ndimage.map_coordinates(image, [rows.ravel(), cols.ravel()], order=1, mode="nearest").reshape(rows.shape)
    first = np.diff(profile, axis=1)  # first[:, k] = S(k+1) - S(k), belongs to point k+1
    second = np.diff(first, axis=1)  # second[:, k] = dS(k+2) - dS(k+1), belongs to point k+2
    candidate = np.zeros(profile.shape, bool)
    candidate[:, 2:] = second > 0
    if fsg:
        candidate[:, 2:] &= first[:, 1:] > 0
    sampled_gate = ndimage.map_coordinates(gate.astype(np.uint8), [rows.ravel(), cols.ravel()], order=0,
                                           mode="constant").reshape(rows.shape)
    candidate &= sampled_gate > 0
    inside = (rows >= 0) & (rows <= image.shape[0] - 1) & (cols >= 0) & (cols <= image.shape[1] - 1)
    candidate &= inside
    if lnms:
        candidate[:, :-1] &= ~candidate[:, 1:]
    return np.stack([rows[candidate], cols[candidate]], axis=1)


def select_circle(points: np.ndarray, shape: tuple[int, int], radii: np.ndarray, *, anatomy_radius: float,
                  ahs: bool = True, peaks: int = 5) -> Circle | None:
    """Hough circles through ``points`` with radii in ``radii`` (pixels); AHS picks the radius closest to
    ``anatomy_radius`` among the ``peaks`` strongest, otherwise the strongest wins."""
    from skimage.transform import hough_circle, hough_circle_peaks

    radii = np.asarray([r for r in radii if r >= 2])
    if len(points) < 5 or radii.size == 0:
        return None
    canvas = np.zeros(shape, bool)
    rr = np.clip(np.round(points[:, 0]).astype(int), 0, shape[0] - 1)
    cc = np.clip(np.round(points[:, 1]).astype(int), 0, shape[1] - 1)
    canvas[rr, cc] = True
    accumulator = hough_circle(canvas, radii)
    # peaks of different radii may share a centre: the anatomy choice is among radii, not only positions
    scores, cols, rows, found = hough_circle_peaks(accumulator, radii, total_num_peaks=peaks,
                                                    min_xdistance=1, min_ydistance=1)
    if len(found) == 0:
        return None
    best = int(np.argmin(np.abs(found - anatomy_radius))) if ahs else int(np.argmax(scores))
    return Circle(float(rows[best]), float(cols[best]), float(found[best]), float(scores[best]))


def snake_circle(image: np.ndarray, previous: Circle, *, scale: tuple[float, float] = (0.8, 1.2),
                 points: int = 100) -> Circle | None:
    """Propagate a circle to a neighbouring slice: active contour from it, then a Hough circle
    with a radius within ``scale`` of the previous one (the released code's 0.8-1.2)."""
    from skimage.segmentation import active_contour

    angles = np.linspace(0.0, 2.0 * np.pi, points, endpoint=False)
    init = np.stack([previous.row + previous.radius * np.sin(angles), previous.col + previous.radius * np.cos(angles)], axis=1)
    span = float(np.ptp(image)) or 1.0
    snake = active_contour((image - image.min()) / span, init, alpha=0.01, beta=0.1, gamma=0.01,
                           w_line=0.0, w_edge=1.0, max_num_iter=200, boundary_condition="periodic")
    low, high = max(2, int(np.floor(previous.radius * scale[0]))), int(np.ceil(previous.radius * scale[1]))
    radii = np.arange(low, high + 1)
    keep = (snake[:, 0] >= 0) & (snake[:, 0] < image.shape[0]) & (snake[:, 1] >= 0) & (snake[:, 1] < image.shape[1])
    return select_circle(snake[keep], image.shape, radii, anatomy_radius=previous.radius, ahs=False, peaks=1)


def rough_or_inscribed(bone2d, seed_rc, radius_px, *, medial) -> tuple[Circle, Circle, str]:
    """The paper's three-point rough circle when it is plausible, else the largest inscribed circle."""
    found = rough_circle(bone2d, medial=medial)
    if found is not None:
        anatomy, rough = found
        inside = fraction_inside(bone2d, rough)
        close = np.hypot(anatomy.row - seed_rc[0], anatomy.col - seed_rc[1]) <= 0.5 * radius_px
        if inside >= 0.8 and close and 0.5 * radius_px <= anatomy.radius <= 2.0 * radius_px:
            return anatomy, rough, "hull-3-points"
    filled = ndimage.binary_fill_holes(bone2d)
    depth = ndimage.distance_transform_edt(filled)
    labelled, _ = ndimage.label(filled)
    value = labelled[seed_rc]
    if value:
        depth[labelled != value] = 0
    row, col = np.unravel_index(int(np.argmax(depth)), depth.shape)
    anatomy = Circle(float(row), float(col), float(depth[row, col]))
    return anatomy, Circle(anatomy.row, anatomy.col, anatomy.radius / SHRINK), "inscribed"


def fraction_inside(bone2d: np.ndarray, circle: Circle) -> float:
    angles = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    rows = np.round(circle.row + circle.radius * np.sin(angles)).astype(int)
    cols = np.round(circle.col + circle.radius * np.cos(angles)).astype(int)
    ok = (rows >= 0) & (rows < bone2d.shape[0]) & (cols >= 0) & (cols < bone2d.shape[1])
    filled = ndimage.binary_fill_holes(bone2d)
    return float(filled[rows[ok], cols[ok]].sum()) / len(angles)


def propagate_circles(hu: np.ndarray, circle: Circle, z0: int, spacing: np.ndarray) -> list[tuple[int, Circle]]:
    """Circles on the initial slice and, by snakes, on the slices above and below until the head ends."""
    circles = [(z0, circle)]
    reach = int(np.ceil(circle.radius * spacing[1] / spacing[0]))
    for direction in (1, -1):
        previous = circle
        for step in range(1, reach + 1):
            z = z0 + direction * step
            if not 0 <= z < hu.shape[0] or previous.radius < 4:
                break
            half = int(np.ceil(1.5 * previous.radius))
            r0, c0 = max(0, int(previous.row) - half), max(0, int(previous.col) - half)
            window = (slice(r0, int(previous.row) + half + 1), slice(c0, int(previous.col) + half + 1))
            local = Circle(previous.row - r0, previous.col - c0, previous.radius)
            found = snake_circle(hu[z][window], local)
            if found is None:
                break
            previous = Circle(found.row + r0, found.col + c0, found.radius, found.score)
            circles.append((z, previous))
    return circles
