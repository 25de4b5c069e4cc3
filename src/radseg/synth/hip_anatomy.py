"""The hip phantom's anatomy: per-subject parameters and the bones as world primitives.

:func:`sample_hip_params` draws one subject's hips (anatomy, pathology level, HU values, body
outline sizes) into a :class:`HipParams`, whose ``prims`` hold every structure as
:mod:`radseg.synth.hip_shapes` primitives in LPS world mm (built by :func:`build_prims`).
:mod:`radseg.synth.hip_render` evaluates them; :mod:`radseg.synth.hip_phantom` is the public API.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from radseg.synth.geometry import euler_rotation
from radseg.synth.hip_shapes import Ball, Cone, Cut, EllipsoidPrim, Minus, Plate, texture, unit

PARTS = {0: "background", 1: "right_acetabulum", 2: "left_acetabulum", 3: "right_pelvis", 4: "left_pelvis",
         5: "right_femoral_head", 6: "left_femoral_head", 7: "right_femur", 8: "left_femur", 9: "sacrum"}
PART_VALUES = {name: value for value, name in PARTS.items()}
SIDES = ("right", "left")
SIGN = {"right": -1.0, "left": 1.0}  # patient left is +x in LPS


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
    cortex: dict = field(default_factory=dict)  # cortical thickness (mm) by site, before partial volume
    prims: dict = field(default_factory=dict, compare=False, repr=False)  # world primitives by structure

    def sides(self) -> tuple[HipSide, HipSide]:
        return self.right, self.left

    def side(self, name: str) -> HipSide:
        return getattr(self, name)


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
    up = unit(np.cos(np.radians(15)) * sup + np.sin(np.radians(15)) * lat)
    reach = np.sqrt(R * R + mig * mig + 2 * mig * R * (1 - flat))  # farthest head point from the socket centre
    Rc = jsw + reach  # so the narrowest joint space is exactly jsw
    C = A + mig * up
    # Femur: neck at the neck-shaft angle from the shaft, turned forward by the anteversion.
    e_d = unit(-np.cos(gamma) * sup - np.sin(gamma) * lat)
    e_m = unit(-lat - (-lat @ e_d) * e_d)
    e_a = unit(-post - (-post @ e_d) * e_d - (-post @ e_m) * e_m)
    n = unit(np.cos(np.radians(nsa)) * e_d
              + np.sin(np.radians(nsa)) * (np.cos(np.radians(av)) * e_m + np.sin(np.radians(av)) * e_a))
    J = C - offset / np.sin(np.radians(nsa)) * n
    neck_cut = R * np.sqrt(1 - 0.68 ** 2)  # where a neck of radius 0.68 R meets the head sphere
    # Socket rim plane (normal o, offset rim) through the sourcil edge at angle psi.
    o = unit(np.sin(alpha) * (np.cos(beta) * lat - np.sin(beta) * post) - np.cos(alpha) * sup)
    rim = Rc * (np.sin(psi) * np.sin(alpha) * np.cos(beta) - np.cos(psi) * np.cos(alpha))
    edge = A + Rc * (np.sin(psi) * lat + np.cos(psi) * sup) - C  # sourcil edge seen from the head centre
    lcea = np.degrees(np.arctan2(edge @ lat, edge @ sup))
    wall = 9.0 * sc
    # Osteophytes: on the head-neck ring, and overhanging the socket rim (superolateral/anterior arcs).
    ring_c, ring_r = C - neck_cut * n, np.sqrt(R * R - neck_cut ** 2)
    b1 = unit(np.cross(n, e_a))
    b2 = np.cross(n, b1)
    fem, ace = [], []
    for _ in range(int(prng.integers(tab["n_ost"][0], tab["n_ost"][1] + 1))):
        phi, r = prng.uniform(0, 2 * np.pi), prng.uniform(*tab["r_ost"]) * dsize
        radial = np.cos(phi) * b1 + np.sin(phi) * b2
        fem.append((*(ring_c + (ring_r + 0.3 * r) * radial - 0.2 * r * n), r))
    rim_c, rim_r = A + rim * o, np.sqrt(Rc * Rc - rim * rim)
    r1 = unit(np.cross(o, post))
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
    """Draw one subject's hips (see :mod:`radseg.synth.hip_phantom`) from ``rng`` (default ``subject.rng()``).

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
    tilt_x, tilt_y, tilt_z = g_body.normal(0, 2, 3)  # degrees about x, y, z; z applied last
    M = euler_rotation("zyx", (tilt_z, tilt_y, tilt_x))
    t = np.array([g_body.normal(0, 6), g_body.normal(-20, 10), g_body.uniform(-250, 50)])
    right = _sample_side(g_right, p_right, "right", levels[0], sc, dsize, M, t)
    left = _sample_side(g_left, p_left, "left", levels[1], sc, dsize, M, t)
    rng = g_body
    age, density = float(subject.age), float(subject.difficulty.get("density", 1.0))
    muscle = float(rng.normal(50, 4))
    # Calibrated against real pelvic CT (benchmarks/ct_hu_quantiles.py): true (unblurred) cortex,
    # red-to-fatty cancellous bone that loses density with age (and after menopause), fatty marrow.
    raw_bone = {
        "cortical": float(np.clip(rng.normal(1150, 80) - 4 * (age - 50), 900, 1400)),
        "cancellous": float(np.clip(rng.normal(235, 35) - 2.5 * (age - 50) - (25 if not male else 0), 110, 380)),
        "marrow": float(rng.normal(15, 12)), "cyst": float(rng.normal(25, 5)),
    }
    for key in ("cortical", "cancellous"):  # osteoporosis (difficulty "density")
        raw_bone[key] = muscle + (raw_bone[key] - muscle) * density
    hu = {"air": -1000.0, "fat": float(rng.normal(-100, 5)), "muscle": muscle, "cartilage": float(rng.normal(88, 4)),
          "urine": float(rng.normal(8, 3)), "gas": -950.0,
          **{k: muscle + (v - muscle) * contrast for k, v in raw_bone.items()}}
    fat = float(rng.uniform(10, 40) + (6 if not male else 0)) * sc
    body = {"fat": fat, "trunk_a": 68 * sc + fat, "trunk_b": 92 * sc + 0.9 * fat, "trunk_y": 18 * sc,
            "thigh_r": 62 * sc + 0.8 * fat, "bladder": float(rng.uniform(0.6, 1.1)) * sc,
            "gas": float(rng.uniform(0, 9)) * sc, "texture_seed": int(rng.integers(2 ** 31))}
    thin = float(rng.uniform(0.2, 0.6)) * density  # iliac wing, sacral ala, acetabular floor
    cortex = {"thin": thin, "thick": float(rng.uniform(1.4, 2.4)) * density,  # around the socket, columns
              "sacrum": float(rng.uniform(0.4, 0.8)) * density, "neck": float(rng.uniform(0.5, 1.0)) * density,
              "shaft": float(rng.uniform(4.0, 6.0)) * density, "variation": float(rng.uniform(0.2, 0.4))}
    params = HipParams(right=right, left=left, rotation=tuple(M.ravel()), translation=tuple(t), scale=sc,
                       contrast=contrast, hu=hu, body=body, cortex={k: v * (sc if k != "variation" else 1.0)
                                                                    for k, v in cortex.items()})
    object.__setattr__(params, "prims", build_prims(params))
    return params


