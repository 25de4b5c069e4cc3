"""Shared 3D geometry of the phantoms: the one rotation builder and the one :class:`Ellipsoid`.

Every phantom frame is right-handed with axes ``(x, y, z)`` (the radiograph detector frame
names them ``(u, v, w)``, ``w`` along the rays). :func:`euler_rotation` composes rotations
about those axes; each phantom names its own convention through a thin adapter
(:func:`radseg.synth.brain_shapes.rotation`, :func:`radseg.synth.projection.rotation_matrix`,
the hip pelvis tilt in :mod:`radseg.synth.hip_anatomy`).

:class:`Ellipsoid` serves all three evaluators: unit-sphere coordinates for the head CT's
planes (:meth:`~Ellipsoid.linear`), ray intervals and shadows for the parallel-beam
radiographs (:meth:`~Ellipsoid.intervals`) and a float32 signed distance for the hip
phantom (:meth:`~Ellipsoid.sdf`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np

__all__ = ["Ellipsoid", "euler_rotation", "solve_quadratic"]


def _about(axis: str, angle) -> np.ndarray:
    """Right-handed rotation by ``angle`` (radians) about one frame axis."""
    c, s = np.cos(angle), np.sin(angle)
    if axis == "x":
        return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    if axis == "y":
        return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    if axis == "z":
        return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    raise ValueError(f"rotation axis must be x, y or z, got {axis!r}")


def euler_rotation(axes: str, angles, *, degrees: bool = True) -> np.ndarray:
    """``R(axes[0], angles[0]) @ R(axes[1], angles[1]) @ ...``: applied to a vector, the last
    rotation acts first. Columns are the rotated body axes."""
    radians = np.radians(list(angles)) if degrees else list(angles)
    # multiplied left to right, as the per-phantom helpers this replaces did (bit-identical)
    out = _about(axes[0], radians[0])
    for axis, angle in zip(axes[1:], radians[1:]):
        out = out @ _about(axis, angle)
    return out


def solve_quadratic(qa, qb, qc) -> tuple[np.ndarray, np.ndarray]:
    """Roots ``t_in <= t_out`` of ``qa t^2 + 2 qb t + qc = 0`` (NaN where no real root)."""
    disc = qb * qb - qa * qc
    with np.errstate(invalid="ignore", divide="ignore"):
        root = np.sqrt(np.where(disc > 0, disc, np.nan))
        return (-qb - root) / qa, (-qb + root) / qa


@dataclass(frozen=True)
class Ellipsoid:
    """``centre`` (mm), semi-axes ``radii`` (mm) along the columns of ``rotation`` (default: the
    frame axes). Values are kept as given (tuples or arrays): callers' numeric types carry
    through the arithmetic unchanged."""

    centre: tuple[float, float, float]
    radii: tuple[float, float, float]
    rotation: np.ndarray | None = None

    def _rot(self) -> np.ndarray:
        return np.eye(3) if self.rotation is None else np.asarray(self.rotation, float)

    def extent(self) -> np.ndarray:
        """Half-size of the axis-aligned box around the ellipsoid."""
        return np.sqrt(((self._rot() * np.asarray(self.radii, float)[None, :]) ** 2).sum(axis=1))

    def scaled(self, factor: float) -> Ellipsoid:
        return Ellipsoid(self.centre, tuple(a * factor for a in self.radii), self.rotation)

    def shrunk(self, by: float) -> Ellipsoid:
        """Same ellipsoid with every semi-axis ``by`` mm shorter (an inner cancellous core)."""
        return replace(self, radii=tuple(max(r - by, 1e-3) for r in self.radii))

    def moved(self, du: float = 0.0, dv: float = 0.0, dw: float = 0.0) -> Ellipsoid:
        c = self.centre
        return replace(self, centre=(c[0] + du, c[1] + dv, c[2] + dw))

    # --- head CT planes: affine unit-sphere coordinates ---------------------------------------
    def linear(self) -> tuple[np.ndarray, np.ndarray]:
        """``(L, o)`` with ``u = L @ q + o`` the unit-sphere coordinates of a point ``q``."""
        return self._linear

    @cached_property
    def _linear(self) -> tuple[np.ndarray, np.ndarray]:
        lin = (self._rot().T / np.asarray(self.radii, float)[:, None])
        return lin, -lin @ np.asarray(self.centre, float)

    # --- radiographs: rays along the third axis ----------------------------------------------
    def _metric(self) -> np.ndarray:
        """``M`` with the solid = ``{x : (x - c)^T M (x - c) <= 1}``."""
        rot = self._rot()
        return rot @ np.diag(1.0 / np.asarray(self.radii, float) ** 2) @ rot.T

    def bbox(self) -> tuple[float, float, float, float]:
        """``(u0, u1, v0, v1)`` of the shadow."""
        half = self.extent()
        c = self.centre
        return c[0] - half[0], c[0] + half[0], c[1] - half[1], c[1] + half[1]

    def intervals(self, u, v) -> tuple[np.ndarray, np.ndarray]:
        """Where each ray ``(u, v)`` enters and leaves the solid (NaN on a miss)."""
        m = self._metric()
        du, dv = np.asarray(u, float) - self.centre[0], np.asarray(v, float) - self.centre[1]
        # |A (x - c)|^2 = 1 along x = (u, v, w): a quadratic in s = w - c_w.
        qa = m[2, 2]
        qb = m[0, 2] * du + m[1, 2] * dv
        qc = m[0, 0] * du * du + 2 * m[0, 1] * du * dv + m[1, 1] * dv * dv - 1.0
        t0, t1 = solve_quadratic(qa, qb, qc)
        return t0 + self.centre[2], t1 + self.centre[2]

    def shadow(self) -> np.ndarray:
        """2x2 ``S``: the shadow is the ellipse ``{p : (p - c_uv)^T S (p - c_uv) <= 1}`` (Schur complement)."""
        m = self._metric()
        return m[:2, :2] - np.outer(m[:2, 2], m[2, :2]) / m[2, 2]

    def shadow_area(self) -> float:
        """Area (mm^2) of the shadow: parallel projection keeps sizes."""
        return float(np.pi / np.sqrt(np.linalg.det(self.shadow())))

    def v_bounds(self, u) -> tuple[np.ndarray, np.ndarray]:
        """Top and bottom ``v`` of the shadow at each ``u`` (NaN outside)."""
        s = self.shadow()
        du = np.asarray(u, float) - self.centre[0]
        t0, t1 = solve_quadratic(s[1, 1], s[0, 1] * du, s[0, 0] * du * du - 1.0)
        return t0 + self.centre[1], t1 + self.centre[1]

    # --- hip phantom: signed distance on float32 points ---------------------------------------
    def sdf(self, x, y, z):
        """Quilez's distance bound (exact zero set), in float32 for float32 points."""
        c, r, a = np.asarray(self.centre, float), self._rot(), np.asarray(self.radii, float)
        dx, dy, dz = x - c[0], y - c[1], z - c[2]
        k0 = k1 = 0
        for j in range(3):
            q = dx * np.float32(r[0, j]) + dy * np.float32(r[1, j]) + dz * np.float32(r[2, j])
            k0 = k0 + (q * np.float32(1 / a[j])) ** 2
            k1 = k1 + (q * np.float32(1 / a[j] ** 2)) ** 2
        k0, k1 = np.sqrt(k0), np.sqrt(k1)
        return k0 * (k0 - 1) / np.maximum(k1, np.float32(1e-6))
