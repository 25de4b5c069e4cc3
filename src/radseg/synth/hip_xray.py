"""``hip-xray``: AP pelvis radiographs projected from the 3D hip phantom, in the HexAI-KneeHipBoneSeg layout.

The phantom of :mod:`radseg.synth.hip_phantom` (HU and bone parts at any LPS point) is integrated
along parallel AP rays (the ``y`` axis) with Beer-Lambert (``mu = mu_water (1 + HU/1000)`` at the
65 keV effective energy, :func:`radseg.synth.projection.mu_from_hu`), then scatter, quantum noise,
detector blur and the film curve of :func:`radseg.synth.projection.render`. Standard display:
patient's right on the image left (columns along +x, LPS), head up (rows along -z).

Sampling (anisotropic; :func:`project`)
    Along each ray, cells of 2.5 mm on one lattice. A coarse pass (8x coarser in-plane, two
    samples per cell through the whole body) gives the soft tissue and, per coarse ray, the
    cells that hold bone. The fine pass samples every pixel's ray once per cell, offsets
    dithered over each 2 x 2 pixel block (1/8, 5/8, 3/8, 7/8 of a cell) so the step does not
    alias into contour lines, only on rays near bone and only over the cells that hold bone
    (+-6 mm); the rest of the ray comes from the coarse cells, interpolated. Labels come from
    the parts met by each pixel's own samples (a pass without this culling gives the same labels).
    Exposure: automatic (the thick soft tissue beside the bones gets 1500-3000 counts per pixel),
    then dynamic-range equalisation as DX processing does (the trunk and thighs both readable).
Labels (HexAI hip; the side is in the value)
    0 background, 1 right acetabulum, 2 left acetabulum, 3 right ilium-ischium-pubis, 4 left
    ilium-ischium-pubis, 5 right femur (head included), 6 left femur. The acetabulum is the
    phantom's: that side's pelvic bone in the axial slab the femoral head spans, so in an AP
    projection it never overlaps the rest of the same hip bone. The sacrum is not labelled.
Overlap
    The femur is drawn over the pelvis (the head lies in the socket: its whole outline stays
    visible), acetabulum over ilium-ischium-pubis. Exact, overlapping per-bone shadows are in
    ``multilabel/<case>.npz`` (channels 1..6).
Files
    As ``knee-xray`` (:func:`radseg.synth.knee_xray.write_radiograph_case`): ``images/<case>.dcm``
    (DX/CR, AP, 12/14/16 bits, MONOCHROME1 for some cases), ``masks/<case>.nii.gz``,
    ``multilabel/<case>.npz``, ``png/images``, ``png/masks`` and ``hexai_metadata.csv``.
Params
    :func:`radseg.synth.hip_phantom.hip_record` (3D geometry: head radius and centre, JSW,
    angles, pathology, HU) plus, per side, ``{side}_head_col``/``_row`` (pixels) and
    ``{side}_head_u_mm``/``_v_mm`` (mm from the centre of pixel [0, 0] along columns/rows) of the
    head centre, ``{side}_head_radius_px``: parallel projection keeps the radius, so the head's
    shadow is a circle of the 3D radius about the projected centre (less a flattened cap when
    the pathology flattens it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

import radseg.synth.hip_phantom as hp
import radseg.synth.projection as proj
from radseg.image import Image
from radseg.synth.cohort import Subject
from radseg.synth.common import SynthCase
from radseg.synth.knee_xray import (
    dicom_exact_spacing,
    display_png,
    radiograph_images,
    write_hexai_metadata,
    write_radiograph_case,
)

NAME = "hip-xray"
PREFIX = "HIPXR"
DESCRIPTION = "AP pelvis radiograph projected from the 3D hip phantom (HexAI-KneeHipBoneSeg layout)"
LABELS = {0: "background", 1: "right acetabulum", 2: "left acetabulum", 3: "right ilium-ischium-pubis",
          4: "left ilium-ischium-pubis", 5: "right femur", 6: "left femur"}
PART_TO_LABEL = {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 7: 5, 6: 6, 8: 6}  # phantom parts -> HexAI labels
PAINT_ORDER = (3, 4, 1, 2, 5, 6)  # later wins in the single label map
VALUES = {value: value for value in range(1, 7)}  # extras["masks"] is keyed by label value
DEFAULT_SHAPE = (384, 448)
RAY_STEP_MM = 2.5
MARGIN_MM = 6.0
STRIP = 64  # rows per fine-pass strip (each strip samples only its columns and cells that may hold bone)
COARSE = 8
DITHER = (((0, 0), 1 / 8), ((1, 1), 5 / 8), ((0, 1), 3 / 8), ((1, 0), 7 / 8))


def sample_case(subject: Subject, *, shape: tuple[int, int], pathology: int | None = None) -> dict[str, Any]:
    """The phantom and every imaging choice, drawn in a fixed order from ``subject.rng()``."""
    rng = subject.rng()
    params = hp.sample_hip_params(subject, rng=rng, pathology=pathology)
    draw = {
        "phantom": params,
        "spacing": float(rng.uniform(395.0, 425.0)) / shape[1],
        "centre_shift": (float(rng.normal(0.0, 8.0)), float(rng.normal(0.0, 8.0))),
        "photometric": "MONOCHROME1" if rng.random() < 0.3 else "MONOCHROME2",
        "bits_stored": int(rng.choice([12, 14, 16], p=[0.5, 0.2, 0.3])),
        "modality": "DX" if rng.random() < 0.6 else "CR",
        "magnification": round(float(rng.uniform(1.08, 1.2)), 3) if rng.random() < 0.5 else None,
        "pixel_spacing_tag": bool(rng.random() < 0.5),
        "blur_mm": float(rng.uniform(0.15, 0.3)),  # on top of the ~0.65 mm of _undither
        "counts": float(rng.uniform(1500, 3000)),  # photons per pixel behind the soft tissue (AEC)
        "equalize": float(rng.uniform(0.5, 0.7)),
        "scatter_fraction": float(rng.uniform(0.08, 0.18)),
        "density_offset": float(rng.normal(0.0, 0.06)),
    }
    draw["spacing"] = dicom_exact_spacing(draw["spacing"], draw["magnification"])
    draw["noise_rng"] = rng
    return draw


def _field(p: hp.HipParams, shape: tuple[int, int], spacing: float, shift) -> proj.Detector:
    """The detector: centred between the sockets, from above the iliac crests to the lesser trochanters."""
    centre_x = float(np.mean([s.cavity_centre[0] for s in p.sides()])) + shift[0]
    centre_z = float(np.mean([s.head_centre[2] for s in p.sides()])) - 30.0 * p.scale + shift[1]
    rows, cols = shape
    # detector frame: u = x (patient left, image right), v = -z (feet, image down)
    return proj.Detector(shape, (spacing, spacing), (centre_x - (cols - 1) / 2 * spacing,
                                                     -centre_z - (rows - 1) / 2 * spacing))


def project(p: hp.HipParams, detector: proj.Detector, *, cull: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Line integral ``sum mu L`` per pixel, the same for soft tissue only, and the bit set of parts per ray.

    All samples lie on one lattice of cells along ``y`` (``RAY_STEP_MM`` long, aligned on the
    bones' slab). A coarse pass (``COARSE`` x coarser in-plane, two samples per cell over the
    whole body) gives each cell's soft-tissue integral and, per coarse ray, which cells hold
    bone. The fine pass samples every pixel's ray once per cell (offsets dithered over 2 x 2
    pixel blocks), in strips of ``STRIP`` rows, only on rays that may meet bone and only over
    the cells where the strip's bone lies (+-``MARGIN_MM``, neighbouring blocks included); the
    rest of each ray comes from the coarse cells, interpolated. ``cull=False`` samples every
    ray over the whole slab (the brute-force reference the tests compare with).
    """
    from scipy import ndimage

    step = RAY_STEP_MM
    bone_lo, bone_hi = hp.hip_bounds(p, bones_only=True)
    body_lo, body_hi = hp.hip_bounds(p)
    a = bone_lo[1] - MARGIN_MM
    start = a - np.ceil(max(a - body_lo[1], 0.0) / step) * step
    cells = int(np.ceil((max(body_hi[1], bone_hi[1] + MARGIN_MM) - start) / step))
    rows_c = np.arange(0, detector.shape[0], COARSE) + (COARSE - 1) / 2
    cols_c = np.arange(0, detector.shape[1], COARSE) + (COARSE - 1) / 2
    ys = start + (np.arange(2 * cells) + 0.5) * step / 2
    hu, parts = hp.hip_phantom_on_grid(-detector.v(rows_c), ys, detector.u(cols_c), p)
    per_cell = proj.mu_from_hu(hu).reshape(rows_c.size, cells, 2, cols_c.size).sum(axis=2) * np.float32(step / 2)
    cumulative = np.concatenate([np.zeros((rows_c.size, 1, cols_c.size), np.float32), np.cumsum(per_cell, axis=1)], 1)
    bone_cells = (parts > 0).reshape(rows_c.size, cells, 2, cols_c.size).any(axis=2)  # [row_c, cell, col_c]
    grow = np.ones((3, 1, 3), bool)  # neighbouring coarse rays, not neighbouring cells
    near_bone = ndimage.binary_dilation(bone_cells, structure=grow) if cull else np.zeros_like(bone_cells)
    if not cull:
        first = int(np.ceil((bone_lo[1] - MARGIN_MM - start) / step))
        near_bone[:, first:int(np.ceil((bone_hi[1] + MARGIN_MM - start) / step))] = True
    upsample = _Upsampler(rows_c, cols_c, detector.shape)
    line = upsample(cumulative[:, -1])  # rays that meet no bone: the coarse integral
    outside = line.copy()
    bits = np.ones(detector.shape, np.uint16)  # bit 0: background, met by every ray
    ray_has_bone = near_bone.any(axis=1)
    region = np.repeat(np.repeat(ray_has_bone, COARSE, 0), COARSE, 1)[: detector.shape[0], : detector.shape[1]]
    margin = int(np.ceil(MARGIN_MM / step))
    xs, zs = detector.u(), -detector.v()
    per_strip = max(STRIP // COARSE, 1)
    for b0 in range(0, rows_c.size, per_strip):
        rows = np.arange(b0 * COARSE, min((b0 + per_strip) * COARSE, detector.shape[0]))
        cols = np.flatnonzero(region[rows].any(axis=0))
        occupied = np.flatnonzero(near_bone[b0:b0 + per_strip].any(axis=(0, 2)))
        if cols.size == 0 or occupied.size == 0:
            continue
        k0, k1 = max(int(occupied[0]) - margin, 0), min(int(occupied[-1]) + 1 + margin, cells)
        rest = upsample(cumulative[:, -1] - cumulative[:, k1] + cumulative[:, k0], rows=rows)
        for (i, j), offset in DITHER:
            rr, cc = rows[i::2], cols[cols % 2 == j]
            if rr.size == 0 or cc.size == 0:
                continue
            hu, parts = hp.hip_phantom_on_grid(zs[rr], start + (np.arange(k0, k1) + offset) * step, xs[cc], p)
            block = np.ix_(rr, cc)
            line[block] = proj.mu_from_hu(hu).sum(axis=1) * np.float32(step) + rest[rr - rows[0]][:, cc]
            outside[block] = rest[rr - rows[0]][:, cc]
            bits[block] = np.bitwise_or.reduce(np.left_shift(np.uint16(1), parts.astype(np.uint16)), axis=1)
    soft = np.where(bits > 1, outside, line)  # rays through bone: only their soft tissue outside the fine cells
    return line, soft, bits


def _undither(line: np.ndarray) -> np.ndarray:
    """Binomial [1 2 1]/4 smoothing along rows and columns: it weighs the four dither offsets of
    every 2 x 2 neighbourhood equally (zero response at the dither pattern's frequencies), which
    averages the sampling error of thin cortex away at the cost of ~0.7 pixel of blur."""
    from scipy import ndimage

    kernel = np.array([0.25, 0.5, 0.25], np.float32)
    line = ndimage.correlate1d(line, kernel, axis=0, mode="nearest")
    return ndimage.correlate1d(line, kernel, axis=1, mode="nearest")


class _Upsampler:
    """Linear interpolation of coarse-ray values (at fractional pixel positions) onto the pixels."""

    def __init__(self, rows_c: np.ndarray, cols_c: np.ndarray, shape):
        self.r = np.interp(np.arange(shape[0]), rows_c, np.arange(rows_c.size))
        self.c = np.interp(np.arange(shape[1]), cols_c, np.arange(cols_c.size))

    def __call__(self, coarse: np.ndarray, *, rows: np.ndarray | None = None) -> np.ndarray:
        from scipy import ndimage

        r = self.r if rows is None else self.r[rows]
        rr, cc = np.meshgrid(r, self.c, indexing="ij")
        return ndimage.map_coordinates(coarse, [rr, cc], order=1, mode="nearest").astype(np.float32)


def make_case(subject: Subject, *, shape: tuple[int, int] = DEFAULT_SHAPE, photometric: str | None = None,
              bits_stored: int | None = None, modality: str | None = None, pathology: int | None = None) -> SynthCase:
    """An AP pelvis radiograph with exact bone labels; options override the drawn values
    (``pathology`` 0/1/2: the worse hip's osteoarthritis level, see :mod:`radseg.synth.hip_phantom`)."""
    shape = (int(shape[0]), int(shape[1]))
    d = sample_case(subject, shape=shape, pathology=pathology)
    photometric = photometric or d["photometric"]
    bits = int(bits_stored or d["bits_stored"])
    modality = modality or d["modality"]
    p = d["phantom"]
    detector = _field(p, shape, d["spacing"], d["centre_shift"])
    line, soft_line, part_bits = project(p, detector)
    line = _undither(line)
    masks = {value: np.zeros(shape, bool) for value in range(1, 7)}
    for part, value in PART_TO_LABEL.items():
        masks[value] |= (part_bits & (1 << part)) > 0
    bone = (part_bits >> 1) > 0  # any part, the sacrum included
    soft = (~bone) & (soft_line > 0.8 * np.percentile(soft_line[~bone], 99)) if (~bone).any() else None
    stored, _ = proj.render(line, d["noise_rng"], spacing_mm=d["spacing"], center=0.35 + d["density_offset"],
                            width=0.32, bits=bits, invert=photometric == "MONOCHROME1",
                            reference_counts=d["counts"], noise_factor=subject.difficulty["noise"],
                            blur_mm=d["blur_mm"], scatter_fraction=d["scatter_fraction"], center_on=soft,
                            equalize=d["equalize"], equalize_mm=40.0)
    label_array = np.zeros(shape, np.uint8)
    for value in PAINT_ORDER:
        label_array[masks[value]] = value
    image, labels = radiograph_images(stored, label_array, LABELS, detector, d["spacing"],
                                      photometric=photometric, bits=bits, modality=modality)
    params = {**hp.hip_record(p), **_imaging(d, detector, photometric=photometric, bits=bits, modality=modality)}
    for side in p.sides():
        x, _, z = side.head_centre
        row, col = detector.to_pixel(x, -z)
        params.update({f"{side.side}_head_col": float(col), f"{side.side}_head_row": float(row),
                       f"{side.side}_head_u_mm": float(col) * d["spacing"], f"{side.side}_head_v_mm": float(row) * d["spacing"],
                       f"{side.side}_head_radius_px": side.head_radius / d["spacing"]})
    extras = {"line_integral": line, "masks": masks, "detector": detector, "phantom": p, "part_bits": part_bits}
    return SynthCase(subject=subject, image=image, labels=labels, params=params, extras=extras)


def _imaging(d, detector, *, photometric, bits, modality) -> dict[str, Any]:
    return {"pixel_spacing_mm": d["spacing"], "rows": detector.shape[0], "cols": detector.shape[1],
            "photometric": photometric, "bits_stored": bits, "modality": modality,
            "magnification": d["magnification"] if d["magnification"] else 1.0,
            "pixel_spacing_tag": "PixelSpacing+ImagerPixelSpacing" if d["pixel_spacing_tag"] else "ImagerPixelSpacing",
            "blur_mm": d["blur_mm"], "ray_step_mm": RAY_STEP_MM}


def preview(case: SynthCase) -> tuple[Image, Image]:
    return case.image, case.labels


def write_case(case: SynthCase, outdir: str | Path) -> dict[str, Any]:
    return write_radiograph_case(case, outdir, name=NAME, values=VALUES, view_position="AP", laterality=None,
                                 description="radseg phantom AP pelvis")


def finish(rows: list[dict[str, Any]], outdir: str | Path) -> None:
    """``hexai_metadata.csv`` with OAI-coded demographics (as ``knee-xray``)."""
    write_hexai_metadata(rows, outdir)


__all__ = [
    "DESCRIPTION",
    "LABELS",
    "NAME",
    "PREFIX",
    "display_png",
    "finish",
    "make_case",
    "preview",
    "project",
    "write_case",
]
