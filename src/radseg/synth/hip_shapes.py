"""Signed-distance primitives of the hip phantom, and the domains they are evaluated on.

Primitives (:class:`Ball`, :class:`EllipsoidPrim`, :class:`Cone`, :class:`Plate`, :class:`Minus`,
:class:`Cut`) give an approximate signed distance (exact zero set, float32 on float32 points)
and a world axis-aligned box; :func:`union` joins them smoothly, each evaluated only where its
box meets the domain. A domain is a tensor grid (:class:`GridDomain`: sub-boxes are slices) or
a flat point set (:class:`PointsDomain`). Also the 2D ellipse distance of the body outline and
the periodic texture of trabecular bone.
"""

from __future__ import annotations

import numpy as np

from radseg.synth.geometry import Ellipsoid

_BIG = np.float32(1e4)


# --- primitives: signed distance (approximate away from the surface), world AABB -------------------

def unit(v) -> np.ndarray:
    v = np.asarray(v, float)
    return v / np.linalg.norm(v)


class Prim:
    k: float | None = None  # blend radius into the union (None: the structure's)

    def box(self) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def sdf(self, x, y, z):
        raise NotImplementedError


class Ball(Prim):
    def __init__(self, c, r, k=None):
        self.c, self.r, self.k = np.asarray(c, float), float(r), k

    def box(self):
        return self.c - self.r, self.c + self.r

    def sdf(self, x, y, z):
        c = self.c
        return np.sqrt((x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2) - np.float32(self.r)


class EllipsoidPrim(Prim):
    """A :class:`~radseg.synth.geometry.Ellipsoid` (axes: the columns of ``rot``) with a blend radius."""

    def __init__(self, c, radii, rot=None, k=None):
        self.shape = Ellipsoid(np.asarray(c, float), np.asarray(radii, float),
                               np.eye(3) if rot is None else np.asarray(rot, float))
        self.k = k

    def box(self):
        c = np.asarray(self.shape.centre, float)
        half = self.shape.extent()
        return c - half, c + half

    def sdf(self, x, y, z):
        return self.shape.sdf(x, y, z)


class Cone(Prim):
    """Segment a-b with radius growing linearly from ra to rb (rounded ends)."""

    def __init__(self, a, b, ra, rb, k=None):
        self.a, self.b, self.ra, self.rb, self.k = np.asarray(a, float), np.asarray(b, float), ra, rb, k

    def box(self):
        r = max(self.ra, self.rb)
        return np.minimum(self.a, self.b) - r, np.maximum(self.a, self.b) + r

    def sdf(self, x, y, z):
        a, ab = self.a, self.b - self.a
        inv = np.float32(1.0 / (ab @ ab))
        px, py, pz = x - a[0], y - a[1], z - a[2]
        t = np.clip((px * np.float32(ab[0]) + py * np.float32(ab[1]) + pz * np.float32(ab[2])) * inv, 0, 1)
        d = np.sqrt((px - t * np.float32(ab[0])) ** 2 + (py - t * np.float32(ab[1])) ** 2
                    + (pz - t * np.float32(ab[2])) ** 2)
        return d - (np.float32(self.ra) + t * np.float32(self.rb - self.ra))


class Plate(Prim):
    """A curved plate: spherical shell (centre q, radius rho, half thickness h) cut by an ellipsoid."""

    def __init__(self, q, rho, h, cutter: EllipsoidPrim, k=None):
        self.q, self.rho, self.h, self.cutter, self.k = np.asarray(q, float), rho, h, cutter, k

    def box(self):
        return self.cutter.box()

    def sdf(self, x, y, z):
        shell = np.abs(Ball(self.q, self.rho).sdf(x, y, z)) - np.float32(self.h)
        return np.maximum(shell, self.cutter.sdf(x, y, z))


class Minus(Prim):
    """``prim`` with a ball removed."""

    def __init__(self, prim, ball: Ball):
        self.prim, self.ball, self.k = prim, ball, prim.k

    def box(self):
        return self.prim.box()

    def sdf(self, x, y, z):
        return np.maximum(self.prim.sdf(x, y, z), -self.ball.sdf(x, y, z))


class Cut(Prim):
    """``prim`` limited to the half-space ``p . n <= d``."""

    def __init__(self, prim, n, d, k=None):
        self.prim, self.n, self.d = prim, unit(n), float(d)
        self.k = prim.k if k is None else k

    def box(self):
        return self.prim.box()

    def sdf(self, x, y, z):
        n = self.n
        plane = x * np.float32(n[0]) + y * np.float32(n[1]) + z * np.float32(n[2]) - np.float32(self.d)
        return np.maximum(self.prim.sdf(x, y, z), plane)


def smin(a, b, k):
    """Polynomial smooth minimum: union with a fillet of about ``k`` mm."""
    if not k:
        return np.minimum(a, b)
    k = np.float32(k)
    h = np.maximum(k - np.abs(a - b), 0) / k
    return np.minimum(a, b) - h * h * k * np.float32(0.25)


def ellipse_distance(x, y, a, b):
    """Approximate signed distance to an axis-aligned ellipse (broadcasting; exact zero set)."""
    a, b = np.maximum(a, np.float32(1e-3)), np.maximum(b, np.float32(1e-3))
    k0 = np.sqrt((x / a) ** 2 + (y / b) ** 2)
    k1 = np.sqrt((x / (a * a)) ** 2 + (y / (b * b)) ** 2)
    return k0 * (k0 - 1) / np.maximum(k1, np.float32(1e-6))


# --- evaluation domains: a tensor grid (sub-boxes are slices) or a flat point set ------------------

class GridDomain:
    def __init__(self, zs, ys, xs):
        self.zs, self.ys, self.xs = (np.asarray(v, np.float32).ravel() for v in (zs, ys, xs))
        self.shape = (self.zs.size, self.ys.size, self.xs.size)
        self.z, self.y, self.x = self.zs[:, None, None], self.ys[None, :, None], self.xs[None, None, :]

    def sub(self, lo, hi):
        key = []
        for v, a, b in zip((self.zs, self.ys, self.xs), lo[::-1], hi[::-1]):
            inside = np.flatnonzero((v >= a) & (v <= b))
            if inside.size == 0:
                return None
            key.append(slice(int(inside[0]), int(inside[-1]) + 1))
        return tuple(key), GridDomain(self.zs[key[0]], self.ys[key[1]], self.xs[key[2]])


class PointsDomain:
    def __init__(self, x, y, z):
        self.x, self.y, self.z = (np.asarray(v, np.float32).ravel() for v in (x, y, z))
        self.shape = (self.x.size,)

    def sub(self, lo, hi):
        inside = ((self.x >= lo[0]) & (self.x <= hi[0]) & (self.y >= lo[1]) & (self.y <= hi[1])
                  & (self.z >= lo[2]) & (self.z <= hi[2]))
        idx = np.flatnonzero(inside)
        if idx.size == 0:
            return None
        return idx, PointsDomain(self.x[idx], self.y[idx], self.z[idx])


def union(prims, dom, k):
    d = np.full(dom.shape, _BIG, np.float32)
    for prim in prims:
        blend = prim.k if prim.k is not None else k
        lo, hi = prim.box()
        found = dom.sub(lo - blend, hi + blend)
        if found is not None:
            key, sub = found
            d[key] = smin(d[key], prim.sdf(sub.x, sub.y, sub.z), blend)
    return d


def box_of(prims, pad):
    boxes = [p.box() for p in prims]
    return np.min([b[0] for b in boxes], axis=0) - pad, np.max([b[1] for b in boxes], axis=0) + pad


# --- trabecular texture -----------------------------------------------------------------------------

_TEXTURE_N = 64
TRABECULAR_CELL = 0.8  # mm per texture cell


def texture(seed: int) -> np.ndarray:
    """A periodic unit-variance random field for trabecular mottling."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    f = ndimage.gaussian_filter(rng.standard_normal((_TEXTURE_N,) * 3, dtype=np.float32), 1.0, mode="wrap")
    return (f - f.mean()) / f.std()


def lookup(field, cell, x, y, z):
    """Nearest-cell value of a periodic field at world points (broadcasting; cheap for grids)."""
    n = field.shape[0]
    index = [np.floor(v * np.float32(1 / cell)).astype(np.int64) % n for v in (z, y, x)]
    return field[index[0], index[1], index[2]]
