"""A hip replacement on CT: how much metal a side holds, and the sphere of its acetabular cup.

A total hip replacement leaves no femoral head to find, but the acetabulum is still there,
around the cup, and annotators label it (the hip-ct phantom does too). The cup and the
prosthetic ball share one centre, the centre of the reamed socket. :func:`cup_sphere` finds it
as the deepest point of the side's metal (the distance-transform maximum, to a fraction of a
voxel: the ball is the thickest metal of the implant; a stem is narrower than a 22-36 mm
ball), then the cup's
outer radius as the 90th percentile of the distances to the metal above that centre (the
superior hemisphere holds only the cup: the neck and stem leave downwards), which the scan's
blur widens by a fraction of a millimetre.

The native femoral head that the acetabulum label is sized by (its axial slab spans the head,
see :mod:`radseg.annotate.hip_split`) is the other side's femoral head where that was found
(:mod:`radseg.annotate.hip_joint`), else the cup's outer radius minus :data:`CUP_TO_HEAD_MM`: the
cup fills the reamed socket, about 1 mm beyond the native socket, which lies about 4 mm (cartilage
and joint space) beyond the head.

Next to metal the scan reads dark (beam hardening, photon starvation): the bone the cup sits in
loses a band of a few millimetres around the cup, which the bone mask then misses, and the
acetabulum ends short of the cup that an annotator labels it up to. :func:`bone_to_the_cup` gives
the acetabulum back what a closing by a :data:`CUP_CLOSE_MM` ball encloses between it and the
cup's metal, within the cup's shell (its outer radius less 2 mm to :data:`CUP_SHELL_MM` beyond).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from radseg.labels import METAL_HU

__all__ = ["CUP_TO_HEAD_MM", "MIN_IMPLANT_ML", "MIN_BALL_RADIUS_MM", "metal_ml", "cup_sphere", "bone_to_the_cup"]

#: Metal on one side beyond this is a hip replacement: that side has no femoral head to find
#: (a screw or a clip is well under a millilitre).
MIN_IMPLANT_ML = 5.0
#: Cup outer radius minus the native head's radius (reaming ~1 mm, cartilage and joint space ~4 mm).
CUP_TO_HEAD_MM = 5.0
#: Prosthetic balls measure 22-36 mm across; a thinner deepest metal is a stem, a nail or a plate.
MIN_BALL_RADIUS_MM = 9.0
CUP_REACH_MM = 45.0  # metal farther than this from the ball's centre is no cup
#: The dark band next to a cup: the acetabulum is closed onto the cup by a ball of this radius ...
CUP_CLOSE_MM = 3.0
#: ... within this far beyond the cup's outer radius (chosen on 6 development implant phantoms among
#: 3 / 6 and 4 / 8 mm; on the demo's implant side the acetabulum Dice went from 0.886 to 0.938).
CUP_SHELL_MM = 6.0


def _half(ct: np.ndarray, centre_col: float, side: str) -> tuple[np.ndarray, int]:
    """The side's half of the volume (patient right: the lower columns) and its first column."""
    cut = int(round(centre_col))
    return (ct[:, :, :cut], 0) if side == "right" else (ct[:, :, cut:], cut)


def metal_ml(ct: np.ndarray, spacing: np.ndarray, centre_col: float, side: str) -> float:
    """Millilitres of metal on one side of the midline (a hip stem and cup hold 20 ml or more)."""
    half, _ = _half(ct, centre_col, side)
    return float((half >= METAL_HU).sum()) * float(np.prod(spacing)) / 1000.0


def cup_sphere(ct: np.ndarray, spacing: np.ndarray, centre_col: float, side: str) -> tuple[np.ndarray, float] | None:
    """``(centre index (slice, row, col), cup outer radius mm)`` of the side's implant, or None.

    The working grid is canonical: slice index grows towards the head (superior). None when the
    deepest metal is too thin for a prosthetic ball or no metal lies above it (no cup: a
    hemi-arthroplasty or a nail).
    """
    half, first = _half(ct, centre_col, side)
    metal = half >= METAL_HU
    if not metal.any():
        return None
    depth = ndimage.distance_transform_edt(metal, sampling=spacing)
    if depth.max() < MIN_BALL_RADIUS_MM:
        return None
    # the ball's core (within a voxel of the deepest depth) is a small ball about the centre:
    # its mean locates the centre to a fraction of a voxel (the argmax alone is off by up to half one)
    centre = np.argwhere(depth >= depth.max() - float(np.max(spacing))).mean(axis=0)
    points = (np.argwhere(metal) - centre) * spacing
    distance = np.linalg.norm(points, axis=1)
    above = (points[:, 0] > 0) & (distance <= CUP_REACH_MM) & (distance > depth.max() + 1.0)
    if np.count_nonzero(above) < 20:
        return None
    centre[2] += first
    return centre, float(np.percentile(distance[above], 90))


def bone_to_the_cup(acetabulum: np.ndarray, metal: np.ndarray, centre: np.ndarray, outer_mm: float,
                    spacing: np.ndarray) -> np.ndarray:
    """Voxels between the acetabulum and its cup (not metal, not in ``acetabulum``) that belong to it:
    what closing the acetabulum together with the cup's metal by a :data:`CUP_CLOSE_MM` ball adds
    within the cup's shell (``outer_mm`` - 2 mm to ``outer_mm`` + :data:`CUP_SHELL_MM` from ``centre``)."""
    from radseg.annotate import morphology
    from radseg.geometry import ball_box, box_distances

    box = ball_box(acetabulum.shape, centre, outer_mm + CUP_SHELL_MM + CUP_CLOSE_MM + 1.0, spacing)
    distance = box_distances(box, centre, spacing)
    shell = (distance >= outer_mm - 2.0) & (distance <= outer_mm + CUP_SHELL_MM)
    cup = metal[box] & shell
    closed = morphology.close_ball(acetabulum[box] | cup, spacing, CUP_CLOSE_MM)
    out = np.zeros(acetabulum.shape, bool)
    out[box] = closed & shell & ~metal[box] & ~acetabulum[box]
    return out
