"""Hand-built label maps with known geometry (mm), for the feature tests.

Each builder returns ``(labels Image, truth dict)``. Pixels belong to a structure when their
centre lies inside it, so edges sit within half a pixel of the stated geometry.
"""

from __future__ import annotations

import numpy as np

from radseg.image import Image
from radseg.labels import make_label_map

HIP_NAMES = {1: "right acetabulum", 2: "left acetabulum", 5: "right femur", 6: "left femur"}


def _grid(shape, spacing):
    rows, cols = np.mgrid[: shape[0], : shape[1]].astype(float)
    return rows * spacing[0], cols * spacing[1]


def knee(*, spacing=(0.4, 0.4), gaps=None, shape=(500, 700), fibula=True, mirror=False, names=False):
    """Both knees (right at image left): femur with two round condyles over a flat, stepped tibial
    plateau. ``gaps[side] = (medial, lateral)`` vertical gaps (mm) under the condyle centres."""
    gaps = gaps or {"right": (5.0, 7.0), "left": (4.0, 6.5)}
    y, x = _grid(shape, spacing)
    lab = np.zeros(shape, np.uint8)
    for side, cx, lateral in (("right", 70.0, -1), ("left", 210.0, 1)):
        patella, femur, tibia, fib = (1, 2, 3, 4) if side == "right" else (5, 6, 7, 8)
        half, radius, bottom = 40.0, 18.0, 100.0

        def at(fraction, cx=cx, lateral=lateral, half=half):  # plateau x: 0 at the medial edge, 1 lateral
            return cx - lateral * half + lateral * 2 * half * fraction

        bone = (y < bottom - radius) & (np.abs(x - cx) <= half - 2) & (y >= 10)
        for fraction in (0.25, 0.75):
            bone |= (y - (bottom - radius)) ** 2 + (x - at(fraction)) ** 2 <= radius**2
        plateau = np.zeros(shape, bool)
        for (f0, f1), gap in zip(((0.0, 0.5), (0.5, 1.0)), gaps[side]):
            lo, hi = sorted((at(f0), at(f1)))
            plateau |= (y >= bottom + gap) & (y <= 190) & (x >= lo) & (x <= hi)
        lab[bone] = femur
        lab[plateau] = tibia
        if fibula:
            lab[(y >= bottom + 20) & (y <= 190) & (np.abs(x - (cx + lateral * (half + 8))) <= 5)] = fib
        lab[(y - 70) ** 2 + (x - cx) ** 2 <= 12**2] = patella
    if mirror:  # patient right now on the image right
        lab = lab[:, ::-1].copy()
    table = {1: "right patella", 2: "right femur", 3: "right tibia", 4: "right fibula",
             5: "left patella", 6: "left femur", 7: "left tibia", 8: "left fibula"}
    image = Image(lab, spacing=spacing)
    return make_label_map(image, table if names else None), {s: dict(zip(("medial", "lateral"), g)) for s, g in gaps.items()}


def hip(*, spacing=0.5, shape=(440, 600), radius=24.0, jsw=4.0, lcea=30.0, nsa=130.0, tilt=8.0,
        sides=("right", "left"), shaft_length=400.0):
    """Femur = head disc + neck band + shaft band; acetabulum = annular sector over the head from
    80 deg medial to ``lcea`` deg lateral of the vertical. Right hip at image left."""
    y, x = _grid(shape, (spacing, spacing))
    lab = np.zeros(shape, np.uint8)
    truth = {}
    for side, cx, lateral in (("right", 75.0, -1.0), ("left", 225.0, 1.0)):
        if side not in sides:
            continue
        centre = np.array([60.0, cx])
        t = np.radians(tilt)
        down = np.array([np.cos(t), -lateral * np.sin(t)])  # shaft leans medially going down
        across = np.array([-down[1], down[0]])
        across = across if across[1] * lateral > 0 else -across
        a = np.radians(180.0 - nsa)
        neck = np.cos(a) * down + np.sin(a) * across  # from the head along the neck: angle(-neck, down) = nsa
        base = centre + 55.0 * neck
        d = np.stack([y - centre[0], x - centre[1]], -1)
        bone = np.hypot(d[..., 0], d[..., 1]) <= radius
        bone |= (d @ neck >= 0) & (d @ neck <= 70) & (np.abs(d @ np.array([-neck[1], neck[0]])) <= 16)
        d2 = np.stack([y - base[0], x - base[1]], -1)
        bone |= (d2 @ down >= -15) & (d2 @ down <= shaft_length) & (np.abs(d2 @ np.array([-down[1], down[0]])) <= 15)
        angle = np.degrees(np.arctan2(d[..., 1] * lateral, -d[..., 0]))
        dist = np.hypot(d[..., 0], d[..., 1])
        cup = (dist >= radius + jsw) & (dist <= radius + jsw + 10) & (angle <= lcea) & (angle >= -80)
        lab[bone] = 5 if side == "right" else 6
        lab[cup] = 1 if side == "right" else 2
        truth[side] = {"centre_mm": centre, "diameter": 2 * radius, "jsw": jsw, "lcea": lcea, "nsa": nsa}
    return make_label_map(Image(lab, spacing=(spacing, spacing)), {k: v for k, v in HIP_NAMES.items()}), truth


def chest(*, spacing=(0.5, 0.5), shape=(500, 600), vertebra_offsets=(0.0, 0.0, 0.0, 0.0, 0.0)):
    """Rectangular lungs, an elliptic heart across the midline, a right hemidiaphragm band whose
    medial end is the midline, and vertebra boxes whose centres sit ``vertebra_offsets`` mm off a
    vertical line. Right lung at image left. Returns a CXAS-style multi-label mask."""
    from radseg.labels import make_multilabel

    y, x = _grid(shape, spacing)
    midline = 150.0
    right = (y >= 40) & (y < 220) & (x >= 20) & (x < midline - 15)
    left = (y >= 40) & (y < 235) & (x >= midline + 20) & (x < 290)  # widest row: 270 mm
    heart = ((y - 190) / 45) ** 2 + ((x - (midline + 10)) / 60) ** 2 <= 1  # 50 mm right, 70 mm left of the midline
    dome = (y >= 220) & (y < 228) & (x >= 20) & (x < midline)
    masks = [right, left, heart, dome]
    names = ["right lung", "left lung", "heart", "right hemidiaphragm"]
    for k, offset in enumerate(vertebra_offsets):
        top = 60.0 + 30.0 * k
        masks.append((y >= top) & (y < top + 20) & (np.abs(x - (midline + offset)) <= 10))
        names.append(f"vertebrae T{k + 1}")
    base = Image(np.zeros(shape, np.uint8), spacing=spacing)
    truth = {"mrd": 50.0, "mld": 70.0, "id": 270.0, "ctr": 120.0 / 270.0}
    return make_multilabel(np.stack(masks), names, like=base), truth
