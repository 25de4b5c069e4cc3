"""Scanner effects of ``hip-ct``: beam hardening (and metal) streaks, a partial field of view, the table.

Beam hardening, cheaply but physically motivated: per axial slice, the bone and metal excess
density over soft tissue, ``max(HU - 100, 0) / 1000``, and the water-equivalent body,
``(HU + 1000) / 1000``, are forward-projected (parallel beam, 60 angles over 180 degrees) on a
coarse square grid (~``_CELL`` mm pixels, :func:`_system`, a cached sparse matrix). The
polychromatic error of each line integral is ``-beta s^2 (1 - exp(-(p_b / s)^2)) - beta_w p_w^2``
(``p_b`` bone+metal, ``p_w`` body, mm; quadratic for bone, saturating at ``s`` = 70 mm for
metal; the scanner's water correction leaves a small residual,
hence the cupping), plus, behind metal, photon-starvation noise growing with the metal path. The
error sinogram is reconstructed by filtered back-projection (ramp filter) and added to the image,
interpolated back to the full grid: dark streaks between the femoral heads and acetabula, slight
cupping, and strong dark/bright streaks around a metal implant. Slices are done every ~4 mm
and interpolated in z (the streaks vary slowly along z).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

_CELL = 3.0  # mm: pixel of the coarse grid the projections are computed on
_ANGLES = 60
_Z_STEP = 4.0  # mm between the slices whose error is computed
_P_SAT = 70.0  # mm: bone/metal path where the beam-hardening error saturates
_METAL_HU = 3000.0
BETA = 5e-3  # 1/mm: bone beam-hardening coefficient (per case times 0.5-1.5)
BETA_WATER = 1e-5  # 1/mm: residual water beam hardening (cupping)
STARVATION = 1.0  # mm: photon-starvation noise sd behind 100 mm of metal excess path


@lru_cache(maxsize=4)
def _system(n: int, n_angles: int):
    """Sparse parallel-beam projector of an ``n x n`` image (unit pixels, linear interpolation onto
    detector bins of one pixel), and the number of bins."""
    from scipy import sparse

    n_det = int(np.ceil(n * np.sqrt(2))) + 3
    c = (n - 1) / 2
    yy, xx = np.mgrid[0:n, 0:n]
    xx, yy = (xx - c).ravel(), (yy - c).ravel()
    theta = np.linspace(0, np.pi, n_angles, endpoint=False)
    rows, cols, vals = [], [], []
    pixel = np.arange(n * n)
    for a, t in enumerate(theta):
        s = xx * np.cos(t) + yy * np.sin(t) + (n_det - 1) / 2
        i = np.floor(s).astype(int)
        u = s - i
        for offset, w in ((0, 1 - u), (1, u)):
            rows.append(a * n_det + i + offset)
            cols.append(pixel)
            vals.append(w)
    A = sparse.csr_matrix((np.concatenate(vals).astype(np.float32), (np.concatenate(rows), np.concatenate(cols))),
                          shape=(n_angles * n_det, n * n))
    return A, n_det


@lru_cache(maxsize=4)
def _ramp(n_det: int) -> np.ndarray:
    """The ramp filter in Fourier space (spatial-domain definition, as in filtered back-projection)."""
    size = max(64, int(2 ** np.ceil(np.log2(2 * n_det))))
    k = np.concatenate((np.arange(1, size / 2 + 1, 2, dtype=int), np.arange(size / 2 - 1, 0, -2, dtype=int)))
    f = np.zeros(size)
    f[0] = 0.25
    f[1::2] = -1 / (np.pi * k) ** 2
    return 2 * np.real(np.fft.fft(f))


def _fbp(sinograms: np.ndarray, n: int) -> np.ndarray:
    """Filtered back-projection of ``(slices, angles, bins)`` sinograms (pixel units) -> (slices, n, n)."""
    A, n_det = _system(n, sinograms.shape[1])
    ramp = _ramp(n_det)
    padded = np.zeros(sinograms.shape[:2] + (ramp.size,))
    padded[..., :n_det] = sinograms
    filtered = np.real(np.fft.ifft(np.fft.fft(padded, axis=-1) * ramp, axis=-1))[..., :n_det]
    flat = filtered.reshape(len(sinograms), -1).T.astype(np.float32)
    return (A.T @ flat).T.reshape(-1, n, n) * np.float32(np.pi / (2 * sinograms.shape[1]))


def beam_hardening(hu: np.ndarray, spacing, *, beta: float, beta_water: float, starvation: float,
                   rng: np.random.Generator) -> np.ndarray:
    """The beam-hardening (and metal) error image in HU for a volume ``hu [z, y, x]`` (see the
    module docstring); ``spacing`` (dz, dy, dx) mm. Zero where no slice needs it."""
    from scipy import ndimage

    nz, ny, nx = hu.shape
    dz, dy, dx = (float(v) for v in spacing)
    n = int(np.ceil(max(ny * dy, nx * dx) / _CELL / 2)) * 2
    cell = max(ny * dy, nx * dx) / n
    step = max(1, int(round(_Z_STEP / dz)))
    picks = np.unique(np.r_[np.arange(0, nz, step), nz - 1])
    # Coarse slices: block-average by interpolation onto the square n x n grid centred on the slice.
    ys = (np.arange(n) - (n - 1) / 2) * cell / dy + (ny - 1) / 2
    xs = (np.arange(n) - (n - 1) / 2) * cell / dx + (nx - 1) / 2
    small = ndimage.uniform_filter(hu[picks].astype(np.float32), (1, max(1, round(cell / dy)), max(1, round(cell / dx))))
    grid = np.meshgrid(ys, xs, indexing="ij")
    out = np.empty((picks.size, n, n), np.float32)
    for i in range(picks.size):
        out[i] = ndimage.map_coordinates(small[i], grid, order=1, mode="constant", cval=-1000.0)
    bone = np.clip(out - 100, 0, None) / 1000
    water = np.clip(out + 1000, 0, 1100) / 1000
    active = bone.reshape(picks.size, -1).max(axis=1) > 0.05
    error = np.zeros((picks.size, n, n), np.float32)
    if active.any():
        A, n_det = _system(n, _ANGLES)
        flat = np.concatenate([bone[active], water[active]]).reshape(2 * int(active.sum()), -1).T
        proj = (A @ flat).T.reshape(2, int(active.sum()), _ANGLES, n_det) * np.float32(cell)
        p_b, p_w = proj
        delta = -beta * _P_SAT ** 2 * (1 - np.exp(-(p_b / _P_SAT) ** 2)) - beta_water * p_w ** 2
        metal = np.clip(out[active] - _METAL_HU, 0, None) / 1000
        if metal.any():
            p_m = (A @ metal.reshape(int(active.sum()), -1).T).T.reshape(-1, _ANGLES, n_det) * np.float32(cell)
            delta = delta + starvation * (p_m / 100) ** 2 * rng.standard_normal(p_m.shape).astype(np.float32)
        # delta is in mm of water-equivalent path: reconstructed in units of mu_water (x1000 -> HU).
        error[active] = np.clip(_fbp(delta / cell, n) * 1000, -1000, 1000)
    # Back to the full grid: trilinear in (picked slice, y, x).
    zi = np.interp(np.arange(nz), picks, np.arange(picks.size))
    yi = (np.arange(ny) - (ny - 1) / 2) * dy / cell + (n - 1) / 2
    xi = (np.arange(nx) - (nx - 1) / 2) * dx / cell + (n - 1) / 2
    full = np.empty((nz, ny, nx), np.float32)
    rows = np.stack(np.meshgrid(yi, xi, indexing="ij"))
    planes = np.stack([ndimage.map_coordinates(e, rows, order=1, mode="nearest") for e in error])
    lo = np.floor(zi).astype(int)
    hi = np.minimum(lo + 1, picks.size - 1)
    w = (zi - lo).astype(np.float32)[:, None, None]
    full[:] = planes[lo] * (1 - w) + planes[hi] * w
    return full


def fov_mask(shape, spacing, fov: dict[str, Any] | None) -> np.ndarray | None:
    """In-plane boolean mask (rows, cols) of the reconstruction circle, or None for a full view."""
    if not fov:
        return None
    _, ny, nx = shape
    _, dy, dx = spacing
    y = (np.arange(ny) - (ny - 1) / 2) * dy - fov["offset_y_mm"]
    x = (np.arange(nx) - (nx - 1) / 2) * dx
    return (y[:, None] ** 2 + x[None, :] ** 2) <= (fov["diameter_mm"] / 2) ** 2


def table_slice(ys, xs, table: dict[str, Any]) -> np.ndarray:
    """HU of the table (a curved carbon-fibre shell) and its foam pad on one axial slice, NaN elsewhere;
    the same on every slice. ``ys``/``xs`` world mm. The pad lies on the shell, the body on the pad."""
    y, x = np.asarray(ys, np.float32)[:, None], np.asarray(xs, np.float32)[None, :]
    rise = (x - np.float32(table["centre_x_mm"])) ** 2 / np.float32(2 * table["radius_mm"])
    top = np.float32(table["top_y_mm"]) - rise  # the pad's top surface (anterior face), curved up at the sides
    depth = y - top
    pad, shell = table["pad_mm"], table["shell_mm"]
    out = np.full(depth.shape, np.nan, np.float32)
    out = np.where((depth >= 0) & (depth < pad), np.float32(table["pad_hu"]), out)
    out = np.where((depth >= pad) & (depth < pad + shell), np.float32(table["shell_hu"]), out)
    return out


def draw_scan(rng: np.random.Generator, params, *, implant_rate: float, fov_rate: float, table: bool,
              beam_hardening: bool) -> dict[str, Any]:
    """A case's scanner set-up from its own stream (a fixed number of draws): implants, field of view,
    table and beam-hardening strengths. The FOV diameter is set later from the grid (``fov_fraction``)."""
    from radseg.synth.hip_implant import draw_implant
    from radseg.synth.hip_render import hip_bounds

    u_implant, u_side, u_fov = rng.random(3)
    implants = {}
    side = "right" if u_side < 0.5 else "left"
    implant = draw_implant(rng, params, side)
    if u_implant < implant_rate:
        implants[side] = implant
    fov = {"fraction": float(rng.uniform(0.78, 0.97)), "offset_y_mm": float(rng.normal(0, 8))}
    lo, hi = hip_bounds(params)
    body_y = float(hi[1] - 9)  # the body's posterior-most point (hip_bounds pads by 9 mm)
    tab = {"top_y_mm": body_y + float(rng.uniform(-3, 0)), "pad_mm": float(rng.uniform(5, 20)),
           "shell_mm": float(rng.uniform(2.0, 4.0)), "radius_mm": float(rng.uniform(600, 1500)),
           "centre_x_mm": float(params.translation[0] + rng.normal(0, 5)), "pad_hu": float(rng.uniform(-950, -850)),
           "shell_hu": float(rng.uniform(-50, 200))}
    bh = {"beta": float(rng.uniform(0.5, 1.5)) * BETA, "beta_water": float(rng.uniform(0.5, 1.5)) * BETA_WATER,
          "starvation": float(rng.uniform(0.5, 1.5)) * STARVATION}
    return {"implants": implants, "fov": fov if u_fov < fov_rate else None, "table": tab if table else None,
            "beam_hardening": bh if beam_hardening else None, "body_width_mm": float(hi[0] - lo[0] - 18)}


def scan_record(scan: dict[str, Any]) -> dict[str, Any]:
    """Metadata columns of the scanner set-up (``fov_diameter_mm`` 0 = full view, ``table`` ...)."""
    fov, tab, bh = scan["fov"], scan["table"], scan["beam_hardening"]
    row: dict[str, Any] = {"partial_fov": fov is not None,
                           "fov_diameter_mm": round(fov["diameter_mm"], 2) if fov else 0.0,
                           "fov_offset_y_mm": round(fov["offset_y_mm"], 2) if fov else 0.0, "table": tab is not None}
    if tab:
        row.update({f"table_{k}": round(v, 2) for k, v in tab.items() if k != "top_y_mm"})
    row.update({"beam_hardening": bh is not None, **{f"bh_{k}": (v if bh else 0.0) for k, v in (bh or {
        "beta": 0.0, "beta_water": 0.0, "starvation": 0.0}).items()}})
    return row
