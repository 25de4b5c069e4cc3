"""Spheres and circles: the one :class:`Sphere` type, its least-squares fits, circles through
three points, evenly spread directions, and the index box of a ball on a voxel grid.

A core module (numpy and scipy only) so that annotation (the hip search, in working-grid mm)
and features (plane mm) fit the same way. Coordinates are whatever frame the caller passes;
a circle is a sphere in 2D.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize

__all__ = ["Sphere", "fit_sphere", "circles_through", "sphere_directions", "ball_box", "box_distances"]

FIT_METHODS = ("geometric", "algebraic")


@dataclass
class Sphere:
    """A fitted circle (2D) or sphere (3D): centre, radius, RMS residual (the points' frame and
    unit, mm in radseg), and which input points lie within the fit's tolerance."""

    centre: np.ndarray
    radius: float
    rms: float
    inliers: np.ndarray  # bool per input point

    @property
    def diameter(self) -> float:
        return 2.0 * self.radius


def _algebraic(points: np.ndarray) -> tuple[np.ndarray, float]:
    # |p|^2 = 2 c.p + (r^2 - |c|^2): linear in (c, k) (Kasa's fit)
    design = np.hstack([2.0 * points, np.ones((len(points), 1))])
    target = np.sum(points**2, axis=1)
    solution, *_ = np.linalg.lstsq(design, target, rcond=None)
    centre = solution[:-1]
    return centre, float(np.sqrt(max(solution[-1] + centre @ centre, 0.0)))


def fit_sphere(points: np.ndarray, *, method: str = "geometric", loss: str = "linear", scale: float = 1.0,
               start: tuple[np.ndarray, float] | None = None) -> Sphere:
    """Least-squares circle (2D points ``[n, 2]``) or sphere (3D points ``[n, 3]``).

    ``method="geometric"`` (default) minimises the distances to the surface
    (``scipy.optimize.least_squares``) from ``start`` or the algebraic fit; ``loss="soft_l1"``
    with ``scale`` down-weights points off the sphere (a flat cut face). ``method="algebraic"``
    is Kasa's linear fit alone (one ``lstsq``): no iterations, for loops that refit many times
    on points spread round the sphere (the hip search), where its bias on short arcs does not
    matter; ``loss`` and ``start`` do not apply. ``inliers``: points within ``3 * scale``.
    """
    if method not in FIT_METHODS:
        raise ValueError(f"method must be one of {FIT_METHODS}, got {method!r}")
    points = np.asarray(points, dtype=float)
    if len(points) < points.shape[1] + 1:
        raise ValueError(f"need at least {points.shape[1] + 1} points, got {len(points)}")
    if method == "algebraic":
        centre, radius = _algebraic(points)
    else:
        centre, radius = start if start is not None else _algebraic(points)

        def residuals(params):
            return np.linalg.norm(points - params[:-1], axis=1) - params[-1]

        result = optimize.least_squares(residuals, np.append(centre, radius), loss=loss, f_scale=scale)
        centre, radius = result.x[:-1], abs(float(result.x[-1]))
    distances = np.abs(np.linalg.norm(points - centre, axis=1) - radius)
    return Sphere(centre, radius, float(np.sqrt(np.mean(distances**2))), distances <= 3 * scale)


def circles_through(a, b, c, *, min_det: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Centres ``[n, 2]`` and radii ``[n]`` of the circles through point triples ``a, b, c``
    (each ``[n, 2]``, or one point ``[2]`` each: then shapes ``[2]`` and ``[]``).

    Collinear triples, and nearly collinear ones (``|det| <= min_det``, ``det`` four times the
    triangle's signed area), get NaN centre and radius.
    """
    a, b, c = (np.asarray(p, dtype=float) for p in (a, b, c))
    (a1, b1), (a2, b2), (a3, b3) = a.T, b.T, c.T
    det = 2.0 * ((a1 - a2) * (b2 - b3) - (a2 - a3) * (b1 - b2))
    s1, s2, s3 = a1 * a1 + b1 * b1, a2 * a2 + b2 * b2, a3 * a3 + b3 * b3
    # differences of the squared norms: better conditioned than the expanded determinant
    with np.errstate(divide="ignore", invalid="ignore"):
        u = ((s1 - s2) * (b2 - b3) - (s2 - s3) * (b1 - b2)) / det
        v = ((a1 - a2) * (s2 - s3) - (a2 - a3) * (s1 - s2)) / det
    degenerate = np.abs(det) <= min_det
    u, v = np.where(degenerate, np.nan, u), np.where(degenerate, np.nan, v)
    return np.stack([u, v], axis=-1), np.hypot(u - a1, v - b1)


def sphere_directions(count: int) -> np.ndarray:
    """``count`` unit vectors ``[count, 3]`` spread evenly over the sphere (a Fibonacci sphere)."""
    k = np.arange(count) + 0.5
    polar, azimuth = np.arccos(1 - 2 * k / count), np.pi * (1 + 5 ** 0.5) * k
    return np.stack([np.cos(polar), np.sin(polar) * np.sin(azimuth), np.sin(polar) * np.cos(azimuth)], axis=1)


def ball_box(shape, centre, radius_mm: float, spacing) -> tuple[slice, ...]:
    """Index slices of the box around a ball (``centre`` a grid index, radius in mm), clipped to ``shape``."""
    half = radius_mm / spacing
    lo = np.maximum(0, np.floor(centre - half)).astype(int)
    hi = np.minimum(shape, np.ceil(centre + half) + 1).astype(int)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))


def box_distances(box: tuple[slice, ...], centre, spacing) -> np.ndarray:
    """Distance (mm) of every voxel of a 3D index ``box`` to ``centre`` (a grid index)."""
    grids = np.meshgrid(*[(np.arange(s.start, s.stop) - c) * d for s, c, d in zip(box, centre, spacing)],
                        indexing="ij", sparse=True)
    return np.sqrt(grids[0] ** 2 + grids[1] ** 2 + grids[2] ** 2)
