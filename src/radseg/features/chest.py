"""Chest radiograph measurements: cardio-thoracic ratio (two definitions) and spine-centre distance.

Structures by CXAS class name: ``"heart"``, ``"right lung"``, ``"left lung"`` (or ``"lung"``
for both), ``"right hemidiaphragm"``, and vertebrae named like ``"vertebrae T7"``.
Widths are horizontal (along image rows), edge to edge, in mm.

* **ctr** (CXAS's definition): midline = the medial end of the right hemidiaphragm (CXAS: its
  right-most column); MRD / MLD = the largest distance from the midline to the heart's right /
  left border over all rows; ID = the widest row of the lungs (both lungs together, any row;
  CXAS's docstring says "at the level of the right hemidiaphragm" but its code takes any row).
  ctr = (MRD + MLD) / ID. CXAS measures pixel centre to pixel centre on a 512 grid; radseg
  measures edges in mm, so its widths are one pixel wider.
* **ctr_textbook**: the same heart width over the thoracic width at the level of the right
  hemidiaphragm dome (its highest row), the internal diameter of the classical definition:
  from the right lung's outer edge to the left lung's, each at its lowest row at or above the
  dome (a right lung labelled without its costophrenic recess ends at the dome).
* Without a right hemidiaphragm (SCR's five classes) ``ctr`` uses the middle of the mediastinum
  between the lungs' medial edges as midline (MRD + MLD, the heart's horizontal extent, does
  not depend on it) and ``ctr_textbook`` takes the dome row as the highest point of the right
  lung's lower border over the middle half of its width (the note says it was estimated).
* **area** of the heart and of each lung: projected area in mm² (px² when the pixel size is unknown).
* **scd** (spine-centre distance): the mean perpendicular distance (mm) of the vertebra
  centroids from the straight line ``col = a * row + b`` fitted through them (CXAS fits the
  same line and measures to its rasterised points). Needs three vertebrae.

Which image side is the patient's right is taken from where the right and left lungs lie (else
PatientOrientation, else the standard PA display); flipped images are measured the same way.
"""

from __future__ import annotations

import re

import numpy as np

from radseg.features.base import Measurement, line, missing, point
from radseg.features.structures import Structures, as_2d, right_direction
from radseg.image import Image

__all__ = ["VERTEBRA", "compute"]

VERTEBRA = re.compile(r"(?:vertebrae?\s+([ctls])(\d{1,2}))|(?:([ctls])(\d{1,2})\s+vertebrae?)")
_CTR = ("ctr", "ctr_textbook", "mrd", "mld", "heart_width", "thoracic_width", "thoracic_width_dome")


def _row_extents(mask: np.ndarray, spacing) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows that hold the mask, and each row's first and last pixel edge (col mm)."""
    rows = np.flatnonzero(mask.any(axis=1))
    first = np.argmax(mask[rows], axis=1)
    last = mask.shape[1] - 1 - np.argmax(mask[rows, ::-1], axis=1)
    return rows, (first - 0.5) * spacing[1], (last + 0.5) * spacing[1]


def _width_at(row: int, sides: list[np.ndarray], spacing) -> tuple[float, float, float] | None:
    """Thoracic width at ``row``: from the outer edge of the first lung mask to that of the last,
    each taken at its lowest row at or above ``row`` (the right lung may end at its dome while
    the left one goes on). ``sides`` is [right, left] or [both lungs]."""
    edges = []
    for mask in sides:
        rows = np.flatnonzero(mask[: row + 1].any(axis=1))
        if not len(rows):
            return None
        cols = np.flatnonzero(mask[rows[-1]])
        edges.append(((cols[0] - 0.5) * spacing[1], (cols[-1] + 0.5) * spacing[1]))
    lo, hi = edges[0][0], edges[-1][1]
    return hi - lo, lo, hi


def _midline(hemidiaphragm, sides: list[np.ndarray], heart, spacing) -> tuple[float, str]:
    """Midline column (mm) and how it was found: CXAS's medial end of the right hemidiaphragm,
    else (SCR-style masks without a diaphragm) the middle of the mediastinum between the lungs'
    medial edges, else the middle of the heart."""
    if hemidiaphragm is not None:
        return (np.flatnonzero(hemidiaphragm.any(axis=0))[-1] + 0.5) * spacing[1], "medial end of the right hemidiaphragm"
    if len(sides) == 2:
        right_medial = np.flatnonzero(sides[0].any(axis=0))[-1] + 0.5
        left_medial = np.flatnonzero(sides[1].any(axis=0))[0] - 0.5
        return 0.5 * (right_medial + left_medial) * spacing[1], "middle between the lungs' medial edges (no hemidiaphragm)"
    cols = np.flatnonzero(heart.any(axis=0))
    return 0.5 * (cols[0] + cols[-1]) * spacing[1], "middle of the heart (no hemidiaphragm, lungs not separated)"