# --- anatomy as primitives (world coordinates) ----------------------------------------------------

def build_prims(p: HipParams) -> dict[str, Any]:
    """World primitives by structure: each bone is ``(prims, carves)`` (``carves``: (prims, margin)
    pairs cut out of it), the organs one primitive each, and the trabecular ``texture`` field."""
    M, t, sc = np.array(p.rotation).reshape(3, 3), np.array(p.translation), p.scale

    def W(v):  # canonical point -> world
        return M @ np.asarray(v, float) + t

    def D(v):  # canonical direction -> world
        return M @ np.asarray(v, float)

    out: dict[str, Any] = {}
    # Sacrum and coccyx on the midline (canonical mm).
    sac = [EllipsoidPrim(W(np.array([0, 70, 88]) * sc), np.array([50, 22, 20]) * sc, M),
           EllipsoidPrim(W(np.array([0, 80, 55]) * sc), np.array([40, 18, 26]) * sc, M),
           Cone(W(np.array([0, 84, 40]) * sc), W(np.array([0, 88, 5]) * sc), 20 * sc, 10 * sc),
           Cone(W(np.array([0, 88, 3]) * sc), W(np.array([0, 70, -25]) * sc), 7 * sc, 4 * sc)]
    out["sacrum"] = sac
    for hs in p.sides():
        s = SIGN[hs.side]
        lat, post, sup = np.array([s, 0, 0]), np.array([0, 1.0, 0]), np.array([0, 0, 1.0])
        Rw = np.array(hs.cavity_centre)
        A = M.T @ (Rw - t)  # canonical socket centre

        def rel(la, po, su, A=A, lat=lat, post=post, sup=sup):  # mm lateral, posterior, superior of the socket
            return W(A + sc * (la * lat + po * post + su * sup))

        o, rim = np.array(hs.rim_normal), hs.rim_offset
        cup = Cut(Ball(Rw, hs.cavity_radius + hs.wall), o, o @ Rw + rim)
        ax1 = unit(-0.5 * lat + 0.866 * post)
        supra = EllipsoidPrim(rel(-8, 4, 26), np.array([28, 13, 22]) * sc,
                           M @ np.column_stack([ax1, np.cross(sup, ax1), sup]))
        asis, psis = rel(28, -48, 62), W(np.array([s * 40, 98, 78]) * sc)
        crest = rel(18, 35, 112)
        centre = (asis + psis) / 2 + np.array([0, 0, -8]) * sc
        t1 = unit(psis - asis)
        t2 = unit((crest - centre) - ((crest - centre) @ t1) * t1)
        nin = np.cross(t1, t2)
        nin = nin if nin @ D(-lat) > 0 else -nin  # towards the pelvic cavity
        cutter = EllipsoidPrim(centre, np.array([np.linalg.norm(psis - asis) / 2 + 6 * sc, 62 * sc, 30 * sc]),
                            np.column_stack([t1, t2, nin]))
        wing = Cut(Plate(centre + 150 * sc * nin, 150 * sc, 4.0 * sc, cutter),
                    -D(unit(sup - 0.6 * post)), -(D(unit(sup - 0.6 * post)) @ rel(0, 20, 18)))
        si = W(np.array([s * 46, 74, 62]) * sc)
        T = rel(-22, 30, -52)
        pb = W(np.array([s * 11.5, -48, -28]) * sc)
        tilt = np.radians(20)
        sym_axes = M @ np.column_stack([[1, 0, 0], [0, np.cos(tilt), -np.sin(tilt)], [0, np.sin(tilt), np.cos(tilt)]])
        pelvis = [cup, supra, wing,
                  Cone(rel(-6, 14, 18), si, 15 * sc, 13 * sc),  # posterior column / sciatic buttress
                  EllipsoidPrim(rel(8, -28, 28), np.array([8, 8, 12]) * sc, M),  # anterior inferior iliac spine
                  Cone(rel(-4, 10, -6), T, 15 * sc, 12 * sc),  # ischial body
                  EllipsoidPrim(T + D([0, 4, -4]) * sc, np.array([13, 20, 20]) * sc, M),  # tuberosity
                  Cone(rel(-12, 22, 0), rel(-26, 40, -2), 8 * sc, 4 * sc),  # ischial spine
                  Cone(rel(-14, -16, -8), pb + D([0, 2, 12]) * sc, 12 * sc, 8 * sc),  # superior pubic ramus
                  EllipsoidPrim(pb, np.array([9, 12, 20]) * sc, sym_axes),  # pubic body
                  Cone(pb + D([s * 2, 6, -14]) * sc, T + D([-s * 6, -6, -8]) * sc, 7 * sc, 8 * sc)]  # inferior ramus
        pelvis += [Ball(v[:3], v[3], k=2.0) for v in hs.osteophytes_rim]
        # Carved: the socket cavity, the lip beyond the rim plane, and a 2.5 mm sacro-iliac joint.
        lip = Cut(Ball(Rw, hs.cavity_radius + 0.6 * hs.wall), -o, -(o @ Rw + rim))
        out[f"{hs.side}_pelvis"] = (pelvis, [([Ball(Rw, hs.cavity_radius)], 0.0), ([lip], 0.0), (sac, 2.5)])
        C, n, e_d, J, R = (np.array(hs.head_centre), np.array(hs.neck_axis), np.array(hs.shaft_axis),
                           np.array(hs.neck_base), hs.head_radius)
        e_m = unit(n - (n @ e_d) * e_d)
        e_p = np.cross(e_d, e_m) * (1 if np.cross(e_d, e_m) @ D(post) > 0 else -1)
        frame = np.column_stack([-e_m, e_p, e_d])
        head = Ball(C, R)
        if hs.flattening > 0:
            u = np.array(hs.up)
            head = Cut(head, u, u @ C + R * (1 - hs.flattening))
        femur = [head,
                 Cone(C - 0.3 * R * n, J, 0.68 * R, 0.82 * R),  # neck
                 Cone(J - 12 * sc * e_d, J + 70 * sc * e_d, 20 * sc, 15 * sc),  # intertrochanteric region
                 Cone(J + 60 * sc * e_d, J + 320 * sc * e_d, 14.5 * sc, 13 * sc),  # shaft
                 EllipsoidPrim(J - 9 * sc * e_m + 6 * sc * e_p - 8 * sc * e_d, np.array([12, 18, 24]) * sc, frame),  # GT
                 EllipsoidPrim(J + 50 * sc * e_d + 12 * sc * e_m + 9 * sc * e_p, np.array([8, 7, 12]) * sc, frame)]  # LT
        femur += [Ball(v[:3], v[3], k=2.0) for v in hs.osteophytes_femur]
        # Femoral osteophytes keep clear of the socket bone (never closer than the joint space allows).
        socket = [Minus(q, Ball(Rw, hs.cavity_radius)) for q in [cup] + pelvis[11:]]
        out[f"{hs.side}_femur"] = (femur, [(socket, min(0.7, 0.5 * hs.jsw_min))])
    out["sacrum"] = (sac, [])
    # Soft tissue: organs (canonical), moved with the pelvis.
    b = p.body
    out["bladder"] = EllipsoidPrim(W(np.array([0, -22, 4]) * sc), np.array([38, 30, 30]) * b["bladder"], M)
    out["rectum"] = Cone(W(np.array([0, 62, -40]) * sc), W(np.array([0, 58, 45]) * sc), 13 * sc, 16 * sc)
    out["gas"] = Ball(W(np.array([0, 58, 20]) * sc), b["gas"])
    out["texture"] = texture(b["texture_seed"])
    return out
