"""Geometry of the PA chest phantom: random anatomy, exact footprints, path lengths, CTR.

Everything is drawn in a *standard frame*: ``u`` mm towards the patient's left from the body
midline (image right in a PA display), ``v`` mm downwards, for an adult of body scale 1. The
caller renders it on a detector whose spacing is divided by the subject's scale, so the same
closed-form geometry gives the labels (footprints) and the Beer-Lambert path lengths, and every
length recorded in mm is the standard-frame length times the scale.

Per side, ``x = |u|`` measured from the midline on that side:

* lungs: between a medial border ``x_med(v)`` (mediastinum, curving out into a rounded apex) and a
  lateral border ``x_lat(v)`` (an elliptic arc up to the widest row, then a slight taper), above
  the lung base ``dome(x) + recess(x)`` (the diaphragm dome plus the posterior costophrenic recess);
* hemidiaphragms: the band under the dome, ``dome(x) <= v <= dome(x) + thickness(x)``, from the
  midline (``x >= 0``, so CXAS's midline, the right hemidiaphragm's right-most column, is ``u = 0``)
  to the lateral chest wall;
* heart: the union of a tilted left-ventricle ellipse and a right-atrium ellipse;
* bones (:mod:`radseg.synth.chest_bones`): vertebral bodies, ribs, clavicles, scapulae, humeri.
"""

from __future__ import annotations

import numpy as np

import radseg.synth.shapes2d as sh
from radseg.synth.chest_bones import (
    SIDES,
    render_ribs,
    render_shoulder,
    render_spine,
)

VERTEBRAE = ("C7", *(f"T{k}" for k in range(1, 13)), "L1", "L2")
POSTERIOR_RIBS, ANTERIOR_RIBS = range(1, 13), range(1, 11)


# --- random anatomy ---------------------------------------------------------------------------

