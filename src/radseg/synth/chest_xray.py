"""``chest-xray``: PA chest radiographs with CXAS-style overlapping anatomy labels and an exact CTR.

The anatomy (:mod:`radseg.synth.chest_anatomy`) is drawn in closed form: lungs, heart, trachea,
hemidiaphragms, spine C7-L2 (cortical shell, endplates, pedicles, discs), 12 posterior and 10
anterior ribs per side, clavicles, scapulae, shoulders, breasts (female subjects), a gastric air
bubble and vascular lung markings. Path lengths through every tissue go through Beer-Lambert,
scatter, quantum noise, detector blur and a film curve (:mod:`radseg.synth.projection`) to a 12-bit
MONOCHROME2 DX image. Patient right is on the image left.

Labels are a multi-label mask (classes overlap as in projection, e.g. heart over the left lung,
spine behind the heart) with CXAS class names, in CXAS class order; values are 1..C in the order of
:data:`LABELS` (76 classes):

======  =====================================================================================
value   class
======  =====================================================================================
1-3     spine, thoracic spine, lumbar spine
4-18    vertebrae C7, vertebrae T1 ... vertebrae T12, vertebrae L1, vertebrae L2
19-24   clavicles, clavicle left, clavicle right, scapulas, scapula left, scapula right
25-68   ribs in CXAS order: posterior 12th rib right/left, posterior 11th rib right/left, then
        for the 10th ... 1st rib: anterior right, posterior right, anterior left, posterior left
69-71   diaphragm, left hemidiaphragm, right hemidiaphragm
72      heart
73-75   lung, right lung, left lung
76      trachea
======  =====================================================================================
 Superclasses are the unions CXAS defines: ``lung``, ``diaphragm``, ``clavicles``,
``scapulas``, ``spine`` (C7-L2), ``thoracic spine`` (T1-T12), ``lumbar spine`` (L1-L2, the part
in the field). Vertebra labels are the vertebral bodies; rib labels are the bony ribs (the
anterior arc ends at the costochondral junction). Lungs include the parts behind the heart and
in the posterior recesses below the dome, as projected CT labels do.

Difficulty: ``contrast`` scales every tissue's attenuation difference from soft tissue (bone
excess and lung/airway deficit), ``noise`` the quantum-noise sd, ``size`` the body scale.

Files per case (``write_case``): ``dicom/<case>.dcm`` (DX, 12 bits stored, ImagerPixelSpacing =
spacing x 1.1 with EstimatedRadiographicMagnificationFactor 1.1), ``images/<case>.png`` (8-bit),
``labels/<case>/<class name>.png`` (CXAS per-class layout, 0/255, with ``classes.json``) and
``labels/<case>.npz``.

Recorded CTR (CXAS definition, on the geometry): midline = the right hemidiaphragm's right-most
point (the body midline here); MRD/MLD = the heart's extent right/left of it; ID = the widest row
of both lungs together (any row, as CXAS's code measures it); ``ctr = (MRD + MLD) / ID``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import radseg.synth.chest_anatomy as anatomy
import radseg.synth.projection as projection
from radseg.image import Image
from radseg.labels import make_multilabel
from radseg.synth.chest_bones import ordinal
from radseg.synth.common import SynthCase, case_uid_seed, patient_attributes
from radseg.synth.dx_processing import equalise

NAME = "chest-xray"
PREFIX = "CXR"
DESCRIPTION = "PA chest radiograph (DX, 12-bit) with CXAS-style multi-label anatomy and an exact cardio-thoracic ratio"
MAGNIFICATION = 1.1  # PA chest at 180 cm: the detector sees the anatomy ~10% larger


def _rib_names() -> list[str]:
    names = []
    for k in range(12, 0, -1):  # CXAS order: 12th rib first, anterior before posterior, right before left
        for side in ("right", "left"):
            for kind in ("anterior", "posterior"):
                if (kind == "posterior" and k in anatomy.POSTERIOR_RIBS) or (kind == "anterior" and k in anatomy.ANTERIOR_RIBS):
                    names.append(f"{kind} {ordinal(k)} rib {side}")
    return names


CLASS_NAMES = [
    "spine", "thoracic spine", "lumbar spine", *(f"vertebrae {v}" for v in anatomy.VERTEBRAE),
    "clavicles", "clavicle left", "clavicle right", "scapulas", "scapula left", "scapula right",
    *_rib_names(), "diaphragm", "left hemidiaphragm", "right hemidiaphragm", "heart",
    "lung", "right lung", "left lung", "trachea",
]
LABELS = {k + 1: name for k, name in enumerate(CLASS_NAMES)}
UNIONS = {
    "lung": ("right lung", "left lung"),
    "diaphragm": ("right hemidiaphragm", "left hemidiaphragm"),
    "clavicles": ("clavicle right", "clavicle left"),
    "scapulas": ("scapula right", "scapula left"),
    "spine": tuple(f"vertebrae {v}" for v in anatomy.VERTEBRAE),
    "thoracic spine": tuple(f"vertebrae T{k}" for k in range(1, 13)),
    "lumbar spine": ("vertebrae L1", "vertebrae L2"),
}
PREVIEW_CLASSES = ("right lung", "left lung", "heart", "trachea", "right hemidiaphragm", "left hemidiaphragm",
                   "clavicle right", "clavicle left", "spine")
LUNG_DENSITY = 0.26  # inflated lung: a quarter tissue, three quarters air
_V_CENTRE = 180.0  # standard-frame row at the image centre (mid chest)
EQUALISE, DETAIL, FILM_CENTER, FILM_WIDTH = 0.55, 0.8, 2.9, 0.55


def make_case(subject, *, shape=(512, 512), spacing_mm: float = 0.7, cardiomegaly_rate: float = 0.25) -> SynthCase:
    """One PA chest radiograph; ``shape`` (rows, cols) and ``spacing_mm`` in the patient plane."""
    rng = subject.rng()
    female = subject.sex == "F"
    cardiomegaly = bool(rng.random() < cardiomegaly_rate)
    g = anatomy.sample(rng, female=female, cardiomegaly=cardiomegaly)
    scale = (0.93 if female else 1.0) * float(np.clip(1.0 + 0.035 * rng.standard_normal(), 0.9, 1.1))
    scale *= subject.difficulty["size"]
    shift_u, shift_v = 6.0 * rng.standard_normal(), 8.0 * rng.standard_normal()
    rows, cols = (int(n) for n in shape)
    step = spacing_mm / scale  # the detector in the standard frame: a smaller body covers fewer pixels
    centre_u, centre_v = -shift_u / scale, _V_CENTRE + shift_v / scale
    det = projection.Detector((rows, cols), (step, step),
                              (centre_u - (cols - 1) / 2 * step, centre_v - (rows - 1) / 2 * step))
    canvas = anatomy.render(g, det)
    line = _line_integral(canvas, g, det, rng, scale, subject.difficulty["contrast"])
    _, intensity = projection.render(line, rng, spacing_mm=spacing_mm, center=3.0, width=0.75, bits=12,
                                     photons=6000.0, noise_factor=subject.difficulty["noise"], blur_mm=0.45,
                                     scatter_fraction=0.3, scatter_mm=40.0, heel=0.03)
    stored = _process(intensity, spacing_mm)
    x0 = det.origin[0] * scale  # world x of column 0: 0 at the body midline, + to the patient's left
    meta = {"modality": "DX", "photometric": "MONOCHROME2", "view_position": "PA",
            "image_orientation_patient": [1.0, 0.0, 0.0, 0.0, 0.0, -1.0],
            "image_position_patient": [x0, 0.0, 0.0]}
    image = Image(stored, spacing=(spacing_mm, spacing_mm), origin=(x0, 0.0), metadata=meta)
    masks = dict(canvas.masks)
    empty = np.zeros((rows, cols), bool)
    for union, parts in UNIONS.items():
        masks[union] = np.logical_or.reduce([masks.get(p, empty) for p in parts])
    labels = make_multilabel(np.stack([masks.get(n, empty) for n in CLASS_NAMES]), CLASS_NAMES, like=image)
    labels.metadata.pop("photometric", None)
    params = _params(g, scale, spacing_mm, shift_u, shift_v, cardiomegaly, rows, cols)
    return SynthCase(subject=subject, image=image, labels=labels, params=params)


def _line_integral(canvas, g, det, rng, scale: float, contrast: float) -> np.ndarray:
    """``sum mu_i L_i`` (real mm) from the standard-frame path maps."""
    from scipy import ndimage

    p = canvas.paths
    mu = projection.mu_table(contrast=contrast)
    soft = mu["soft_tissue"]
    lung_mu = soft - contrast * (soft - LUNG_DENSITY * soft)
    gas_mu = soft - contrast * (soft - mu["air"])
    # Parenchymal texture: faint ridges of smooth noise (the vessel trees are in the geometry).
    coarse = ndimage.gaussian_filter(rng.standard_normal((det.shape[0] // 6 + 2, det.shape[1] // 6 + 2)), 1.0)
    field = ndimage.zoom(coarse / (coarse.std() + 1e-9), 6, order=1)[: det.shape[0], : det.shape[1]]
    texture = 4.0 * np.exp(-(field / 0.3) ** 2)
    air = np.maximum(p["lung"] - p["displace"] - p["vessels"] - texture * (p["lung"] > 0), 0.12 * p["lung"])
    line = (soft * p["soft"] + (lung_mu - soft) * air + (gas_mu - soft) * p["gas"]
            + (mu["cortical"] - soft) * p["cortical"] + (mu["cancellous"] - soft) * p["cancellous"])
    return np.clip(line, 0.0, None) * scale


def _process(intensity: np.ndarray, spacing: float) -> np.ndarray:
    """DX processing (broad-range compression, detail boost), then the film curve. Fixed settings,
    so the difficulty effects stay in the stored image."""
    density = equalise(intensity, spacing, strength=EQUALISE, detail=DETAIL, pivot=3.0)
    return projection.film_curve(np.exp(-density), center=FILM_CENTER, width=FILM_WIDTH, bits=12)


def _params(g, scale, spacing, shift_u, shift_v, cardiomegaly, rows, cols) -> dict:
    ctr = anatomy.ctr_geometry(g)
    right, left = g["lung"]["right"], g["lung"]["left"]
    return {
        "rows": rows, "cols": cols, "pixel_spacing_mm": spacing, "body_scale": round(scale, 6),
        "midline_shift_mm": float(shift_u), "vertical_shift_mm": float(shift_v),
        "ctr": ctr["heart_width"] / ctr["id"], "ctr_mrd_mm": ctr["mrd"] * scale, "ctr_mld_mm": ctr["mld"] * scale,
        "ctr_id_mm": ctr["id"] * scale, "heart_width_mm": ctr["heart_width"] * scale,
        "thoracic_width_mm": ctr["id"] * scale, "cardiomegaly": int(ctr["heart_width"] / ctr["id"] > 0.5),
        "body_width_mm": 2 * (max(right["x_wide"], left["x_wide"]) + g["wall"]) * scale,
        "cardiomegaly_drawn": int(cardiomegaly), "heart_scale": g["heart"]["scale"],
        "right_lung_area_mm2": anatomy.lung_area(right) * scale ** 2,
        "left_lung_area_mm2": anatomy.lung_area(left) * scale ** 2,
        "right_dome_mm": (right["v_dome"] - _V_CENTRE) * scale + shift_v,
        "left_dome_mm": (left["v_dome"] - _V_CENTRE) * scale + shift_v,
        "right_lung_apex_mm": (right["top"] - _V_CENTRE) * scale + shift_v,
        "trachea_diameter_mm": 2 * g["trachea"]["r"] * scale,
        "ap_depth_factor": g["depth"], "chest_wall_mm": g["wall"] * scale,
    }


def write_case(case: SynthCase, outdir) -> dict:
    import radseg.io
    from radseg.io.dicom_write import write_dicom_radiograph

    outdir = Path(outdir)
    cid = case.subject.case_id
    dicom = outdir / "dicom" / f"{cid}.dcm"
    dicom.parent.mkdir(parents=True, exist_ok=True)
    write_dicom_radiograph(case.image, dicom, modality="DX", bits_stored=12, magnification=MAGNIFICATION,
                           patient=patient_attributes(case.subject), view_position="PA",
                           uid_seed=case_uid_seed(case.subject, NAME), description="radseg chest phantom PA")
    png = outdir / "images" / f"{cid}.png"
    png.parent.mkdir(parents=True, exist_ok=True)
    radseg.io.write(case.image.with_array((case.image.array >> 4).astype(np.uint8)), png)
    radseg.io.write(case.labels, outdir / "labels", kind="png-classes", case=cid)
    npz = outdir / "labels" / f"{cid}.npz"
    radseg.io.write(case.labels, npz, kind="npz")
    return {"dicom_path": str(dicom.relative_to(outdir)), "image_path": str(png.relative_to(outdir)),
            "label_dir": f"labels/{cid}", "label_npz": str(npz.relative_to(outdir))}


def preview(case: SynthCase):
    """The radiograph with the main structures (not every rib and vertebra, to keep the legend short)."""
    index = [CLASS_NAMES.index(n) for n in PREVIEW_CLASSES]
    labels = make_multilabel(np.moveaxis(case.labels.array[..., index], -1, 0), PREVIEW_CLASSES, like=case.image)
    return case.image, labels
