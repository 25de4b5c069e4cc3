"""Parallel-beam radiograph projection: analytic chords through solids, Beer-Lambert, detector.

Shared by the radiograph phantoms (knee, hip, chest, fracture). The API is stable:

Frame
    Everything lives in the **detector frame** ``(u, v, w)`` in mm: ``u`` runs along the image
    columns (increasing column), ``v`` along the rows (increasing row, i.e. downwards in the
    displayed image) and ``w`` along the rays. Rays are parallel (a source far away), so a
    solid's shadow does not depend on its depth ``w`` and sizes are not magnified. For a
    standard PA/AP display (patient's right on the image left) ``u`` points to the patient's
    left and ``v`` to the feet.
:class:`Detector`
    ``shape`` (rows, cols), ``spacing`` (mm) and the ``(u, v)`` of the centre of pixel
    ``[0, 0]``; :meth:`Detector.centred` puts ``u = v = 0`` at the image centre.
Solids (:class:`Ellipsoid`, :class:`Capsule`, :class:`Cylinder`, :class:`Loft`)
    ``solid.intervals(u, v) -> (t_in, t_out)``: where each ray ``(u, v)`` enters and leaves the
    solid (``w`` in mm, NaN on a miss); ``solid.bbox()``: the ``(u0, u1, v0, v1)`` of its shadow.
    :func:`chord_length` gives the length of the **union** of several solids along every ray
    (overlapping pieces of one bone are not counted twice), computed on their bounding box only.
    A cortical shell is ``chord(outer) - chord(inner)`` with the inner solids ``shrunk``.
Materials
    :data:`MU_PER_MM`: linear attenuation coefficients (1/mm) at an effective energy of
    :data:`EFFECTIVE_ENERGY_KEV` = 65 keV (a ~70-80 kVp beam after filtration), from NIST XCOM
    / ICRU-44 mass attenuation coefficients times density (interpolated log-log 60->80 keV):

    ===============  =========  =========  ========
    material         mu/rho     density    mu (1/mm)
                     (cm2/g)    (g/cm3)
    ===============  =========  =========  ========
    air              0.186      0.0012     0.00002
    fat (adipose)    0.196      0.95       0.0186
    soft tissue      0.200      1.05       0.0210
    cancellous bone  0.228      1.18       0.0270
    cortical bone    0.287      1.92       0.0551
    ===============  =========  =========  ========

    :func:`mu_table` scales bone over soft tissue by a difficulty ``contrast`` factor;
    :func:`mu_from_hu` converts a CT-number phantom (``mu_water (1 + HU/1000)``, water 0.0200/mm).
Image chain (:func:`render`)
    line integral ``sum mu_i L_i`` -> :func:`beer_lambert` ``I = I0 exp(-sum mu_i L_i)`` ->
    scatter and heel effect -> :func:`quantum_noise` (Poisson-like, sd times ``noise_factor``)
    -> :func:`detector_blur` (Gaussian, mm; the scintillator blurs the noise too) -> optional
    dynamic-range equalisation (DX processing) -> :func:`film_curve` (log transform + sigmoid to ``bits`` stored bits, optional MONOCHROME1
    inversion). MONOCHROME2 output: bone bright, air dark.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

__all__ = [
    "EFFECTIVE_ENERGY_KEV",
    "MU_PER_MM",
    "MU_WATER_PER_MM",
    "Capsule",
    "Cylinder",
    "Detector",
    "Ellipsoid",
    "Loft",
    "beer_lambert",
    "chord_length",
    "detector_blur",
    "film_curve",
    "footprint",
    "mu_from_hu",
    "mu_table",
    "quantum_noise",
    "render",
    "rotation_matrix",
]

EFFECTIVE_ENERGY_KEV = 65.0
MU_PER_MM = {"air": 0.00002, "fat": 0.0186, "soft_tissue": 0.0210, "cancellous": 0.0270, "cortical": 0.0551}
_BONES = ("cancellous", "cortical")


MU_WATER_PER_MM = 0.0200  # water at 65 keV (NIST XCOM 0.1995 cm2/g)


def mu_from_hu(hu) -> np.ndarray:
    """Linear attenuation (1/mm) of CT numbers at the effective energy: ``mu_water (1 + HU / 1000)``."""
    return MU_WATER_PER_MM * (1.0 + np.asarray(hu, np.float32) / 1000.0)


def mu_table(*, contrast: float = 1.0) -> dict[str, float]:
    """:data:`MU_PER_MM` with bone attenuation over soft tissue times ``contrast`` (difficulty)."""
    soft = MU_PER_MM["soft_tissue"]
    return {k: (soft + contrast * (mu - soft) if k in _BONES else mu) for k, mu in MU_PER_MM.items()}


@dataclass(frozen=True)
class Detector:
    """A detector grid: ``shape`` (rows, cols), ``spacing`` (row, col) mm, ``origin`` = (u, v) of pixel [0, 0]."""

    shape: tuple[int, int]
    spacing: tuple[float, float]
    origin: tuple[float, float] = (0.0, 0.0)

    @classmethod
    def centred(cls, shape: Sequence[int], spacing: float | Sequence[float]) -> Detector:
        """A grid whose centre is ``u = v = 0``."""
        rows, cols = (int(n) for n in shape)
        sr, sc = (float(spacing), float(spacing)) if np.isscalar(spacing) else (float(s) for s in spacing)
        return cls((rows, cols), (sr, sc), (-(cols - 1) / 2 * sc, -(rows - 1) / 2 * sr))

    def u(self, cols=None) -> np.ndarray:
        cols = np.arange(self.shape[1]) if cols is None else np.asarray(cols, float)
        return self.origin[0] + cols * self.spacing[1]

    def v(self, rows=None) -> np.ndarray:
        rows = np.arange(self.shape[0]) if rows is None else np.asarray(rows, float)
        return self.origin[1] + rows * self.spacing[0]

    def to_pixel(self, u, v) -> tuple[np.ndarray, np.ndarray]:
        """Fractional (row, col) of detector point(s) ``(u, v)``."""
        return ((np.asarray(v, float) - self.origin[1]) / self.spacing[0],
                (np.asarray(u, float) - self.origin[0]) / self.spacing[1])

    def window(self, bbox) -> tuple[slice, slice] | None:
        """Row and column slices of the pixels whose centres may fall in ``bbox`` = (u0, u1, v0, v1)."""
        u0, u1, v0, v1 = bbox
        r0, c0 = self.to_pixel(u0, v0)
        r1, c1 = self.to_pixel(u1, v1)
        r0, c0 = max(int(np.floor(r0)), 0), max(int(np.floor(c0)), 0)
        r1, c1 = min(int(np.ceil(r1)) + 1, self.shape[0]), min(int(np.ceil(c1)) + 1, self.shape[1])
        if r0 >= r1 or c0 >= c1:
            return None
        return slice(r0, r1), slice(c0, c1)

    def grid(self, rows: slice, cols: slice) -> tuple[np.ndarray, np.ndarray]:
        """(u, v) of the pixel centres in a window, broadcastable ``[1, n]`` and ``[m, 1]``."""
        return (self.u(np.arange(cols.start, cols.stop))[None, :],
                self.v(np.arange(rows.start, rows.stop))[:, None])


def rotation_matrix(*, about_u: float = 0.0, about_v: float = 0.0, about_w: float = 0.0) -> np.ndarray:
    """Rotation (degrees) applied about w, then v, then u; columns are the rotated body axes."""
    a, b, c = np.deg2rad([about_u, about_v, about_w])
    ru = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    rv = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rw = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return ru @ rv @ rw


def _solve(qa, qb, qc) -> tuple[np.ndarray, np.ndarray]:
    """Roots ``t_in <= t_out`` of ``qa t^2 + 2 qb t + qc = 0`` (NaN where no real root)."""
    disc = qb * qb - qa * qc
    with np.errstate(invalid="ignore", divide="ignore"):
        root = np.sqrt(np.where(disc > 0, disc, np.nan))
        return (-qb - root) / qa, (-qb + root) / qa


@dataclass(frozen=True)
class Ellipsoid:
    """Ellipsoid: ``center`` (u, v, w) mm, semi-axes ``radii`` (mm) along the columns of ``rotation``."""

    center: tuple[float, float, float]
    radii: tuple[float, float, float]
    rotation: np.ndarray | None = None

    def _metric(self) -> np.ndarray:
        """``M`` with the solid = ``{x : (x - c)^T M (x - c) <= 1}``."""
        rot = np.eye(3) if self.rotation is None else np.asarray(self.rotation, float)
        return rot @ np.diag(1.0 / np.asarray(self.radii, float) ** 2) @ rot.T

    def bbox(self) -> tuple[float, float, float, float]:
        rot = np.eye(3) if self.rotation is None else np.asarray(self.rotation, float)
        half = np.sqrt(((rot * np.asarray(self.radii, float)[None, :]) ** 2).sum(axis=1))
        c = self.center
        return c[0] - half[0], c[0] + half[0], c[1] - half[1], c[1] + half[1]

    def intervals(self, u, v) -> tuple[np.ndarray, np.ndarray]:
        m = self._metric()
        du, dv = np.asarray(u, float) - self.center[0], np.asarray(v, float) - self.center[1]
        # |A (x - c)|^2 = 1 along x = (u, v, w): a quadratic in s = w - c_w.
        qa = m[2, 2]
        qb = m[0, 2] * du + m[1, 2] * dv
        qc = m[0, 0] * du * du + 2 * m[0, 1] * du * dv + m[1, 1] * dv * dv - 1.0
        t0, t1 = _solve(qa, qb, qc)
        return t0 + self.center[2], t1 + self.center[2]

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
        du = np.asarray(u, float) - self.center[0]
        t0, t1 = _solve(s[1, 1], s[0, 1] * du, s[0, 0] * du * du - 1.0)
        return t0 + self.center[1], t1 + self.center[1]

    def shrunk(self, by: float) -> Ellipsoid:
        """Same ellipsoid with every semi-axis ``by`` mm shorter (an inner cancellous core)."""
        return replace(self, radii=tuple(max(r - by, 1e-3) for r in self.radii))

    def moved(self, du: float = 0.0, dv: float = 0.0, dw: float = 0.0) -> Ellipsoid:
        c = self.center
        return replace(self, center=(c[0] + du, c[1] + dv, c[2] + dw))


@dataclass(frozen=True)
class Capsule:
    """All points within ``radius`` mm of the segment ``p0``-``p1`` (a shaft with rounded ends)."""

    p0: tuple[float, float, float]
    p1: tuple[float, float, float]
    radius: float

    def bbox(self) -> tuple[float, float, float, float]:
        (a, b), r = np.array([self.p0, self.p1], float).T[:2], self.radius
        return min(a) - r, max(a) + r, min(b) - r, max(b) + r

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
class Cylinder:
    """A right circular cylinder with flat ends: axis ``p0``-``p1``, ``radius`` mm."""

    p0: tuple[float, float, float]
    p1: tuple[float, float, float]
    radius: float

    def bbox(self) -> tuple[float, float, float, float]:
        return Capsule(self.p0, self.p1, self.radius).bbox()  # a capsule contains the cylinder

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
    t0, t1 = _solve(qa, qb, qc)
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


def _as_list(solids) -> list:
    return list(solids) if isinstance(solids, (list, tuple)) else [solids]


def _union_bbox(solids) -> tuple[float, float, float, float]:
    boxes = np.array([s.bbox() for s in solids])
    return boxes[:, 0].min(), boxes[:, 1].max(), boxes[:, 2].min(), boxes[:, 3].max()


def chord_length(solids, detector: Detector, *, window: tuple[slice, slice] | None = None) -> np.ndarray:
    """Length (mm) of every ray's path through the union of ``solids`` (one solid or a list).

    Computed on the union's bounding box (or ``window``); the rest of the full-size result is 0.
    """
    solids = _as_list(solids)
    out = np.zeros(detector.shape, np.float64)
    window = window or detector.window(_union_bbox(solids))
    if window is None or not solids:
        return out
    u, v = detector.grid(*window)
    shape = (v.shape[0], u.shape[1])
    starts, ends = [], []
    for solid in solids:
        t0, t1 = (np.broadcast_to(x, shape) for x in solid.intervals(u, v))
        starts.append(np.where(np.isnan(t0), np.inf, t0))
        ends.append(np.where(np.isnan(t1), -np.inf, t1))
    out[window] = _union_length(np.stack(starts), np.stack(ends))
    return out


def _union_length(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Total length of the union of intervals ``[starts[k], ends[k]]`` per pixel (empty: +inf, -inf)."""
    if starts.shape[0] == 1:
        return np.maximum(ends[0] - starts[0], 0.0)
    order = np.argsort(starts, axis=0)
    starts, ends = np.take_along_axis(starts, order, 0), np.take_along_axis(ends, order, 0)
    total = np.zeros(starts.shape[1:])
    reach = np.full(starts.shape[1:], -np.inf)
    for s, e in zip(starts, ends):
        with np.errstate(invalid="ignore"):
            gain = e - np.maximum(s, reach)
        total += np.where(gain > 0, gain, 0.0)
        reach = np.maximum(reach, e)
    return total


