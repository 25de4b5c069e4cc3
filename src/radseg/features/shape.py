"""Shape of every structure in a label map (CXAS's area, centroid, box, perimeter, compactness,
convexity), in mm and for 2D and 3D.

Definitions, and where they differ from CXAS (which works in pixels of a 512x512 grid):

* **area** (2D, mm²) / **volume** (3D, mL): pixel (voxel) count times the pixel area (volume),
  as CXAS counts pixels.
* **centroid**: mean pixel index (``centroid_row``/``centroid_col`` in pixels) and its world
  position in mm (``centroid_x_mm`` ...). CXAS truncates to whole pixels.
* **box**: first and last pixel index along each axis (inclusive) and the box size in mm
  edge to edge.
* **perimeter** (2D): length of the outer outlines of all parts (holes filled), traced along
  the pixel edges, lightly smoothed (:func:`~radseg.features.geometry.outline_length`: within
  0.5% on discs and rotated squares; rectangles lose about 3 pixels at their corners) and
  measured in mm, so it is right on anisotropic pixels. CXAS measures only the first outline OpenCV returns, through pixel
  centres as a staircase, without the closing segment (a disc comes out several % long).
* **compactness**: 4·π·area / perimeter² (1 for a disc; CXAS's formula).
* **convexity**: area enclosed by the outlines / area of their convex hull (exactly 1 for a
  rectangle, 0.99 for a digitised disc, whose staircase outline has tiny dents). CXAS divides a pixel count by the hull of the pixel-centre outline, which can exceed 1.
* 3D adds **surface_area** (marching-cubes mesh of the voxel mask, mm², as pyradiomics
  computes it: the voxel staircase makes it about 10% larger than a smooth ball's, so a
  digitised ball's **sphericity** π^(1/3)·(6V)^(2/3)/A is about 0.9), and convexity as mesh
  volume / hull volume.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError

from radseg.features.base import Mark, Measurement, point
from radseg.features.geometry import contours, outline_length, smooth_outline, surface
from radseg.image import Image
from radseg.labels import iter_classes

__all__ = ["compute", "shape_measurements"]

_AXES = ("slice", "row", "col")
_WORLD = ("x", "y", "z")


def _polygon_area(outline: np.ndarray) -> float:
    r, c = outline[:, 0], outline[:, 1]
    return 0.5 * abs(float(np.dot(r, np.roll(c, 1)) - np.dot(c, np.roll(r, 1))))


def _hull_measure(points: np.ndarray) -> float | None:
    try:
        return float(ConvexHull(points).volume)  # area in 2D, volume in 3D
    except (QhullError, ValueError):
        return None


def _common(structure: str, mask: np.ndarray, labels: Image) -> list[Measurement]:
    ndim = labels.ndim
    spacing = labels.spacing
    index = np.argwhere(mask)
    centre = index.mean(axis=0)
    world = labels.index_to_world(centre)
    axes = _AXES[3 - ndim:]
    out = []
    if ndim == 2:
        out.append(Measurement(structure, "area", mask.sum() * float(np.prod(spacing)), "mm2"))
    else:
        out.append(Measurement(structure, "volume", mask.sum() * float(np.prod(spacing)) / 1000.0, "mL"))
    out += [Measurement(structure, f"centroid_{a}", float(v), "px") for a, v in zip(axes, centre)]
    out += [Measurement(structure, f"centroid_{w}_mm", float(v), "mm") for w, v in zip(_WORLD, world)]
    low, high = index.min(axis=0), index.max(axis=0)
    for a, lo, hi, step in zip(axes, low, high, spacing):
        out.append(Measurement(structure, f"bbox_{a}_min", float(lo), "px"))
        out.append(Measurement(structure, f"bbox_{a}_max", float(hi), "px"))
        out.append(Measurement(structure, f"bbox_{a}_size_mm", float((hi - lo + 1) * step), "mm"))
    return out


def _shape_2d(structure: str, mask: np.ndarray, labels: Image) -> list[Measurement]:
    raw = contours(ndimage.binary_fill_holes(mask), labels.spacing)
    outlines = [smooth_outline(o) for o in raw]
    perimeter = sum(outline_length(o, window=1) for o in outlines)
    area = mask.sum() * float(np.prod(labels.spacing))
    enclosed = sum(_polygon_area(o) for o in raw)
    hull = _hull_measure(np.concatenate(raw)) if raw else None
    marks = [Mark("polyline", o, colour=(255, 255, 0)) for o in outlines]
    out = [Measurement(structure, "perimeter", perimeter, "mm", "outer outlines along pixel edges, smoothed over 5 vertices", marks=marks)]
    out.append(Measurement(structure, "compactness", 4 * np.pi * area / perimeter**2 if perimeter else None, "ratio"))
    out.append(Measurement(structure, "convexity", enclosed / hull if hull else None, "ratio",
                           "" if hull else "too thin for a convex hull"))
    return out


def _shape_3d(structure: str, mask: np.ndarray, labels: Image) -> list[Measurement]:
    verts, faces = surface(mask, labels.spacing)
    tri = verts[faces]
    cross = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    area = 0.5 * float(np.linalg.norm(cross, axis=1).sum())
    mesh_volume = abs(float(np.einsum("ij,ij->", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])))) / 6.0
    volume = mask.sum() * float(np.prod(labels.spacing))
    hull = _hull_measure(verts)
    out = [Measurement(structure, "surface_area", area, "mm2", "marching-cubes mesh")]
    out.append(Measurement(structure, "sphericity",
                           np.pi ** (1 / 3) * (6 * volume) ** (2 / 3) / area if area else None, "ratio"))
    out.append(Measurement(structure, "convexity", mesh_volume / hull if hull else None, "ratio",
                           "mesh volume / convex hull volume" if hull else "too thin for a convex hull"))
    return out


def shape_measurements(structure: str, mask: np.ndarray, labels: Image) -> list[Measurement]:
    """All shape measurements of one structure's mask on the grid of ``labels``."""
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return [Measurement(structure, "area" if labels.ndim == 2 else "volume", None,
                            "mm2" if labels.ndim == 2 else "mL", f"{structure} is empty")]
    out = _common(structure, mask, labels)
    out += _shape_2d(structure, mask, labels) if labels.ndim == 2 else _shape_3d(structure, mask, labels)
    centre_mm = np.argwhere(mask).mean(axis=0) * labels.spacing
    out[0].marks.append(point(centre_mm, text=structure))
    return out


def compute(labels: Image, *, image: Image | None = None) -> list[Measurement]:
    """Shape measurements for every non-empty structure of a label map or multi-label mask."""
    out: list[Measurement] = []
    for _, name, mask in iter_classes(labels, include_empty=False):
        out += shape_measurements(name, mask, labels)
    return out
