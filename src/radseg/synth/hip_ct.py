"""``hip-ct``: pelvic CT with both hips, labelled bone / acetabulum / femoral head, in the THA layouts.

The anatomy is :mod:`radseg.synth.hip_phantom`; this module scans it. Axial slices, in-plane
spacing 0.5-2.0 mm (log-uniform) and slice spacing 0.6-5 mm (:data:`SLICE_SPACINGS`) drawn per
case (thin slices, then fine pixels, only while the volume stays under ``MAX_VOXELS``, so a default
case makes and writes in a few seconds). Partial volume: each slice averages ``k`` sub-slices
across its thickness (``k`` odd, sub-slices <= 1.2 mm apart; one centre sample below 2.4 mm), a thin
cortex is averaged over the pixel width in-plane (so cortex 0.2-0.6 mm thick over the iliac wing,
sacral ala and acetabular floor is only partial-volume grey), then a Gaussian blur (in-plane sigma
0.75 px, the reconstruction kernel); noise is white noise scaled so that after the blur its
standard deviation is the case's ``noise_sd_hu`` (10-22 HU times the subject's noise difficulty).
HU are rounded to integers and clipped to [-1024, 3071]. Bone HU are calibrated against real
pelvic CT (``benchmarks/ct_hu_quantiles.py``).

Scanner effects (:mod:`radseg.synth.hip_artefacts`, every draw recorded in the metadata row):

* **beam hardening** (``beam_hardening=True``): dark streaks between dense bone (the femoral heads,
  the acetabula) and slight cupping, from a polychromatic error on coarse forward projections,
  reconstructed by filtered back-projection (``bh_*`` columns);
* **hip replacement** (probability ``implant_rate``, default 0.1; :mod:`radseg.synth.hip_implant`):
  one side gets a metal ball, a cup with a polyethylene liner, a neck and a stem, metal saturating at
  3071 HU with strong streaks (same mechanism plus photon starvation). Label policy: metal is not
  bone (label 0); the resected femoral head and neck have no label (that side has no femoral-head
  label at all; its THA ``fem`` masks are not written); the acetabulum label stays on the bone
  around the cup; the femoral cortex around the stem stays ``bone``, except voxels the scan's blur
  makes read as metal (``METAL_HU`` or more: no annotator can see bone there). Columns ``right_implant`` /
  ``left_implant`` (True/False) and the implant sizes;
* **partial field of view** (probability ``fov_rate``, default 0.15): the reconstruction circle
  (diameter 78-97 % of the body width, never cutting the femoral heads) may cut the lateral soft
  tissue and the greater trochanters; outside it HU are -1024 and labels 0 (nothing was imaged there)
  (``partial_fov``, ``fov_diameter_mm``, ``fov_offset_y_mm``);
* **the table** (``table=True``): a curved carbon-fibre shell (-50 to 200 HU, 2-4 mm) under a foam pad
  (-950 to -850 HU, 5-20 mm), under the body and unlabelled; the default grid grows to hold it.

Labels (a label map; the acetabulum and femoral head take priority over generic bone):

=====  ====================  ===============================================================
value  name                  what
=====  ====================  ===============================================================
1      bone                  all other bone: ilium/ischium/pubis outside the acetabulum slab,
                             sacrum, coccyx, femoral neck, trochanters, shaft
2      right_acetabulum      right pelvic bone in the axial slab the right femoral head spans
3      left_acetabulum       the same on the left (patient left: larger LPS x)
4      right_femoral_head    right femur inside the head sphere, head side of the head-neck plane
5      left_femoral_head     the same on the left
=====  ====================  ===============================================================

Labels are point samples at voxel centres (the centre sub-slice), from the same geometry as
the image. Files (``write_case``), paths relative to the output folder:

* ``dicom/PA<n>/ST0/SE0/IM00001.dcm ...`` (``n`` = case number): one CT file per slice,
  IM00001 the most superior slice (head-first scan order); geometry, rescale and UIDs valid,
  UIDs deterministic.
* ``nifti/images/<case>.nii.gz`` (int16 HU) and ``nifti/labels/<case>.nii.gz`` (label map).
* ``masks/<case>/<half>/masks/{fem,ace}/%05d.png``: the THA per-slice masks, 0/255, as their
  ``instance_seg_main.py`` saves them. THA works on image halves, not patient sides:
  ``left`` is columns ``0:W//2`` (image left = **patient right**), ``right`` is columns
  ``W//2:`` (patient left); each PNG is ``H x W//2``. The index is THA's slice index (the
  series read head-first, so ``%05d`` = file ``IM{index+1:05d}.dcm``); masks exist for the
  slices where that side's femoral head is present. ``fem`` is all femur bone of that side in
  the slice (head, neck, trochanter), ``ace`` the acetabulum label. The grid is centred on the
  pelvic midline, so the halves split the sides.
* ``finish`` writes ``initial_plane_left.txt`` / ``initial_plane_right.txt`` (THA half names)
  in THA's ``PA1_ST0_SE0: <1-based slice>`` format: the slice through each head centre.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from radseg.image import Image
from radseg.labels import METAL_HU, make_label_map
from radseg.synth.common import SynthCase, case_uid_seed, patient_attributes
from radseg.synth.hip_artefacts import draw_scan, fov_mask, scan_record, table_slice
from radseg.synth.hip_artefacts import beam_hardening as beam_hardening_error
from radseg.synth.hip_implant import implant_record, paint_implant
from radseg.synth.hip_phantom import (
    PART_VALUES,
    hip_bounds,
    hip_record,
    paint_bones_on_grid,
    sample_hip_params,
    soft_tissue_on_grid,
)

NAME = "hip-ct"
PREFIX = "HIPCT"
DESCRIPTION = "Pelvic CT with both hips: bone, acetabulum and femoral head labels (THA hip-CT layouts)"
LABELS = {1: "bone", 2: "right_acetabulum", 3: "left_acetabulum", 4: "right_femoral_head", 5: "left_femoral_head"}

# parts (hip_phantom.PARTS) -> label values
_PART_TO_LABEL = np.zeros(256, np.uint8)
for _part, _label in {"right_acetabulum": 2, "left_acetabulum": 3, "right_pelvis": 1, "left_pelvis": 1,
                      "right_femoral_head": 4, "left_femoral_head": 5, "right_femur": 1, "left_femur": 1,
                      "sacrum": 1}.items():
    _PART_TO_LABEL[PART_VALUES[_part]] = _label

SLICE_SPACINGS = (0.6, 0.625, 0.75, 0.8, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 5.0)
_SLICE_WEIGHTS = (0.06, 0.06, 0.08, 0.08, 0.12, 0.1, 0.1, 0.12, 0.1, 0.08, 0.1)
PIXEL_RANGE = (0.5, 2.0)  # mm, drawn log-uniform
MAX_VOXELS = 16_000_000
_CHUNK_POINTS = 6_000_000
_SUB_STEP = 1.2  # mm: largest gap between the sub-slices averaged into one slice
_BLUR_PX = 0.75  # in-plane reconstruction blur (sigma, pixels)
_BLUR_SLICES = 0.4
PREVIEW_WINDOW = (-200.0, 1300.0)  # HU


def _grid(params, rng, shape, spacing, margin=0.0):
    """Shape, spacing (array order) and origin (world x, y, z) centred on the pelvic midline; the
    body plus ``margin`` mm behind it (the table)."""
    sc = params.scale
    lo, hi = hip_bounds(params)
    hi[1] += margin
    zc = float(np.mean([s.head_centre[2] for s in params.sides()]))
    z_lo, z_hi = zc - 95 * sc, zc + 80 * sc
    centre = np.array([params.translation[0], (lo[1] + hi[1]) / 2, (z_lo + z_hi) / 2])
    half_x = max(centre[0] - lo[0], hi[0] - centre[0])
    extent = np.array([2 * half_x, hi[1] - lo[1], z_hi - z_lo])  # world x, y, z (mm)
    draw_dx = float(np.exp(rng.uniform(*np.log(PIXEL_RANGE))))
    draw_dz = int(rng.choice(len(SLICE_SPACINGS), p=_SLICE_WEIGHTS))
    if spacing is None:
        dx = round(draw_dx, 3)
        if shape is None:
            nxy = np.ceil(extent[:2] / dx / 2).astype(int) * 2  # even: the midline falls between columns
            choice = draw_dz
            def voxels(dz):
                return nxy.prod() * (np.ceil(extent[2] / dz) + 1)

            while choice < len(SLICE_SPACINGS) - 1 and voxels(SLICE_SPACINGS[choice]) > MAX_VOXELS:
                choice += 1
            dz = SLICE_SPACINGS[choice]
            while voxels(dz) > MAX_VOXELS:  # the thickest slices still too many: coarser pixels
                dx = round(dx * 1.05, 3)
                nxy = np.ceil(extent[:2] / dx / 2).astype(int) * 2
        else:
            dz = SLICE_SPACINGS[draw_dz]
        spacing = (dz, dx, dx)
    spacing = tuple(float(v) for v in spacing)
    if shape is None:
        nx, ny = (int(np.ceil(extent[i] / spacing[2 - i] / 2)) * 2 for i in (0, 1))
        shape = (int(np.ceil(extent[2] / spacing[0])) + 1, ny, nx)
    shape = tuple(int(v) for v in shape)
    size = np.array([shape[2] - 1, shape[1] - 1, shape[0] - 1]) * np.array(spacing[::-1])
    return shape, spacing, centre - size / 2


def _noise_gain(sigmas) -> float:
    """Standard deviation of unit white noise after ``gaussian_filter(sigmas)`` (truncate 3)."""
    from scipy import ndimage

    gain = 1.0
    for s in sigmas:
        if s > 0:
            delta = np.zeros(41)
            delta[20] = 1
            gain *= float(np.sqrt((ndimage.gaussian_filter1d(delta, s, truncate=3.0) ** 2).sum()))
    return gain


def make_case(subject, *, shape=None, spacing=None, pathology: int | None = None, implant_rate: float = 0.1,
              fov_rate: float = 0.15, table: bool = True, beam_hardening: bool = True) -> SynthCase:
    """One hip CT. ``shape`` (slices, rows, cols) and ``spacing`` (mm, same order) fix the grid
    (default: drawn per case, covering the body and the table); ``pathology`` (0-2) fixes the level;
    ``implant_rate`` / ``fov_rate``: probability of a hip replacement / a partial field of view;
    ``table`` and ``beam_hardening`` switch those off."""
    from scipy import ndimage

    rng = subject.rng()
    params = sample_hip_params(subject, rng=rng, pathology=pathology)
    scan = draw_scan(np.random.default_rng(int(rng.integers(2 ** 63 - 1))), params, implant_rate=implant_rate,
                     fov_rate=fov_rate, table=table, beam_hardening=beam_hardening)
    tab = scan["table"]
    margin = tab["pad_mm"] + tab["shell_mm"] + 8 if tab else 0.0
    shape, spacing, origin = _grid(params, rng, shape, spacing, margin)
    noise_sd = float(rng.uniform(10, 22)) * float(subject.difficulty.get("noise", 1.0))
    nz, ny, nx = shape
    dz, dy, dx = spacing
    k = 2 * int(dz / (2 * _SUB_STEP)) + 1
    offsets = (np.arange(k) - (k - 1) / 2) * dz / k
    zs, ys, xs = (origin[i] + d * np.arange(n) for i, d, n in ((2, dz, nz), (1, dy, ny), (0, dx, nx)))
    hu, parts = np.empty(shape, np.float32), np.empty(shape, np.uint8)
    step = max(1, _CHUNK_POINTS // (k * ny * nx))  # slices per chunk: bounded memory
    for start in range(0, nz, step):
        stop = min(nz, start + step)
        # Soft tissue varies slowly in z: once per slice; bones on every sub-slice.
        values = np.repeat(soft_tissue_on_grid(zs[start:stop], ys, xs, params), k, axis=0)
        labels = np.zeros(values.shape, np.uint8)
        sub_zs = (zs[start:stop, None] + offsets[None, :]).ravel()
        paint_bones_on_grid(sub_zs, ys, xs, params, values, labels, pv=min(dx, dy))
        for implant in scan["implants"].values():
            paint_implant(sub_zs, ys, xs, params, implant, values, labels)
        hu[start:stop] = values.reshape(stop - start, k, ny, nx).mean(axis=1) if k > 1 else values
        parts[start:stop] = labels.reshape(stop - start, k, ny, nx)[:, k // 2]
    if tab:
        table_hu = table_slice(ys, xs, tab)
        hu = np.where(np.isnan(table_hu) | (hu > -900), hu, table_hu)
    if scan["beam_hardening"]:
        hu += beam_hardening_error(hu, spacing, rng=rng, **scan["beam_hardening"])
    sigmas = (_BLUR_SLICES, _BLUR_PX, _BLUR_PX)
    noise = rng.standard_normal(hu.shape, dtype=np.float32) * np.float32(noise_sd / _noise_gain(sigmas))
    hu = ndimage.gaussian_filter(hu + noise, sigmas, truncate=3.0)
    fov = scan["fov"]
    if fov:  # the reconstruction circle: nothing imaged (and no label) outside it
        centre_x = params.translation[0]
        heads = max(abs(s.head_centre[0] - centre_x) + s.head_radius for s in params.sides())
        fov["diameter_mm"] = max(fov["fraction"] * scan["body_width_mm"], 2 * (heads + 15))
        inside = fov_mask(shape, spacing, fov)
        hu = np.where(inside, hu, np.float32(-1024))
        parts = np.where(inside, parts, np.uint8(0))
    array = np.clip(np.rint(hu), -1024, 3071).astype(np.int16)
    if scan["implants"]:  # bone the scan's blur makes read as metal is drawn as metal: no annotator sees it
        parts = np.where(array >= METAL_HU, np.uint8(0), parts)
    image = Image(array, spacing=spacing, origin=origin, metadata={"modality": "CT"})
    labels = make_label_map(_PART_TO_LABEL[parts], LABELS, like=image)
    record = hip_record(params)
    record.update({"slice_spacing_mm": dz, "pixel_spacing_mm": dx, "slices": nz, "rows": ny, "columns": nx,
                   "sub_slices": k, "noise_sd_hu": round(noise_sd, 3), **implant_record(scan["implants"]),
                   **scan_record(scan)})
    return SynthCase(subject=subject, image=image, labels=labels, params=record,
                     extras={"parts": parts, "hip_params": params, "scan": scan})


def _superior_first(image: Image) -> Image:
    """The same volume with array axis 0 running superior -> inferior (IM00001 = top slice)."""
    affine = image.affine.copy()
    affine[:3, 0] *= -1
    affine[:3, 3] = image.index_to_world([image.shape[0] - 1, 0, 0])
    return Image(image.array[::-1], affine=affine, metadata=image.metadata)


def _tha_masks(case: SynthCase, folder: Path) -> dict[str, int]:
    """THA per-slice PNG masks (see the module docstring); returns the initial plane per half."""
    from PIL import Image as PILImage

    parts = case.extras["parts"]
    nz, _, nx = parts.shape
    half = nx // 2
    initial = {}
    for tha_half, side, cols in (("left", "right", slice(0, half)), ("right", "left", slice(half, nx))):
        region = parts[:, :, cols]
        fem = np.isin(region, [PART_VALUES[f"{side}_femoral_head"], PART_VALUES[f"{side}_femur"]])
        ace = region == PART_VALUES[f"{side}_acetabulum"]
        present = np.flatnonzero((region == PART_VALUES[f"{side}_femoral_head"]).any(axis=(1, 2)))
        for kind, mask in (("fem", fem), ("ace", ace)):
            out = folder / tha_half / "masks" / kind
            out.mkdir(parents=True, exist_ok=True)
            for k in present:
                PILImage.fromarray(mask[k].astype(np.uint8) * 255).save(out / f"{nz - 1 - k:05d}.png")
        hs = case.extras["hip_params"].side(side)
        k_centre = int(np.rint(case.image.world_to_index(hs.head_centre)[0]))
        initial[tha_half] = nz - k_centre  # 1-based THA index of the slice through the head centre
    return initial


def write_case(case: SynthCase, outdir) -> dict[str, Any]:
    """DICOM series, NIfTI image and labels, and THA PNG masks; returns their relative paths."""
    import radseg.io as rio
    from radseg.io.dicom_write import write_dicom_series

    outdir, subject = Path(outdir), case.subject
    cid = subject.case_id
    series = Path("dicom") / f"PA{subject.index + 1}" / "ST0" / "SE0"
    write_dicom_series(_superior_first(case.image), outdir / series, patient=patient_attributes(subject),
                       uid_seed=case_uid_seed(subject, NAME), description="radseg hip-ct phantom")
    image_path = Path("nifti") / "images" / f"{cid}.nii.gz"
    label_path = Path("nifti") / "labels" / f"{cid}.nii.gz"
    rio.write(case.image, outdir / image_path)
    rio.write(case.labels, outdir / label_path, kind="nifti")
    masks = Path("masks") / cid
    initial = _tha_masks(case, outdir / masks)
    return {"dicom_dir": series.as_posix(), "image": image_path.as_posix(), "labels": label_path.as_posix(),
            "masks_dir": masks.as_posix(), "tha_series": f"PA{subject.index + 1}_ST0_SE0",
            "tha_initial_plane_left": initial["left"], "tha_initial_plane_right": initial["right"]}


def finish(rows, outdir) -> None:
    """THA's initial-plane lists, one per image half: ``PA<n>_ST0_SE0: <1-based slice>``."""
    from radseg.io.atomic import write_text_atomic

    for half in ("left", "right"):
        lines = [f"{row['tha_series']}: {int(row[f'tha_initial_plane_{half}'])}\n" for row in rows
                 if f"tha_initial_plane_{half}" in row]
        write_text_atomic(Path(outdir) / f"initial_plane_{half}.txt", "".join(lines))


def preview(case: SynthCase) -> tuple[Image, Image]:
    """Coronal slice through the femoral heads, square pixels, head up, bone window."""
    from scipy import ndimage

    image, labels = case.image, case.labels
    y = np.mean([s.head_centre[1] for s in case.extras["hip_params"].sides()])
    row = int(np.clip(np.rint(image.world_to_index([image.origin[0], y, image.origin[2]])[1]), 0, image.shape[1] - 1))
    dz, _, dx = (float(v) for v in image.spacing)
    zoom = (dz / dx, 1.0)
    grey = ndimage.zoom(image.array[:, row, :].astype(np.float32), zoom, order=1)[::-1]
    mask = ndimage.zoom(labels.array[:, row, :], zoom, order=0)[::-1]
    low, high = PREVIEW_WINDOW  # a fixed bone window, shown as RGB so the overlay does not re-window it
    grey = np.rint(np.clip((grey - low) / (high - low), 0, 1) * 255).astype(np.uint8)
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    meta = {"label_names": dict(LABELS)}
    return Image(rgb, spacing=(dx, dx)), Image(mask, spacing=(dx, dx), metadata=meta)