def footprint(solids, detector: Detector) -> np.ndarray:
    """Boolean shadow of the union of ``solids``: pixels whose centre ray meets them."""
    return chord_length(solids, detector) > 0


def beer_lambert(line_integral, *, i0: float = 1.0) -> np.ndarray:
    """Transmitted intensity ``I0 exp(-sum mu_i L_i)`` for a line integral (dimensionless)."""
    return i0 * np.exp(-np.asarray(line_integral, float))


def detector_blur(intensity: np.ndarray, *, sigma_mm: float, spacing_mm: float | Sequence[float]) -> np.ndarray:
    """Gaussian blur of the scintillator/detector, ``sigma_mm`` in mm."""
    from scipy import ndimage

    if sigma_mm <= 0:
        return np.asarray(intensity, float)
    spacing = np.broadcast_to(np.asarray(spacing_mm, float), (2,))
    return ndimage.gaussian_filter(np.asarray(intensity, float), sigma=sigma_mm / spacing, mode="nearest")


def quantum_noise(intensity: np.ndarray, rng: np.random.Generator, *, photons: float,
                  noise_factor: float = 1.0, i0: float = 1.0) -> np.ndarray:
    """Poisson-like noise: ``photons`` counts per pixel at ``i0``; sd = sqrt(counts) times ``noise_factor``.

    Gaussian approximation of Poisson (counts are in the hundreds or more), so the sd scales
    exactly with ``noise_factor`` and the random stream does not depend on the signal.
    """
    counts = photons * np.clip(intensity, 0.0, None) / i0
    z = rng.standard_normal(counts.shape)
    noisy = counts + noise_factor * np.sqrt(counts + 1.0) * z  # +1: electronic floor where no photons arrive
    return np.clip(noisy, 0.5, None) * (i0 / photons)


