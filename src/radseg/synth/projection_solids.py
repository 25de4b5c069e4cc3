"""Solids of the radiograph projection besides :class:`~radseg.synth.geometry.Ellipsoid`.

In the detector frame ``(u, v, w)`` of :mod:`radseg.synth.projection` (rays along ``w``), each
solid gives ``intervals(u, v) -> (t_in, t_out)`` (``w`` where each ray enters and leaves it, NaN
on a miss), ``bbox()`` (the ``(u0, u1, v0, v1)`` of its shadow) and ``shrunk(by)`` (an inner core).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from radseg.synth.geometry import Ellipsoid, solve_quadratic

__all__ = ["Capsule", "Cylinder", "Loft"]


@dataclass(frozen=True)
class _Rod:
    """The segment ``p0``-``p1`` and ``radius`` (mm) that a capsule and a cylinder share."""

    p0: tuple[float, float, float]
    p1: tuple[float, float, float]
    radius: float

    def bbox(self) -> tuple[float, float, float, float]:
        # the capsule's shadow box: it holds the flat-ended cylinder too
        (a, b), r = np.array([self.p0, self.p1], float).T[:2], self.radius
        return min(a) - r, max(a) + r, min(b) - r, max(b) + r


@dataclass(frozen=True)
class Capsule(_Rod):
    """All points within ``radius`` mm of the segment ``p0``-``p1`` (a shaft with rounded ends)."""

    def intervals(self, u, v) -> tuple[np.ndarray, np.ndarray]:
        tube = _tube(self.p0, self.p1, self.radius, u, v, capped=True)
        caps = [Ellipsoid(tuple(p), (self.radius,) * 3).intervals(u, v) for p in (self.p0, self.p1)]
        # a line meets a convex set in one interval: the union of the three pieces' intervals
        starts = np.stack([tube[0], caps[0][0], caps[1][0]])
        ends = np.stack([tube[1], caps[0][1], caps[1][1]])
        with np.errstate(invalid="ignore"):
            return np.fmin.reduce(starts), np.fmax.reduce(ends)

    def shrunk(self, by: float) -> Capsule:
        return replace(self, radius=max(self.radius - by, 1e-3))


@dataclass(frozen=True)
class Cylinder(_Rod):
    """A right circular cylinder with flat ends: axis ``p0``-``p1``, ``radius`` mm."""

    def intervals(self, u, v) -> tuple[np.ndarray, np.ndarray]:
        return _tube(self.p0, self.p1, self.radius, u, v, capped=True)

    def shrunk(self, by: float) -> Cylinder:
        """Thinner by ``by`` mm and shortened by ``by`` at each end."""
        p0, p1 = np.asarray(self.p0, float), np.asarray(self.p1, float)
        axis = (p1 - p0) / np.linalg.norm(p1 - p0)
        return Cylinder(tuple(p0 + by * axis), tuple(p1 - by * axis), max(self.radius - by, 1e-3))


@dataclass(frozen=True)
class Loft:
    """Elliptic cross-sections lofted along an axis ``p0``-``p1`` that lies across the beam (same ``w``).

    At axial distance ``s`` (mm from ``p0``) the section is an ellipse with in-plane semi-axis
    ``a(s)`` and depth semi-axis ``b(s)``, interpolated between ``nodes`` (``(s_mm, a_mm, b_mm)``
    rows) with a cosine ease (zero slope at every node, so flares are smooth). Every ray lies in
    one cross-section, so its chord is ``2 b(s) sqrt(1 - (x / a(s))^2)`` exactly: long bones
    (shaft + metaphyseal flare) in one piece, without the seams a union of ellipsoids shows.
    """

    p0: tuple[float, float, float]
    p1: tuple[float, float, float]
    nodes: tuple[tuple[float, float, float], ...]

    def __post_init__(self):
        if abs(self.p0[2] - self.p1[2]) > 1e-9:
            raise ValueError("a Loft's axis must lie across the beam (p0 and p1 at the same w)")

    def _frame(self, u, v):
        p0, p1 = np.asarray(self.p0[:2], float), np.asarray(self.p1[:2], float)
        length = float(np.linalg.norm(p1 - p0))
        d = (p1 - p0) / length
        du, dv = np.asarray(u, float) - p0[0], np.asarray(v, float) - p0[1]
        return du * d[0] + dv * d[1], du * d[1] - dv * d[0], length

    def radii(self, s) -> tuple[np.ndarray, np.ndarray]:
        """``a(s), b(s)`` (NaN outside the axis)."""
        nodes = np.asarray(self.nodes, float)
        s = np.asarray(s, float)
        i = np.clip(np.searchsorted(nodes[:, 0], s, side="right") - 1, 0, len(nodes) - 2)
        s0, s1 = nodes[i, 0], nodes[i + 1, 0]
        f = np.clip((s - s0) / (s1 - s0), 0.0, 1.0)
        ease = 0.5 - 0.5 * np.cos(np.pi * f)
        a = nodes[i, 1] + (nodes[i + 1, 1] - nodes[i, 1]) * ease
        b = nodes[i, 2] + (nodes[i + 1, 2] - nodes[i, 2]) * ease
        outside = (s < nodes[0, 0]) | (s > nodes[-1, 0])
        return np.where(outside, np.nan, a), np.where(outside, np.nan, b)

    def bbox(self) -> tuple[float, float, float, float]:
        r = float(np.max(np.asarray(self.nodes)[:, 1]))
        (a, b) = np.array([self.p0, self.p1], float).T[:2]
        return min(a) - r, max(a) + r, min(b) - r, max(b) + r

    def intervals(self, u, v) -> tuple[np.ndarray, np.ndarray]:
        s, x, _ = self._frame(u, v)
        a, b = self.radii(s)
        with np.errstate(invalid="ignore"):
            inside = 1.0 - (x / a) ** 2
            half = b * np.sqrt(np.where(inside > 0, inside, np.nan))
        return self.p0[2] - half, self.p0[2] + half

    def shrunk(self, by: float) -> Loft:
        """Thinner by ``by`` mm, and ``by`` mm shorter at each end."""
        nodes = np.asarray(self.nodes, float).copy()
        nodes[:, 1:] = np.maximum(nodes[:, 1:] - by, 1e-3)
        nodes[0, 0] += by
        nodes[-1, 0] -= by
        return Loft(self.p0, self.p1, tuple(map(tuple, nodes)))


def _tube(p0, p1, radius, u, v, *, capped: bool) -> tuple[np.ndarray, np.ndarray]:
    """Ray interval through the infinite cylinder around p0-p1, clipped to the slab between its ends."""
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    length = float(np.linalg.norm(p1 - p0))
    d = (p1 - p0) / length
    du, dv = np.asarray(u, float) - p0[0], np.asarray(v, float) - p0[1]
    dw = -p0[2]
    # ray x(t) = (u, v, t); m = x(0) - p0, e = (0, 0, 1)
    m_axial = d[0] * du + d[1] * dv + d[2] * dw
    e_axial = d[2]
    mp = [c - m_axial * dc for c, dc in ((du, d[0]), (dv, d[1]), (dw, d[2]))]  # perpendicular part of m
    ep = np.array([0.0, 0.0, 1.0]) - e_axial * d
    qa = float(ep @ ep)
    if qa < 1e-12:  # axis along the rays: the tube is a disc in the shadow, the chord is the length
        inside = mp[0] ** 2 + mp[1] ** 2 + mp[2] ** 2 <= radius ** 2
        t_start = -m_axial / e_axial
        t_end = (length - m_axial) / e_axial
        lo, hi = np.minimum(t_start, t_end), np.maximum(t_start, t_end)
        return np.where(inside, lo, np.nan), np.where(inside, hi, np.nan)
    qb = mp[0] * ep[0] + mp[1] * ep[1] + mp[2] * ep[2]
    qc = mp[0] ** 2 + mp[1] ** 2 + mp[2] ** 2 - radius ** 2
    t0, t1 = solve_quadratic(qa, qb, qc)
    if not capped:
        return t0, t1
    if abs(e_axial) < 1e-12:  # axis across the rays: the slab is a band of (u, v)
        keep = (m_axial >= 0) & (m_axial <= length)
        return np.where(keep, t0, np.nan), np.where(keep, t1, np.nan)
    s0, s1 = (0.0 - m_axial) / e_axial, (length - m_axial) / e_axial
    lo, hi = np.maximum(t0, np.minimum(s0, s1)), np.minimum(t1, np.maximum(s0, s1))
    with np.errstate(invalid="ignore"):
        hit = hi > lo
    return np.where(hit, lo, np.nan), np.where(hit, hi, np.nan)
