"""The hip phantom evaluated: soft tissue, joint spaces and bones in HU, with part values.

Renders a :class:`~radseg.synth.hip_anatomy.HipParams` on a tensor grid or at arbitrary points
(see :mod:`radseg.synth.hip_phantom` for the public API and the tissue model): the body outline
and organs first (:func:`soft_tissue_on_grid`), then the joint spaces and bones painted over
them (:func:`paint_bones_on_grid`), each structure on its own bounding box only.
"""

from __future__ import annotations

import numpy as np

from radseg.synth.hip_anatomy import PART_VALUES, SIGN, HipParams, HipSide
from radseg.synth.hip_shapes import (
    TRABECULAR_CELL,
    Ball,
    GridDomain,
    PointsDomain,
    box_of,
    ellipse_distance,
    lookup,
    smin,
    union,
)


def _canonical(p: HipParams, side: HipSide, key: str) -> np.ndarray:
    M = np.array(p.rotation).reshape(3, 3)
    return M.T @ (np.array(getattr(side, key)) - np.array(p.translation))


def _outline(p: HipParams, X, Y, Z):
    """Signed distances (mm, canonical coordinates relative to the table) to the body outline
    (trunk, buttocks and thighs, smoothly joined) and to the pelvic-cavity fat."""
    sc, b, t = p.scale, p.body, np.array(p.translation)
    f = np.float32(b["fat"])
    hw = float(np.mean([abs(_canonical(p, s, "cavity_centre")[0]) for s in p.sides()]))
    fork = float(np.mean([_canonical(p, s, "neck_base")[2] for s in p.sides()])) - 40 * sc
    w = np.clip((Z - np.float32(fork - 50 * sc)) / np.float32(50 * sc), 0, 1)  # trunk fades below the crotch
    body = ellipse_distance(X, Y - np.float32(b["trunk_y"]), np.float32(hw + b["trunk_a"]) * w, np.float32(b["trunk_b"]) * w)
    k = 20 * sc
    wb = np.clip((np.float32(60 * sc) - Z) / np.float32(40 * sc), 0, 1) * w  # buttocks below the iliac crests
    for s in (-1, 1):
        lobe = ellipse_distance(X - np.float32(s * 52 * sc), Y - np.float32(62 * sc), (np.float32(70 * sc) + f) * wb,
                        (np.float32(62 * sc) + f) * wb)
        body = smin(body, lobe, k)
    for side in p.sides():
        J, e = (np.array(side.neck_base) - t).astype(np.float32), np.array(side.shaft_axis, np.float32)
        cx = J[0] + (Z - J[2]) * (e[0] / e[2]) - np.float32(SIGN[side.side] * 8 * sc)
        cy = J[1] + (Z - J[2]) * (e[1] / e[2]) + np.float32(10 * sc)
        r = np.float32(b["thigh_r"]) * np.clip((J[2] + np.float32(20 * sc) - Z) / np.float32(40 * sc), 0, 1)
        body = smin(body, np.sqrt((X - cx) ** 2 + (Y - cy) ** 2) - r, k)
    # Pelvic fat: an ellipsoid inside the pelvic ring (bladder and rectum are painted over it).
    wc = np.sqrt(np.clip(1 - ((Z - np.float32(30 * sc)) / np.float32(70 * sc)) ** 2, 0, 1))
    cavity = ellipse_distance(X, Y - np.float32(25 * sc), np.float32(hw - 40 * sc) * wc, np.float32(55 * sc) * wc)
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
    if isinstance(dom, GridDomain) and dom.shape[0] > 1 and min(dom.xs.size, dom.ys.size) > 1:
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
        hit |= Ball(c, r).sdf(sub.x, sub.y, sub.z) <= 0
    return hit


_DENSITY_CELL = 7.0  # mm per cell of the slowly varying cancellous density field
_THICKNESS_CELL = 9.0  # mm per cell of the cortical thickness variation


def _cortex_fraction(d, t, pv: float):
    """Fraction of a voxel (width ``pv`` mm along the surface normal, centred at signed distance
    ``d`` <= 0) that lies in the cortex ``-t <= d <= 0``, of the part inside the bone: in-plane partial
    volume of a thin cortex. ``pv`` 0: a point sample (1 inside the cortex, else 0)."""
    if pv <= 0:
        return (d >= -t).astype(np.float32)
    h = np.float32(pv / 2)
    inside = np.minimum(d + h, 0) - (d - h)
    return np.clip(np.minimum(d + h, 0) - np.maximum(-t, d - h), 0, None) / np.maximum(inside, np.float32(1e-6))


