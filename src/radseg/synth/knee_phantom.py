"""Geometry of the bilateral knee phantom (fixed-flexion PA), in the detector frame of
:mod:`radseg.synth.projection`: ``u`` towards the patient's left (image right), ``v`` towards
the feet (image down), ``w`` along the beam, mm.

Each knee is built in a local frame (``x`` lateral, ``v`` down, ``w`` posterior; origin on the
tibial plateau between the tibial spines) and placed with a mirror for the right knee (lateral
= image left), a small varus/valgus tilt about the beam and a position. Bones are unions of
ellipsoids and capsules; every piece has a cancellous core ``shrunk`` by its cortical thickness.

===========  =========================================================================
bone         pieces (local, before scaling by the subject's bone scale ``k``)
===========  =========================================================================
femur        shaft + metaphyseal flare loft (6 deg anatomical valgus), epicondylar ellipsoid,
             medial and lateral condyle ellipsoids (the intercondylar notch lies between them)
patella      one ellipsoid, anterior, a little lateral, projected over the distal femur
tibia        plateau ellipsoid, metaphysis + shaft loft, two tibial spine ellipsoids
fibula       head ellipsoid (posterolateral, apex ~1 cm below the plateau), neck + shaft loft
soft tissue  thigh-knee-calf loft; fat = outer shell, muscle = shrunk core
===========  =========================================================================

The joint-space width of a compartment is the minimum vertical distance (along ``v``) between
the femur's shadow (lowest point over the femur ellipsoids) and the tibia's shadow (highest
point) for ``u`` in that compartment; :func:`joint_space` evaluates it from the analytic
shadow boundaries of the ellipsoids on a 0.01 mm grid (exact to well below a pixel). The
medial and lateral condyle heights are set so the widths hit sampled targets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from radseg.synth.geometry import Ellipsoid
from radseg.synth.projection import rotation_matrix
from radseg.synth.projection_solids import Loft

BONES = ("patella", "femur", "tibia", "fibula")
SIDES = ("right", "left")
# x-range of each compartment (local, times k): clear of the tibial spines (|x| <= 8.5 k)
COMPARTMENTS = {"medial": (-42.0, -11.0), "lateral": (11.0, 42.0)}
JSW_STEP_MM = 0.01


@dataclass
class Knee:
    """One placed knee: per bone a list of ``(outer, inner)`` solids, and its soft tissue."""

    side: str
    centre_u: float
    centre_v: float
    k: float
    lateral_sign: float
    bones: dict[str, list[tuple[Any, Any]]] = field(default_factory=dict)
    soft: list[tuple[Any, Any]] = field(default_factory=list)
    params: dict[str, float] = field(default_factory=dict)

    def compartment_u(self, name: str) -> tuple[float, float]:
        a, b = (self.centre_u + self.lateral_sign * x * self.k for x in COMPARTMENTS[name])
        return min(a, b), max(a, b)


def _place(solid, q: np.ndarray, t: np.ndarray):
    """Map a solid defined in the local frame through ``x -> q x + t`` (q orthogonal)."""
    if isinstance(solid, Ellipsoid):
        rot = np.eye(3) if solid.rotation is None else np.asarray(solid.rotation)
        return Ellipsoid(tuple(q @ np.asarray(solid.centre) + t), solid.radii, q @ rot)
    if isinstance(solid, Loft):  # q keeps w (a rotation about the beam, a mirror in u): still across the beam
        return Loft(tuple(q @ np.asarray(solid.p0) + t), tuple(q @ np.asarray(solid.p1) + t), solid.nodes)
    return type(solid)(tuple(q @ np.asarray(solid.p0) + t), tuple(q @ np.asarray(solid.p1) + t), solid.radius)


def _pair(solid, cortex: float):
    return solid, solid.shrunk(cortex)


def sample_knee(rng: np.random.Generator, *, k: float) -> dict[str, float]:
    """Random anatomy of one knee (local frame, scaled by ``k``), drawn in a fixed order."""
    n = rng.normal
    return {
        "med_ru": 15.5 * k * (1 + 0.05 * n()), "med_rv": 24.0 * k * (1 + 0.06 * n()),
        "med_rw": 28.0 * k * (1 + 0.05 * n()),
        "lat_ru": 15.5 * k * (1 + 0.05 * n()), "lat_rv": 21.0 * k * (1 + 0.06 * n()),
        "lat_rw": 30.0 * k * (1 + 0.05 * n()),
        "notch_half": 8.5 * k * (1 + 0.06 * n()),
        "epi_ru": 38.0 * k * (1 + 0.03 * n()),
        "plateau_ru": 40.0 * k * (1 + 0.03 * n()), "plateau_rv": 11.0 * k * (1 + 0.08 * n()),
        "patella_ru": 21.0 * k * (1 + 0.06 * n()), "patella_rv": 19.0 * k * (1 + 0.06 * n()),
        "patella_x": 4.0 * k + 2.0 * n(), "patella_v": -40.0 * k + 3.0 * n(),
        "patella_tilt_deg": 4.0 * n(),
        "fibula_x": 38.0 * k + 1.5 * n(), "fibula_v": 26.0 * k + 2.0 * n(),
        "tilt_deg": float(np.clip(2.0 * n(), -4.0, 4.0)),
        "soft_scale": float(np.clip(1.05 + 0.12 * n(), 0.85, 1.4)),
        "fat_mm": float(np.clip(8.0 + 3.0 * n(), 3.0, 16.0)),
        "jsw_medial_mm": float(np.clip(4.2 + 1.2 * n(), 1.2, 7.0)),
        "jsw_lateral_mm": float(np.clip(6.0 + 1.2 * n(), 2.5, 9.0)),
    }


def _loft_pair(p0, p1, nodes, thickness, *, open_start: bool = False):
    """A lofted bone piece and its cancellous core, the cortex ``thickness`` (mm) given per node.

    ``open_start``: the start lies inside another piece (the plateau, the fibular head), so the
    core runs to the end there and no cortical plate is drawn across the bone.
    """
    nodes = np.asarray(nodes, float)
    inner = nodes.copy()
    inner[:, 1:] -= np.asarray(thickness, float)[:, None]
    inner[0, 0] += 0.0 if open_start else thickness[0]
    inner[-1, 0] -= thickness[-1]
    return Loft(p0, p1, tuple(map(tuple, nodes))), Loft(p0, p1, tuple(map(tuple, inner)))


def _local_bones(p: dict[str, float], k: float) -> dict[str, list[tuple[Any, Any]]]:
    """Bone solids in the local frame (x lateral, v down, w posterior), condyles not yet lowered."""
    valgus = np.tan(np.deg2rad(6.0))
    med_x = -(p["notch_half"] + p["med_ru"])
    lat_x = p["notch_half"] + p["lat_ru"]
    epi = p["epi_ru"]
    femur = [
        # shaft and metaphyseal flare, from the epicondyles up (6 deg anatomical valgus)
        _loft_pair((0.0, -36 * k, 2 * k), (-valgus * 400 * k, -436 * k, 2 * k),
                   [(0, 0.98 * epi, 27 * k), (16 * k, 0.93 * epi, 25.5 * k), (42 * k, 21 * k, 19 * k),
                    (75 * k, 14.5 * k, 14.5 * k), (420 * k, 14 * k, 14 * k)],
                   [2.0 * k, 2.0 * k, 3.0 * k, 5.0 * k, 5.0 * k], open_start=True),
        _pair(Ellipsoid((0.0, -36 * k, 2 * k), (epi, 18 * k, 28 * k)), 2.0 * k),  # epicondyles
        # condyle centres: bottom initially at v = 0 (lowered below to the target joint space)
        _pair(Ellipsoid((med_x, -p["med_rv"], 4 * k), (p["med_ru"], p["med_rv"], p["med_rw"])), 1.8 * k),
        _pair(Ellipsoid((lat_x, -p["lat_rv"], 4 * k), (p["lat_ru"], p["lat_rv"], p["lat_rw"])), 1.8 * k),
    ]
    patella = [_pair(Ellipsoid((p["patella_x"], p["patella_v"], -42 * k), (p["patella_ru"], p["patella_rv"], 11 * k),
                               rotation_matrix(about_w=p["patella_tilt_deg"])), 1.2 * k)]
    ru, rv = p["plateau_ru"], p["plateau_rv"]
    tibia = [
        _pair(Ellipsoid((0.0, rv, 3 * k), (ru, rv, 27 * k)), 1.5 * k),
        _loft_pair((0.0, rv, 3 * k), (2 * k, 420 * k, 3 * k),
                   [(0, ru, 26.5 * k), (16 * k, 0.9 * ru, 25 * k), (45 * k, 23 * k, 21 * k), (78 * k, 14.5 * k, 15 * k),
                    (110 * k, 13 * k, 13.5 * k), (420 * k, 12 * k, 13 * k)],
                   [1.5 * k, 1.8 * k, 2.5 * k, 4.0 * k, 5.0 * k, 5.0 * k], open_start=True),
        _pair(Ellipsoid((-4.5 * k, 2.0 * k, 0.0), (3.5 * k, 6.5 * k, 8 * k)), 1.0 * k),  # medial spine
        _pair(Ellipsoid((5.0 * k, 2.5 * k, 0.0), (3.5 * k, 6.0 * k, 8 * k)), 1.0 * k),  # lateral spine
    ]
    fx, fv = p["fibula_x"], p["fibula_v"]
    fibula = [
        _pair(Ellipsoid((fx, fv, 14 * k), (10 * k, 12 * k, 10 * k)), 1.5 * k),
        _loft_pair((fx + 1 * k, fv, 14 * k), (fx - 3 * k, 420 * k, 14 * k),
                   [(0, 8 * k, 8 * k), (22 * k, 6.5 * k, 6.5 * k), (40 * k, 7 * k, 7 * k), (420 * k, 6.5 * k, 6.5 * k)],
                   [1.5 * k, 2.2 * k, 3.0 * k, 3.0 * k], open_start=True),
    ]
    return {"patella": patella, "femur": femur, "tibia": tibia, "fibula": fibula}


def _local_soft(p: dict[str, float]) -> list[tuple[Any, Any]]:
    """Thigh, knee and calf in one loft (x = half-width, w = half-depth); fat is the outer shell."""
    s, fat = p["soft_scale"], p["fat_mm"]
    nodes = [(0, 74 * s, 68 * s), (200, 66 * s, 60 * s), (330, 56 * s, 52 * s), (420, 56 * s, 55 * s),
             (560, 64 * s, 60 * s), (800, 46 * s, 44 * s)]
    # the axis runs from medial in the thigh to lateral in the calf, which covers the fibula
    leg = Loft((-12.0, -400.0, 0.0), (20.0, 400.0, 0.0), tuple(nodes))
    return [(leg, leg.shrunk(fat))]


def build_knee(side: str, p: dict[str, float], *, k: float, centre_u: float, centre_v: float) -> Knee:
    """Place one knee and lower each femoral condyle so its compartment has the target joint space."""
    lateral_sign = -1.0 if side == "right" else 1.0  # right knee: lateral side towards image left
    theta = np.deg2rad(p["tilt_deg"])
    q = np.array([[np.cos(theta), -np.sin(theta), 0.0], [np.sin(theta), np.cos(theta), 0.0], [0.0, 0.0, 1.0]])
    q = q @ np.diag([lateral_sign, 1.0, 1.0])
    t = np.array([centre_u, centre_v, 0.0])
    knee = Knee(side, centre_u, centre_v, k, lateral_sign)
    local = _local_bones(p, k)
    knee.soft = [tuple(_place(s, q, t) for s in pair) for pair in _local_soft(p)]
    for name in ("medial", "lateral"):
        index = 2 if name == "medial" else 3
        for _ in range(3):  # the tilt makes a vertical shift not exactly a gap change: iterate
            knee.bones = {bone: [tuple(_place(s, q, t) for s in pair) for pair in pairs] for bone, pairs in local.items()}
            gap = joint_space(knee, name)["jsw_mm"]
            delta = p[f"jsw_{name}_mm"] - gap
            if abs(delta) < 1e-4:
                break
            outer, _ = local["femur"][index]
            local["femur"][index] = _pair(outer.moved(dv=-delta), 1.8 * k)  # same cortex as built
    knee.bones = {bone: [tuple(_place(s, q, t) for s in pair) for pair in pairs] for bone, pairs in local.items()}
    knee.params = _record(knee, p)
    return knee


def _bound(bone_pairs, u: np.ndarray, *, lowest: bool) -> np.ndarray:
    """Lowest (largest v) or highest point of the ellipsoid shadows of a bone at each ``u``."""
    out = np.full(u.shape, np.nan)
    for outer, _ in bone_pairs:
        if not isinstance(outer, Ellipsoid):
            continue  # shafts are far from the joint: never the bounding piece there
        top, bottom = outer.v_bounds(u)
        out = np.fmax(out, bottom) if lowest else np.fmin(out, top)
    return out


def joint_space(knee: Knee, compartment: str) -> dict[str, float]:
    """Minimum vertical femur-tibia gap (mm) in a compartment and where it is (u, v of the femur point)."""
    u0, u1 = knee.compartment_u(compartment)
    u = np.arange(u0, u1 + JSW_STEP_MM / 2, JSW_STEP_MM)
    femur = _bound(knee.bones["femur"], u, lowest=True)
    tibia = _bound(knee.bones["tibia"], u, lowest=False)
    gap = tibia - femur
    if np.all(np.isnan(gap)):
        raise ValueError(f"{knee.side} {compartment}: femur and tibia do not face each other")
    i = int(np.nanargmin(gap))
    return {"jsw_mm": float(gap[i]), "u_mm": float(u[i]), "v_mm": float(femur[i])}


def _record(knee: Knee, p: dict[str, float]) -> dict[str, float]:
    femur = knee.bones["femur"]
    med, lat = femur[2][0], femur[3][0]
    patella = knee.bones["patella"][0][0]
    tibia_plateau = knee.bones["tibia"][0][0]
    record = {
        "medial_condyle_width_mm": 2 * med.radii[0], "medial_condyle_height_mm": 2 * med.radii[1],
        "medial_condyle_depth_mm": 2 * med.radii[2],
        "lateral_condyle_width_mm": 2 * lat.radii[0], "lateral_condyle_height_mm": 2 * lat.radii[1],
        "lateral_condyle_depth_mm": 2 * lat.radii[2],
        "bicondylar_width_mm": 2 * (p["notch_half"] + p["med_ru"] + p["lat_ru"]),
        "plateau_width_mm": 2 * tibia_plateau.radii[0],
        "patella_width_mm": 2 * patella.radii[0], "patella_height_mm": 2 * patella.radii[1],
        "patella_area_mm2": patella.shadow_area(),
        "tilt_deg": p["tilt_deg"], "soft_scale": p["soft_scale"], "fat_mm": p["fat_mm"],
    }
    for name in ("medial", "lateral"):
        found = joint_space(knee, name)
        record[f"{name}_jsw_mm"] = found["jsw_mm"]
        record[f"{name}_jsw_u_mm"] = found["u_mm"]
        record[f"{name}_jsw_v_mm"] = found["v_mm"]
    return {key: float(value) for key, value in record.items()}
