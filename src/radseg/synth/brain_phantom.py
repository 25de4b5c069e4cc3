"""The head of the ``brain-ct`` phantom: anatomy drawn per subject and rendered in HU, plane by plane.

Model frame (see :mod:`radseg.synth.brain_shapes`): mm of a canonical head, x left, y
posterior, z superior, origin near the centre of the cranial cavity. The cranial cavity is
an egg-shaped ellipsoid cut by the skull-base floors (anterior fossa over the orbits, middle
fossa, sphenoid ridge) joined to the posterior-fossa ellipsoid, with the petrous ridges
carved out. Its approximate signed distance ``d_cav`` drives everything near the surface:

* brain (``d_cav < 0``): subarachnoid CSF, sulci (a random field crossing zero near the
  surface), cortical grey matter lining them, white matter below; basal ganglia, thalami,
  brainstem with its cisterns, cerebellum under the tentorium, lateral (curved unions of
  ellipsoids), third and fourth ventricles, interhemispheric and Sylvian fissures, falx;
  pineal and choroid-plexus calcifications (bright confounders); age widens sulci and
  ventricles and adds periventricular hypodensity;
* skull: inner and outer tables of cortical bone with diploe between, around the cavity and
  down the lateral wall; thin orbital roofs and middle-fossa floor; skull base with orbits
  (globe, lens, fat, optic nerve), ethmoid, sphenoid and maxillary sinuses, nasal cavity,
  nasopharynx, clivus, petrous bones, mastoid air cells and mandibular condyles;
* scalp (skin, fat, temporalis muscle) and air outside.

Values before blur and noise (jittered per subject): air -1000, scalp 40 with a fat layer
(-40), muscle 50, cortical bone ~1800, diploe ~650, petrous bone ~1950, CSF ~5, grey matter
~38, deep grey nuclei ~34, white matter ~28, orbital fat -85, sinus air -930, calcifications
~200-260. Anatomy sizes are those of an adult head (cranial cavity about 130-145 x 165-180 mm).
:func:`radseg.synth.brain_render.render` turns a :class:`HeadPhantom` into a volume.
"""

from __future__ import annotations

import numpy as np

from radseg.synth.brain_shapes import (
    Context,
    Local,
    Plane,
    WaveField,
    ellipsoid_distance,
    rotation,
    sigmoid,
)
from radseg.synth.geometry import Ellipsoid

POSTERIOR_FOSSA = Ellipsoid((0.0, 30.0, -58.0), (52.0, 36.0, 30.0))
FACE = Ellipsoid((0.0, -20.0, -62.0), (64.0, 72.0, 42.0))  # facial skeleton below the anterior fossa
CANAL_Z = -74.0  # foramen magnum: the cavity continues down as the spinal canal


def _tissues(rng: np.random.Generator) -> dict[str, float]:
    j = lambda sd: float(rng.normal(0.0, sd))
    return {"air": -1000.0, "fat": -40.0 + j(8), "scalp": 40.0 + j(4), "muscle": 50.0 + j(3),
            "table": 1800.0 + j(80), "diploe": 650.0 + j(60), "csf": 5.0 + j(2), "gm": 38.0 + j(1.5),
            "wm": 28.0 + j(1.5), "deep_gm": 34.0 + j(1.5), "stem": 31.0 + j(1.5), "dura": 55.0,
            "vitreous": 10.0 + j(2), "lens": 95.0 + j(8), "orbit_fat": -85.0 + j(6), "sinus": -930.0,
            "petrous": 1950.0 + j(80), "sphenoid": 700.0 + j(60), "calc": 260.0 + j(50)}


