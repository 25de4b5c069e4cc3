"""Knee joint-space width (JSW) from a PA knee radiograph label map, per knee and compartment.

Structures: ``"right femur"``, ``"right tibia"``, ``"right fibula"`` (and left) by name, else
HexAI's values (1 right patella, 2 right femur, 3 right tibia, 4 right fibula, 5-8 left).

* **Tibial plateau**: the columns the tibia spans within 20 mm of its top; its edges are the
  medial (x = 0) and lateral (x = 1) ends of the Duryea-style coordinate x along the plateau.
* **Medial / lateral**: lateral is the side of the fibula when the fibula is labelled (anatomy
  decides, whatever way the image is displayed). Without it, medial is towards the body
  midline: for the right knee that is towards the patient's left, i.e. towards higher columns
  on a standard AP/PA display (patient right at image left), for the left knee towards lower
  columns; the display is checked from where the right and left bones lie, or the DICOM
  PatientOrientation (:func:`~radseg.features.structures.right_direction`).
* **min_jsw_medial / min_jsw_lateral**: the smallest distance (mm) between the femoral and the
  tibial outline with both points in the compartment (x in [0, 0.36] or [0.64, 1]: the central
  band holds the tibial spines, which face the notch rather than a condyle); outlines run
  along the pixel edges, so this is the edge-to-edge gap; the distance profile is averaged
  over 5 pixels of outline against digitisation (:func:`~radseg.features.geometry.min_gap`).
* **fjsw_<compartment>_x<x>**: fixed-location JSW, the vertical femur-to-tibia gap at plateau
  position x (defaults 0.25 and 0.75), measured along the image column (an upright knee).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from radseg.features.base import Measurement, line, missing, point
from radseg.features.geometry import column_crossings, contours
from radseg.features.structures import (
    SIDES,
    Structures,
    as_2d,
    largest_component,
    right_direction,
)
from radseg.image import Image

__all__ = ["KNEE_VALUES", "PLATEAU_DEPTH_MM", "compute"]

KNEE_VALUES = {"right": {"patella": 1, "femur": 2, "tibia": 3, "fibula": 4},
               "left": {"patella": 5, "femur": 6, "tibia": 7, "fibula": 8}}
PLATEAU_DEPTH_MM = 20.0
GAP_WINDOW_PX = 5
SAMPLES_PER_PIXEL = 4
#: x ranges of the compartments: the central 28% (about 11 mm either side of the centre of an
#: 80 mm plateau) holds the tibial spines, which face the notch rather than a condyle
COMPARTMENTS = ((0.0, 0.36), (0.64, 1.0))
_MIN = ("min_jsw_medial", "min_jsw_lateral")
_MEDIAL_COLOUR, _LATERAL_COLOUR = (255, 80, 80), (80, 160, 255)


def _fixed_name(x: float) -> str:
    return f"fjsw_{'medial' if x < 0.5 else 'lateral'}_x{x:g}"


def _plateau(tibia: np.ndarray, spacing) -> tuple[float, float, float]:
    """(top row, lowest column edge, highest column edge) of the tibial plateau, in mm."""
    rows = np.flatnonzero(tibia.any(axis=1))
    depth = max(1, round(PLATEAU_DEPTH_MM / float(spacing[0])))
    cols = np.flatnonzero(tibia[rows[0]:rows[0] + depth].any(axis=0))
    return (rows[0] - 0.5) * spacing[0], (cols[0] - 0.5) * spacing[1], (cols[-1] + 0.5) * spacing[1]


def _gap_profile(femur_outlines, tibia_outlines, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column (mm): the femur's lowest edge and the vertical gap down to the tibia's edge below it."""
    bottoms = np.full(len(cols), np.nan)
    gaps = np.full(len(cols), np.nan)
    for i, col in enumerate(cols):
        femur_rows, tibia_rows = column_crossings(femur_outlines, col), column_crossings(tibia_outlines, col)
        if len(femur_rows) == 0 or len(tibia_rows) == 0:
            continue
        bottoms[i] = femur_rows.max()
        below = tibia_rows[tibia_rows >= bottoms[i] - 1e-9]
        gaps[i] = (below.min() if len(below) else tibia_rows.min()) - bottoms[i]
    return bottoms, gaps


def _moving_average(values: np.ndarray, size: int) -> np.ndarray:
    """Centred moving average that skips NaN (columns where the bones do not face each other)."""
    if size <= 1:
        return values
    finite = np.isfinite(values)
    kernel = np.ones(size)
    total = np.convolve(np.where(finite, values, 0.0), kernel, mode="same")
    count = np.convolve(finite.astype(float), kernel, mode="same")
    with np.errstate(invalid="ignore", divide="ignore"):
        out = total / count
    out[~finite] = np.nan
    return out


def _medial_sign(side: str, fibula, tibia, right_dir: int, how: str) -> tuple[int, str]:
    if fibula is not None:
        lateral = np.sign(np.argwhere(fibula)[:, 1].mean() - np.argwhere(tibia)[:, 1].mean())
        if lateral != 0:
            return int(-lateral), "lateral = fibula side"
    toward_midline = -right_dir if side == "right" else right_dir
    return toward_midline, f"medial = towards the midline; {how}"


