"""Bones of the PA chest phantom (standard frame, see :mod:`radseg.synth.chest_anatomy`).

Each function adds cortical and cancellous path lengths to a canvas and labels the bone's
footprint with its CXAS name, both from the same closed-form shape.
"""

from __future__ import annotations

import numpy as np

import radseg.synth.shapes2d as sh

SIDES = {"right": -1.0, "left": 1.0}  # sign of u on the patient's side


def ordinal(n: int) -> str:
    return f"{n}{'st' if n == 1 else 'nd' if n == 2 else 'rd' if n == 3 else 'th'}"


def render_spine(g: dict, c) -> None:
    """Vertebral bodies C7-L2: cortical shell and endplates, pedicle rings, spinous and transverse processes."""
    for vert in g["vertebrae"]:
        hw, hh, cu = vert["width"] / 2, vert["height"] / 2, vert["u"]
        cv = vert["top"] + hh
        found = sh.window(c.det, (cu - 1.7 * hw, cu + 1.7 * hw, cv - hh - 2, cv + hh + 2))
        if not found:
            continue
        rows, cols, u, v = found
        du, dv = u - cu, v - cv
        body = (np.abs(du) / hw) ** 6 + (np.abs(dv) / hh) ** 6 <= 1.0  # a rectangle with rounded corners
        depth = 0.75 * hw * g["depth"] ** 0.5
        outer = np.where(body, sh.tube_chord(du, hw, depth), 0.0)
        inner = np.where(body & (np.abs(dv) < hh - 1.3), sh.tube_chord(du, hw - 1.6, depth - 1.6), 0.0)
        cortical, cancellous = outer - inner, inner
        for sign in (-1.0, 1.0):  # pedicles: cortical rings seen end-on
            rho2 = sh.ellipse_rho2(u, v, cu + sign * 0.62 * hw, cv - 0.25 * hh, 0.22 * hw, 0.36 * hh)
            ring = (rho2 <= 1.0) & (sh.ellipse_rho2(u, v, cu + sign * 0.62 * hw, cv - 0.25 * hh, 0.22 * hw - 1.5,
                                                    0.36 * hh - 1.5) > 1.0)
            cortical += np.where(ring, 5.0, 0.0)
            cancellous += np.where(rho2 <= 1.0, 5.0, 0.0)
            if vert["name"].startswith("T"):  # transverse processes reach out to the ribs
                cancellous += sh.chord(sh.ellipse_rho2(u, v, cu + sign * 1.25 * hw, cv - 0.2 * hh, 0.45 * hw,
                                                       0.3 * hh), 5.0)
        spinous = sh.ellipse_rho2(u, v, cu, cv + 0.35 * hh, 0.12 * hw, 0.45 * hh)
        cortical += sh.chord(spinous, 3.0)
        cancellous += sh.chord(spinous, 8.0)
        c.add("cortical", rows, cols, cortical)
        c.add("cancellous", rows, cols, cancellous)
        c.label(f"vertebrae {vert['name']}", rows, cols, body)


def render_ribs(g: dict, c, side: str) -> None:
    """Ribs as elliptic arcs: posterior from the transverse process to the lateral wall, anterior to the cartilage."""
    sign = SIDES[side]
    for rib in g["ribs"][side]:
        arcs = [("posterior", rib["phi0"], rib["phi_post"], 1.0)]
        if rib["phi_end"] is not None:
            arcs.append(("anterior", rib["phi_post"], rib["phi_end"], 0.75))
        for kind, phi_a, phi_b, density in arcs:
            h = rib["h"] * (1.3 if kind == "anterior" else 1.0)
            xs = rib["xc"] + rib["a"] * np.sin(np.linspace(phi_a, phi_b, 24))
            vs = rib["vc"] - rib["b"] * np.cos(np.linspace(phi_a, phi_b, 24))
            x0, x1 = xs.min() - h - 1, xs.max() + h + 1
            bbox = (x0, x1) if sign > 0 else (-x1, -x0)
            found = sh.window(c.det, (*bbox, vs.min() - h - 1, vs.max() + h + 1))
            if not found:
                continue
            rows, cols, u, v = found
            distance, phi = sh.arc_distance(u * sign, v, rib["xc"], rib["vc"], rib["a"], rib["b"])
            band = (np.abs(distance) <= h) & (phi >= phi_a) & (phi <= phi_b)
            if kind == "anterior":
                band &= phi > phi_a  # the lateral-most point belongs to the posterior arc
                density = density * np.clip((phi_b - phi) / np.deg2rad(15.0), 0.25, 1.0)  # fades into cartilage
            along_beam = 1.0 + 3.0 * np.abs(np.sin(phi)) ** 8  # the lateral arc runs along the rays
            cortical, inner = sh.shell(np.where(band, distance, h), h, 1.0, 3.6 * along_beam)
            c.add("cortical", rows, cols, density * cortical)
            c.add("cancellous", rows, cols, density * inner)
            c.label(f"{kind} {ordinal(rib['k'])} rib {side}", rows, cols, band)