def film_curve(intensity: np.ndarray, *, center: float, width: float, bits: int = 12,
               i0: float = 1.0, invert: bool = False) -> np.ndarray:
    """Stored values: ``(2^bits - 1) * sigmoid((-ln(I/I0) - center) / width)`` as uint16.

    ``center`` and ``width`` are in line-integral units (the attenuation ``-ln(I/I0)`` that maps
    to mid-grey, and the latitude). MONOCHROME2 (bone bright); ``invert=True`` gives the
    MONOCHROME1 values ``2^bits - 1 - v`` of the same rendering.
    """
    top = (1 << bits) - 1
    density = -np.log(np.clip(np.asarray(intensity, float) / i0, 1e-12, None))
    stored = np.rint(top / (1.0 + np.exp(-(density - center) / width)))
    stored = np.clip(stored, 0, top).astype(np.uint16)
    return (top - stored).astype(np.uint16) if invert else stored


def render(line_integral: np.ndarray, rng: np.random.Generator, *, spacing_mm: float | Sequence[float],
           center: float, width: float, bits: int = 12, invert: bool = False, photons: float = 20000.0,
           noise_factor: float = 1.0, blur_mm: float = 0.35, scatter_fraction: float = 0.25,
           scatter_mm: float = 30.0, heel: float = 0.06, center_on: np.ndarray | None = None,
           reference_counts: float | None = None, equalize: float = 0.0,
           equalize_mm: float = 25.0) -> tuple[np.ndarray, np.ndarray]:
    """The whole chain from a line integral to stored detector values; returns ``(stored, intensity)``.

    Scatter adds ``scatter_fraction`` times a broad (``scatter_mm``) blur of ``primary * line_integral``
    (scatter comes from the object: about 0.5 scatter-to-primary behind 2.5 attenuation units), the
    heel effect a linear ``+-heel`` intensity ramp from top to bottom. ``noise_factor`` scales the
    quantum noise sd (difficulty); it draws exactly one standard-normal field from ``rng``.
    ``center_on`` (a boolean mask, e.g. the soft tissue): ``center`` is then relative to the median
    noise-free density ``-ln I`` (scatter included) over the mask, like an exposure set for it, and
    ``reference_counts`` (if given) sets ``photons`` so that the mask receives that many counts
    per pixel (automatic exposure control). ``equalize`` (0..1) compresses the dynamic range as
    a DX/CR processing step does: that fraction of an ``equalize_mm`` blur of the density is taken
    out before the film curve (edges and bone detail stay, thick/thin body regions even out).
    """
    primary = beer_lambert(line_integral)
    rows = primary.shape[0]
    ramp = 1.0 + heel * np.linspace(-1.0, 1.0, rows)[:, None]
    spacing = np.broadcast_to(np.asarray(spacing_mm, float), (2,))
    if scatter_fraction > 0:
        # scatter arises in the object (~ photons times path length), spread broadly
        scatter = _coarse_blur(primary * line_integral, sigma_mm=scatter_mm, spacing=spacing)
        primary = primary + scatter_fraction * scatter
    if center_on is not None and np.any(center_on):
        reference = float(np.median(-np.log(np.clip(primary * ramp, 1e-12, None))[center_on]))
        center = center + reference
        if reference_counts:
            photons = reference_counts * np.exp(reference)
    intensity = quantum_noise(primary * ramp, rng, photons=photons, noise_factor=noise_factor)
    intensity = detector_blur(intensity, sigma_mm=blur_mm, spacing_mm=spacing)
    if equalize > 0:
        density = -np.log(np.clip(intensity, 1e-12, None))
        density -= equalize * (_coarse_blur(density, sigma_mm=equalize_mm, spacing=spacing) - center)
        intensity = np.exp(-density)
    return film_curve(intensity, center=center, width=width, bits=bits, invert=invert), intensity


def _coarse_blur(array: np.ndarray, *, sigma_mm: float, spacing) -> np.ndarray:
    """A broad Gaussian blur computed on a 4x coarser grid and expanded back (it has no fine detail)."""
    from scipy import ndimage

    factor = 4
    small = array[::factor, ::factor]
    blurred = ndimage.gaussian_filter(small, sigma=sigma_mm / (np.asarray(spacing) * factor), mode="nearest")
    zoom = (array.shape[0] / small.shape[0], array.shape[1] / small.shape[1])
    return ndimage.zoom(blurred, zoom, order=1, grid_mode=True, mode="nearest")[: array.shape[0], : array.shape[1]]