def sample(rng: np.random.Generator, *, female: bool, cardiomegaly: bool) -> dict:
    """One subject's chest in the standard frame (mm)."""
    n = lambda mean, sd: float(mean + sd * rng.standard_normal())
    g: dict = {"depth": n(1.0, 0.07), "wall": n(24.0, 5.0), "female": female}
    v_top = n(36.0, 4.0)
    v_dome = n(252.0, 9.0)
    g["lung"] = {}
    for side in SIDES:
        left = side == "left"
        top = v_top + (rng.uniform(0, 4) if left else 0.0)
        dome = v_dome + (rng.uniform(8, 20) if left else 0.0)
        g["lung"][side] = {
            "top": top, "x_apex": n(42.0, 3.0), "x_med": n(26.0 if left else 23.0, 2.0),
            "apex_len": n(30.0, 4.0), "x_wide": n(127.0 if left else 129.0, 6.0),
            "v_wide": dome - rng.uniform(15, 35), "taper": rng.uniform(2.0, 6.0),
            "v_dome": dome, "x_dome": n(62.0, 6.0), "h_lat": n(28.0, 4.0), "h_med": n(18.0, 3.0),
            "recess": n(14.0, 3.0), "depth": 150.0 * g["depth"],
        }
    v_car = v_top + n(96.0, 6.0)
    g["trachea"] = {"u": n(-3.0, 1.5), "r": n(8.5, 0.8), "v_end": v_car}
    # Heart: LV ellipse on the left, RA ellipse on the right; scaled about its base.
    lv = {"u": n(12.0, 4.0), "v": g["lung"]["left"]["v_dome"] - n(38.0, 4.0), "a": n(62.0, 3.0),
          "b": n(50.0, 3.0), "angle": np.deg2rad(n(25.0, 5.0))}
    ra = {"u": n(-20.0, 3.0), "v": lv["v"] + n(10.0, 3.0), "a": n(24.0, 2.5), "b": n(40.0, 3.0), "angle": 0.0}
    scale = rng.uniform(1.2, 1.38) if cardiomegaly else float(np.clip(n(1.0, 0.05), 0.88, 1.1))
    pivot = (lv["u"], lv["v"] + 40.0)  # the heart grows up and out from the diaphragm
    for part in (lv, ra):
        part["u"] = pivot[0] + scale * (part["u"] - pivot[0])
        part["v"] = pivot[1] + scale * (part["v"] - pivot[1])
        part["a"] *= scale
        part["b"] *= scale
    g["heart"] = {"parts": (lv, ra), "scale": scale, "half_depth": 56.0 * scale * g["depth"]}
    g["vessels"] = [  # soft tissue inside the lung fields: aortic knob, hila (u, v, a, b, half depth)
        (n(31.0, 3.0), v_car - 18.0, n(16.0, 1.5), n(16.0, 1.5), 24.0),
        (-48.0, v_car + 22.0, 17.0, 30.0, 16.0), (46.0, v_car + 14.0, 15.0, 27.0, 16.0)]
    g["vessel_tree"] = _vessel_tree(rng, g, v_car)
    g["stomach"] = (n(72.0, 8.0), g["lung"]["left"]["v_dome"] + n(26.0, 4.0), n(30.0, 5.0), n(19.0, 3.0))
    # Spine: C7..L2 stacked from T1's top (near the lung apex).
    v = v_top + n(2.0, 3.0) - 18.5
    g["vertebrae"] = []
    for i, name in enumerate(VERTEBRAE):
        height = (14.0 + 0.75 * i) * n(1.0, 0.03)
        g["vertebrae"].append({"name": name, "top": v, "height": height, "width": (25.0 + 1.35 * i) * n(1.0, 0.03),
                               "u": n(0.0, 0.6)})
        v += height + (3.5 + 0.15 * i) * n(1.0, 0.08)
    g["ribs"] = {side: _ribs(g, side, rng) for side in SIDES}
    v_clav = v_top + n(34.0, 4.0)
    g["clavicle"] = {side: {"x0": n(20.0, 2.0), "v0": v_clav + n(0.0, 1.5), "x1": n(146.0, 6.0),
                            "v1": v_clav - n(14.0, 5.0), "s": n(4.0, 1.5), "h": n(7.0, 0.6)} for side in SIDES}
    g["scapula"] = {side: ((n(100.0, 5.0), v_clav - 8.0), (n(124.0, 6.0), v_clav + n(118.0, 8.0)),
                           (160.0, v_clav + 8.0)) for side in SIDES}
    g["humerus"] = {side: (n(170.0, 4.0), v_clav + n(18.0, 4.0), n(24.0, 1.5)) for side in SIDES}
    g["breast"] = (n(92.0, 6.0), g["lung"]["right"]["v_dome"] - n(5.0, 8.0), n(80.0, 8.0), n(58.0, 6.0)) if female else None
    return g


def _vessel_tree(rng, g: dict, v_car: float) -> list[tuple]:
    """Pulmonary vessels: binary trees from each hilum, ``(u0, v0, u1, v1, radius)`` segments."""
    segments = []
    for (cu, cv, *_), sign in zip(g["vessels"][1:], (-1.0, 1.0)):
        stack = [(cu - sign * 4.0, cv, np.deg2rad(a + rng.normal(0, 8)), 26.0, 4.2, 0)
                 for a in (-80, -45, -10, 25, 55, 80)]
        while stack:
            u0, v0, angle, length, radius, depth = stack.pop()
            u1, v1 = u0 + sign * length * np.cos(angle), v0 + length * np.sin(angle)
            segments.append((u0, v0, u1, v1, radius))
            if depth < 4:
                for turn in (-1.0, 1.0):
                    stack.append((u1, v1, angle + turn * np.deg2rad(rng.uniform(10, 28)),
                                  length * rng.uniform(0.72, 0.9), radius * 0.72, depth + 1))
    return segments


