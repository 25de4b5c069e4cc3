"""A total hip replacement for the hip phantom: metal ball, acetabular cup with liner, neck and stem.

:func:`draw_implant` draws one side's prosthesis (sizes from that hip's anatomy);
:func:`paint_implant` paints it into a grid that already holds the phantom (HU and parts). The
femoral head and the neck beyond the osteotomy are resected (part 0, soft-tissue HU), the cup sits
in the reamed socket (metal over whatever bone it overlaps: part 0), the liner (polyethylene)
between cup and ball, the stem in the femoral canal (metal, part 0; the femoral cortex around it
keeps its part). Metal HU are the unclipped attenuation (cobalt-chrome ~12000 HU, titanium ~4500
HU); the CT kind clips at 3071 after its artefacts, so the metal saturates there.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from radseg.synth.hip_anatomy import PART_VALUES, HipParams
from radseg.synth.hip_shapes import Ball, Cone, GridDomain

COCR_HU = 12000.0
TITANIUM_HU = 4500.0
LINER_HU = -90.0  # polyethylene


def draw_implant(rng: np.random.Generator, params: HipParams, side: str) -> dict[str, Any]:
    """One side's prosthesis: ball radius (14-18 mm), cup shell (3-4 mm), liner, neck and stem sizes."""
    hs, sc = params.side(side), params.scale
    ball = float(rng.choice((14.0, 16.0, 18.0)))
    cup_outer = float(hs.cavity_radius + rng.uniform(0.5, 2.0))
    shell = float(rng.uniform(3.0, 4.0))
    return {"side": side, "ball_radius_mm": min(ball, cup_outer - shell - 4.0), "cup_outer_mm": cup_outer,
            "cup_shell_mm": shell, "stem_length_mm": float(rng.uniform(110, 150) * sc),
            "stem_radius_mm": float(rng.uniform(6.0, 8.0) * sc), "titanium_stem": bool(rng.random() < 0.6),
            "osteotomy": float(rng.uniform(0.25, 0.4))}


def _prims(params: HipParams, implant: dict[str, Any]):
    hs = params.side(implant["side"])
    A, J = np.array(hs.cavity_centre), np.array(hs.neck_base)
    e = np.array(hs.shaft_axis)
    r = implant["stem_radius_mm"]
    neck = Cone(A, J - 4 * e, 6.5, 8.0)
    stem = [Cone(J - 6 * e, J + 45 * e, r + 5.0, r + 1.5),
            Cone(J + 40 * e, J + implant["stem_length_mm"] * e, r + 1.5, 0.55 * r)]
    return A, neck, stem


def paint_implant(zs, ys, xs, params: HipParams, implant: dict[str, Any], hu: np.ndarray, parts: np.ndarray) -> None:
    """Paint the prosthesis (see the module docstring) into grid arrays ``[z, y, x]`` in place."""
    dom = GridDomain(np.asarray(zs, np.float32), np.asarray(ys, np.float32), np.asarray(xs, np.float32))
    side = implant["side"]
    hs = params.side(side)
    A, neck, stem = _prims(params, implant)
    C, n, J = (np.array(v, np.float32) for v in (hs.head_centre, hs.neck_axis, hs.neck_base))
    L = float(np.linalg.norm(C - J))
    femur = (PART_VALUES[f"{side}_femoral_head"], PART_VALUES[f"{side}_femur"])
    # Resection: femur beyond the osteotomy across the neck, near the neck axis.
    found = dom.sub(C - hs.head_radius - 10, C + hs.head_radius + 10)
    if found is not None:
        key, sub = found
        along = (sub.x - J[0]) * n[0] + (sub.y - J[1]) * n[1] + (sub.z - J[2]) * n[2]
        rx, ry, rz = sub.x - J[0] - along * n[0], sub.y - J[1] - along * n[1], sub.z - J[2] - along * n[2]
        near_axis = rx * rx + ry * ry + rz * rz < np.float32((1.15 * hs.head_radius) ** 2)
        cut = np.isin(parts[key], femur) & (along > np.float32(implant["osteotomy"] * L)) & near_axis
        hu[key] = np.where(cut, np.float32(params.hu["muscle"]), hu[key])
        parts[key] = np.where(cut, np.uint8(0), parts[key])
    # Cup (a hemisphere open along the rim normal), liner and ball, all in the socket.
    o = np.array(hs.rim_normal, np.float32)
    outer = implant["cup_outer_mm"]
    found = dom.sub(A - outer, A + outer)
    if found is not None:
        key, sub = found
        r = Ball(A, 0).sdf(sub.x, sub.y, sub.z)
        behind = (sub.x - A[0]) * o[0] + (sub.y - A[1]) * o[1] + (sub.z - A[2]) * o[2] <= 0
        inner = outer - implant["cup_shell_mm"]
        ball = implant["ball_radius_mm"]
        value = np.where(r <= ball, np.float32(COCR_HU), np.where(
            behind & (r <= inner), np.float32(LINER_HU), np.where(behind & (r <= outer), np.float32(COCR_HU), np.nan)))
        metal = ~np.isnan(value)
        hu[key] = np.where(metal, value, hu[key])
        parts[key] = np.where(metal, np.uint8(0), parts[key])
    stem_hu = TITANIUM_HU if implant["titanium_stem"] else COCR_HU
    for prim, value in ((neck, COCR_HU), *((q, stem_hu) for q in stem)):
        found = dom.sub(*prim.box())
        if found is not None:
            key, sub = found
            inside = prim.sdf(sub.x, sub.y, sub.z) <= 0
            hu[key] = np.where(inside, np.float32(value), hu[key])
            parts[key] = np.where(inside, np.uint8(0), parts[key])


def implant_record(implants: dict[str, Any]) -> dict[str, Any]:
    """Metadata columns: ``right_implant`` / ``left_implant`` and the drawn sizes of an implant."""
    row: dict[str, Any] = {}
    for side in ("right", "left"):
        implant = implants.get(side)
        row[f"{side}_implant"] = implant is not None
        if implant is not None:
            row.update({f"{side}_implant_{k}": (round(v, 3) if isinstance(v, float) else v)
                        for k, v in implant.items() if k != "side"})
    return row
