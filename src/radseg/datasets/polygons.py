"""Polygons <-> masks in COCO pixel coordinates.

COCO (and YOLO, makesense.ai, FracAtlas) put pixel ``(row, col)`` at the unit square
``[col, col+1) x [row, row+1)``: its centre is ``(col + 0.5, row + 0.5)``. A pixel belongs
to a polygon when its centre lies inside (the exact, convention-free rule); pycocotools'
own scan conversion approximates this and differs on some boundary pixels of small
polygons (on FracAtlas, per-image Dice 0.978-1.0 against the exact rule).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

__all__ = ["mask_to_polygons", "parse_segmentation", "polygon_mask"]


def parse_segmentation(segmentation: Any) -> Any:
    """COCO ``segmentation`` as data: polygons stored as a JSON string become lists."""
    if isinstance(segmentation, str):
        return json.loads(segmentation)
    if isinstance(segmentation, list) and segmentation and isinstance(segmentation[0], str):
        return [json.loads(part) if part.strip().startswith("[") else part for part in segmentation]
    return segmentation


def polygon_mask(polygon: Any, shape: tuple[int, int]) -> np.ndarray:
    """Pixels whose centre lies inside ``polygon`` (flat ``[x0, y0, x1, y1, ...]`` or ``[[x, y], ...]``)."""
    from skimage.draw import polygon as fill

    points = np.asarray(polygon, dtype=float).reshape(-1, 2)
    if len(points) < 3:
        raise ValueError(f"a polygon needs at least 3 points, got {len(points)}")
    if not np.all(np.isfinite(points)):
        raise ValueError("polygon has non-finite coordinates")
    mask = np.zeros(shape, bool)
    # skimage fills pixels whose integer (row, col) is inside: shift COCO coordinates by half a pixel.
    rows, cols = fill(points[:, 1] - 0.5, points[:, 0] - 0.5, shape=shape)
    mask[rows, cols] = True
    return mask


def mask_to_polygons(mask: np.ndarray, *, tolerance: float = 0.0, min_area: int = 1) -> list[list[float]]:
    """One outer polygon per 8-connected component of ``mask``, flat ``[x0, y0, ...]`` in COCO coordinates.

    The contour runs half-way between inside and outside pixel centres, so
    :func:`polygon_mask` gives the component back (holes filled: COCO and YOLO polygons have
    none). ``tolerance`` (pixels) simplifies the outline (Douglas-Peucker).
    """
    from scipy import ndimage
    from skimage.measure import approximate_polygon, find_contours

    components, _ = ndimage.label(mask, structure=np.ones((3, 3), int))
    polygons = []
    for number, box in enumerate(ndimage.find_objects(components), start=1):
        if box is None:
            continue
        piece = components[box] == number
        if int(piece.sum()) < min_area:
            continue
        filled = np.pad(ndimage.binary_fill_holes(piece), 1)
        contours = find_contours(filled.astype(np.uint8), 0.5, fully_connected="high")
        outline = max(contours, key=len)  # the outer boundary is the longest closed contour
        # A tiny tolerance only drops points on straight runs; the outline itself is unchanged.
        outline = approximate_polygon(outline, max(tolerance, 1e-3))
        if len(outline) > 1 and np.allclose(outline[0], outline[-1]):
            outline = outline[:-1]
        if len(outline) < 3:  # a single pixel or a line: draw its pixel squares' outline instead
            outline = _pixel_box(piece)
        rows = outline[:, 0] - 1 + box[0].start + 0.5
        cols = outline[:, 1] - 1 + box[1].start + 0.5
        polygons.append([round(float(v), 2) for xy in zip(cols, rows) for v in xy])
    return polygons


def _pixel_box(piece: np.ndarray) -> np.ndarray:
    rows, cols = np.nonzero(piece)
    # In padded index space (offset 1) the pixel squares' edges sit at index + 0.5.
    top, bottom, left, right = rows.min() + 0.5, rows.max() + 1.5, cols.min() + 0.5, cols.max() + 1.5
    return np.array([[top, left], [top, right], [bottom, right], [bottom, left]], float)