class HeadPhantom:
    """One subject's head anatomy (drawn from ``rng``) and its renderer.

    ``atrophy`` (0-1, from age) widens the subarachnoid space, sulci and ventricles.
    """

    def __init__(self, rng: np.random.Generator, *, age: float, sex: str) -> None:
        self.hu = _tissues(rng)
        self.atrophy = float(np.clip((age - 35.0) / 55.0, 0.0, 1.0) * rng.uniform(0.6, 1.3))
        width = rng.uniform(64.0, 72.0) * (1.02 if sex == "M" else 0.98)
        self.axes = (width, rng.uniform(83.0, 90.0), rng.uniform(62.0, 68.0))
        self.egg = float(rng.uniform(0.04, 0.09))  # skull narrower in front than behind
        self.skull_mm = float(rng.uniform(5.0, 7.0))
        self.table_mm = float(rng.uniform(1.4, 2.0))
        self.scalp_mm = float(rng.uniform(4.5, 6.5))
        self.temporalis_mm = float(rng.uniform(4.0, 8.0))
        self.gyri = WaveField.random(rng, n=7, wavelength=(16.0, 26.0))
        self.fine = WaveField.random(rng, n=6, wavelength=(3.5, 6.0))
        self.pineal = bool(rng.random() < 0.4 + 0.4 * self.atrophy)
        self.choroid = bool(rng.random() < 0.3 + 0.5 * self.atrophy)
        self.ventricles = _ventricles(self.atrophy)
        self.locals = self._locals()

    # --- global fields ------------------------------------------------------------------
    def outline(self) -> list[Ellipsoid]:
        """Ellipsoids that hold the whole head (for cropping planes)."""
        ax, ay, az = self.axes
        return [Ellipsoid((0.0, 0.0, 0.0), (ax * (1 + self.egg) + 30.0, ay + 30.0, az + 30.0)),
                Ellipsoid(POSTERIOR_FOSSA.centre, tuple(a + 24.0 for a in POSTERIOR_FOSSA.radii)),
                Ellipsoid(FACE.centre, tuple(a + 24.0 for a in FACE.radii))]

    def fields(self, plane: Plane) -> dict[str, np.ndarray]:
        """Signed distances (model mm) of the cranial cavity and of the skull's inner outline."""
        qx, qy, qz = plane.model()
        z_low = float(qz.min())
        ax, ay, az = self.axes
        u, v = qx / np.float32(ax), qy / np.float32(ay)
        u = u / (np.float32(1.0) + np.float32(self.egg) * v)
        d_e = ellipsoid_distance(u, v, qz / np.float32(az), self.axes)
        d_cav, d_out = d_e, d_e
        face_side = None
        floor_side = None
        if z_low < -14.0:  # the skull base floors cut the cavity
            d_floor = _floor(qx, qy) - qz
            floor_side = d_floor > d_e
            d_cav = np.maximum(d_e, d_floor)
        if z_low < -26.0:
            d_pf = ellipsoid_distance(*plane.unit(POSTERIOR_FOSSA), POSTERIOR_FOSSA.radii)
            d_cav, d_out = np.minimum(d_cav, d_pf), np.minimum(d_out, d_pf)
        if z_low < -18.0:
            d_face = ellipsoid_distance(*plane.unit(FACE), FACE.radii)
            face_side = d_face < d_out
            d_out = np.minimum(d_out, d_face)
        if z_low < CANAL_Z + 4.0:
            canal = np.sqrt(qx * qx + (qy - np.float32(20.0)) ** 2) - np.float32(14.0)
            d_cav = np.minimum(d_cav, np.maximum(canal, qz - np.float32(CANAL_Z)))
        if z_low < -46.0:
            for side in (1, -1):
                pet = _petrous(side)
                d_cav = np.maximum(d_cav, -ellipsoid_distance(*plane.unit(pet), pet.radii))
        thickness = np.float32(self.skull_mm) * (np.float32(1.0) + np.float32(0.25) * v * v)
        if floor_side is not None:  # orbital roofs and the floor of the middle fossa are thin plates
            thickness = np.where(floor_side & (qz < -12.0), np.float32(2.2), thickness)
        if face_side is not None:  # the face has bone in front (maxilla, zygoma), soft tissue behind
            thickness = np.where(face_side, thickness * sigmoid(-qy / 6.0).astype(np.float32), thickness)
        temporal = np.zeros_like(qx)
        if z_low < 30.0:
            temporal = np.float32(self.temporalis_mm) * np.exp(-(((qz + 22.0) / 22.0) ** 2)) * np.minimum(u * u, 1) ** 3
        return {"d_cav": d_cav, "d_out": d_out, "thickness": thickness, "temporal": temporal,
                "qx": qx, "qy": qy, "qz": qz}

    def base(self, plane: Plane) -> tuple[np.ndarray, Context]:
        """Scalp, skull and brain tissue of one plane crop, before the local structures."""
        f = self.fields(plane)
        d_cav, d_out, thick = f["d_cav"], f["d_out"], f["thickness"]
        hu = self.hu
        out = np.full(d_cav.shape, hu["air"], np.float32)
        beyond = d_out - thick  # mm outside the outer table
        scalp = self.scalp_mm + f["temporal"]
        out[beyond < scalp] = hu["scalp"]
        out[(beyond > 0.35 * self.scalp_mm) & (beyond < 0.6 * self.scalp_mm)] = hu["fat"]
        out[(beyond > 0) & (beyond < scalp - 1.5) & (f["temporal"] > 1.5)] = hu["muscle"]
        ring = (d_out >= 0) & (beyond < 0)
        plate = (d_cav >= 0) & (d_cav < thick)
        below = (d_out < 0) & ~plate & (d_cav >= 0)
        out[below] = hu["muscle"] - 8.0
        bone = ring | plate
        depth = np.where(d_out >= 0, d_out, d_cav)  # distance from the inner table
        cortical = (depth < self.table_mm) | (depth > thick - self.table_mm)
        fine = plane.waves(self.fine)
        out[bone] = np.where(cortical, hu["table"], hu["diploe"] + 120.0 * fine)[bone]
        inner = d_cav < 0
        self._brain(out, inner, -d_cav, f["qx"], f["qy"], f["qz"], plane, fine)
        ctx = Context(d_cav=d_cav, inner=inner, below=below | (ring & (f["qz"] < -20.0)),
                      vent=np.zeros(d_cav.shape, bool), fine=fine)
        return out, ctx

    def _brain(self, out, inner, depth, qx, qy, qz, plane: Plane, fine) -> None:
        hu, atrophy = self.hu, self.atrophy
        z_low, z_high = float(qz.min()), float(qz.max())
        g = plane.waves(self.gyri)
        csf_w = 1.0 + 2.2 * atrophy
        gm = depth < csf_w + 2.5 + 6.0 * np.exp(-((g / 0.45) ** 2))
        sulcus = (np.abs(g) < 0.14 + 0.16 * atrophy) & (depth < csf_w + 12.0)
        tissue = np.where(gm, np.float32(hu["gm"]), np.float32(hu["wm"]))
        csf = depth < csf_w
        if z_low < -26.0:  # under the tentorium: cerebellum with its folia and white core
            pf_u = plane.unit(POSTERIOR_FOSSA)
            tentorium = -32.0 - 0.25 * np.abs(qx) - 0.12 * np.maximum(qy - 10.0, 0.0)
            in_pf = (pf_u[0] ** 2 + pf_u[1] ** 2 + pf_u[2] ** 2) < 1.0
            cerebellum = in_pf & (qz < tentorium)
            tissue[cerebellum] = np.where(depth > 14.0, hu["wm"] + 2.0, hu["gm"] - 1.5 + 1.5 * fine)[cerebellum]
            sulcus = np.where(cerebellum, (np.abs(fine) < 0.12) & (depth < 10.0), sulcus)
            tissue[in_pf & (np.abs(qz - tentorium) < 0.8) & (depth > 2.0)] = hu["dura"]
        csf |= sulcus
        if z_high > -22.0:  # interhemispheric fissure and falx
            fissure = (np.abs(qx) < 0.9 + 1.6 * atrophy) & (depth < 30.0) & (qz > -22.0)
            csf |= fissure
            falx = fissure & (np.abs(qx) < 0.4)
        if z_low < -4.0 and z_high > -40.0:  # Sylvian fissures
            syl_y = -6.0 + 0.25 * (qz + 20.0)
            csf |= (np.abs(qy - syl_y) < 1.6 + 1.8 * atrophy) & (np.abs(qx) > 32.0) & (qz > -40.0) \
                & (qz < -4.0) & (depth < 28.0)
        tissue[csf] = hu["csf"]
        if z_high > -22.0:
            tissue[falx] = hu["dura"]
        out[inner] = tissue[inner]

    # --- local structures ----------------------------------------------------------------
    def _locals(self) -> list[Local]:
        hu = self.hu
        items: list[Local] = []

        def blob(name, ell: Ellipsoid, value, where="inner", margin=2.0):
            def paint(plane, out, ctx, ell=ell, value=value, where=where):
                mask = plane.radius2(ell) < 1.0
                mask &= getattr(ctx, where)
                out[mask] = value
                return mask
            items.append(Local(name, np.asarray(ell.centre, float), ell.extent(), paint, margin))

        for side in (1, -1):
            s = float(side)
            blob("caudate", Ellipsoid((s * 14.0, -20.0, 12.0), (6.0, 10.0, 9.0)), hu["deep_gm"])
            blob("putamen", Ellipsoid((s * 24.0, -4.0, 2.0), (6.0, 15.0, 10.0), rotation(s * 10.0)), hu["deep_gm"] + 1)
            blob("thalamus", Ellipsoid((s * 10.0, 12.0, 4.0), (9.0, 13.0, 9.0)), hu["deep_gm"] - 1)
        items.append(Local("brainstem", np.array([0.0, 14.0, -62.0]), np.array([20.0, 22.0, 38.0]), self._stem))
        blob("suprasellar", Ellipsoid((0.0, -12.0, -29.0), (13.0, 9.0, 5.0)), hu["csf"])
        blob("cisterna_magna", Ellipsoid((0.0, 58.0, -72.0), (12.0, 8.0, 8.0)), hu["csf"])
        for name, ells in self.ventricles.items():
            items.append(Local(name, *_union_box(ells), self._ventricle_painter(ells, name), 9.0))
        if self.pineal:
            blob("pineal", Ellipsoid((0.0, 25.0, 3.0), (2.6, 2.6, 2.6)), hu["calc"])
        if self.choroid:
            for side in (1, -1):
                blob("choroid", Ellipsoid((side * 21.0, 25.0, 11.0), (2.4, 3.0, 2.4)), hu["calc"] - 60)
        # Skull base (outside the cavity): orbits, sinuses, petrous bones, mastoids, clivus, condyles.
        for side in (1, -1):
            s = float(side)
            orbit = Ellipsoid((s * 27.0, -66.0, -40.0), (15.0, 24.0, 14.0), rotation(s * 24.0))
            items.append(Local("orbit", np.asarray(orbit.centre), orbit.extent() + 3.0, self._orbit_painter(s, orbit)))
            pet = _petrous(side)
            blob("petrous", pet, hu["petrous"], where="below", margin=3.0)
            items.append(Local("mastoid", np.array([s * 50.0, 36.0, -63.0]), np.array([10.0, 12.0, 12.0]),
                               self._cells_painter(Ellipsoid((s * 50.0, 36.0, -63.0), (10.0, 12.0, 12.0)), -450.0)))
        items.append(Local("ethmoid", np.array([0.0, -62.0, -40.0]), np.array([10.0, 20.0, 13.0]),
                           self._cells_painter(Ellipsoid((0.0, -62.0, -40.0), (10.0, 20.0, 13.0)), -700.0)))
        blob("sphenoid", Ellipsoid((0.0, -20.0, -50.0), (15.0, 18.0, 14.0)), hu["sphenoid"], where="below")
        blob("sphenoid_sinus", Ellipsoid((0.0, -22.0, -50.0), (11.0, 12.0, 9.5)), hu["sinus"], where="below")
        for side in (1, -1):
            antrum = Ellipsoid((side * 27.0, -58.0, -74.0), (13.0, 17.0, 15.0))
            blob("maxillary_wall", antrum.scaled(1.12), hu["table"] - 500.0, where="below")
            blob("maxillary_sinus", antrum, hu["sinus"], where="below")
        blob("nasal_cavity", Ellipsoid((0.0, -64.0, -68.0), (9.0, 24.0, 16.0)), hu["sinus"], where="below")
        blob("clivus", Ellipsoid((0.0, -12.0, -70.0), (9.0, 9.0, 16.0), rotation(0.0, 35.0)), hu["sphenoid"],
             where="below")
        for side in (1, -1):
            blob("condyle", Ellipsoid((side * 50.0, -14.0, -78.0), (5.0, 8.0, 9.0)), hu["table"] - 500.0, where="below")
        blob("nasopharynx", Ellipsoid((0.0, -34.0, -80.0), (11.0, 8.0, 9.0)), hu["sinus"], where="below")
        blob("nasal_septum", Ellipsoid((0.0, -64.0, -68.0), (1.0, 22.0, 15.0)), hu["table"] - 900.0, where="below")
        return items

    def _stem(self, plane: Plane, out, ctx: Context):
        qx, qy, qz = plane.model()
        half_x = 11.0 + 3.5 * sigmoid((qz + 36.0) / 3.0)  # cerebral peduncles widen the midbrain
        centre_y = 14.0 + 0.1 * (qz + 55.0)
        r2 = (qx / half_x) ** 2 + ((qy - centre_y) / 10.0) ** 2
        column = (qz < -24.0) & (qz > -100.0)
        cistern = column & (r2 < (1.0 + 3.5 / 10.0) ** 2) & (qz > -72.0) & (qy < centre_y + 3.0) & ctx.inner
        out[cistern] = self.hu["csf"]
        stem = column & (r2 < 1.0) & ctx.inner
        out[stem] = self.hu["stem"]
        fourth = plane.radius2(Ellipsoid((0.0, 28.0, -58.0), (6.0 + 2 * self.atrophy, 4.0, 9.0))) < 1.0
        out[fourth & ctx.inner] = self.hu["csf"]
        return stem

    def _ventricle_painter(self, ells: list[Ellipsoid], name: str):
        side = 1.0 if name.endswith("left") else -1.0 if name.endswith("right") else 0.0

        def paint(plane: Plane, out, ctx: Context):
            r = np.full(out.shape, np.inf, np.float32)
            for ell in ells:
                r = np.minimum(r, np.sqrt(plane.radius2(ell)))
            mask = (r < 1.0) & ctx.inner
            if side:
                qx = plane.model()[0]
                mask &= side * qx > 1.0  # septum pellucidum between the lateral ventricles
                halo = (r >= 1.0) & (r < 1.0 + 0.9 * self.atrophy) & ctx.inner & (out > 20) & (out < 45)
                out[halo] -= 4.0 * self.atrophy  # periventricular white-matter hypodensity of age
            out[mask] = self.hu["csf"]
            ctx.vent |= mask
            return mask
        return paint

    def _orbit_painter(self, side: float, fat: Ellipsoid):
        hu = self.hu
        globe = Ellipsoid((side * 31.0, -78.0, -41.0), (11.5, 11.5, 11.5))
        lens = Ellipsoid((side * 32.0, -88.0, -41.0), (4.0, 1.8, 4.0), rotation(side * 10.0))
        wall = fat.scaled(1.0)

        def paint(plane: Plane, out, ctx: Context):
            allowed = ctx.below | (out > 200)  # skull base and the vault ring; never the cavity
            allowed &= ~ctx.inner
            r_fat = np.sqrt(plane.radius2(wall))
            qy = plane.model()[1]
            shell = allowed & (r_fat >= 1.0) & (r_fat < 1.12) & (qy > fat.centre[1] - 8.0)
            out[shell] = hu["table"] - 300.0
            inside = allowed & (r_fat < 1.0)
            out[inside] = hu["orbit_fat"]
            g2 = plane.radius2(globe)
            out[allowed & (g2 < 1.0)] = hu["vitreous"]
            out[allowed & (g2 < 1.0) & (g2 > 0.86)] = hu["scalp"] + 5.0  # sclera
            out[allowed & (plane.radius2(lens) < 1.0)] = hu["lens"]
            u, v, w = plane.unit(Ellipsoid((side * 20.0, -52.0, -40.0), (2.6, 16.0, 2.6), rotation(side * 30.0)))
            out[inside & (u * u + w * w < 1.0) & (np.abs(v) < 1.0)] = hu["wm"] + 4.0  # optic nerve
            return inside
        return paint

    def _cells_painter(self, ell: Ellipsoid, air: float):
        def paint(plane: Plane, out, ctx: Context):
            mask = (plane.radius2(ell) < 1.0) & ctx.below
            septa = np.abs(ctx.fine) < 0.3
            out[mask] = np.where(septa, self.hu["table"] * 0.5, air)[mask]
            return mask
        return paint


