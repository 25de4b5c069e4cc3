"""A 3D pelvis with both proximal femora, exact by construction: the anatomy of ``hip-ct`` and ``hip-xray``.

Stable API (other kinds build on it). All coordinates are LPS world millimetres: +x patient
**left**, +y posterior, +z superior; so the right hip has the smaller x.

``sample_hip_params(subject, *, rng=None, pathology=None) -> HipParams``
    One subject's anatomy, pathology and noise-free HU values from ``rng`` (default
    ``subject.rng()``), of which it takes a fixed number of draws. The subject's difficulty is
    applied here: anatomy linear size times ``difficulty["size"]``, every bone HU over muscle
    times ``difficulty["contrast"]`` (noise belongs to the imaging kind). ``pathology`` (0, 1, 2)
    overrides the drawn level without changing the anatomy.
``hip_phantom_at(x, y, z, params) -> (hu float32, parts uint8)``
    The phantom at arbitrary world points: ``x, y, z`` are arrays of any broadcastable shapes and
    spacings (a ray bundle, an anisotropic or irregular point set); results have the broadcast
    shape. About 0.3 s per million points.
``hip_phantom_on_grid(zs, ys, xs, params) -> (hu, parts)`` of shape ``(len(zs), len(ys), len(xs))``
    The same on the tensor grid of three increasing 1D world-coordinate vectors (any spacing,
    uniform or not): much faster per point (shapes are evaluated on their bounding boxes; the
    slowly varying body outline on 4 mm cells every 2 mm in z, interpolated: < 0.1 mm off).
    Bone HU and all parts equal :func:`hip_phantom_at` exactly.
``soft_tissue_on_grid`` / ``paint_bones_on_grid``
    The two halves of :func:`hip_phantom_on_grid`, for callers that sample bones finer than soft
    tissue (``hip-ct`` paints bones on sub-slices for partial volume).
``build_hip_parts(params, *, shape, spacing, origin) -> (hu, parts)``
    The same on the grid of an :class:`~radseg.image.Image` with the default layout
    ``[slice (z up), row (y), col (x)]``; ``origin`` is the world position of voxel (0, 0, 0).
``hip_bounds(params, *, bones_only=False) -> (lo, hi)``: world box of the bones (and body).
``hip_record(params) -> dict``: flat scalars for ``case.params`` (``<side>_head_radius_mm``,
    ``<side>_head_centre_{x,y,z}_mm``, ``<side>_jsw_min_mm``, ``<side>_neck_shaft_angle_deg``,
    ``<side>_lcea_deg``, ``<side>_pathology`` ...). ``head_part_moments(params, side)``: exact
    volume (mm^3) and centroid (LPS mm) of the femoral-head part.

``hu`` is noise-free and unblurred (air -1000 HU); for X-ray attenuation use
``mu = mu_water * (1 + hu / 1000)``. ``parts`` values (:data:`PARTS`):

=====  =======================  ============================================================
1 / 2  right / left_acetabulum  pelvic bone of that side in the axial slab the femoral head
                                spans (``|z - head_z| <= head radius``), as the THA dataset
                                defines it (the roof above the head's top is ``pelvis``; a
                                radiograph kind wanting the socket alone can intersect with a
                                ball around ``HipSide.cavity_centre``)
3 / 4  right / left_pelvis      the rest of that side's ilium, ischium and pubis
5 / 6  right / left_femoral_head  femur inside the head sphere, head side of the head-neck plane
7 / 8  right / left_femur       the rest of the femur (neck, trochanters, shaft, neck osteophytes)
9      sacrum                   sacrum and coccyx
=====  =======================  ============================================================

Geometry: bones are smooth unions of signed-distance primitives (balls, ellipsoids, round cones,
a curved iliac plate); cortex is the outer 1.2-5.5 mm of each bone's distance field, mottled
cancellous bone inside, fatty marrow in the femoral shaft. The acetabular cavity is a sphere of
radius ``head radius + joint space`` carved out of the pelvis, so the head never touches the
socket and the narrowest joint space is exactly ``jsw_min_mm``. Pathology per side (0 none,
1 mild, 2 severe; one side carries the case's level, the other a milder one): joint-space
narrowing with superolateral head migration, a flattened weight-bearing head, osteophytes at
the head-neck junction and the acetabular rim, subchondral sclerosis and cysts. Soft tissue:
skin outline (trunk, buttocks, thighs), subcutaneous fat, a gluteal fascial fat plane, muscle,
pelvic fat, bladder, rectum with gas.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

PARTS = {0: "background", 1: "right_acetabulum", 2: "left_acetabulum", 3: "right_pelvis", 4: "left_pelvis",
         5: "right_femoral_head", 6: "left_femoral_head", 7: "right_femur", 8: "left_femur", 9: "sacrum"}
PART_VALUES = {name: value for value, name in PARTS.items()}
SIDES = ("right", "left")
SIGN = {"right": -1.0, "left": 1.0}  # patient left is +x in LPS
_BIG = np.float32(1e4)

__all__ = [
    "PARTS",
    "PART_VALUES",
    "SIDES",
    "HipParams",
    "build_hip_parts",
    "head_part_moments",
    "hip_bounds",
    "hip_phantom_at",
    "hip_phantom_on_grid",
    "hip_record",
    "paint_bones_on_grid",
    "sample_hip_params",
    "soft_tissue_on_grid",
]


# --- primitives: signed distance (approximate away from the surface), world AABB -------------------

def _unit(v) -> np.ndarray:
    v = np.asarray(v, float)
    return v / np.linalg.norm(v)


class _Prim:
    k: float | None = None  # blend radius into the union (None: the structure's)

    def box(self) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def sdf(self, x, y, z):
        raise NotImplementedError


class _Ball(_Prim):
    def __init__(self, c, r, k=None):
        self.c, self.r, self.k = np.asarray(c, float), float(r), k

    def box(self):
        return self.c - self.r, self.c + self.r

    def sdf(self, x, y, z):
        c = self.c
        return np.sqrt((x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2) - np.float32(self.r)


class _Ellipsoid(_Prim):
    """Axes are the columns of ``rot``; the distance is Quilez's bound (exact zero set)."""

    def __init__(self, c, radii, rot=None, k=None):
        self.c, self.radii = np.asarray(c, float), np.asarray(radii, float)
        self.rot = np.eye(3) if rot is None else np.asarray(rot, float)
        self.k = k

    def box(self):
        half = np.sqrt(((self.rot * self.radii[None, :]) ** 2).sum(axis=1))
        return self.c - half, self.c + half

    def sdf(self, x, y, z):
        c, r, a = self.c, self.rot, self.radii
        dx, dy, dz = x - c[0], y - c[1], z - c[2]
        k0 = k1 = 0
        for j in range(3):
            q = dx * np.float32(r[0, j]) + dy * np.float32(r[1, j]) + dz * np.float32(r[2, j])
            k0 = k0 + (q * np.float32(1 / a[j])) ** 2
            k1 = k1 + (q * np.float32(1 / a[j] ** 2)) ** 2
        k0, k1 = np.sqrt(k0), np.sqrt(k1)
        return k0 * (k0 - 1) / np.maximum(k1, np.float32(1e-6))


