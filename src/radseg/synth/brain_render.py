"""Rendering the ``brain-ct`` head: a :class:`~radseg.synth.brain_phantom.HeadPhantom` on a CT grid.

Plane by plane, each slice averaged over sub-planes across its thickness (partial volume), the
head crop found from the phantom's outline ellipsoids; local structures and lesions are painted
on their own boxes only (:func:`paint_locals`).
"""

from __future__ import annotations

import numpy as np

from radseg.synth.brain_phantom import HeadPhantom
from radseg.synth.brain_shapes import Context, Grid, Plane, Pose, crop, grid_range, section_box, upsample2


# Off-centre samples of the slice profile (fractions of the step): with the centre, the midpoints
# of 5 equal sub-slabs; 9 where the bone runs nearly parallel to the slice (skull base, vertex),
# so that a plate cut obliquely blends into one band instead of a ring per sample.
SUBPLANES = (-0.4, -0.2, 0.2, 0.4)
FINE_SUBPLANES = tuple(k / 9 for k in (-4, -3, -2, -1, 1, 2, 3, 4))


def render(phantom: HeadPhantom, grid: Grid, pose: Pose, lesions: list) -> tuple[np.ndarray, list[np.ndarray]]:
    """HU volume (float32, before blur and noise) and one boolean mask per lesion.

    Each slice averages the anatomy at 5 (or 9) depths across its thickness (partial volume of a
    5 mm slice; the off-centre samples at half the in-plane resolution, interpolated, which
    the scanner blur hides). The masks are the lesions at the slice centre, where the label lives.
    """
    xs, ys, zs = grid.xs(), grid.ys(), grid.zs()
    volume = np.full(grid.shape, phantom.hu["air"], np.float32)
    masks = [np.zeros(grid.shape, bool) for _ in lesions]
    outline = phantom.outline()
    boxes = [pose.world_box(item.centre, item.half + item.margin) for item in [*phantom.locals, *lesions]]
    top = phantom.axes[2] - 12.0
    for k, z_centre in enumerate(zs):
        model_z = (z_centre - pose.centre[2]) / pose.scale  # head roughly upright: pitch below 15 degrees
        offsets = FINE_SUBPLANES if model_z > top or model_z < -15.0 else SUBPLANES
        weight = np.float32(1.0 / (1 + len(offsets)))
        for offset in (0.0, *offsets):
            z = float(z_centre + offset * grid.spacing[0])
            head = _head_crop(z, xs, ys, pose, outline)
            if head is None:
                continue
            rows, cols = head
            step = 1 if offset == 0.0 else 2
            plane = Plane(z, xs[cols][::step], ys[rows][::step], pose)
            out, ctx = phantom.base(plane)
            found = paint_locals(plane, out, ctx, phantom.locals, lesions, boxes)
            if step > 1:
                out = upsample2(out, (rows.stop - rows.start, cols.stop - cols.start))
            else:
                for mask, (r, c, m) in zip(masks, found):
                    if m is not None:
                        mask[k, rows, cols][r, c] = m
            volume[k, rows, cols] += (out - np.float32(phantom.hu["air"])) * weight
    return volume, masks


def paint_locals(plane: Plane, out: np.ndarray, ctx: Context, items: list, lesions: list, boxes: list) -> list:
    """Paint the local structures, then the lesions (``boxes``: their world boxes, in that order);
    returns each lesion's (rows, cols, mask)."""
    found = []
    for index, (item, box) in enumerate(zip([*items, *lesions], boxes)):
        sub = crop(plane.z, plane.xs, plane.ys, *box)
        mask = None
        if sub is not None:
            r, c = sub
            mask = item.paint(Plane(plane.z, plane.xs[c], plane.ys[r], plane.pose), out[r, c], ctx.crop(r, c))
        if index >= len(items):
            found.append((*(sub or (None, None)), mask))
    return found


def _head_crop(z: float, xs: np.ndarray, ys: np.ndarray, pose: Pose, outline: list) -> tuple[slice, slice] | None:
    """Rows and columns that the head's cut by plane ``z`` can touch."""
    lo, hi = np.full(2, np.inf), np.full(2, -np.inf)
    for ellipsoid in outline:
        section = section_box(pose, ellipsoid, z)
        if section is not None:
            lo, hi = np.minimum(lo, section[0] - section[1]), np.maximum(hi, section[0] + section[1])
    if not np.all(np.isfinite(lo)):
        return None
    cols = grid_range(lo[0], hi[0], xs[0], xs[1] - xs[0], xs.size)
    rows = grid_range(lo[1], hi[1], ys[0], ys[1] - ys[0], ys.size)
    if cols.stop - cols.start < 2 or rows.stop - rows.start < 2:
        return None
    return rows, cols
