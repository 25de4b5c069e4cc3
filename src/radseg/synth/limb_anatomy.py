"""Long bones and limbs for the fracture phantom, in closed form on the detector plane (mm).

A :class:`Bone` is a solid of revolution about an in-plane axis: radius ``R(s)`` along the axis
(knots, rounded end caps), a cortical shell ``t(s)`` thick (thick in the shaft, thin at the
ends) around a medullary canal (marrow) or cancellous bone (the ends). A ray at distance ``d``
from the axis crosses ``2 k sqrt(R^2 - d^2)`` mm of bone (``k`` = depth / width of the cross
section). A :class:`Fracture` cuts a bone along a jagged line across it, opens a gap and may move
the distal fragment (shift across and along, angulation); its labelled region is a polygon
around the line, as FracAtlas annotators draw one.

Regions (FracAtlas columns): ``leg`` (tibia, fibula, with the knee or ankle), ``hand`` (distal
forearm, carpus, metacarpals), ``hip`` (proximal femur, acetabulum), ``shoulder`` (proximal
humerus, glenoid, acromion, clavicle).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

import radseg.synth.shapes2d as sh

SPACING_MM = {"leg": 0.6, "hand": 0.3, "hip": 0.6, "shoulder": 0.5}


@dataclass
class Fracture:
    s: float  # position along the bone axis (mm)
    angle: float  # obliquity of the line (radians from square across)
    jitter: np.ndarray  # jaggedness of the line, mm along the axis at evenly spaced points across
    gap: float  # mm
    shift: tuple[float, float] = (0.0, 0.0)  # distal fragment moved (across, along) mm
    tilt: float = 0.0  # distal fragment angulation (radians)
    margin: float = 3.0  # the labelled region reaches past the cortex by this much (mm)
    half_width: float = 3.0  # and this far either side of the line (mm)


@dataclass
class Bone:
    name: str
    p0: tuple[float, float]  # (u, v) of s = 0
    angle: float  # axis direction (sin a, cos a): 0 points down the image
    length: float
    radius: tuple  # knots ((s, R), ...)
    cortex: tuple  # knots ((s, t), ...)
    spongy: tuple = ((0.0, 1.0),)  # knots ((s, cancellous fraction of the inner part), ...)
    caps: tuple[float, float] = (0.0, 0.0)  # rounded-end lengths at s = 0 and s = length (0: open)
    depth: float = 1.0
    fracturable: tuple[float, float] | None = None  # s range where a fracture may be placed
    fracture: Fracture | None = field(default=None)
    material: str = "bone"  # soft-tissue parts: "soft" or "lung" (air-filled)
    hollow: bool = False  # a shell only (the acetabular socket: the femoral head fills it)

    def mirrored(self) -> None:
        self.p0 = (-self.p0[0], self.p0[1])
        self.angle = -self.angle

    @property
    def axis(self) -> tuple[np.ndarray, np.ndarray]:
        a = np.array([np.sin(self.angle), np.cos(self.angle)])
        return a, np.array([a[1], -a[0]])  # along, across

    def point(self, s, d) -> np.ndarray:
        a, n = self.axis
        return np.asarray(self.p0) + np.multiply.outer(s, a) + np.multiply.outer(d, n)

    def local(self, u, v):
        a, n = self.axis
        du, dv = u - self.p0[0], v - self.p0[1]
        return du * a[0] + dv * a[1], du * n[0] + dv * n[1]

    def profile(self, s):
        """(R, t, cancellous fraction) at axis positions ``s`` (R = 0 off the bone)."""
        ks, kr = np.array(self.radius, float).T
        r = np.interp(s, ks, kr)
        for cap, dist in zip(self.caps, (s, self.length - s)):
            if cap > 0:
                q = 1.0 - np.clip(dist / cap, 0.0, 1.0)
                r = r * np.sqrt(np.clip(1.0 - q * q, 0.0, None))
        r = np.where((s >= 0) & (s <= self.length), r, 0.0)
        ts, tt = np.array(self.cortex, float).T
        fs, ff = np.array(self.spongy, float).T
        return r, np.minimum(np.interp(s, ts, tt), 0.8 * r), np.interp(s, fs, ff)

    def bbox(self, pad: float = 0.0) -> tuple[float, float, float, float]:
        reach = max(r for _, r in self.radius) + pad
        ends = self.point(np.array([0.0, self.length]), np.zeros(2))
        return ends[:, 0].min() - reach, ends[:, 0].max() + reach, ends[:, 1].min() - reach, ends[:, 1].max() + reach

    def _solid(self, s, d):
        r, t, f = self.profile(s)
        outer = 2 * self.depth * np.sqrt(np.clip(r * r - d * d, 0.0, None))
        ri = np.maximum(r - t, 0.0)
        inner = 2 * self.depth * np.sqrt(np.clip(ri * ri - d * d, 0.0, None))
        if self.hollow:
            return outer - inner, 0.0 * inner, 0.0 * inner
        return outer - inner, f * inner, (1 - f) * inner

    def line(self, d):
        """Axis position of the fracture line at distance ``d`` across the bone."""
        fr = self.fracture
        r = self.profile(np.array(fr.s))[0]
        ds = np.linspace(-r - fr.margin, r + fr.margin, len(fr.jitter))
        return np.interp(d, ds, fr.s + np.tan(fr.angle) * ds + fr.jitter)

    def distal_frame(self, u, v):
        """Where a point of the moved distal fragment was before the move."""
        fr = self.fracture
        a, n = self.axis
        centre = self.point(np.array(fr.s), np.array(0.0))
        mu = u - centre[0] - fr.shift[0] * n[0] - fr.shift[1] * a[0]
        mv = v - centre[1] - fr.shift[0] * n[1] - fr.shift[1] * a[1]
        c, s = np.cos(fr.tilt), np.sin(fr.tilt)
        return centre[0] + c * mu + s * mv, centre[1] - s * mu + c * mv

    def paths(self, u, v):
        """(cortical, cancellous, marrow) path lengths (mm) on the grid ``u``, ``v``."""
        s, d = self.local(u, v)
        if self.fracture is None:
            return self._solid(s, d)
        half = self.fracture.gap / 2
        keep = s < self.line(d) - half
        su, sv = self.distal_frame(u, v)
        s2, d2 = self.local(su, sv)
        keep2 = s2 > self.line(d2) + half
        proximal, distal = self._solid(s, d), self._solid(s2, d2)
        return tuple(np.where(keep, p, 0.0) + np.where(keep2, q, 0.0) for p, q in zip(proximal, distal))

    def polygon(self, points_per_edge: int = 7) -> np.ndarray:
        """The labelled fracture region: a band around the line, widened by the displacement."""
        fr = self.fracture
        r = float(self.profile(np.array(fr.s))[0])
        lo = -r - fr.margin + min(fr.shift[0], 0.0)
        hi = r + fr.margin + max(fr.shift[0], 0.0)
        ds = np.linspace(lo, hi, points_per_edge)
        extra = abs(fr.shift[1]) + abs(np.sin(fr.tilt)) * r
        top = self.point(self.line(ds) - fr.half_width, ds)
        bottom = self.point(self.line(ds[::-1]) + fr.half_width + extra, ds[::-1])
        return np.concatenate([top, bottom])


@dataclass
class Arc:
    """A rib: a band of half height ``h`` along the ellipse ``(cu + side a sin phi, cv - b cos phi)``."""

    name: str
    cu: float
    cv: float
    a: float
    b: float
    phi: tuple[float, float]
    h: float
    side: float = -1.0  # the arc bulges towards -u (lateral on a right shoulder)
    fracturable: None = None
    fracture: None = None

    def mirrored(self) -> None:
        self.cu, self.side = -self.cu, -self.side

    def bbox(self, pad: float = 0.0) -> tuple[float, float, float, float]:
        r = max(self.a, self.b) + self.h + pad
        return self.cu - r, self.cu + r, self.cv - r, self.cv + r

    def paths(self, u, v):
        distance, phi = sh.arc_distance((u - self.cu) * self.side, v, 0.0, self.cv, self.a, self.b)
        band = (np.abs(distance) <= self.h) & (phi >= self.phi[0]) & (phi <= self.phi[1])
        cortical, inner = sh.shell(np.where(band, distance, self.h), self.h, 1.0, 3.6)
        return cortical, inner, np.zeros_like(inner)


def _flip(parts: list, mirror: bool) -> list:
    if mirror:  # the other side of the body: mirror across the image's vertical midline
        for part in parts:
            part.mirrored()
    return parts


def build(region: str, rng: np.random.Generator) -> tuple[list[Bone], list[Bone], dict]:
    """(bones, soft-tissue solids as Bone profiles, region facts) for one radiograph."""
    n = lambda mean, sd: float(mean + sd * rng.standard_normal())
    mirror = bool(rng.random() < 0.5)
    facts = {"laterality": "L" if mirror else "R"}
    if region == "leg":
        end = str(rng.choice(["knee", "shaft", "ankle"]))
        tilt = np.deg2rad(n(0, 3))
        length = n(360.0, 15.0)
        offset = {"knee": 110.0, "shaft": length / 2, "ankle": length - 100.0}[end]
        top = (n(-12.0, 4.0), -offset)
        tibia = Bone("tibia", top, tilt, length, ((0, 36), (25, 38), (100, 14), (200, 12), (length - 70, 13), (length - 12, 24)),
                     ((0, 1.0), (70, 1.5), (130, 5.0), (length - 110, 4.5), (length - 40, 1.2)),
                     ((0, 1.0), (90, 1.0), (130, 0.0), (length - 90, 0.0), (length - 40, 1.0)), (18.0, 10.0),
                     fracturable=(35.0, length - 20.0))
        at = lambda s, d: tuple(tibia.point(np.array(s), np.array(d)))  # (along, across: +d is +u)
        fib_top = at(12.0, -30.0)  # lateral: the patient's right is image left
        fibula = Bone("fibula", fib_top, tilt, length - 5, ((0, 12), (30, 9.5), (80, 8), (length - 80, 8), (length - 20, 12)),
                      ((0, 1.0), (50, 2.8), (length - 60, 2.8), (length - 25, 1.0)),
                      ((0, 1.0), (45, 0.0), (length - 60, 0.0), (length - 25, 1.0)), (12.0, 14.0),
                      fracturable=(40.0, length - 30.0))
        femur = Bone("femur", at(-300.0, 2.0), tilt, 295.0, ((0, 14), (200, 15), (260, 34), (290, 40)),
                     ((0, 5.0), (200, 4.5), (250, 1.2)), ((0, 0.0), (200, 0.0), (250, 1.0)), (0.0, 22.0),
                     fracturable=(200.0, 270.0))
        patella = Bone("patella", at(-55.0, -4.0), tilt, 42.0, ((0, 20), (42, 20)), ((0, 1.5),), caps=(21.0, 21.0),
                       depth=0.55)
        talus = Bone("talus", at(length + 20.0, 25.0), tilt - np.pi / 2, 50.0, ((0, 19), (50, 19)), ((0, 1.2),),
                     caps=(25.0, 25.0))  # its dome sits in the ankle mortise
        bones = [tibia, fibula] + {"knee": [femur, patella], "ankle": [talus], "shaft": []}[end]
        soft = [Bone("leg", at(-320.0, -10.0), tilt, 790.0,
                     ((0, 78), (250, 66), (330, 62), (440, 62), (580, 50), (700, 40), (790, 44)), ((0, 5.0),),
                     caps=(0.0, 40.0), depth=0.85)]
        facts["view_part"] = end
    elif region == "hand":
        axis = np.pi + np.deg2rad(n(0, 6))  # fingers up
        wrist = (n(0.0, 4.0), n(12.0, 6.0))
        radius = Bone("radius", (wrist[0] - 10.0, wrist[1] - 3.0), axis + np.pi, 240.0, ((0, 15), (25, 12), (60, 7.5), (240, 7)),
                      ((0, 0.8), (35, 1.0), (70, 2.4)), ((0, 1.0), (45, 1.0), (75, 0.0)), (6.0, 0.0),
                      fracturable=(12.0, 120.0))
        ulna = Bone("ulna", (wrist[0] + 14.0, wrist[1] + 1.0), axis + np.pi, 240.0, ((0, 7.5), (20, 7), (60, 6), (240, 6.5)),
                    ((0, 0.8), (30, 1.0), (60, 2.0)), ((0, 1.0), (35, 1.0), (60, 0.0)), (6.0, 0.0),
                    fracturable=(10.0, 120.0))
        bones = [radius, ulna]
        for k, (du, dv, r) in enumerate(((-11, -13, 7.5), (1, -14, 6.5), (12, -13, 6), (19, -17, 4), (-15, -28, 6.5),
                                          (-5, -30, 6), (5, -29, 7), (15, -27, 6.5))):
            long, turn = r * rng.uniform(1.0, 1.45), rng.uniform(0, np.pi)  # carpals: irregular, tightly packed
            centre = np.array([wrist[0] + du, wrist[1] + dv]) + rng.normal(0, 0.8, 2)
            start = centre - long * np.array([np.sin(turn), np.cos(turn)])
            bones.append(Bone(f"carpal {k + 1}", tuple(start), turn, 2 * long, ((0, r), (2 * long, r)), ((0, 0.9),),
                              caps=(long, long), depth=0.85))
        for k, du in enumerate((-18.0, -7.0, 3.0, 12.0, 21.0)):
            base = (wrist[0] + du, wrist[1] - 40.0 + (12.0 if k == 0 else 0.0))
            spread = axis - np.deg2rad((k - 2) * 5.0 - (24.0 if k == 0 else 0.0))  # fanning out
            size = 0.8 if k == 0 else 1.0
            bones.append(Bone(f"metacarpal {k + 1}", base, spread, 62.0 * size, ((0, 6.5), (10, 4.8), (50, 4.2), (62 * size, 6.0)),
                              ((0, 0.8), (12, 1.8), (45, 1.8), (56, 0.8)), ((0, 1.0), (12, 0.0), (48, 0.0), (56, 1.0)),
                              (5.0, 6.0), fracturable=(10.0, 56.0 * size)))
        soft = [Bone("forearm", (wrist[0] - 200.0 * np.sin(axis), wrist[1] - 200.0 * np.cos(axis)), axis, 330.0,
                     ((0, 36), (200, 30), (235, 36), (280, 44), (330, 44)), ((0, 4.0),), depth=0.6)]
    elif region == "hip":  # a right hip: medial (pelvis, femoral head) is +u
        shaft_angle = np.deg2rad(n(6.0, 3.0))  # the shaft runs down and slightly medially
        head = (n(25.0, 8.0), n(-60.0, 8.0))
        neck_angle = np.deg2rad(n(130.0, 5.0))
        direction = shaft_angle - (np.pi - neck_angle)  # head -> shaft: down and lateral
        along = np.array([np.sin(direction), np.cos(direction)])
        joint = np.asarray(head) + 62.0 * along
        neck = Bone("femoral neck", tuple(np.asarray(head) - 24.0 * along), direction, 90.0,
                    ((0, 24), (22, 24), (44, 16.5), (70, 19), (90, 26)), ((0, 1.2), (40, 2.2), (90, 1.5)),
                    caps=(24.0, 0.0), fracturable=(38.0, 62.0))
        shaft = Bone("femur", (joint[0] - 6.0, joint[1] - 30.0), shaft_angle, 420.0,
                     ((0, 26), (40, 27), (95, 16), (420, 15)), ((0, 1.2), (60, 2.0), (115, 6.0)),
                     ((0, 1.0), (80, 1.0), (125, 0.0)), (22.0, 0.0), fracturable=(30.0, 230.0))
        trochanter = Bone("greater trochanter", (joint[0] - 20.0, joint[1] - 40.0), shaft_angle, 60.0,
                          ((0, 15), (60, 15)), ((0, 1.2),), caps=(15.0, 22.0))
        ilium = Bone("ilium", (head[0] + 4.0, head[1] - 12.0), np.deg2rad(192.0), 190.0,
                     ((0, 30), (40, 45), (120, 80), (190, 95)), ((0, 2.5),), caps=(25.0, 45.0), depth=0.3)
        cup = Bone("acetabulum", tuple(np.asarray(head)), np.deg2rad(145.0), 29.0, ((0, 29), (29, 29)), ((0, 3.0),),
                   caps=(0.0, 29.0), hollow=True)  # a hemispherical socket over the head: its rim shows
        ischium = Bone("ischium", (head[0] + 10.0, head[1] + 22.0), np.deg2rad(18.0), 90.0, ((0, 14), (60, 11), (90, 15)),
                       ((0, 2.0),), caps=(12.0, 15.0), depth=0.8)
        pubis = Bone("pubis", (head[0] + 24.0, head[1] + 4.0), np.deg2rad(78.0), 110.0, ((0, 12), (110, 9)),
                     ((0, 1.6),), caps=(10.0, 10.0), depth=0.8)
        bones = [shaft, neck, trochanter, ilium, cup, ischium, pubis]
        pelvis_axis = (head[0] + 95.0, head[1] - 400.0)  # the body's midline, medial of the head
        soft = [Bone("pelvis", pelvis_axis, 0.0, 520.0, ((0, 215), (520, 205)), ((0, 12.0),), caps=(0.0, 110.0), depth=0.55),
                Bone("thigh", (joint[0] + 30.0 - 200.0 * np.sin(shaft_angle), joint[1] - 200.0 * np.cos(shaft_angle)),
                     shaft_angle, 700.0, ((0, 125), (200, 118), (400, 95), (700, 80)), ((0, 8.0),), depth=0.8)]
        facts["neck_shaft_angle_deg"] = float(np.rad2deg(neck_angle))
    else:  # a right shoulder: medial (glenoid, scapula, clavicle) is +u
        head = (n(-25.0, 8.0), n(-35.0, 8.0))
        shaft_angle = np.deg2rad(n(-10.0, 4.0))  # the arm hangs slightly abducted
        humerus = Bone("humerus", (head[0] + 4.0, head[1] - 24.0), shaft_angle, 320.0,
                       ((0, 24), (24, 25), (50, 16), (90, 12), (320, 11)), ((0, 1.0), (50, 1.5), (100, 3.5)),
                       ((0, 1.0), (60, 1.0), (100, 0.0)), (24.0, 0.0), fracturable=(45.0, 220.0))
        glenoid = Bone("glenoid", (head[0] + 30.0, head[1] - 24.0), np.deg2rad(-8.0), 46.0, ((0, 9), (23, 12), (46, 9)),
                       ((0, 2.0),), caps=(10.0, 10.0), depth=1.3)
        scapula = Bone("scapula", (head[0] + 36.0, head[1] - 30.0), np.deg2rad(30.0), 170.0, ((0, 35), (70, 48), (170, 12)),
                       ((0, 1.5),), caps=(12.0, 25.0), depth=0.15)
        acromion = Bone("acromion", (head[0] - 18.0, head[1] - 40.0), np.deg2rad(95.0), 70.0, ((0, 9), (70, 11)),
                        ((0, 1.5),), caps=(8.0, 10.0), depth=0.9)
        clavicle = Bone("clavicle", (head[0] + 48.0, head[1] - 50.0), np.deg2rad(84.0), 160.0, ((0, 9), (70, 7), (160, 8)),
                        ((0, 1.2), (40, 2.6), (130, 2.6)), ((0, 1.0), (30, 0.0), (130, 0.0), (160, 1.0)), (8.0, 0.0),
                        fracturable=(20.0, 130.0))
        ribs = [Arc(f"rib {k}", head[0] + 175.0, head[1] - 40.0 + 24.0 * k, 150.0 + 4.0 * k, 45.0 + 5.0 * k,
                    (np.deg2rad(-30.0), np.deg2rad(200.0)), 4.5 + 0.3 * k) for k in range(1, 6)]
        bones = [humerus, glenoid, scapula, acromion, clavicle, *ribs]
        soft = [Bone("chest", (head[0] + 250.0, head[1] - 80.0), 0.0, 600.0, ((0, 220), (600, 220)), ((0, 10.0),),
                     caps=(90.0, 0.0), depth=0.45),
                Bone("arm", (head[0] + 6.0 - 60.0 * np.sin(shaft_angle), head[1] - 60.0 * np.cos(shaft_angle)), shaft_angle, 420.0,
                     ((0, 60), (420, 50)), ((0, 5.0),), caps=(50.0, 0.0), depth=0.9),
                Bone("lung", (head[0] + 190.0, head[1] - 45.0), 0.0, 400.0, ((0, 160), (400, 170)), ((0, 0.0),),
                     caps=(70.0, 0.0), depth=0.4, material="lung")]
    return _flip(bones, mirror), _flip(soft, mirror), facts


def sample_fracture(bone: Bone, rng: np.random.Generator, s: float) -> Fracture:
    """A fracture at ``s``: most undisplaced hairlines, some displaced or angulated."""
    r = float(bone.profile(np.array(s))[0])
    displaced = rng.random() < 0.4
    jitter = rng.normal(0.0, 0.35 + 0.05 * r, 9)
    jitter[[0, -1]] = 0.0
    return Fracture(
        s=s, angle=np.deg2rad(rng.uniform(-40, 40)), jitter=jitter, gap=rng.uniform(0.6, 1.8),
        shift=(rng.uniform(-0.4, 0.4) * r, rng.uniform(-1.5, 2.0)) if displaced else (0.0, 0.0),
        tilt=np.deg2rad(rng.uniform(-3, 3)) if displaced else 0.0,
        margin=rng.uniform(2.0, 5.0), half_width=rng.uniform(2.5, 5.0) + 0.15 * r)
