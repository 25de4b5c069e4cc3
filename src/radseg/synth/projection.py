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
    (Defined in :mod:`radseg.synth.geometry` and :mod:`radseg.synth.projection_solids`.)
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
from dataclasses import dataclass

import numpy as np

from radseg.synth.geometry import Ellipsoid, euler_rotation
from radseg.synth.projection_solids import Capsule, Cylinder, Loft

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
    return euler_rotation("xyz", (about_u, about_v, about_w))  # u, v, w are the frame's x, y, z


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