class _Cone(_Prim):
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


class _Plate(_Prim):
    """A curved plate: spherical shell (centre q, radius rho, half thickness h) cut by an ellipsoid."""

    def __init__(self, q, rho, h, cutter: _Ellipsoid, k=None):
        self.q, self.rho, self.h, self.cutter, self.k = np.asarray(q, float), rho, h, cutter, k

    def box(self):
        return self.cutter.box()

    def sdf(self, x, y, z):
        shell = np.abs(_Ball(self.q, self.rho).sdf(x, y, z)) - np.float32(self.h)
        return np.maximum(shell, self.cutter.sdf(x, y, z))


class _Minus(_Prim):
    """``prim`` with a ball removed."""

    def __init__(self, prim, ball: _Ball):
        self.prim, self.ball, self.k = prim, ball, prim.k

    def box(self):
        return self.prim.box()

    def sdf(self, x, y, z):
        return np.maximum(self.prim.sdf(x, y, z), -self.ball.sdf(x, y, z))


class _Cut(_Prim):
    """``prim`` limited to the half-space ``p . n <= d``."""

    def __init__(self, prim, n, d, k=None):
        self.prim, self.n, self.d = prim, _unit(n), float(d)
        self.k = prim.k if k is None else k

    def box(self):
        return self.prim.box()

    def sdf(self, x, y, z):
        n = self.n
        plane = x * np.float32(n[0]) + y * np.float32(n[1]) + z * np.float32(n[2]) - np.float32(self.d)
        return np.maximum(self.prim.sdf(x, y, z), plane)


def _smin(a, b, k):
    """Polynomial smooth minimum: union with a fillet of about ``k`` mm."""
    if not k:
        return np.minimum(a, b)
    k = np.float32(k)
    h = np.maximum(k - np.abs(a - b), 0) / k
    return np.minimum(a, b) - h * h * k * np.float32(0.25)


# --- evaluation domains: a tensor grid (sub-boxes are slices) or a flat point set ------------------

class _Grid:
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
        return tuple(key), _Grid(self.zs[key[0]], self.ys[key[1]], self.xs[key[2]])


class _Points:
    def __init__(self, x, y, z):
        self.x, self.y, self.z = (np.asarray(v, np.float32).ravel() for v in (x, y, z))
        self.shape = (self.x.size,)

    def sub(self, lo, hi):
        inside = ((self.x >= lo[0]) & (self.x <= hi[0]) & (self.y >= lo[1]) & (self.y <= hi[1])
                  & (self.z >= lo[2]) & (self.z <= hi[2]))
        idx = np.flatnonzero(inside)
        if idx.size == 0:
            return None
        return idx, _Points(self.x[idx], self.y[idx], self.z[idx])


def _union(prims, dom, k):
    d = np.full(dom.shape, _BIG, np.float32)
    for prim in prims:
        blend = prim.k if prim.k is not None else k
        lo, hi = prim.box()
        found = dom.sub(lo - blend, hi + blend)
        if found is not None:
            key, sub = found
            d[key] = _smin(d[key], prim.sdf(sub.x, sub.y, sub.z), blend)
    return d


def _box_of(prims, pad):
    boxes = [p.box() for p in prims]
    return np.min([b[0] for b in boxes], axis=0) - pad, np.max([b[1] for b in boxes], axis=0) + pad


# --- parameters --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class HipSide:
    """One hip in LPS world mm; vectors are 3-tuples."""

    side: str
    level: int  # pathology 0 none, 1 mild, 2 severe
    head_centre: tuple
    head_radius: float
    cavity_centre: tuple
    cavity_radius: float
    jsw_min: float
    migration: float  # head shift from the cavity centre along ``up`` (mm)
    up: tuple  # superolateral unit vector of migration and flattening
    flattening: float  # weight-bearing cap cut at radius * (1 - flattening)
    neck_axis: tuple  # unit, from the shaft towards the head
    neck_cut: float  # head-neck plane at this distance from the head centre
    neck_base: tuple  # where the neck axis meets the shaft axis
    shaft_axis: tuple  # unit, distal
    neck_shaft_angle: float
    femoral_anteversion: float
    inclination: float
    acetabular_anteversion: float
    rim_normal: tuple
    rim_offset: float
    lcea: float
    wall: float
    subchondral: float
    osteophytes_femur: tuple  # ((x, y, z, r), ...)
    osteophytes_rim: tuple
    cysts: tuple


@dataclass(frozen=True)
class HipParams:
    right: HipSide
    left: HipSide
    rotation: tuple  # 3x3 row-major, canonical patient frame -> world
    translation: tuple  # world position of the canonical origin (mid-point of the sockets)
    scale: float  # overall linear size (sex, individual, difficulty)
    contrast: float
    hu: dict = field(default_factory=dict)  # tissue -> HU (bone values with contrast applied)
    body: dict = field(default_factory=dict)  # outline and organ sizes (canonical mm)
    prims: dict = field(default_factory=dict, compare=False, repr=False)  # world primitives by structure

    def sides(self) -> tuple[HipSide, HipSide]:
        return self.right, self.left

    def side(self, name: str) -> HipSide:
        return getattr(self, name)


