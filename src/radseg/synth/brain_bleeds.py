"""Hemorrhages of the ``brain-ct`` phantom: intraparenchymal (IPH) and intraventricular (IVH).

* **IPH**: a union of one to three ellipsoids (a main one sized to a drawn volume and
  smaller lobes on its surface) with a rough boundary (a smooth random field added to the
  distance), clipped to the cranial cavity; a rim of perihematomal edema (lower HU, not
  labelled) surrounds it. Sites and their weights follow the usual distribution of
  spontaneous hemorrhage: putamen, thalamus, lobar (frontal, parietal, temporal,
  occipital), cerebellum, pons.
* **IVH**: blood layering in the dependent (posterior, the patient lies supine) part of the
  atria and occipital horns of one or both lateral ventricles, level horizontal in the
  world, sometimes with a cast of the third ventricle.

Blood HU = grey matter + delta x ``difficulty["contrast"]``, delta 22-45 HU (fresh blood
55-85 HU at contrast 1). The label is the lesion at the slice centre, exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from radseg.synth.brain_phantom import HeadPhantom
from radseg.synth.brain_shapes import Context, Plane, Pose, WaveField, rotation
from radseg.synth.geometry import Ellipsoid

# site: (weight, model-frame centre for the left side, volume range mL in the canonical head)
IPH_SITES = {
    "putamen": (0.30, (24.0, -4.0, 2.0), (2.0, 45.0)),
    "thalamus": (0.14, (11.0, 12.0, 5.0), (1.5, 20.0)),
    "frontal": (0.10, (30.0, -50.0, 22.0), (2.0, 40.0)),
    "parietal": (0.10, (36.0, 22.0, 38.0), (2.0, 40.0)),
    "temporal": (0.08, (46.0, -6.0, -24.0), (2.0, 30.0)),
    "occipital": (0.08, (24.0, 56.0, 8.0), (2.0, 30.0)),
    "cerebellum": (0.13, (24.0, 46.0, -58.0), (1.5, 18.0)),
    "pons": (0.07, (0.0, 14.0, -56.0), (0.8, 4.0)),
}
EDEMA_MM = 4.0


@dataclass
class Bleed:
    """One hemorrhage and how to paint it on a plane crop (the ``Local`` protocol of the renderer)."""

    kind: str  # "iph" or "ivh"
    site: str
    side: str  # "left", "right", "both" or "midline"
    hu: float
    centre: np.ndarray
    half: np.ndarray
    nominal_ml: float = 0.0  # volume of the drawn shape before clipping and roughness (IPH)
    lobes: list[Ellipsoid] = field(default_factory=list)
    radius: float = 1.0
    rough: WaveField | None = None
    rough_mm: float = 0.0
    level_y: float = np.inf  # IVH: world y of the blood-CSF level (blood where y > level)
    cast: list[Ellipsoid] = field(default_factory=list)  # IVH: ventricles filled completely
    edema_hu: float = 0.0
    margin: float = 2.0

    def paint(self, plane: Plane, out: np.ndarray, ctx: Context) -> np.ndarray:
        if self.kind == "ivh":
            return self._paint_ivh(plane, out, ctx)
        dist = np.full(out.shape, np.inf, np.float32)
        for lobe in self.lobes:
            size = float(np.prod(lobe.radii)) ** (1 / 3)
            dist = np.minimum(dist, (np.sqrt(plane.radius2(lobe)) - 1.0) * size)
        if self.rough is not None:
            dist += self.rough_mm * plane.waves(self.rough)
        mask = (dist < 0) & ctx.inner
        rim = (dist >= 0) & (dist < EDEMA_MM) & ctx.inner & ~ctx.vent & (out > 15) & (out < 45)
        out[rim] -= self.edema_hu * (1.0 - dist[rim] / EDEMA_MM)
        out[mask] = self.hu
        return mask

    def _paint_ivh(self, plane: Plane, out: np.ndarray, ctx: Context) -> np.ndarray:
        layer = np.zeros(out.shape, bool)
        for lobe in self.lobes:
            layer |= plane.radius2(lobe) < 1.0
        layer &= (plane.ys > self.level_y)[:, None]
        for lobe in self.cast:
            layer |= plane.radius2(lobe) < 1.0
        mask = layer & ctx.vent
        out[mask] = self.hu
        return mask


def draw_bleeds(rng: np.random.Generator, phantom: HeadPhantom, pose: Pose, *, contrast: float,
                none_probability: float = 0.25) -> list[Bleed]:
    """0-3 hemorrhages (none for about a quarter of subjects): up to 3 IPH, or IVH and up to 2 IPH."""
    if rng.random() < none_probability:
        return []
    ivh = bool(rng.random() < 0.35)
    n_iph = int(rng.choice([0, 1, 1, 1, 2, 2, 3]))
    n_iph = min(n_iph, 2) if ivh else max(n_iph, 1)
    delta = lambda: float(rng.uniform(22.0, 45.0)) * contrast
    bleeds = [_iph(rng, phantom, phantom.hu["gm"] + delta()) for _ in range(n_iph)]
    if ivh:
        bleeds.append(_ivh(rng, phantom, pose, phantom.hu["gm"] + delta()))
    return bleeds


def _iph(rng: np.random.Generator, phantom: HeadPhantom, hu: float) -> Bleed:
    names = list(IPH_SITES)
    weights = np.array([IPH_SITES[n][0] for n in names])
    site = names[int(rng.choice(len(names), p=weights / weights.sum()))]
    _, centre, (low, high) = IPH_SITES[site]
    sign = 0.0 if site == "pons" else float(rng.choice([-1.0, 1.0]))
    centre = np.array([centre[0] * sign, centre[1], centre[2]]) + rng.normal(0.0, 3.0, 3)
    volume_mm3 = float(np.exp(rng.uniform(np.log(low), np.log(high)))) * 1000.0
    ratios = np.array([1.0, rng.uniform(0.65, 1.0), rng.uniform(0.55, 0.95)])
    main_axes = ratios * (3.0 * volume_mm3 / (4.0 * np.pi * ratios.prod())) ** (1 / 3)
    turn = rotation(*rng.uniform(-90.0, 90.0, 3))
    lobes = [Ellipsoid(tuple(centre), tuple(main_axes), turn)]
    for _ in range(int(rng.integers(0, 3))):
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        offset = turn @ (direction * main_axes * rng.uniform(0.55, 0.85))
        lobes.append(Ellipsoid(tuple(centre + offset), tuple(main_axes * rng.uniform(0.3, 0.55, 3)),
                               rotation(*rng.uniform(-90.0, 90.0, 3))))
    radius = float(main_axes.prod()) ** (1 / 3)
    rough = WaveField.random(rng, n=6, wavelength=(max(4.0, 0.6 * radius), max(7.0, 1.3 * radius)))
    rough_mm = float(rng.uniform(0.08, 0.18)) * radius
    lo = np.min([np.asarray(e.centre) - e.extent() for e in lobes], axis=0)
    hi = np.max([np.asarray(e.centre) + e.extent() for e in lobes], axis=0)
    half = (hi - lo) / 2 + rough_mm + EDEMA_MM
    side = "midline" if sign == 0 else "left" if sign > 0 else "right"  # model +x is the patient's left
    return Bleed("iph", site, side, hu, (lo + hi) / 2, half, volume_mm3 / 1000.0, lobes, radius, rough, rough_mm,
                 edema_hu=float(rng.uniform(5.0, 10.0)))


def _ivh(rng: np.random.Generator, phantom: HeadPhantom, pose: Pose, hu: float) -> Bleed:
    side = str(rng.choice(["left", "right", "both"], p=[0.35, 0.35, 0.3]))
    names = {"left": ["lateral_ventricle_left"], "right": ["lateral_ventricle_right"]}.get(
        side, ["lateral_ventricle_left", "lateral_ventricle_right"])
    parts = [2, 3] + ([1] if rng.random() < 0.3 else [])  # atrium, occipital horn (, body)
    lobes = [phantom.ventricles[name][i] for name in names for i in parts]
    cast = list(phantom.ventricles["third_ventricle"]) if rng.random() < 0.3 else []
    lo = np.min([np.asarray(e.centre) - e.extent() for e in lobes + cast], axis=0)
    hi = np.max([np.asarray(e.centre) + e.extent() for e in lobes + cast], axis=0)
    centre, half = (lo + hi) / 2, (hi - lo) / 2
    # The level is horizontal in the world (gravity), so it comes from the lobes' world extent.
    y_low, y_high = np.inf, -np.inf
    for lobe in lobes:
        world_centre, world_half = pose.world_box(lobe.centre, lobe.extent())
        y_low, y_high = min(y_low, world_centre[1] - world_half[1]), max(y_high, world_centre[1] + world_half[1])
    level = y_high - float(rng.uniform(0.3, 0.6)) * (y_high - y_low)
    return Bleed("ivh", "ventricles", side, hu, centre, half, lobes=lobes, level_y=float(level), cast=cast)
