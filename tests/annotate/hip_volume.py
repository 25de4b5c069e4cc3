"""A small hand-built hip CT (sphere in a socket) with exact labels, for the annotate tests.

Working layout (S, P, L): axis 0 inferior->superior, 1 anterior->posterior, 2 patient
right->left. Per side: a femoral head (ball of radius R), a neck, a greater trochanter and
a shaft; a hemispherical acetabular cup (joint space ``gap`` mm) on a pelvic plate. Bone
is a 2 mm cortex (1100 HU) over cancellous bone (280 HU) in muscle (40 HU) inside fat
(-90 HU); the image is made at twice the resolution and averaged (partial volume), then
noise is added. Labels: 1 right acetabulum, 2 left acetabulum, 3 right femoral head,
4 left femoral head, 5 other bone; "acetabulum" is the pelvic bone within R + gap + 12 mm
of the head centre.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from radseg.image import Image
from radseg.labels import make_label_map

LABELS = {1: "right acetabulum", 2: "left acetabulum", 3: "right femoral head", 4: "left femoral head", 5: "other bone"}


def _segment_distance(points, start, end):
    """Distance of points [..., 3] to the segment start-end."""
    axis = end - start
    t = np.clip(((points - start) @ axis) / (axis @ axis), 0.0, 1.0)
    return np.linalg.norm(points - (start + t[..., None] * axis), axis=-1)


def _bones(points, centre, radius, gap, side):
    """(femur, pelvis) boolean fields for one side; ``side`` +1 for the left hip (towards +x), -1 right."""
    lateral = np.array([side, 0.0, 0.0])[::-1]  # points are (z, y, x)
    down = np.array([-1.0, 0.0, 0.0])
    up = -down
    d = np.linalg.norm(points - centre, axis=-1)
    head = d <= radius
    neck_end = centre + 1.9 * radius * (0.75 * lateral + 0.66 * down) / np.linalg.norm(0.75 * lateral + 0.66 * down)
    neck = _segment_distance(points, centre, neck_end) <= 0.62 * radius
    troch_top = neck_end + 0.55 * radius * up + 0.45 * radius * lateral
    troch = _segment_distance(points, neck_end, troch_top) <= 0.55 * radius
    shaft = _segment_distance(points, neck_end, neck_end + 200.0 * down) <= 0.6 * radius
    femur = head | neck | troch | shaft
    cup_axis = 0.8 * up - 0.6 * lateral
    cos_angle = ((points - centre) @ cup_axis) / np.maximum(d, 1e-6)
    cup = (d >= radius + gap) & (d <= radius + gap + 9.0) & (cos_angle >= np.cos(np.radians(80)))
    plate_start = centre + (radius + gap + 4.0) * cup_axis
    plate = _segment_distance(points, plate_start, plate_start + 60.0 * (0.85 * up - 0.5 * lateral)) <= 7.0
    pelvis = (cup | plate) & ~(d < radius + gap)
    return femur & ~(pelvis & ~head), pelvis


def make_hip_volume(*, seed: int = 0, shape=(64, 140, 260), spacing=(1.5, 0.9, 0.9), radius=(21.0, 23.0),
                    gap: float = 2.5, noise: float = 20.0, supersample: int = 2):
    """(ct Image, labels Image, params) of a two-hip phantom; radius is (right, left) in mm."""
    rng = np.random.default_rng(seed)
    spacing = np.asarray(spacing, float)
    extent = np.asarray(shape) * spacing
    centres = []
    for side, r in ((-1, radius[0]), (1, radius[1])):
        x = extent[2] / 2 + side * (extent[2] * 0.2) + rng.uniform(-2, 2)
        centres.append(np.array([extent[0] * 0.62 + rng.uniform(-2, 2), extent[1] * 0.5 + rng.uniform(-2, 2), x]))

    def fields(step, offset):
        grids = [np.arange(n * supersample_) * s / supersample_ + o for n, s, o, supersample_ in zip(shape, spacing, offset, step)]
        pts = np.stack(np.meshgrid(*grids, indexing="ij"), axis=-1)
        femur_all, pelvis_all, heads = np.zeros(pts.shape[:3], bool), np.zeros(pts.shape[:3], bool), []
        for side, c, r in zip((-1, 1), centres, radius):
            femur, pelvis = _bones(pts, c, r, gap, side)
            femur_all |= femur
            pelvis_all |= pelvis
            heads.append(np.linalg.norm(pts - c, axis=-1))
        return pts, femur_all, pelvis_all, heads

    # labels on the voxel grid
    _, femur, pelvis, dists = fields((1, 1, 1), (0, 0, 0))
    labels = np.zeros(shape, np.uint8)
    labels[femur | pelvis] = 5
    for value_ace, value_head, d, r in ((1, 3, dists[0], radius[0]), (2, 4, dists[1], radius[1])):
        labels[pelvis & (d <= r + gap + 12.0)] = value_ace
        labels[femur & (d <= r)] = value_head

    # image at supersampled in-plane resolution, averaged down
    f = supersample
    offset = (0.0, -spacing[1] / 2 + spacing[1] / (2 * f), -spacing[2] / 2 + spacing[2] / (2 * f))
    pts, femur_f, pelvis_f, _ = fields((1, f, f), offset)
    bone = femur_f | pelvis_f
    depth = ndimage.distance_transform_edt(bone, sampling=(spacing[0], spacing[1] / f, spacing[2] / f))
    zc, yc, xc = extent / 2
    body = ((pts[..., 1] - yc) / (extent[1] * 0.48)) ** 2 + ((pts[..., 2] - xc) / (extent[2] * 0.49)) ** 2 <= 1
    muscle = ((pts[..., 1] - yc) / (extent[1] * 0.42)) ** 2 + ((pts[..., 2] - xc) / (extent[2] * 0.44)) ** 2 <= 1
    hu = np.full(bone.shape, -1000.0, np.float32)
    hu[body] = -90.0
    hu[muscle] = 40.0
    hu[bone] = 280.0
    hu[bone & (depth <= 2.0)] = 1100.0
    hu = hu.reshape(shape[0], shape[1], f, shape[2], f).mean(axis=(2, 4))
    hu = ndimage.gaussian_filter(hu, 0.5) + rng.normal(0.0, noise, shape)
    ct = Image(hu.astype(np.int16), spacing=spacing)
    params = {"right_centre_mm": centres[0], "left_centre_mm": centres[1], "right_radius_mm": radius[0],
              "left_radius_mm": radius[1], "gap_mm": gap}
    return ct, make_label_map(labels, LABELS, like=ct), params