def _ribs(g: dict, side: str, rng) -> list[dict]:
    lung = g["lung"][side]
    ribs = []
    for k in POSTERIOR_RIBS:
        vert = g["vertebrae"][k]  # T_k (index 0 is C7)
        v0 = vert["top"] + vert["height"] / 2
        b = min(22.0 + 6.0 * (k - 1), 70.0) * float(rng.uniform(0.95, 1.05))
        phi0 = np.deg2rad(rng.uniform(-34.0, -26.0))
        vc = v0 + b * np.cos(phi0)
        h = 4.6 + 0.08 * k
        reach = float(lung_lateral(lung, np.array(min(vc, lung["v_wide"] + 30.0)))) + 0.4 * h
        if k >= 11:
            reach -= 20.0 * (k - 10)
        x0 = vert["width"] / 2 + 4.0
        a = (reach - x0) / (1.0 - np.sin(phi0))
        end = {1: 205, 2: 205, 3: 205, 4: 205, 5: 205, 6: 200, 7: 195, 8: 185, 9: 172, 10: 160}.get(k)
        ribs.append({"k": k, "xc": x0 - a * np.sin(phi0), "vc": vc, "a": a, "b": b, "phi0": phi0, "h": h,
                     "phi_post": np.deg2rad({11: 60, 12: 40}.get(k, 90)),
                     "phi_end": np.deg2rad(end) if end else None})
    return ribs


# --- lung and diaphragm borders (per side, x = |u|) ----------------------------------------------

def lung_lateral(p: dict, v):
    t = np.clip((p["v_wide"] - v) / (p["v_wide"] - p["top"]), 0.0, 1.0)
    upper = p["x_apex"] + (p["x_wide"] - p["x_apex"]) * np.sqrt(1.0 - t * t)
    lower = p["x_wide"] - p["taper"] * ((v - p["v_wide"]) / 40.0) ** 2
    return np.where(v < p["v_wide"], upper, lower)


def lung_medial(p: dict, v):
    # leaves the apex like a circle (square-root start), then settles on the mediastinum
    fall = np.sqrt(1.0 - np.exp(-np.clip(v - p["top"], 0.0, None) / p["apex_len"]))
    return p["x_med"] + (p["x_apex"] - p["x_med"]) * (1.0 - fall)


def dome(p: dict, x):
    q_lat = (x - p["x_dome"]) / (p["x_wide"] - p["x_dome"])
    q_med = (p["x_dome"] - x) / p["x_dome"]
    return p["v_dome"] + np.where(x >= p["x_dome"], p["h_lat"] * q_lat ** 2, p["h_med"] * q_med ** 2)


def recess(p: dict, x):
    return p["recess"] * np.clip((x - p["x_dome"]) / (p["x_wide"] - p["x_dome"]), 0.0, 1.0) ** 2


def lung_region(p: dict, x, v):
    return (v >= p["top"]) & (x >= lung_medial(p, v)) & (x <= lung_lateral(p, v)) & (v <= dome(p, x) + recess(p, x))


