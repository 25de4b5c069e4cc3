"""``knee-xray``: bilateral fixed-flexion PA knee radiographs in the HexAI-KneeHipBoneSeg layout.

Both knees in one image as in the OAI, displayed in the standard way: the patient's right knee
on the image left, head up (PatientOrientation ``L\\F``). Geometry in
:mod:`radseg.synth.knee_phantom`; projection (analytic chords, Beer-Lambert, detector) in
:mod:`radseg.synth.projection`.

Labels (HexAI knee; the side is in the value)
    0 background, 1 right patella, 2 right femur, 3 right tibia, 4 right fibula, 5 left patella,
    6 left femur, 7 left tibia, 8 left fibula.
Overlap
    Projected bones overlap (the patella over the distal femur, the fibular head over the lateral
    tibia). The single label map draws, from bottom to top, femur < tibia < fibula < patella: the
    smaller, superimposed bone keeps its whole outline. The exact, overlapping per-bone masks are
    in ``multilabel/<case>.npz`` (a radseg multi-label NPZ, one channel per label 1..8).
Files written by :func:`write_case` (``<out>`` = the synth output folder)
    ``images/<case>.dcm``  DX or CR, 12/14/16 bits stored, MONOCHROME2 or MONOCHROME1 (drawn per
    case, recorded), ImagerPixelSpacing (times the magnification factor when one is recorded),
    plus PixelSpacing (calibrated) for some cases; ``masks/<case>.nii.gz`` the label map (radseg
    NIfTI writer: one slice, RAS affine; the file's ``i`` axis runs along image columns, so
    ``nibabel``'s raw ``get_fdata()`` is ``[col, row]`` -- the "transposed" look of HexAI's masks --
    while ``radseg.io.read`` returns ``[row, col]`` on the DICOM's grid); ``multilabel/<case>.npz``;
    ``png/images/<case>.png`` (8-bit, MONOCHROME2 display) and ``png/masks/<case>.png`` (values
    0-8). :func:`finish` adds ``hexai_metadata.csv`` with OAI-coded columns (``P02SEX``,
    ``P02RACE``, ``V00AGE``).
Params (per side ``right_``/``left_``)
    ``medial_jsw_mm``, ``lateral_jsw_mm`` (minimum vertical femur-tibia gap in the compartment,
    exact from the geometry; ``_jsw_col``/``_jsw_row``: pixel of the femur point at the minimum),
    condyle widths/heights/depths, bicondylar and plateau widths, patella size and shadow area,
    ``tilt_deg`` (in-plane rotation of the knee about the beam), soft-tissue scale and fat; and ``pixel_spacing_mm``, ``photometric``, ``bits_stored``, ``modality``, ...
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

import radseg.synth.projection as proj
from radseg.image import Image
from radseg.labels import make_label_map, make_multilabel
from radseg.synth.cohort import Subject
from radseg.synth.common import SynthCase, case_uid_seed, patient_attributes
from radseg.synth.knee_phantom import BONES, SIDES, Knee, build_knee, sample_knee

NAME = "knee-xray"
PREFIX = "KNEE"
DESCRIPTION = "Bilateral fixed-flexion PA knee radiograph (HexAI-KneeHipBoneSeg layout), JSW per compartment"
LABELS = {0: "background", 1: "right patella", 2: "right femur", 3: "right tibia", 4: "right fibula",
          5: "left patella", 6: "left femur", 7: "left tibia", 8: "left fibula"}
VALUES = {(side, bone): value for value, (side, bone) in
          enumerate(((s, b) for s in SIDES for b in BONES), start=1)}
PAINT_ORDER = ("femur", "tibia", "fibula", "patella")  # later wins in the single label map
DEFAULT_SHAPE = (512, 640)
# patient frame of the displayed image: columns towards the patient's left (+x, LPS), rows to the feet (-z)
IMAGE_ORIENTATION_PATIENT = [1.0, 0.0, 0.0, 0.0, 0.0, -1.0]


def sample_case(subject: Subject, *, shape: tuple[int, int]) -> dict[str, Any]:
    """All random choices of a case, drawn in a fixed order from ``subject.rng()``."""
    rng = subject.rng()
    size = subject.difficulty["size"]
    k = float(np.clip(rng.normal(1.0, 0.05), 0.88, 1.12)) * (1.06 if subject.sex == "M" else 0.95) * size
    spacing = float(rng.uniform(330.0, 380.0)) / shape[1]
    draw = {
        "k": k, "spacing": spacing,
        "separation": float(rng.uniform(175.0, 215.0)) * k,
        "joint_v": float(rng.uniform(-0.08, 0.08)) * shape[0] * spacing,
        "centre_shift": float(rng.normal(0.0, 6.0)),
        "photometric": "MONOCHROME1" if rng.random() < 0.3 else "MONOCHROME2",
        "bits_stored": int(rng.choice([12, 14, 16], p=[0.5, 0.2, 0.3])),
        "modality": "DX" if rng.random() < 0.6 else "CR",
        "magnification": round(float(rng.uniform(1.05, 1.15)), 3) if rng.random() < 0.5 else None,
        "pixel_spacing_tag": bool(rng.random() < 0.5),
        "blur_mm": float(rng.uniform(0.25, 0.45)),
        "photons": float(rng.uniform(15000, 30000)),
        "scatter_fraction": float(rng.uniform(0.1, 0.25)),
        "density_offset": float(rng.normal(0.0, 0.06)),
    }
    draw["spacing"] = dicom_exact_spacing(spacing, draw["magnification"])
    draw["knees"] = {side: sample_knee(rng, k=k) for side in SIDES}
    draw["noise_rng"] = rng
    return draw


def dicom_exact_spacing(spacing: float, magnification: float | None) -> float:
    """A spacing the DICOM tags give back exactly: ImagerPixelSpacing (5 decimals) / magnification."""
    if magnification is None:
        return round(spacing, 6)
    return round(spacing * magnification, 5) / magnification


def make_case(subject: Subject, *, shape: tuple[int, int] = DEFAULT_SHAPE, photometric: str | None = None,
              bits_stored: int | None = None, modality: str | None = None) -> SynthCase:
    """A bilateral knee radiograph with exact bone labels; options override the drawn values."""
    shape = (int(shape[0]), int(shape[1]))
    d = sample_case(subject, shape=shape)
    photometric = photometric or d["photometric"]
    bits = int(bits_stored or d["bits_stored"])
    modality = modality or d["modality"]
    detector = proj.Detector.centred(shape, d["spacing"])
    knees = {side: build_knee(side, d["knees"][side], k=d["k"],
                              centre_u=d["centre_shift"] + (-0.5 if side == "right" else 0.5) * d["separation"],
                              centre_v=d["joint_v"])
             for side in SIDES}
    mu = proj.mu_table(contrast=subject.difficulty["contrast"])
    line, soft_line, masks = _line_integral(knees, detector, mu)
    # exposure and film are set on the soft tissue beside the bones (as a technologist does), so
    # the bone contrast over soft tissue is what the difficulty factor makes it
    soft = _soft_reference(soft_line, masks)
    stored, _ = proj.render(line, d["noise_rng"], spacing_mm=d["spacing"], center=0.32 + d["density_offset"],
                            width=0.22, bits=bits, invert=photometric == "MONOCHROME1", photons=d["photons"],
                            noise_factor=subject.difficulty["noise"], blur_mm=d["blur_mm"],
                            scatter_fraction=d["scatter_fraction"], center_on=soft)
    label_array = np.zeros(shape, np.uint8)
    for bone in PAINT_ORDER:
        for side in SIDES:
            label_array[masks[(side, bone)]] = VALUES[(side, bone)]
    image, labels = radiograph_images(stored, label_array, LABELS, detector, d["spacing"],
                                      photometric=photometric, bits=bits, modality=modality)
    params = _params(knees, detector, d, photometric=photometric, bits=bits, modality=modality)
    extras = {"line_integral": line.astype(np.float32), "masks": masks, "knees": knees, "detector": detector,
              "compartment_cols": {(side, name): tuple(float(c) for c in detector.to_pixel(knees[side].compartment_u(name), 0.0)[1])
                                   for side in SIDES for name in ("medial", "lateral")}}
    return SynthCase(subject=subject, image=image, labels=labels, params=params, extras=extras)


def radiograph_images(stored: np.ndarray, label_array: np.ndarray, labels: dict, detector: proj.Detector,
                      spacing: float, *, photometric: str, bits: int, modality: str) -> tuple[Image, Image]:
    """The stored radiograph with its DICOM-facing metadata (PA/AP display: columns to the patient's
    left, rows to the feet), and its label map on the same pixels. Shared with ``hip-xray``."""
    meta = {"photometric": photometric, "bits_stored": bits, "modality": modality,
            "patient_orientation": ["L", "F"], "image_orientation_patient": IMAGE_ORIENTATION_PATIENT,
            "image_position_patient": [float(detector.origin[0]), 0.0, float(-detector.origin[1])]}
    image = Image(stored, spacing=(spacing, spacing), metadata=meta)
    return image, make_label_map(label_array, labels, like=Image(label_array, spacing=(spacing,) * 2))


def _line_integral(knees: dict[str, Knee], detector: proj.Detector, mu: dict[str, float]):
    """``sum mu_i L_i`` over soft tissue and bones, and the exact shadow of each bone."""
    soft_line = np.zeros(detector.shape)
    masks = {}
    for side, knee in knees.items():
        body = proj.chord_length([outer for outer, _ in knee.soft], detector)
        muscle = proj.chord_length([inner for _, inner in knee.soft], detector)
        soft_line += mu["fat"] * body + (mu["soft_tissue"] - mu["fat"]) * muscle
    line = soft_line.copy()
    for side, knee in knees.items():
        for bone in BONES:
            pairs = knee.bones[bone]
            outer = proj.chord_length([o for o, _ in pairs], detector)
            inner = proj.chord_length([i for _, i in pairs], detector)
            # bone displaces soft tissue: add its excess attenuation over soft tissue
            line += (mu["cortical"] - mu["soft_tissue"]) * (outer - inner) + (mu["cancellous"] - mu["soft_tissue"]) * inner
            masks[(side, bone)] = outer > 0
    return line, soft_line, masks


def _soft_reference(soft_line: np.ndarray, masks) -> np.ndarray:
    """Thick soft tissue beside the bones (at least 75% of the thickest): the exposure reference."""
    bones = np.zeros(soft_line.shape, bool)
    for mask in masks.values():
        bones |= mask
    return (soft_line > 0.75 * np.percentile(soft_line, 99.5)) & ~bones


def _params(knees, detector, d, *, photometric, bits, modality) -> dict[str, Any]:
    params: dict[str, Any] = {
        "pixel_spacing_mm": d["spacing"], "rows": detector.shape[0], "cols": detector.shape[1],
        "photometric": photometric, "bits_stored": bits, "modality": modality,
        "magnification": d["magnification"] if d["magnification"] else 1.0,
        "pixel_spacing_tag": "PixelSpacing+ImagerPixelSpacing" if d["pixel_spacing_tag"] else "ImagerPixelSpacing",
        "bone_scale": d["k"], "knee_separation_mm": d["separation"], "blur_mm": d["blur_mm"],
    }
    for side, knee in knees.items():
        row, col = detector.to_pixel(knee.centre_u, knee.centre_v)
        params[f"{side}_knee_col"], params[f"{side}_knee_row"] = float(col), float(row)
        for key, value in knee.params.items():
            if key.endswith(("_jsw_u_mm", "_jsw_v_mm")):
                continue
            params[f"{side}_{key}"] = value
        for name in ("medial", "lateral"):
            row, col = detector.to_pixel(knee.params[f"{name}_jsw_u_mm"], knee.params[f"{name}_jsw_v_mm"])
            params[f"{side}_{name}_jsw_col"], params[f"{side}_{name}_jsw_row"] = float(col), float(row)
    return params


def preview(case: SynthCase) -> tuple[Image, Image]:
    return case.image, case.labels


def display_png(case: SynthCase) -> np.ndarray:
    """8-bit MONOCHROME2 rendering of the stored values (bone white), for the PNG copy."""
    bits = int(case.params["bits_stored"])
    values = case.image.array.astype(np.float64)
    if case.params["photometric"] == "MONOCHROME1":
        values = (1 << bits) - 1 - values
    return np.rint(values * 255.0 / ((1 << bits) - 1)).astype(np.uint8)


def write_case(case: SynthCase, outdir: str | Path) -> dict[str, Any]:
    return write_radiograph_case(case, outdir, name=NAME, values=VALUES, view_position="PA", laterality="B",
                                 description="radseg phantom bilateral PA fixed-flexion knee")


def write_radiograph_case(case: SynthCase, outdir: str | Path, *, name: str, values: dict, view_position: str,
                          laterality: str | None, description: str) -> dict[str, Any]:
    """The HexAI-style layout shared by ``knee-xray`` and ``hip-xray`` (see the module docstring)."""
    import radseg.io as rio
    from radseg.io.dicom_write import write_dicom_radiograph

    outdir = Path(outdir)
    case_id = case.subject.case_id
    p = case.params
    spacing = case.image.spacing
    magnification = p["magnification"] if p["magnification"] != 1.0 else None
    dcm = outdir / "images" / f"{case_id}.dcm"
    plain = Image(case.image.array, spacing=tuple(spacing))
    write_dicom_radiograph(plain, dcm, modality=p["modality"], description=description,
                           photometric=p["photometric"], bits_stored=int(p["bits_stored"]),
                           spacing_tag="ImagerPixelSpacing", magnification=magnification,
                           patient=patient_attributes(case.subject), view_position=view_position,
                           uid_seed=case_uid_seed(case.subject, name), laterality=laterality)
    if p["pixel_spacing_tag"].startswith("PixelSpacing"):
        _add_pixel_spacing(dcm, spacing)
    mask = rio.write(case.labels, outdir / "masks" / f"{case_id}.nii.gz", kind="nifti")
    # exact per-bone shadows, overlaps kept; ``values`` maps extras["masks"] keys to label values
    keys = sorted(case.extras["masks"], key=lambda key: values[key])
    stack = np.stack([case.extras["masks"][key] for key in keys])
    names = [case.labels.metadata["label_names"][values[key]] for key in keys]
    multi = rio.write(make_multilabel(stack, names, like=case.labels), outdir / "multilabel" / f"{case_id}.npz",
                      kind="npz")
    png_image = rio.write(Image(display_png(case), spacing=tuple(spacing)), outdir / "png" / "images" / f"{case_id}.png")
    png_mask = rio.write(case.labels, outdir / "png" / "masks" / f"{case_id}.png", kind="png")
    return {key: str(Path(path).relative_to(outdir)) for key, path in
            (("image_path", dcm), ("mask_path", mask), ("multilabel_path", multi),
             ("png_image_path", png_image), ("png_mask_path", png_mask))}


def _add_pixel_spacing(path: Path, spacing) -> None:
    """Add the calibrated PixelSpacing beside ImagerPixelSpacing (write_dicom_radiograph sets one tag)."""
    import pydicom

    from radseg.io.atomic import atomic_path

    ds = pydicom.dcmread(path)
    ds.PixelSpacing = [f"{spacing[0]:.6f}", f"{spacing[1]:.6f}"]
    ds.PixelSpacingCalibrationType = "GEOMETRY"
    with atomic_path(path) as tmp:
        ds.save_as(tmp, enforce_file_format=True)


OAI_SEX = {"M": "1: Male", "F": "2: Female"}
OAI_RACE = {"White": "1: White or Caucasian", "Black": "2: Black or African American", "Asian": "3: Asian",
            "Other": "0: Other Non-white"}


def finish(rows: list[dict[str, Any]], outdir: str | Path) -> None:
    """``hexai_metadata.csv``: one row per case with OAI-coded demographics, like HexAI's metadata sheet."""
    write_hexai_metadata(rows, outdir)


def write_hexai_metadata(rows: list[dict[str, Any]], outdir: str | Path) -> Path:
    import pandas as pd

    from radseg.io.atomic import write_text_atomic

    table = pd.DataFrame([{"ID": row["case_id"], "P02SEX": OAI_SEX.get(row["sex"], row["sex"]),
                           "P02RACE": OAI_RACE.get(row["race"], row["race"]), "V00AGE": row["age"],
                           "image": row.get("image_path"), "mask": row.get("mask_path")} for row in rows])
    path = Path(outdir) / "hexai_metadata.csv"
    write_text_atomic(path, table.to_csv(index=False))
    return path