def render_shoulder(g: dict, c, side: str) -> None:
    """Clavicle, scapula (a triangle with a thick lateral border) and humeral head and shaft."""
    sign = SIDES[side]
    cl = g["clavicle"][side]
    found = sh.window(c.det, (*sorted((sign * (cl["x0"] - 2), sign * (cl["x1"] + 2))),
                              min(cl["v0"], cl["v1"]) - 25, max(cl["v0"], cl["v1"]) + 25))
    if found:
        rows, cols, u, v = found
        x = u * sign
        t = (x - cl["x0"]) / (cl["x1"] - cl["x0"])
        centre = cl["v0"] + (cl["v1"] - cl["v0"]) * t + cl["s"] * np.sin(2 * np.pi * t)
        slope = ((cl["v1"] - cl["v0"]) + 2 * np.pi * cl["s"] * np.cos(2 * np.pi * t)) / (cl["x1"] - cl["x0"])
        h = cl["h"] * (1.15 - 0.3 * t + 0.25 * t ** 6)
        distance = (v - centre) / np.sqrt(1.0 + slope ** 2)
        band = (t >= 0) & (t <= 1) & (np.abs(distance) <= h)
        cortical, inner = sh.shell(np.where(band, distance, h), h, 2.4, h)
        c.add("cortical", rows, cols, cortical)
        c.add("cancellous", rows, cols, inner)
        c.label(f"clavicle {side}", rows, cols, band)
    corners = np.array(g["scapula"][side])
    found = sh.window(c.det, (*sorted((sign * corners[:, 0].min(), sign * corners[:, 0].max())),
                              corners[:, 1].min(), corners[:, 1].max()))
    if found:
        rows, cols, u, v = found
        x = u * sign
        inside = np.ones(np.broadcast_shapes(x.shape, v.shape), bool)
        (xa, va), (xb, vb), (xc, vc) = corners
        turn = np.sign((xb - xa) * (vc - va) - (vb - va) * (xc - xa))  # orientation of the corners
        for (x0, v0), (x1, v1) in zip(corners, np.roll(corners, -1, axis=0)):
            inside &= turn * ((x1 - x0) * (v - v0) - (v1 - v0) * (x - x0)) >= 0
        lateral, _ = sh.segment_distance(x, v, tuple(corners[2]), tuple(corners[1]))
        c.add("cortical", rows, cols, np.where(inside, 2.5, 0.0) + sh.tube_chord(lateral, 5.0) * inside)
        c.add("cancellous", rows, cols, np.where(inside, 2.0, 0.0))
        c.label(f"scapula {side}", rows, cols, inside)
    x, vh, r = g["humerus"][side]
    found = sh.window(c.det, (*sorted((sign * (x - r), sign * (x + r + 170))), vh - r, vh + 400))
    if found:
        rows, cols, u, v = found
        xs = u * sign
        rho2 = sh.ellipse_rho2(xs, v, x, vh, r, r)
        cortical, inner = sh.shell(np.sqrt(rho2) * r, r, 1.2)
        shaft, _ = sh.segment_distance(xs, v, (x + 6.0, vh + 10.0), (x + 150.0, vh + 400.0))
        shaft_cortical, shaft_inner = sh.shell(shaft, 12.0, 3.5)
        c.add("cortical", rows, cols, np.maximum(cortical, shaft_cortical))
        c.add("cancellous", rows, cols, np.maximum(inner, 0.5 * shaft_inner))
