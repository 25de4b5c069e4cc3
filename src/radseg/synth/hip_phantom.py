"""A 3D pelvis with both proximal femora, exact by construction: the anatomy of ``hip-ct`` and ``hip-xray``.

Stable API (other kinds build on it). All coordinates are LPS world millimetres: +x patient
**left**, +y posterior, +z superior; so the right hip has the smaller x.

``sample_hip_params(subject, *, rng=None, pathology=None) -> HipParams``
    One subject's anatomy, pathology and noise-free HU values from ``rng`` (default
    ``subject.rng()``), of which it takes a fixed number of draws. The subject's difficulty is
    applied here: anatomy linear size times ``difficulty["size"]``, every bone HU over muscle
    times ``difficulty["contrast"]`` (noise belongs to the imaging kind). ``pathology`` (0, 1, 2)
    overrides the drawn level without changing the anatomy.
``hip_phantom_at(x, y, z, params) -> (hu float32, parts uint8)``
    The phantom at arbitrary world points: ``x, y, z`` are arrays of any broadcastable shapes and
    spacings (a ray bundle, an anisotropic or irregular point set); results have the broadcast
    shape. About 0.3 s per million points.
``hip_phantom_on_grid(zs, ys, xs, params) -> (hu, parts)`` of shape ``(len(zs), len(ys), len(xs))``
    The same on the tensor grid of three increasing 1D world-coordinate vectors (any spacing,
    uniform or not): much faster per point (shapes are evaluated on their bounding boxes; the
    slowly varying body outline on 4 mm cells every 2 mm in z, interpolated: < 0.1 mm off).
    Bone HU and all parts equal :func:`hip_phantom_at` exactly.
``soft_tissue_on_grid`` / ``paint_bones_on_grid``
    The two halves of :func:`hip_phantom_on_grid`, for callers that sample bones finer than soft
    tissue (``hip-ct`` paints bones on sub-slices for partial volume).
``build_hip_parts(params, *, shape, spacing, origin) -> (hu, parts)``
    The same on the grid of an :class:`~radseg.image.Image` with the default layout
    ``[slice (z up), row (y), col (x)]``; ``origin`` is the world position of voxel (0, 0, 0).
``hip_bounds(params, *, bones_only=False) -> (lo, hi)``: world box of the bones (and body).
``hip_record(params) -> dict``: flat scalars for ``case.params`` (``<side>_head_radius_mm``,
    ``<side>_head_centre_{x,y,z}_mm``, ``<side>_jsw_min_mm``, ``<side>_neck_shaft_angle_deg``,
    ``<side>_lcea_deg``, ``<side>_pathology`` ...). ``head_part_moments(params, side)``: exact
    volume (mm^3) and centroid (LPS mm) of the femoral-head part.

``hu`` is noise-free and unblurred (air -1000 HU); for X-ray attenuation use
``mu = mu_water * (1 + hu / 1000)``. ``parts`` values (:data:`PARTS`):

=====  =======================  ============================================================
1 / 2  right / left_acetabulum  pelvic bone of that side in the axial slab the femoral head
                                spans (``|z - head_z| <= head radius``), as the THA dataset
                                defines it (the roof above the head's top is ``pelvis``; a
                                radiograph kind wanting the socket alone can intersect with a
                                ball around ``HipSide.cavity_centre``)
3 / 4  right / left_pelvis      the rest of that side's ilium, ischium and pubis
5 / 6  right / left_femoral_head  femur inside the head sphere, head side of the head-neck plane
7 / 8  right / left_femur       the rest of the femur (neck, trochanters, shaft, neck osteophytes)
9      sacrum                   sacrum and coccyx
=====  =======================  ============================================================

Geometry: bones are smooth unions of signed-distance primitives (balls, ellipsoids, round cones,
a curved iliac plate); cortex is the outer 1.2-5.5 mm of each bone's distance field, mottled
cancellous bone inside, fatty marrow in the femoral shaft. The acetabular cavity is a sphere of
radius ``head radius + joint space`` carved out of the pelvis, so the head never touches the
socket and the narrowest joint space is exactly ``jsw_min_mm``. Pathology per side (0 none,
1 mild, 2 severe; one side carries the case's level, the other a milder one): joint-space
narrowing with superolateral head migration, a flattened weight-bearing head, osteophytes at
the head-neck junction and the acetabular rim, subchondral sclerosis and cysts. Soft tissue:
skin outline (trunk, buttocks, thighs), subcutaneous fat, a gluteal fascial fat plane, muscle,
pelvic fat, bladder, rectum with gas.

Modules: :mod:`~radseg.synth.hip_shapes` (signed-distance primitives and evaluation domains),
:mod:`~radseg.synth.hip_anatomy` (parameters and the bones as primitives),
:mod:`~radseg.synth.hip_render` (evaluation); this module is the stable API and the recorded geometry.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from radseg.synth.hip_anatomy import PART_VALUES, PARTS, SIDES, HipParams, HipSide, sample_hip_params
from radseg.synth.hip_render import (
    build_hip_parts,
    hip_bounds,
    hip_phantom_at,
    hip_phantom_on_grid,
    paint_bones_on_grid,
    soft_tissue_on_grid,
)

__all__ = [
    "PARTS",
    "PART_VALUES",
    "SIDES",
    "HipParams",
    "HipSide",
    "build_hip_parts",
    "head_part_moments",
    "hip_bounds",
    "hip_phantom_at",
    "hip_phantom_on_grid",
    "hip_record",
    "paint_bones_on_grid",
    "sample_hip_params",
    "soft_tissue_on_grid",
]


# --- recorded geometry ------------------------------------------------------------------------------

def _cap(R, h):
    """Volume of a spherical cap of height h and the distance of its centroid from the sphere centre."""
    if h <= 0:
        return 0.0, 0.0
    return np.pi * h * h * (3 * R - h) / 3, 3 * (2 * R - h) ** 2 / (4 * (3 * R - h))


def head_part_moments(params: HipParams, side: str) -> tuple[float, np.ndarray]:
    """Exact volume (mm^3) and centroid (LPS mm) of the femoral-head part: the head sphere minus the
    cap beyond the head-neck plane and the flattened weight-bearing cap (they never overlap)."""
    hs = params.side(side)
    R, C = hs.head_radius, np.array(hs.head_centre)
    v1, z1 = _cap(R, R - hs.neck_cut)
    v2, z2 = _cap(R, R * hs.flattening)
    volume = 4 / 3 * np.pi * R ** 3 - v1 - v2
    moment = -v1 * z1 * -np.array(hs.neck_axis) - v2 * z2 * np.array(hs.up)
    return float(volume), C + moment / volume


def hip_record(params: HipParams) -> dict[str, Any]:
    """Flat generating parameters and recorded geometry (mm, degrees, HU) for ``case.params``."""
    row: dict[str, Any] = {"pathology_level": max(s.level for s in params.sides()),
                           "anatomy_scale": round(params.scale, 4),
                           "bone_contrast": params.contrast}
    for hs in params.sides():
        s = hs.side
        row.update({
            f"{s}_pathology": hs.level, f"{s}_head_radius_mm": hs.head_radius,
            **{f"{s}_head_centre_{a}_mm": v for a, v in zip("xyz", hs.head_centre)},
            f"{s}_head_volume_mm3": head_part_moments(params, s)[0], f"{s}_head_neck_cut_mm": hs.neck_cut,
            f"{s}_socket_radius_mm": hs.cavity_radius,
            f"{s}_jsw_min_mm": hs.jsw_min, f"{s}_head_migration_mm": hs.migration,
            f"{s}_head_flattening": hs.flattening, f"{s}_neck_shaft_angle_deg": hs.neck_shaft_angle,
            f"{s}_femoral_anteversion_deg": hs.femoral_anteversion, f"{s}_acetabular_inclination_deg": hs.inclination,
            f"{s}_acetabular_anteversion_deg": hs.acetabular_anteversion, f"{s}_lcea_deg": hs.lcea,
            f"{s}_osteophytes": len(hs.osteophytes_femur) + len(hs.osteophytes_rim),
            f"{s}_osteophyte_max_mm": max([o[3] for o in hs.osteophytes_femur + hs.osteophytes_rim], default=0.0),
            f"{s}_cysts": len(hs.cysts),
        })
    row.update({f"hu_{k}": params.hu[k] for k in ("cortical", "cancellous", "muscle", "fat")})
    row.update({f"hu_{k}": params.hu[k] for k in ("marrow",)})
    row.update({f"cortex_{k}_mm" if k != "variation" else "cortex_variation": round(v, 3)
                for k, v in params.cortex.items()})
    row["subcutaneous_fat_mm"] = round(params.body["fat"], 2)
    row.update({f"pelvis_origin_{a}_mm": v for a, v in zip("xyz", params.translation)})  # mid-point of the sockets
    return row