def _rotation(rx, ry, rz) -> np.ndarray:
    cx, sx, cy, sy, cz, sz = np.cos(rx), np.sin(rx), np.cos(ry), np.sin(ry), np.cos(rz), np.sin(rz)
    return (np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]]) @ np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
            @ np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]]))


# Per pathology level: min joint-space width, superolateral head migration (mm), head flattening
# (fraction of the radius), osteophytes per site (count range, radius range mm), cysts, subchondral plate (mm).
LEVEL_TABLE = {
    0: {"jsw": (3.5, 5.0), "mig": (0.0, 0.0), "flat": (0.0, 0.0), "n_ost": (0, 0), "r_ost": (0, 0),
        "cysts": (0, 0), "sub": 1.0},
    1: {"jsw": (1.6, 2.6), "mig": (0.3, 1.2), "flat": (0.02, 0.05), "n_ost": (3, 5), "r_ost": (1.5, 3.0),
        "cysts": (0, 1), "sub": 1.8},
    2: {"jsw": (0.5, 1.2), "mig": (1.0, 2.5), "flat": (0.06, 0.13), "n_ost": (6, 10), "r_ost": (3.0, 5.5),
        "cysts": (1, 3), "sub": 2.8},
}


def _levels(rng, age, pathology):
    """(right, left) levels: one side carries the case's level, the other a milder one."""
    drawn = int(rng.choice(3, p=[0.5, 0.3, 0.2] if age < 65 else [0.3, 0.4, 0.3]))
    worse, u = int(rng.integers(2)), float(rng.random())  # drawn always: a fixed stream
    level = drawn if pathology is None else int(pathology)
    if level not in (0, 1, 2):
        raise ValueError(f"pathology must be 0, 1 or 2, got {pathology}")
    other = int(u * level)
    return (level, other) if worse == 0 else (other, level)


def _sample_side(rng, prng, side, level, sc, dsize, M, t):
    """One hip from ``rng`` (anatomy) and ``prng`` (pathology), in world coordinates via (M, t)."""
    s = SIGN[side]
    lat, post, sup = np.array([s, 0, 0]), np.array([0, 1.0, 0]), np.array([0, 0, 1.0])
    # Anatomy (the same whatever the pathology level).
    R = 23.0 * sc * rng.normal(1, 0.04)
    A = np.array([s * rng.normal(88, 4) * sc, rng.normal(0, 1.5), rng.normal(0, 1.5)])
    nsa = float(np.clip(rng.normal(130, 5), 118, 142))
    av = float(rng.normal(12, 6))
    gamma = np.radians(rng.normal(7, 1.5))  # shaft adduction
    offset = 41.0 * sc * rng.normal(1, 0.06)  # head centre to shaft axis
    alpha, beta = np.radians(rng.normal(52, 4)), np.radians(rng.normal(18, 5))  # socket inclination, anteversion
    psi = np.radians(np.clip(rng.normal(33, 5), 22, 45))  # sourcil edge angle from the socket centre
    # Pathology.
    tab = LEVEL_TABLE[level]
    jsw, mig = prng.uniform(*tab["jsw"]) * dsize, prng.uniform(*tab["mig"]) * dsize
    flat = prng.uniform(*tab["flat"])
    up = _unit(np.cos(np.radians(15)) * sup + np.sin(np.radians(15)) * lat)
    reach = np.sqrt(R * R + mig * mig + 2 * mig * R * (1 - flat))  # farthest head point from the socket centre
    Rc = jsw + reach  # so the narrowest joint space is exactly jsw
    C = A + mig * up
    # Femur: neck at the neck-shaft angle from the shaft, turned forward by the anteversion.
    e_d = _unit(-np.cos(gamma) * sup - np.sin(gamma) * lat)
    e_m = _unit(-lat - (-lat @ e_d) * e_d)
    e_a = _unit(-post - (-post @ e_d) * e_d - (-post @ e_m) * e_m)
    n = _unit(np.cos(np.radians(nsa)) * e_d
              + np.sin(np.radians(nsa)) * (np.cos(np.radians(av)) * e_m + np.sin(np.radians(av)) * e_a))
    J = C - offset / np.sin(np.radians(nsa)) * n
    neck_cut = R * np.sqrt(1 - 0.68 ** 2)  # where a neck of radius 0.68 R meets the head sphere
    # Socket rim plane (normal o, offset rim) through the sourcil edge at angle psi.
    o = _unit(np.sin(alpha) * (np.cos(beta) * lat - np.sin(beta) * post) - np.cos(alpha) * sup)
    rim = Rc * (np.sin(psi) * np.sin(alpha) * np.cos(beta) - np.cos(psi) * np.cos(alpha))
    edge = A + Rc * (np.sin(psi) * lat + np.cos(psi) * sup) - C  # sourcil edge seen from the head centre
    lcea = np.degrees(np.arctan2(edge @ lat, edge @ sup))
    wall = 9.0 * sc
    # Osteophytes: on the head-neck ring, and overhanging the socket rim (superolateral/anterior arcs).
    ring_c, ring_r = C - neck_cut * n, np.sqrt(R * R - neck_cut ** 2)
    b1 = _unit(np.cross(n, e_a))
    b2 = np.cross(n, b1)
    fem, ace = [], []
    for _ in range(int(prng.integers(tab["n_ost"][0], tab["n_ost"][1] + 1))):
        phi, r = prng.uniform(0, 2 * np.pi), prng.uniform(*tab["r_ost"]) * dsize
        radial = np.cos(phi) * b1 + np.sin(phi) * b2
        fem.append((*(ring_c + (ring_r + 0.3 * r) * radial - 0.2 * r * n), r))
    rim_c, rim_r = A + rim * o, np.sqrt(Rc * Rc - rim * rim)
    r1 = _unit(np.cross(o, post))
    r1 = r1 if r1 @ sup > 0 else -r1
    r2 = np.cross(o, r1)
    for _ in range(int(prng.integers(tab["n_ost"][0], tab["n_ost"][1] + 1))):
        phi, r = prng.normal(0, 0.9), prng.uniform(*tab["r_ost"]) * dsize
        radial = np.cos(phi) * r1 + np.sin(phi) * r2
        ace.append((*(rim_c + (rim_r + 0.5 * wall) * radial + 0.6 * r * o), r))
    cysts = []
    for _ in range(int(prng.integers(tab["cysts"][0], tab["cysts"][1] + 1))):
        r = prng.uniform(1.5, 3.5) * sc
        in_head = prng.integers(2) == 0  # under the weight-bearing surface, or in the socket roof
        centre = C + (R * (1 - flat) - r - 2.5) * up if in_head else A + (Rc + 0.5 * wall) * up
        cysts.append((*(centre + prng.normal(0, 1.5, 3) * sc), r))

    def world(p):
        return tuple(float(v) for v in M @ p + t)

    def vector(v):
        return tuple(float(w) for w in M @ v)

    def balls(items):
        return tuple((*world(np.array(i[:3])), float(i[3])) for i in items)

    return HipSide(
        side=side, level=level, head_centre=world(C), head_radius=float(R), cavity_centre=world(A),
        cavity_radius=float(Rc), jsw_min=float(jsw), migration=float(mig), up=vector(up), flattening=float(flat),
        neck_axis=vector(n), neck_cut=float(neck_cut), neck_base=world(J), shaft_axis=vector(e_d),
        neck_shaft_angle=nsa, femoral_anteversion=av, inclination=float(np.degrees(alpha)),
        acetabular_anteversion=float(np.degrees(beta)), rim_normal=vector(o), rim_offset=float(rim),
        lcea=float(lcea), wall=float(wall), subchondral=tab["sub"] * sc, osteophytes_femur=balls(fem),
        osteophytes_rim=balls(ace), cysts=balls(cysts))