def lung_row_lengths(p: dict, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row ``v``: (length of the lung's row in mm, its lateral-most x or NaN). Closed form."""
    lo, hi = lung_medial(p, v), lung_lateral(p, v)
    above = v >= p["top"]
    below_dome = np.clip(v - p["v_dome"], 0.0, None)
    # Rows below the dome top keep x <= xb1 (medial slope) and x >= xb2 (lateral slope + recess).
    xb1 = p["x_dome"] - p["x_dome"] * np.sqrt(below_dome / p["h_med"])
    xb2 = p["x_dome"] + (p["x_wide"] - p["x_dome"]) * np.sqrt(below_dome / (p["h_lat"] + p["recess"]))
    medial = np.clip(np.minimum(hi, xb1) - lo, 0.0, None)
    lateral = np.clip(hi - np.maximum(lo, xb2), 0.0, None)
    length = np.where(above, medial + lateral, 0.0)
    outer = np.where(lateral > 0, hi, np.where(medial > 0, np.minimum(hi, xb1), np.nan))
    return length, np.where(above, outer, np.nan)


def ctr_geometry(g: dict) -> dict:
    """CXAS cardio-thoracic ratio from the geometry (standard-frame mm).

    Midline ``u = 0`` (right-most point of the right hemidiaphragm); MRD/MLD: heart extent right
    and left of it; ID: the widest row of both lungs together (any row, as CXAS's code does).
    """
    lows, highs = [], []
    for part in g["heart"]["parts"]:
        half_u, _ = sh.ellipse_half_extent(part["a"], part["b"], part["angle"])
        lows.append(part["u"] - half_u)
        highs.append(part["u"] + half_u)
    mrd, mld = -min(lows), max(highs)
    right, left = g["lung"]["right"], g["lung"]["left"]
    rows = np.arange(min(right["top"], left["top"]), max(right["v_dome"], left["v_dome"]) + 60.0, 0.01)
    _, outer_r = lung_row_lengths(right, rows)
    _, outer_l = lung_row_lengths(left, rows)
    width = outer_r + outer_l  # NaN where a lung is missing from the row
    single = np.fmax(np.where(np.isnan(outer_r), np.nan, outer_r - lung_medial(right, rows)),
                     np.where(np.isnan(outer_l), np.nan, outer_l - lung_medial(left, rows)))
    inner = float(np.nanmax(np.fmax(width, single)))
    return {"mrd": mrd, "mld": mld, "id": inner, "heart_width": mrd + mld}


def lung_area(p: dict) -> float:
    """Area (standard mm^2) of one lung's footprint, integrated row by row in closed form."""
    step = 0.01
    rows = np.arange(p["top"], p["v_dome"] + p["h_lat"] + p["recess"] + 5.0, step) + step / 2
    return float(lung_row_lengths(p, rows)[0].sum() * step)


# --- rendering ---------------------------------------------------------------------------------

class Canvas:
    """Path-length maps (mm) and label masks accumulated on one detector (standard frame)."""

    PATHS = ("soft", "lung", "gas", "displace", "vessels", "cortical", "cancellous")

    def __init__(self, detector) -> None:
        self.det = detector
        self.paths = {k: np.zeros(detector.shape) for k in self.PATHS}
        self.masks: dict[str, np.ndarray] = {}
        self.u, self.v = detector.grid(slice(0, detector.shape[0]), slice(0, detector.shape[1]))

    def label(self, name: str, rows: slice, cols: slice, mask: np.ndarray) -> None:
        full = self.masks.setdefault(name, np.zeros(self.det.shape, bool))
        full[rows, cols] |= mask

    def add(self, path: str, rows: slice, cols: slice, values: np.ndarray) -> None:
        self.paths[path][rows, cols] += values


def render(g: dict, det) -> Canvas:
    canvas = Canvas(det)
    _body(g, canvas)
    _lungs(g, canvas)
    _heart_and_vessels(g, canvas)
    render_spine(g, canvas)
    for side in SIDES:
        render_ribs(g, canvas, side)
        render_shoulder(g, canvas, side)
    return canvas


def _body(g: dict, c: Canvas) -> None:
    u, v = c.u, c.v
    wall = g["wall"]
    chest = max(g["lung"]["right"]["x_wide"], g["lung"]["left"]["x_wide"]) + wall
    half_width = 56.0 + (chest - 56.0) * sh.smoothstep((v + 10.0) / 70.0)
    half_width = half_width - 12.0 * sh.smoothstep((v - 300.0) / 80.0)  # waist
    half_depth = (60.0 + 45.0 * sh.smoothstep((v + 10.0) / 70.0) + 8.0 * sh.smoothstep((v - 250.0) / 60.0)) * g["depth"]
    q = np.clip(1.0 - np.abs(u / half_width) ** 2.6, 0.0, None) ** (1 / 2.6)
    c.paths["soft"] += 2.0 * half_depth * q
    for side, sign in SIDES.items():  # arms: soft-tissue capsules hanging from the shoulders
        x, top = g["humerus"][side][0] + 8.0, g["humerus"][side][1] - 22.0
        distance, _ = sh.segment_distance(u * sign, v, (x, top), (x + 150.0, top + 400.0))
        c.paths["soft"] += sh.tube_chord(distance, 46.0, 50.0 * g["depth"])
    if g["breast"] is not None:  # the lower half shows: the upper half blends into the chest wall
        x, vb, a, b = g["breast"]
        for sign in SIDES.values():
            lower = sh.smoothstep((v - vb + 0.6 * b) / (1.2 * b))
            c.paths["soft"] += lower * sh.chord(sh.ellipse_rho2(u * sign, v, x, vb, a, b), 24.0 * g["depth"])


def _lungs(g: dict, c: Canvas) -> None:
    u, v = c.u, c.v
    for side, sign in SIDES.items():
        p = g["lung"][side]
        x = u * sign
        region = lung_region(p, x, v)
        lo, hi = lung_medial(p, v), lung_lateral(p, v)
        xi = np.clip((x - (lo + hi) / 2) / np.maximum((hi - lo) / 2, 1e-3), -1.0, 1.0)
        depth = p["depth"] * np.sqrt(np.clip((v - p["top"]) / (p["v_wide"] - p["top"] + 30.0), 0.0, 1.0))
        path = depth * np.sqrt(1.0 - xi * xi)
        top_of_dome = dome(p, x)
        under = v > top_of_dome  # behind the dome only the posterior recess holds lung
        fraction = np.clip((top_of_dome + recess(p, x) - v) / (recess(p, x) + 1e-6), 0.0, 1.0)
        path = np.where(under, 0.45 * path * fraction, path)
        c.paths["lung"] += np.where(region, path, 0.0)
        c.label(f"{side} lung", slice(None), slice(None), region)
        # hemidiaphragm: from the midline (x >= 0 on the right, x > 0 on the left) to the chest wall
        thickness = 14.0 + 1.2 * recess(p, x)
        medial_ok = (x >= 0) if side == "right" else (x > 0)
        band = medial_ok & (x <= lung_lateral(p, v)) & (v >= top_of_dome) & (v <= top_of_dome + thickness)
        c.label(f"{side} hemidiaphragm", slice(None), slice(None), band)
    t = g["trachea"]
    found = sh.window(c.det, (t["u"] - t["r"], t["u"] + t["r"], c.v[0, 0], t["v_end"]))
    if found:
        rows, cols, uu, vv = found
        inside = (np.abs(uu - t["u"]) <= t["r"]) & (vv <= t["v_end"])
        c.add("gas", rows, cols, np.where(inside, sh.tube_chord(uu - t["u"], t["r"]), 0.0))
        c.label("trachea", rows, cols, inside)
    for sign in (-1.0, 1.0):  # main bronchi: air, not labelled
        end = (t["u"] + sign * 34.0, t["v_end"] + 22.0 + 6.0 * (sign > 0))
        distance, _ = sh.segment_distance(u, v, (t["u"], t["v_end"] - 2.0), end)
        c.paths["gas"] += sh.tube_chord(distance, 6.0)
    su, sv, sa, sb = g["stomach"]
    rho2 = sh.ellipse_rho2(u, v, su, sv, sa, sb)
    c.paths["gas"] += np.where(v <= sv + 0.3 * sb, sh.chord(rho2, 24.0), 0.0)  # gas on a flat fluid level


def _heart_and_vessels(g: dict, c: Canvas) -> None:
    heart = g["heart"]
    chords, region = [], np.zeros(c.det.shape, bool)
    for part in heart["parts"]:
        rho2 = sh.ellipse_rho2(c.u, c.v, part["u"], part["v"], part["a"], part["b"], part["angle"])
        chords.append(sh.chord(rho2, heart["half_depth"]))
        region |= rho2 <= 1.0
    c.paths["displace"] += np.maximum(*chords)
    c.label("heart", slice(None), slice(None), region)
    for cu, cv, a, b, depth in g["vessels"]:
        c.paths["displace"] += sh.chord(sh.ellipse_rho2(c.u, c.v, cu, cv, a, b), depth * g["depth"])
    for u0, v0, u1, v1, radius in g["vessel_tree"]:  # vessels run obliquely: a longer path than their width
        found = sh.window(c.det, (min(u0, u1) - radius, max(u0, u1) + radius, min(v0, v1) - radius, max(v0, v1) + radius))
        if found:
            rows, cols, u, v = found
            distance, _ = sh.segment_distance(u, v, (u0, v0), (u1, v1))
            chord = sh.tube_chord(distance, radius, 2.5 * radius)
            c.paths["vessels"][rows, cols] = np.maximum(c.paths["vessels"][rows, cols], chord)