def _tissue(p: HipParams, name: str, sub, d, pv: float = 0.0):
    """Part values and bone HU of one structure on its sub-domain (``d``: its signed distance).

    Bone = cortex (thickness varying over the bone, see :func:`_bone`) over a heterogeneous
    interior: cancellous bone whose density varies slowly (fatty and dense regions, a 7 mm field)
    with trabecular mottling (0.8 mm cells), both proportional to the cancellous contrast."""
    part, thickness, interior, plate, cysts = _bone(p, name, sub, d)
    tex = p.prims["texture"]
    x, y, z = sub.x, sub.y, sub.z
    contrast = np.float32(p.hu["cancellous"] - p.hu["muscle"])
    slow = lookup(tex, _DENSITY_CELL, x + np.float32(91), y + np.float32(37), z + np.float32(53))
    interior = interior + np.float32(0.45) * contrast * slow + np.float32(0.4) * contrast * lookup(
        tex, TRABECULAR_CELL, x, y, z)
    vary = 1 + np.float32(p.cortex.get("variation", 0.0)) * lookup(tex, _THICKNESS_CELL, z, x, y)
    f = np.where(plate, np.float32(1), _cortex_fraction(d, thickness * np.clip(vary, 0.4, 1.8), pv))
    bone = interior + (np.float32(p.hu["cortical"]) - interior) * f
    if cysts is not None:
        bone = np.where(cysts, np.float32(p.hu["cyst"]), bone)
    return part, bone


def _bone(p: HipParams, name: str, sub, d):
    """Part values, cortical thickness (mm), interior HU, subchondral plate and cysts of a structure."""
    hu, sc, ct = p.hu, p.scale, p.cortex
    x, y, z = sub.x, sub.y, sub.z
    cancellous = np.float32(hu["cancellous"])
    if name == "sacrum":
        part = np.uint8(PART_VALUES["sacrum"])
        # Thicker over the vertebral bodies (midline), thin over the alae; lower density (fatty marrow).
        w = np.clip(1 - (np.abs(x - np.float32(p.translation[0])) - np.float32(18 * sc)) / np.float32(15 * sc), 0, 1)
        thickness = np.float32(ct.get("thin", 1.2)) + w * np.float32(ct.get("sacrum", 1.2) - ct.get("thin", 1.2))
        interior = np.float32(hu["marrow"]) + np.float32(0.75) * (cancellous - np.float32(hu["marrow"]))
        return part, thickness, interior, False, None
    side = p.side(name.split("_")[0])
    if name.endswith("pelvis"):
        A = np.array(side.cavity_centre, np.float32)
        in_slab = np.abs(z - np.float32(side.head_centre[2])) <= np.float32(side.head_radius)
        part = np.where(in_slab, np.uint8(PART_VALUES[f"{side.side}_acetabulum"]),
                        np.uint8(PART_VALUES[f"{side.side}_pelvis"]))
        socket = Ball(A, side.cavity_radius).sdf(x, y, z)
        plate = socket < np.float32(side.subchondral)  # subchondral plate
        # Thick cortex around the socket, thin over the iliac wing and the acetabular floor (medial).
        medial = np.float32(-SIGN[side.side]) * (x - A[0]) / np.float32(side.cavity_radius)
        w = np.clip(1 - (socket - np.float32(8 * sc)) / np.float32(35 * sc), 0, 1) * (
            1 - np.float32(0.8) * np.clip(medial, 0, 1))
        thickness = np.float32(ct.get("thin", 1.3)) + w * np.float32(ct.get("thick", 1.3) - ct.get("thin", 1.3))
        # Denser cancellous bone around the socket (the load-bearing columns).
        dense = np.clip(1 - (socket - np.float32(4 * sc)) / np.float32(25 * sc), 0, 1)
        interior = cancellous + dense * np.float32(1.2) * (cancellous - np.float32(hu["muscle"]))
    else:
        C, n, J, e = (np.array(v, np.float32) for v in (side.head_centre, side.neck_axis, side.neck_base,
                                                         side.shaft_axis))
        radial = Ball(C, side.head_radius).sdf(x, y, z)
        along = (x - C[0]) * n[0] + (y - C[1]) * n[1] + (z - C[2]) * n[2]
        head = (radial <= 0) & (along >= -np.float32(side.neck_cut))
        part = np.where(head, np.uint8(PART_VALUES[f"{side.side}_femoral_head"]),
                        np.uint8(PART_VALUES[f"{side.side}_femur"]))
        height = -((x - J[0]) * e[0] + (y - J[1]) * e[1] + (z - J[2]) * e[2])  # above the neck base, mm
        ramp = np.clip((height + 110 * sc) / np.float32(70 * sc), 0, 1)
        shaft, neck = np.float32(ct.get("shaft", 5.5 * sc)), np.float32(ct.get("neck", 1.5 * sc))
        thickness = shaft + ramp * (neck - shaft)
        marrow = np.clip((height + 120 * sc) / np.float32(60 * sc), 0, 1)
        interior = np.float32(hu["marrow"]) + marrow * (cancellous - np.float32(hu["marrow"]))
        plate = head & (radial > -np.float32(side.subchondral))
    cysts = _in_balls(sub, side.cysts) if side.cysts else None
    return part, thickness, interior, plate, cysts