def sample_hip_params(subject, *, rng: np.random.Generator | None = None, pathology: int | None = None) -> HipParams:
    """Draw one subject's hips (see the module docstring) from ``rng`` (default ``subject.rng()``).

    Takes a fixed number of draws from ``rng`` (the seeds of independent streams for the body,
    levels, each side's anatomy and each side's pathology), so a caller's later draws, and the
    anatomy, do not depend on the pathology level.
    """
    rng = subject.rng() if rng is None else rng
    g_body, g_levels, g_right, g_left, p_right, p_left = (np.random.default_rng(int(k))
                                                          for k in rng.integers(0, 2 ** 63 - 1, size=6))
    male = subject.sex == "M"
    dsize = float(subject.difficulty.get("size", 1.0))
    contrast = float(subject.difficulty.get("contrast", 1.0))
    sc = dsize * (1.04 if male else 0.96) * float(np.clip(g_body.normal(1, 0.04), 0.9, 1.1))
    levels = _levels(g_levels, subject.age, pathology)
    M = _rotation(*np.radians(g_body.normal(0, 2, 3)))
    t = np.array([g_body.normal(0, 6), g_body.normal(-20, 10), g_body.uniform(-250, 50)])
    right = _sample_side(g_right, p_right, "right", levels[0], sc, dsize, M, t)
    left = _sample_side(g_left, p_left, "left", levels[1], sc, dsize, M, t)
    rng = g_body
    age = float(subject.age)
    muscle = float(rng.normal(50, 4))
    raw_bone = {
        "cortical": float(np.clip(rng.normal(1550, 100) - 5 * (age - 50), 1050, 1800)),
        "cancellous": float(np.clip(rng.normal(320, 35) - 2.5 * (age - 50) - (25 if not male else 0), 140, 420)),
        "marrow": float(rng.normal(15, 12)), "cyst": float(rng.normal(25, 5)),
    }
    hu = {"air": -1000.0, "fat": float(rng.normal(-100, 5)), "muscle": muscle, "cartilage": float(rng.normal(88, 4)),
          "urine": float(rng.normal(8, 3)), "gas": -950.0,
          **{k: muscle + (v - muscle) * contrast for k, v in raw_bone.items()}}
    fat = float(rng.uniform(10, 40) + (6 if not male else 0)) * sc
    body = {"fat": fat, "trunk_a": 68 * sc + fat, "trunk_b": 92 * sc + 0.9 * fat, "trunk_y": 18 * sc,
            "thigh_r": 62 * sc + 0.8 * fat, "bladder": float(rng.uniform(0.6, 1.1)) * sc,
            "gas": float(rng.uniform(0, 9)) * sc, "texture_seed": int(rng.integers(2 ** 31))}
    params = HipParams(right=right, left=left, rotation=tuple(M.ravel()), translation=tuple(t), scale=sc,
                       contrast=contrast, hu=hu, body=body)
    object.__setattr__(params, "prims", _build(params))
    return params


# --- anatomy as primitives (world coordinates) ----------------------------------------------------

