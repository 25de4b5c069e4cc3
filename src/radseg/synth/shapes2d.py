"""Analytic 2D footprints and path lengths for projection phantoms (chest and fracture radiographs).

A radiograph phantom is drawn in the detector plane: every structure has an exact footprint
(its label) and a path length map (mm of tissue the ray crosses, for Beer-Lambert), both
computed from the same closed-form geometry. Coordinates are mm, ``u`` along columns and
``v`` along rows; functions broadcast, so ``u`` may be ``[1, W]`` and ``v`` ``[H, 1]``.
"""

from __future__ import annotations

import numpy as np


def window(detector, bbox):
    """``(rows, cols, u, v)``: the pixels of ``detector`` under ``bbox`` = (u0, u1, v0, v1), or None."""
    found = detector.window(bbox)
    if found is None:
        return None
    rows, cols = found
    u, v = detector.grid(rows, cols)
    return rows, cols, u, v


def rotate(du, dv, angle: float):
    """Coordinates in a frame turned by ``angle`` (radians, from +u towards +v)."""
    c, s = np.cos(angle), np.sin(angle)
    return c * du + s * dv, -s * du + c * dv


def ellipse_rho2(u, v, cu: float, cv: float, a: float, b: float, angle: float = 0.0):
    """Squared normalised radius: < 1 inside the ellipse (semi-axes ``a`` along the turned u axis, ``b``)."""
    du, dv = rotate(u - cu, v - cv, angle) if angle else (u - cu, v - cv)
    return (du / a) ** 2 + (dv / b) ** 2


def ellipse_half_extent(a: float, b: float, angle: float) -> tuple[float, float]:
    """Half widths of a turned ellipse's bounding box along u and v (exact)."""
    c, s = np.cos(angle), np.sin(angle)
    return float(np.hypot(a * c, b * s)), float(np.hypot(a * s, b * c))


def chord(rho2, half_depth: float):
    """Path length along the beam through an ellipsoid (or elliptic cylinder) seen as ``rho2``."""
    return 2.0 * half_depth * np.sqrt(np.clip(1.0 - rho2, 0.0, None))


def tube_chord(distance, radius, half_depth=None):
    """Path through a tube of elliptic cross-section at in-plane ``distance`` from its axis."""
    half_depth = radius if half_depth is None else half_depth
    return 2.0 * half_depth * np.sqrt(np.clip(1.0 - (distance / radius) ** 2, 0.0, None))


def shell(distance, radius, cortex, half_depth=None):
    """``(cortical, inner)`` paths through a tube with a cortical shell of thickness ``cortex``."""
    half_depth = radius if half_depth is None else half_depth
    outer = tube_chord(distance, radius, half_depth)
    inner_radius = np.maximum(radius - cortex, 1e-3)
    inner = tube_chord(distance, inner_radius, np.maximum(half_depth - cortex, 1e-3))
    return outer - inner, inner


def arc_distance(x, v, xc: float, vc: float, a: float, b: float):
    """Signed distance (first order, mm) to the ellipse ``(xc + a sin phi, vc - b cos phi)`` and ``phi``.

    ``phi`` is 0 at the top of the ellipse and grows towards +x; it is returned in [-60, 300) degrees
    (as radians) so that arcs crossing the bottom of the ellipse are one interval.
    """
    dx, dy = (x - xc) / a, (v - vc) / b
    rho = np.sqrt(dx * dx + dy * dy) + 1e-12
    gradient = np.sqrt((dx / a) ** 2 + (dy / b) ** 2) / rho
    distance = (rho - 1.0) / np.maximum(gradient, 1e-12)
    phi = np.arctan2(dx, -dy)
    phi = np.mod(phi + np.pi / 3, 2 * np.pi) - np.pi / 3
    return distance, phi


def segment_distance(u, v, p0: tuple[float, float], p1: tuple[float, float]):
    """``(distance to the segment p0-p1, position t along it in [0, 1])``."""
    du, dv = p1[0] - p0[0], p1[1] - p0[1]
    length2 = du * du + dv * dv
    t = np.clip(((u - p0[0]) * du + (v - p0[1]) * dv) / length2, 0.0, 1.0)
    return np.hypot(u - p0[0] - t * du, v - p0[1] - t * dv), t


def smoothstep(x):
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)