def _floor(qx: np.ndarray, qy: np.ndarray) -> np.ndarray:
    """Height of the cranial floor: domed orbital roofs in front, the bowls of the middle fossae,
    the sphenoid ridge in the midline, dropping away behind (the posterior fossa takes over)."""
    ax = np.abs(qx)
    anterior = -23.0 + 6.0 * np.exp(-(((ax - 27.0) / 13.0) ** 2))
    middle = np.minimum(-52.0 + 12.0 * ((ax - 40.0) / 30.0) ** 2 + 6.0 * ((qy + 12.0) / 25.0) ** 2, -30.0)
    front = sigmoid((-qy - 36.0) / 3.0)
    floor = front * anterior + (1.0 - front) * middle
    ridge = sigmoid((13.0 - ax) / 2.5) * sigmoid((qy + 38.0) / 3.0) * sigmoid((-4.0 - qy) / 3.0)
    floor = np.maximum(floor, -52.0 + 22.0 * ridge)
    return (floor - 35.0 * sigmoid((qy - 2.0) / 6.0)).astype(np.float32)


def _petrous(side: int) -> Ellipsoid:
    return Ellipsoid((side * 36.0, 16.0, -58.0), (30.0, 8.0, 9.0), rotation(side * 40.0))


def _ventricles(atrophy: float) -> dict[str, list[Ellipsoid]]:
    """Lateral ventricles as curved unions of ellipsoids (frontal horn, body, atrium, occipital and
    temporal horns), the third ventricle; sizes grow with atrophy."""
    wide, long = 1.0 + 1.1 * atrophy, 1.0 + 0.15 * atrophy
    out: dict[str, list[Ellipsoid]] = {}
    for side, name in ((1.0, "lateral_ventricle_left"), (-1.0, "lateral_ventricle_right")):
        s = side
        out[name] = [
            Ellipsoid((s * 8.0, -27.0, 12.0), (4.0 * wide, 15.0 * long, 8.0 * wide), rotation(s * 12.0, 0, s * -25.0)),
            Ellipsoid((s * 10.0, -2.0, 19.0), (4.5 * wide, 22.0 * long, 5.5 * wide), rotation(s * 6.0, -8.0)),
            Ellipsoid((s * 19.0, 22.0, 12.0), (6.5 * wide, 9.0 * long, 8.0 * wide)),
            Ellipsoid((s * 17.0, 38.0, 6.0), (3.5 * wide, 11.0 * long, 4.5 * wide), rotation(s * -22.0)),
            Ellipsoid((s * 29.0, 4.0, -14.0), (3.0 * wide, 18.0 * long, 4.0 * wide), rotation(s * 8.0, 30.0)),
        ]
    out["third_ventricle"] = [Ellipsoid((0.0, 6.0, 2.0), (1.6 + 2.0 * atrophy, 13.0, 8.0))]
    return out


def _union_box(ells: list[Ellipsoid]) -> tuple[np.ndarray, np.ndarray]:
    lo = np.min([np.asarray(e.centre) - e.extent() for e in ells], axis=0)
    hi = np.max([np.asarray(e.centre) + e.extent() for e in ells], axis=0)
    return (lo + hi) / 2, (hi - lo) / 2