_ORDER = ("sacrum", "right_pelvis", "left_pelvis", "right_femur", "left_femur")


def _evaluate(dom, p: HipParams, base=None, pv: float = 0.0):
    """HU and parts on a domain; with ``base`` = (hu, parts) arrays of its shape, bones and
    joint spaces are painted into them (their soft tissue is kept)."""
    hu, parts = _background(dom, p) if base is None else base
    for side in p.sides():  # joint space: cartilage and fluid inside the socket sphere
        found = dom.sub(*Ball(side.cavity_centre, side.cavity_radius).box())
        if found is not None:
            key, sub = found
            inside = Ball(side.cavity_centre, side.cavity_radius).sdf(sub.x, sub.y, sub.z) <= 0
            hu[key] = np.where(inside, np.float32(p.hu["cartilage"]), hu[key])
    k = 6 * p.scale
    for name in _ORDER:
        prims, carves = p.prims[name]
        found = dom.sub(*box_of(prims, k))
        if found is None:
            continue
        key, sub = found
        d = union(prims, sub, k)
        for carve, margin in carves:
            d = np.maximum(d, np.float32(margin) - union(carve, sub, k))
        inside = d <= 0
        if not inside.any():
            continue
        part, bone = _tissue(p, name, sub, d, pv)
        hu[key] = np.where(inside, bone, hu[key])
        parts[key] = np.where(inside, part, parts[key])
    return hu, parts


def hip_phantom_on_grid(zs, ys, xs, params: HipParams) -> tuple[np.ndarray, np.ndarray]:
    """Noise-free HU and parts on the tensor grid of world vectors ``zs, ys, xs`` (mm): ``[z, y, x]``."""
    return _evaluate(GridDomain(zs, ys, xs), params)


def soft_tissue_on_grid(zs, ys, xs, params: HipParams) -> np.ndarray:
    """Noise-free HU of the soft tissue alone (air, fat, muscle, organs) on a tensor grid."""
    return _background(GridDomain(zs, ys, xs), params)[0]


def paint_bones_on_grid(zs, ys, xs, params: HipParams, hu: np.ndarray, parts: np.ndarray, *,
                        pv: float = 0.0) -> None:
    """Paint joint spaces and bones (HU and parts) in place into arrays of shape
    ``(len(zs), len(ys), len(xs))`` that already hold soft tissue. With
    :func:`soft_tissue_on_grid` this equals :func:`hip_phantom_on_grid`, but lets a caller
    compute the slowly varying soft tissue on fewer slices than the bones. ``pv`` (mm): the voxel
    width over which a thin cortex is averaged (in-plane partial volume; 0: point samples)."""
    _evaluate(GridDomain(zs, ys, xs), params, base=(hu, parts), pv=pv)


def hip_phantom_at(x, y, z, params: HipParams) -> tuple[np.ndarray, np.ndarray]:
    """Noise-free HU and parts at world points (LPS mm) given as broadcastable arrays of any shape."""
    x, y, z = np.broadcast_arrays(*(np.asarray(v, np.float32) for v in (x, y, z)))
    hu, parts = _evaluate(PointsDomain(x, y, z), params)
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
    lo, hi = box_of(prims, 0)
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