def _build(p: HipParams) -> dict[str, Any]:
    M, t, sc = np.array(p.rotation).reshape(3, 3), np.array(p.translation), p.scale

    def W(v):  # canonical point -> world
        return M @ np.asarray(v, float) + t

    def D(v):  # canonical direction -> world
        return M @ np.asarray(v, float)

    out: dict[str, Any] = {}
    # Sacrum and coccyx on the midline (canonical mm).
    sac = [_Ellipsoid(W(np.array([0, 70, 88]) * sc), np.array([50, 22, 20]) * sc, M),
           _Ellipsoid(W(np.array([0, 80, 55]) * sc), np.array([40, 18, 26]) * sc, M),
           _Cone(W(np.array([0, 84, 40]) * sc), W(np.array([0, 88, 5]) * sc), 20 * sc, 10 * sc),
           _Cone(W(np.array([0, 88, 3]) * sc), W(np.array([0, 70, -25]) * sc), 7 * sc, 4 * sc)]
    out["sacrum"] = sac
    for hs in p.sides():
        s = SIGN[hs.side]
        lat, post, sup = np.array([s, 0, 0]), np.array([0, 1.0, 0]), np.array([0, 0, 1.0])
        Rw = np.array(hs.cavity_centre)
        A = M.T @ (Rw - t)  # canonical socket centre

        def rel(la, po, su, A=A, lat=lat, post=post, sup=sup):  # mm lateral, posterior, superior of the socket
            return W(A + sc * (la * lat + po * post + su * sup))

        o, rim = np.array(hs.rim_normal), hs.rim_offset
        cup = _Cut(_Ball(Rw, hs.cavity_radius + hs.wall), o, o @ Rw + rim)
        ax1 = _unit(-0.5 * lat + 0.866 * post)
        supra = _Ellipsoid(rel(-8, 4, 26), np.array([28, 13, 22]) * sc,
                           M @ np.column_stack([ax1, np.cross(sup, ax1), sup]))
        asis, psis = rel(28, -48, 62), W(np.array([s * 40, 98, 78]) * sc)
        crest = rel(18, 35, 112)
        centre = (asis + psis) / 2 + np.array([0, 0, -8]) * sc
        t1 = _unit(psis - asis)
        t2 = _unit((crest - centre) - ((crest - centre) @ t1) * t1)
        nin = np.cross(t1, t2)
        nin = nin if nin @ D(-lat) > 0 else -nin  # towards the pelvic cavity
        cutter = _Ellipsoid(centre, np.array([np.linalg.norm(psis - asis) / 2 + 6 * sc, 62 * sc, 30 * sc]),
                            np.column_stack([t1, t2, nin]))
        wing = _Cut(_Plate(centre + 150 * sc * nin, 150 * sc, 4.0 * sc, cutter),
                    -D(_unit(sup - 0.6 * post)), -(D(_unit(sup - 0.6 * post)) @ rel(0, 20, 18)))
        si = W(np.array([s * 46, 74, 62]) * sc)
        T = rel(-22, 30, -52)
        pb = W(np.array([s * 11.5, -48, -28]) * sc)
        tilt = np.radians(20)
        sym_axes = M @ np.column_stack([[1, 0, 0], [0, np.cos(tilt), -np.sin(tilt)], [0, np.sin(tilt), np.cos(tilt)]])
        pelvis = [cup, supra, wing,
                  _Cone(rel(-6, 14, 18), si, 15 * sc, 13 * sc),  # posterior column / sciatic buttress
                  _Ellipsoid(rel(8, -28, 28), np.array([8, 8, 12]) * sc, M),  # anterior inferior iliac spine
                  _Cone(rel(-4, 10, -6), T, 15 * sc, 12 * sc),  # ischial body
                  _Ellipsoid(T + D([0, 4, -4]) * sc, np.array([13, 20, 20]) * sc, M),  # tuberosity
                  _Cone(rel(-12, 22, 0), rel(-26, 40, -2), 8 * sc, 4 * sc),  # ischial spine
                  _Cone(rel(-14, -16, -8), pb + D([0, 2, 12]) * sc, 12 * sc, 8 * sc),  # superior pubic ramus
                  _Ellipsoid(pb, np.array([9, 12, 20]) * sc, sym_axes),  # pubic body
                  _Cone(pb + D([s * 2, 6, -14]) * sc, T + D([-s * 6, -6, -8]) * sc, 7 * sc, 8 * sc)]  # inferior ramus
        pelvis += [_Ball(v[:3], v[3], k=2.0) for v in hs.osteophytes_rim]
        # Carved: the socket cavity, the lip beyond the rim plane, and a 2.5 mm sacro-iliac joint.
        lip = _Cut(_Ball(Rw, hs.cavity_radius + 0.6 * hs.wall), -o, -(o @ Rw + rim))
        out[f"{hs.side}_pelvis"] = (pelvis, [([_Ball(Rw, hs.cavity_radius)], 0.0), ([lip], 0.0), (sac, 2.5)])
        C, n, e_d, J, R = (np.array(hs.head_centre), np.array(hs.neck_axis), np.array(hs.shaft_axis),
                           np.array(hs.neck_base), hs.head_radius)
        e_m = _unit(n - (n @ e_d) * e_d)
        e_p = np.cross(e_d, e_m) * (1 if np.cross(e_d, e_m) @ D(post) > 0 else -1)
        frame = np.column_stack([-e_m, e_p, e_d])
        head = _Ball(C, R)
        if hs.flattening > 0:
            u = np.array(hs.up)
            head = _Cut(head, u, u @ C + R * (1 - hs.flattening))
        femur = [head,
                 _Cone(C - 0.3 * R * n, J, 0.68 * R, 0.82 * R),  # neck
                 _Cone(J - 12 * sc * e_d, J + 70 * sc * e_d, 20 * sc, 15 * sc),  # intertrochanteric region
                 _Cone(J + 60 * sc * e_d, J + 320 * sc * e_d, 14.5 * sc, 13 * sc),  # shaft
                 _Ellipsoid(J - 9 * sc * e_m + 6 * sc * e_p - 8 * sc * e_d, np.array([12, 18, 24]) * sc, frame),  # GT
                 _Ellipsoid(J + 50 * sc * e_d + 12 * sc * e_m + 9 * sc * e_p, np.array([8, 7, 12]) * sc, frame)]  # LT
        femur += [_Ball(v[:3], v[3], k=2.0) for v in hs.osteophytes_femur]
        # Femoral osteophytes keep clear of the socket bone (never closer than the joint space allows).
        socket = [_Minus(q, _Ball(Rw, hs.cavity_radius)) for q in [cup] + pelvis[11:]]
        out[f"{hs.side}_femur"] = (femur, [(socket, min(0.7, 0.5 * hs.jsw_min))])
    out["sacrum"] = (sac, [])
    # Soft tissue: organs (canonical), moved with the pelvis.
    b = p.body
    out["bladder"] = _Ellipsoid(W(np.array([0, -22, 4]) * sc), np.array([38, 30, 30]) * b["bladder"], M)
    out["rectum"] = _Cone(W(np.array([0, 62, -40]) * sc), W(np.array([0, 58, 45]) * sc), 13 * sc, 16 * sc)
    out["gas"] = _Ball(W(np.array([0, 58, 20]) * sc), b["gas"])
    out["texture"] = _texture(b["texture_seed"])
    return out


_TEXTURE_N = 64
_TRABECULAR_CELL = 0.8  # mm per texture cell