def _dome_row(hemidiaphragm, sides: list[np.ndarray]) -> tuple[int | None, str]:
    """Row of the right hemidiaphragm's dome: its top row, else (SCR classes) the highest point of the
    right lung's lower border over the middle half of the lung's width, where the dome sits (the
    costophrenic recess laterally and the cardiophrenic angle medially run lower)."""
    if hemidiaphragm is not None:
        return int(np.flatnonzero(hemidiaphragm.any(axis=1))[0]), "its top row"
    if len(sides) != 2:
        return None, ""
    right = sides[0]
    cols = np.flatnonzero(right.any(axis=0))
    width = cols[-1] - cols[0] + 1
    middle = np.arange(cols[0] + width // 4, cols[-1] - width // 4 + 1)
    bottoms = [np.flatnonzero(right[:, c])[-1] for c in middle if right[:, c].any()]
    return (int(min(bottoms)), "estimated: highest point of the right lung's lower border") if bottoms else (None, "")


def cardiothoracic(heart, lungs, hemidiaphragm, spacing, *, sides: list[np.ndarray],
                   flip_width: float | None) -> list[Measurement]:
    """CTR rows; masks must already show the patient's right at low columns (``flip_width`` maps back).
    ``sides`` is [right lung, left lung] when both are labelled, else [lungs]. Without a right
    hemidiaphragm (SCR's classes) the CXAS ratio is still defined, since MRD + MLD is the heart's
    horizontal extent for any midline inside it; the dome-level ratio is not."""
    sr = float(spacing[0])

    def col(c):  # back to the image's own columns
        return c if flip_width is None else flip_width - c

    midline, how = _midline(hemidiaphragm, sides, heart, spacing)
    rows, left_edge, right_edge = _row_extents(heart, spacing)
    to_right, to_left = midline - left_edge, right_edge - midline
    i, j = int(np.argmax(to_right)), int(np.argmax(to_left))
    mrd, mld = max(float(to_right[i]), 0.0), max(float(to_left[j]), 0.0)
    lung_rows, lung_lo, lung_hi = _row_extents(lungs, spacing)
    widths = lung_hi - lung_lo
    k = int(np.argmax(widths))
    inner = float(widths[k])
    dome_row, dome_how = _dome_row(hemidiaphragm, sides)
    dome = _width_at(dome_row, sides, spacing) if dome_row is not None else None
    heart_width = mrd + mld
    y_mrd, y_mld, y_id = rows[i] * sr, rows[j] * sr, lung_rows[k] * sr
    colour_heart, colour_thorax = (244, 162, 97), (42, 157, 143)
    marks_ctr = [line((y_mrd, col(midline - mrd)), (y_mrd, col(midline)), colour=colour_heart),
                 line((y_mld, col(midline)), (y_mld, col(midline + mld)), colour=colour_heart),
                 line((min(y_mrd, y_mld), col(midline)), (max(y_mrd, y_mld), col(midline)), colour=colour_heart),
                 line((y_id, col(lung_lo[k])), (y_id, col(lung_hi[k])), text=f"CTR {heart_width / inner:.3f}",
                      colour=colour_thorax)]
    out = [Measurement("chest", "ctr", heart_width / inner, "ratio",
                       f"CXAS: (MRD + MLD) / widest lung row; midline = {how}", marks=marks_ctr)]
    if dome is not None:
        dome_width, lo, hi = dome
        y = dome_row * sr
        out.append(Measurement("chest", "ctr_textbook", heart_width / dome_width, "ratio",
                               f"(MRD + MLD) / thoracic width at the level of the right hemidiaphragm dome ({dome_how})",
                               marks=[line((y, col(lo)), (y, col(hi)),
                                           text=f"CTR textbook {heart_width / dome_width:.3f}", colour=(200, 120, 255))]))
    else:
        dome_width = None
        why = "no lung at or above the right hemidiaphragm dome" if dome_row is not None else \
            "needs the right hemidiaphragm or a separate right lung (its dome row)"
        out.append(Measurement("chest", "ctr_textbook", None, "ratio", why))
    out += [Measurement("chest", "mrd", mrd, "mm", "midline to the heart's right border"),
            Measurement("chest", "mld", mld, "mm", "midline to the heart's left border"),
            Measurement("chest", "heart_width", heart_width, "mm", "MRD + MLD"),
            Measurement("chest", "thoracic_width", inner, "mm", "widest lung row (CXAS's ID)"),
            Measurement("chest", "thoracic_width_dome", dome_width, "mm",
                        "lung width at the right hemidiaphragm dome" if dome_width else "no dome row measured")]
    return out


def areas(found: Structures, spacing) -> list[Measurement]:
    """Projected areas of the heart and each lung (mm², or px² when the pixel size is unknown)."""
    pixel = float(np.prod(spacing))
    out = []
    for name, aliases in (("heart", ["heart"]), ("right lung", ["right lung", "lung right"]),
                          ("left lung", ["left lung", "lung left"])):
        mask = found.find(aliases)
        out.append(Measurement(name, "area", float(mask.sum()) * pixel if mask is not None else None, "mm2",
                               "" if mask is not None else f"no {name} labelled"))
    return out


def spine_centre_distance(found: Structures, spacing) -> Measurement:
    centres = []
    for _, name, mask in found.matching(VERTEBRA):
        centres.append(np.argwhere(mask).mean(axis=0) * np.asarray(spacing, float))
    if len(centres) < 3:
        return Measurement("spine", "scd", None, "mm", f"needs 3 labelled vertebrae, found {len(centres)}")
    centres = np.asarray(centres)
    a, b = np.polyfit(centres[:, 0], centres[:, 1], 1)  # col = a * row + b, as CXAS regresses x on y
    distance = np.abs(centres[:, 1] - a * centres[:, 0] - b) / np.hypot(1.0, a)
    ends = np.array([centres[:, 0].min(), centres[:, 0].max()])
    foot = centres - np.outer((centres[:, 1] - a * centres[:, 0] - b) / (1 + a * a), [-a, 1.0])
    marks = [line((ends[0], a * ends[0] + b), (ends[1], a * ends[1] + b), colour=(42, 157, 143),
                  text=f"SCD {distance.mean():.2f} mm")]
    marks += [point(c, colour=(231, 111, 81)) for c in centres]
    marks += [line(c, f, colour=(231, 111, 81)) for c, f in zip(centres, foot)]
    return Measurement("spine", "scd", float(distance.mean()), "mm",
                       f"mean distance of {len(centres)} vertebra centroids to their fitted line", marks=marks)


def compute(labels: Image, *, image: Image | None = None) -> list[Measurement]:
    """CTR (CXAS and textbook), its parts, and the spine-centre distance."""
    labels = as_2d(labels)
    found = Structures(labels)
    heart = found.find(["heart"])
    right, left = found.find(["right lung", "lung right"]), found.find(["left lung", "lung left"])
    lungs = found.find(["lung", "lungs"])
    if lungs is None and (right is not None or left is not None):
        lungs = (right if right is not None else False) | (left if left is not None else False)
    hemidiaphragm = found.find(["right hemidiaphragm", "hemidiaphragm right", "diaphragm right"])
    absent = [n for n, m in (("heart", heart), ("lungs", lungs)) if m is None]
    if absent:
        out = missing("chest", _CTR, "mm", f"needs heart and lungs; missing: {', '.join(absent)}")
        for m in out[:2]:
            m.unit = "ratio"
    else:
        direction, how = right_direction(labels, right, left)
        spacing = labels.spacing
        sides = [right, left] if right is not None and left is not None else [lungs]
        if direction > 0:  # patient right on the image right: mirror so one code path serves both
            heart, lungs = heart[:, ::-1], lungs[:, ::-1]
            hemidiaphragm = hemidiaphragm[:, ::-1] if hemidiaphragm is not None else None
            sides = [m[:, ::-1] for m in sides]
        out = cardiothoracic(heart, lungs, hemidiaphragm, spacing, sides=sides,
                             flip_width=labels.shape[1] * spacing[1] - spacing[1] if direction > 0 else None)
        for m in out[:1]:
            m.note += f"; {how}"
    out.append(spine_centre_distance(found, labels.spacing))
    out += areas(found, labels.spacing)
    return found.tag(out)