def measure_knee(side: str, femur: np.ndarray, tibia: np.ndarray, fibula: np.ndarray | None, labels: Image,
                 *, right_dir: int, how: str, fixed_locations: Sequence[float]) -> list[Measurement]:
    """JSW measurements of one knee (``side`` is "right" or "left")."""
    structure = f"{side} knee"
    spacing = labels.spacing
    femur, tibia = largest_component(femur), largest_component(tibia)
    names = [*_MIN, *(_fixed_name(x) for x in fixed_locations)]
    if np.argwhere(femur)[:, 0].mean() >= np.argwhere(tibia)[:, 0].mean():
        return missing(structure, names, "mm", f"the {side} femur is not above the tibia (image upside down?)")
    _, low_edge, high_edge = _plateau(tibia, spacing)
    sign, how = _medial_sign(side, fibula, tibia, right_dir, how)
    medial_edge, lateral_edge = (high_edge, low_edge) if sign > 0 else (low_edge, high_edge)

    def x_of(col_mm):
        return (col_mm - medial_edge) / (lateral_edge - medial_edge)

    femur_outlines, tibia_outlines = contours(femur, spacing), contours(tibia, spacing)
    step = float(spacing[1]) / SAMPLES_PER_PIXEL
    cols = np.arange(min(medial_edge, lateral_edge), max(medial_edge, lateral_edge) + step / 2, step)
    femur_rows, gaps = _gap_profile(femur_outlines, tibia_outlines, cols)
    smooth = _moving_average(gaps, GAP_WINDOW_PX * SAMPLES_PER_PIXEL)
    x = x_of(cols)
    width = abs(lateral_edge - medial_edge)
    out = []
    for name, (x0, x1), colour in zip(_MIN, COMPARTMENTS, (_MEDIAL_COLOUR, _LATERAL_COLOUR)):
        inside = (x >= x0) & (x <= x1) & np.isfinite(smooth)
        if not inside.any():
            out.append(Measurement(structure, name, None, "mm", "the femur and tibia do not face each other here"))
            continue
        k = int(np.flatnonzero(inside)[np.argmin(smooth[inside])])
        gap = max(float(smooth[k]), 0.0)
        p, q = (femur_rows[k], cols[k]), (femur_rows[k] + gap, cols[k])
        text = f"{side} {name.split('_')[-1]} min JSW {gap:.1f} mm"
        out.append(Measurement(structure, name, gap, "mm",
                               f"smallest vertical femur-tibia gap, x in [{x0:g}, {x1:g}] of a {width:.1f} mm plateau; {how}",
                               marks=[line(p, q, text=text, colour=colour), point(p, colour=colour), point(q, colour=colour)]))
    for x_fixed in fixed_locations:
        k = int(np.argmin(np.abs(x - x_fixed)))
        colour = _MEDIAL_COLOUR if x_fixed < 0.5 else _LATERAL_COLOUR
        if not np.isfinite(smooth[k]):
            out.append(Measurement(structure, _fixed_name(x_fixed), None, "mm", f"no femur-tibia gap at x = {x_fixed:g}"))
            continue
        gap = max(float(smooth[k]), 0.0)
        out.append(Measurement(structure, _fixed_name(x_fixed), gap, "mm",
                               f"vertical femur-tibia gap at x = {x_fixed:g} (0 medial, 1 lateral plateau edge); {how}",
                               marks=[line((femur_rows[k], cols[k]), (femur_rows[k] + gap, cols[k]),
                                           text=f"fJSW x={x_fixed:g}", colour=colour)]))
    top_row, _, _ = _plateau(tibia, spacing)
    out[0].marks += [point((top_row, medial_edge), text=f"{side} medial", colour=_MEDIAL_COLOUR),
                     point((top_row, lateral_edge), text=f"{side} lateral", colour=_LATERAL_COLOUR)]
    return out


def compute(labels: Image, *, image: Image | None = None,
            fixed_locations: Sequence[float] = (0.25, 0.75)) -> list[Measurement]:
    """Medial and lateral minimum and fixed-location JSW (mm) of each knee in the label map."""
    labels = as_2d(labels)
    found = Structures(labels)
    bones = {side: {part: found.find([f"{side} {part}"], [value]) for part, value in KNEE_VALUES[side].items()}
             for side in SIDES}
    right_dir, how = right_direction(labels, bones["right"]["femur"], bones["left"]["femur"])
    names = [*_MIN, *(_fixed_name(x) for x in fixed_locations)]
    out: list[Measurement] = []
    for side in SIDES:
        femur, tibia = bones[side]["femur"], bones[side]["tibia"]
        if femur is None and tibia is None:
            continue  # that knee is not in the picture
        if femur is None or tibia is None:
            absent = "femur" if femur is None else "tibia"
            out += missing(f"{side} knee", names, "mm", f"no {side} {absent} in the label map")
            continue
        out += measure_knee(side, femur, tibia, bones[side]["fibula"], labels, right_dir=right_dir, how=how,
                            fixed_locations=fixed_locations)
    if not out:
        out = missing("knee", names, "mm", "no femur or tibia found (names like 'right femur', or HexAI values 1-8)")
    return found.tag(out)