def _texture(seed: int) -> np.ndarray:
    """A periodic unit-variance random field for trabecular mottling."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    f = ndimage.gaussian_filter(rng.standard_normal((_TEXTURE_N,) * 3, dtype=np.float32), 1.0, mode="wrap")
    return (f - f.mean()) / f.std()


def _lookup(field, cell, x, y, z):
    """Nearest-cell value of a periodic field at world points (broadcasting; cheap for grids)."""
    n = field.shape[0]
    index = [np.floor(v * np.float32(1 / cell)).astype(np.int64) % n for v in (z, y, x)]
    return field[index[0], index[1], index[2]]


# --- evaluation -------------------------------------------------------------------------------------

def _canonical(p: HipParams, side: HipSide, key: str) -> np.ndarray:
    M = np.array(p.rotation).reshape(3, 3)
    return M.T @ (np.array(getattr(side, key)) - np.array(p.translation))


def _ellipse(x, y, a, b):
    """Approximate signed distance to an axis-aligned ellipse (broadcasting; exact zero set)."""
    a, b = np.maximum(a, np.float32(1e-3)), np.maximum(b, np.float32(1e-3))
    k0 = np.sqrt((x / a) ** 2 + (y / b) ** 2)
    k1 = np.sqrt((x / (a * a)) ** 2 + (y / (b * b)) ** 2)
    return k0 * (k0 - 1) / np.maximum(k1, np.float32(1e-6))


def _outline(p: HipParams, X, Y, Z):
    """Signed distances (mm, canonical coordinates relative to the table) to the body outline
    (trunk, buttocks and thighs, smoothly joined) and to the pelvic-cavity fat."""
    sc, b, t = p.scale, p.body, np.array(p.translation)
    f = np.float32(b["fat"])
    hw = float(np.mean([abs(_canonical(p, s, "cavity_centre")[0]) for s in p.sides()]))
    fork = float(np.mean([_canonical(p, s, "neck_base")[2] for s in p.sides()])) - 40 * sc
    w = np.clip((Z - np.float32(fork - 50 * sc)) / np.float32(50 * sc), 0, 1)  # trunk fades below the crotch
    body = _ellipse(X, Y - np.float32(b["trunk_y"]), np.float32(hw + b["trunk_a"]) * w, np.float32(b["trunk_b"]) * w)
    k = 20 * sc
    wb = np.clip((np.float32(60 * sc) - Z) / np.float32(40 * sc), 0, 1) * w  # buttocks below the iliac crests
    for s in (-1, 1):
        lobe = _ellipse(X - np.float32(s * 52 * sc), Y - np.float32(62 * sc), (np.float32(70 * sc) + f) * wb,
                        (np.float32(62 * sc) + f) * wb)
        body = _smin(body, lobe, k)
    for side in p.sides():
        J, e = (np.array(side.neck_base) - t).astype(np.float32), np.array(side.shaft_axis, np.float32)
        cx = J[0] + (Z - J[2]) * (e[0] / e[2]) - np.float32(SIGN[side.side] * 8 * sc)
        cy = J[1] + (Z - J[2]) * (e[1] / e[2]) + np.float32(10 * sc)
        r = np.float32(b["thigh_r"]) * np.clip((J[2] + np.float32(20 * sc) - Z) / np.float32(40 * sc), 0, 1)
        body = _smin(body, np.sqrt((X - cx) ** 2 + (Y - cy) ** 2) - r, k)
    # Pelvic fat: an ellipsoid inside the pelvic ring (bladder and rectum are painted over it).
    wc = np.sqrt(np.clip(1 - ((Z - np.float32(30 * sc)) / np.float32(70 * sc)) ** 2, 0, 1))
    cavity = _ellipse(X, Y - np.float32(25 * sc), np.float32(hw - 40 * sc) * wc, np.float32(55 * sc) * wc)
    return body, cavity


def _soft_values(p: HipParams, body, cavity, Y) -> np.ndarray:
    """Air, subcutaneous fat (thicker behind), a fascial fat plane ~22 mm deeper, muscle, pelvic fat."""
    sc, hu, b = p.scale, p.hu, p.body
    behind = Y - np.float32(b["trunk_y"])
    depth = np.float32(b["fat"]) * (1 + np.float32(0.4) * np.clip(behind / np.float32(80 * sc), 0, 1))
    fascia = (body < -depth - np.float32(22 * sc)) & (body > -depth - np.float32(24.5 * sc)) & (behind > 0)
    fat = (body > -depth) | fascia | (cavity <= 0)  # the fascia: the gluteal fat plane, behind
    return np.where(body > 0, np.float32(hu["air"]), np.where(fat, np.float32(hu["fat"]), np.float32(hu["muscle"])))


_OUTLINE_STEP = 2.0  # mm between the slices where a grid's outline is computed (it varies slowly in z)
_OUTLINE_CELL = 4.0  # mm: a grid's outline distances are computed this coarse in-plane and interpolated


def _lerp_weights(fine: np.ndarray, coarse: np.ndarray):
    """Left indices and weights to interpolate from increasing ``coarse`` positions to ``fine``."""
    i = np.clip(np.searchsorted(coarse, fine) - 1, 0, coarse.size - 2)
    u = np.clip((fine - coarse[i]) / (coarse[i + 1] - coarse[i]), 0, 1).astype(np.float32)
    return i, u


def _resample(field, iy, vy, ix, ux):
    """Bilinear interpolation of ``field[level, cy, cx]`` onto the fine rows and columns."""
    rows = field[:, :, ix] * (1 - ux) + field[:, :, ix + 1] * ux
    return rows[:, iy, :] * (1 - vy)[:, None] + rows[:, iy + 1, :] * vy[:, None]


def _background(dom, p: HipParams):
    """Soft tissue and organs (noise-free HU), and empty parts. The outline follows the table
    (translation only), not the small pelvic tilt. On a grid the outline distances are computed
    on 4 mm cells every 2 mm in z and interpolated (< 0.1 mm from the exact outline)."""
    t = np.array(p.translation, np.float32)
    if isinstance(dom, _Grid) and dom.shape[0] > 1 and min(dom.xs.size, dom.ys.size) > 1:
        levels, nearest = np.unique(np.round(dom.zs / _OUTLINE_STEP), return_inverse=True)
        Z = (levels * _OUTLINE_STEP - t[2]).astype(np.float32)[:, None, None]
        xs, ys = dom.xs - t[0], dom.ys - t[1]
        cx = np.arange(xs.min() - _OUTLINE_CELL, xs.max() + 2 * _OUTLINE_CELL, _OUTLINE_CELL, dtype=np.float32)
        cy = np.arange(ys.min() - _OUTLINE_CELL, ys.max() + 2 * _OUTLINE_CELL, _OUTLINE_CELL, dtype=np.float32)
        fields = _outline(p, cx[None, None, :], cy[None, :, None], Z)
        weights = (*_lerp_weights(ys, cy), *_lerp_weights(xs, cx))
        body, cavity = (_resample(np.broadcast_to(f, (Z.shape[0], cy.size, cx.size)), *weights) for f in fields)
        out = _soft_values(p, body, cavity, ys[None, :, None])[nearest.ravel()]
    else:
        X, Y, Z = dom.x - t[0], dom.y - t[1], dom.z - t[2]
        out = np.broadcast_to(_soft_values(p, *_outline(p, X, Y, Z), Y), dom.shape).copy()
    for name, value in (("bladder", p.hu["urine"]), ("rectum", 30.0), ("gas", p.hu["gas"])):
        prim = p.prims[name]
        if name == "gas" and prim.r < 2:
            continue
        found = dom.sub(*prim.box())
        if found is not None:
            key, sub = found
            out[key] = np.where(prim.sdf(sub.x, sub.y, sub.z) <= 0, np.float32(value), out[key])
    return out, np.zeros(dom.shape, np.uint8)


def _in_balls(sub, balls):
    hit = np.zeros(np.broadcast_shapes(sub.x.shape, sub.y.shape, sub.z.shape), bool)
    for *c, r in balls:
        hit |= _Ball(c, r).sdf(sub.x, sub.y, sub.z) <= 0
    return hit


def _tissue(p: HipParams, name: str, sub, d):
    """Part values and bone HU of one structure on its sub-domain (``d``: its signed distance)."""
    part, bone = _bone(p, name, sub, d)
    # Trabecular mottling, proportional to the cancellous contrast over muscle.
    amp = np.float32(0.3 * (p.hu["cancellous"] - p.hu["muscle"]))
    mottle = amp * _lookup(p.prims["texture"], _TRABECULAR_CELL, sub.x, sub.y, sub.z)
    return part, np.where(bone < np.float32(p.hu["cortical"]), bone + mottle * (bone > p.hu["cyst"]), bone)


def _bone(p: HipParams, name: str, sub, d):
    hu, sc = p.hu, p.scale
    x, y, z = sub.x, sub.y, sub.z
    if name == "sacrum":
        part = np.uint8(PART_VALUES["sacrum"])
        return part, np.where(d > -1.2 * sc, np.float32(hu["cortical"]), np.float32(hu["cancellous"]))
    side = p.side(name.split("_")[0])
    cortical, cancellous = np.float32(hu["cortical"]), np.float32(hu["cancellous"])
    if name.endswith("pelvis"):
        A = side.cavity_centre
        in_slab = np.abs(z - np.float32(side.head_centre[2])) <= np.float32(side.head_radius)
        part = np.where(in_slab, np.uint8(PART_VALUES[f"{side.side}_acetabulum"]),
                        np.uint8(PART_VALUES[f"{side.side}_pelvis"]))
        plate = _Ball(A, side.cavity_radius).sdf(x, y, z) < np.float32(side.subchondral)  # subchondral plate
        bone = np.where((d > -1.3 * sc) | plate, cortical, cancellous)
    else:
        C, n, J, e = (np.array(v, np.float32) for v in (side.head_centre, side.neck_axis, side.neck_base,
                                                         side.shaft_axis))
        radial = _Ball(C, side.head_radius).sdf(x, y, z)
        along = (x - C[0]) * n[0] + (y - C[1]) * n[1] + (z - C[2]) * n[2]
        head = (radial <= 0) & (along >= -np.float32(side.neck_cut))
        part = np.where(head, np.uint8(PART_VALUES[f"{side.side}_femoral_head"]),
                        np.uint8(PART_VALUES[f"{side.side}_femur"]))
        height = -((x - J[0]) * e[0] + (y - J[1]) * e[1] + (z - J[2]) * e[2])  # above the neck base, mm
        ramp = np.clip((height + 110 * sc) / np.float32(70 * sc), 0, 1)
        thickness = np.float32(5.5 * sc) + ramp * np.float32(-4.0 * sc)
        marrow = np.clip((height + 120 * sc) / np.float32(60 * sc), 0, 1)
        interior = np.float32(hu["marrow"]) + marrow * (cancellous - np.float32(hu["marrow"]))
        plate = head & (radial > -np.float32(side.subchondral))
        bone = np.where((d > -thickness) | plate, cortical, interior)
    if side.cysts:
        bone = np.where(_in_balls(sub, side.cysts), np.float32(hu["cyst"]), bone)
    return part, bone


_ORDER = ("sacrum", "right_pelvis", "left_pelvis", "right_femur", "left_femur")


def _evaluate(dom, p: HipParams, base=None):
    """HU and parts on a domain; with ``base`` = (hu, parts) arrays of its shape, bones and
    joint spaces are painted into them (their soft tissue is kept)."""
    hu, parts = _background(dom, p) if base is None else base
    for side in p.sides():  # joint space: cartilage and fluid inside the socket sphere
        found = dom.sub(*_Ball(side.cavity_centre, side.cavity_radius).box())
        if found is not None:
            key, sub = found
            inside = _Ball(side.cavity_centre, side.cavity_radius).sdf(sub.x, sub.y, sub.z) <= 0
            hu[key] = np.where(inside, np.float32(p.hu["cartilage"]), hu[key])
    k = 6 * p.scale
    for name in _ORDER:
        prims, carves = p.prims[name]
        found = dom.sub(*_box_of(prims, k))
        if found is None:
            continue
        key, sub = found
        d = _union(prims, sub, k)
        for carve, margin in carves:
            d = np.maximum(d, np.float32(margin) - _union(carve, sub, k))
        inside = d <= 0
        if not inside.any():
            continue
        part, bone = _tissue(p, name, sub, d)
        hu[key] = np.where(inside, bone, hu[key])
        parts[key] = np.where(inside, part, parts[key])
    return hu, parts


def hip_phantom_on_grid(zs, ys, xs, params: HipParams) -> tuple[np.ndarray, np.ndarray]:
    """Noise-free HU and parts on the tensor grid of world vectors ``zs, ys, xs`` (mm): ``[z, y, x]``."""
    return _evaluate(_Grid(zs, ys, xs), params)


def soft_tissue_on_grid(zs, ys, xs, params: HipParams) -> np.ndarray:
    """Noise-free HU of the soft tissue alone (air, fat, muscle, organs) on a tensor grid."""
    return _background(_Grid(zs, ys, xs), params)[0]


def paint_bones_on_grid(zs, ys, xs, params: HipParams, hu: np.ndarray, parts: np.ndarray) -> None:
    """Paint joint spaces and bones (HU and parts) in place into arrays of shape
    ``(len(zs), len(ys), len(xs))`` that already hold soft tissue. With
    :func:`soft_tissue_on_grid` this equals :func:`hip_phantom_on_grid`, but lets a caller
    compute the slowly varying soft tissue on fewer slices than the bones."""
    _evaluate(_Grid(zs, ys, xs), params, base=(hu, parts))


def hip_phantom_at(x, y, z, params: HipParams) -> tuple[np.ndarray, np.ndarray]:
    """Noise-free HU and parts at world points (LPS mm) given as broadcastable arrays of any shape."""
    x, y, z = np.broadcast_arrays(*(np.asarray(v, np.float32) for v in (x, y, z)))
    hu, parts = _evaluate(_Points(x, y, z), params)
    return hu.reshape(x.shape), parts.reshape(x.shape)


def build_hip_parts(params: HipParams, *, shape, spacing, origin) -> tuple[np.ndarray, np.ndarray]:
    """HU and parts on an Image grid ``[slice, row, col]`` (default LPS layout): ``spacing`` in array
    order (mm), ``origin`` the world (x, y, z) of voxel (0, 0, 0)."""
    nz, ny, nx = (int(v) for v in shape)
    dz, dy, dx = (float(v) for v in spacing)
    ox, oy, oz = (float(v) for v in origin)
    return hip_phantom_on_grid(oz + dz * np.arange(nz), oy + dy * np.arange(ny), ox + dx * np.arange(nx), params)


def hip_bounds(params: HipParams, *, bones_only: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """World AABB (lo, hi) in mm of the bones, or of the bones and the body around them (+5 mm)."""
    prims = [q for name in _ORDER for q in params.prims[name][0]]
    lo, hi = _box_of(prims, 0)
    if bones_only:
        return lo, hi
    t = np.array(params.translation)
    grid = [np.arange(-400, 401, 4.0, dtype=np.float32) for _ in range(2)]
    Z = np.arange(lo[2], hi[2], 5.0, dtype=np.float32)[:, None, None] - np.float32(t[2])
    inside = _outline(params, grid[0][None, None, :], grid[1][None, :, None], Z)[0] <= 0
    xs, ys = grid[0][inside.any(axis=(0, 1))], grid[1][inside.any(axis=(0, 2))]
    lo[:2] = np.minimum(lo[:2], [xs.min() + t[0] - 9, ys.min() + t[1] - 9])
    hi[:2] = np.maximum(hi[:2], [xs.max() + t[0] + 9, ys.max() + t[1] + 9])
    return lo, hi


# --- recorded geometry ------------------------------------------------------------------------------

def _cap(R, h):
    """Volume of a spherical cap of height h and the distance of its centroid from the sphere centre."""
    if h <= 0:
        return 0.0, 0.0
    return np.pi * h * h * (3 * R - h) / 3, 3 * (2 * R - h) ** 2 / (4 * (3 * R - h))


def head_part_moments(params: HipParams, side: str) -> tuple[float, np.ndarray]:
    """Exact volume (mm^3) and centroid (LPS mm) of the femoral-head part: the head sphere minus the
    cap beyond the head-neck plane and the flattened weight-bearing cap (they never overlap)."""
    hs = params.side(side)
    R, C = hs.head_radius, np.array(hs.head_centre)
    v1, z1 = _cap(R, R - hs.neck_cut)
    v2, z2 = _cap(R, R * hs.flattening)
    volume = 4 / 3 * np.pi * R ** 3 - v1 - v2
    moment = -v1 * z1 * -np.array(hs.neck_axis) - v2 * z2 * np.array(hs.up)
    return float(volume), C + moment / volume


def hip_record(params: HipParams) -> dict[str, Any]:
    """Flat generating parameters and recorded geometry (mm, degrees, HU) for ``case.params``."""
    row: dict[str, Any] = {"pathology_level": max(s.level for s in params.sides()),
                           "anatomy_scale": round(params.scale, 4),
                           "bone_contrast": params.contrast}
    for hs in params.sides():
        s = hs.side
        row.update({
            f"{s}_pathology": hs.level, f"{s}_head_radius_mm": hs.head_radius,
            **{f"{s}_head_centre_{a}_mm": v for a, v in zip("xyz", hs.head_centre)},
            f"{s}_head_volume_mm3": head_part_moments(params, s)[0], f"{s}_head_neck_cut_mm": hs.neck_cut,
            f"{s}_socket_radius_mm": hs.cavity_radius,
            f"{s}_jsw_min_mm": hs.jsw_min, f"{s}_head_migration_mm": hs.migration,
            f"{s}_head_flattening": hs.flattening, f"{s}_neck_shaft_angle_deg": hs.neck_shaft_angle,
            f"{s}_femoral_anteversion_deg": hs.femoral_anteversion, f"{s}_acetabular_inclination_deg": hs.inclination,
            f"{s}_acetabular_anteversion_deg": hs.acetabular_anteversion, f"{s}_lcea_deg": hs.lcea,
            f"{s}_osteophytes": len(hs.osteophytes_femur) + len(hs.osteophytes_rim),
            f"{s}_osteophyte_max_mm": max([o[3] for o in hs.osteophytes_femur + hs.osteophytes_rim], default=0.0),
            f"{s}_cysts": len(hs.cysts),
        })
    row.update({f"hu_{k}": params.hu[k] for k in ("cortical", "cancellous", "muscle", "fat")})
    row["subcutaneous_fat_mm"] = round(params.body["fat"], 2)
    row.update({f"pelvis_origin_{a}_mm": v for a, v in zip("xyz", params.translation)})  # mid-point of the sockets
    return row
