"""``brain-ct``: head CT with intracranial hemorrhage, in the layout of HemSeg-200 on RSNA 2019.

The anatomy is in :mod:`radseg.synth.brain_phantom`, the hemorrhages in
:mod:`radseg.synth.brain_bleeds`. A case is a 512 x 512 axial series of 24-36 slices of
about 5 mm (pixels 0.45-0.49 mm), in HU, with partial volume across the slice thickness,
an in-plane blur (scanner resolution) and correlated noise (sd 3-6 HU x ``difficulty["noise"]``).

Labels (HemSeg-200, binary):

=====  ==============  ==========================================================
value  name            meaning
=====  ==============  ==========================================================
0      background      everything else (edema, calcifications and CSF included)
1      hemorrhage      intraparenchymal and intraventricular blood
=====  ==============  ==========================================================

About a quarter of the cases have no hemorrhage (empty label). ``difficulty["contrast"]``
scales blood minus grey matter HU, ``difficulty["size"]`` the head and its lesions.

Files (``outdir`` relative), as HemSeg-200 users have them:

* ``stage_2_train/ID_<9 hex>.dcm``: RSNA-style single-slice CT files (PatientID ``ID_<8 hex>``,
  window 40/80, rescale -1024/1, 12 bits stored), all cases in one folder;
* ``annotion_file_info.jsonl`` (sic): one line per scan, ``{"patient", "scan_", "slice_list"}``,
  slices in position order (inferior to superior), written by :func:`finish`;
* ``IPH_IVH/<split>/label/<scan>.nii.gz``: int16 {0, 1} labels on the grid radseg's DICOM
  reader (and ``radseg convert --select``) gives the series; split train/val/test 60/20/20
  by case index (``IPH_IVH`` is the folder name of the authors' training scripts);
* ``nifti/<scan>.nii.gz``: the image, as ``radseg convert --select`` would write it.

Differences from RSNA/HemSeg, on purpose: UIDs are valid numeric DICOM UIDs (RSNA put
``ID_...`` strings in UID elements) and the files add SOPClassUID, FrameOfReferenceUID,
SliceThickness and the synthetic patient's name, sex and age (like RSNA they carry no
InstanceNumber: order comes from ImagePositionPatient); the hex ids always hold a letter other
than ``e`` so that no table reader turns them into numbers; ``slice_list`` is in position
order (the real file's order is arbitrary); there is no gantry tilt; one scan per patient.

``params`` (``metadata.csv``): ``split``, ``patient_id``, ``scan_id``, grid (``n_slices``,
``rows``, ``cols``, ``slice_spacing_mm``, ``pixel_spacing_mm``), head (``head_scale``,
``atrophy``, ``cavity_width_mm``, ``cavity_length_mm``, ``skull_thickness_mm``, ``yaw_deg``,
``pitch_deg``, ``roll_deg``, ``head_centre_{x,y,z}_mm`` in world LPS), scanner
(``noise_sd_hu``, ``blur_sigma_mm``), tissue HU (``grey_matter_hu``, ``white_matter_hu``,
``csf_hu``), hemorrhage totals measured on the label (``hemorrhage_count``,
``hemorrhage_volume_ml``, ``iph_count``, ``iph_volume_ml``, ``ivh_present``, ``ivh_volume_ml``,
``hemorrhage_hu``, ``hemorrhage_contrast_hu`` = blood minus grey matter, ``hemorrhage_sites``)
and per drawn lesion (``bleed{1,2,3}_{kind,site,side,volume_ml,hu,x_mm,y_mm,z_mm}``, the
volume counting each label voxel once, IPH before IVH; centre in world LPS).

Options: ``shape`` (slices, rows, cols) and ``spacing`` (mm) for small test volumes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from radseg.image import Image
from radseg.labels import make_label_map
from radseg.synth.brain_bleeds import draw_bleeds
from radseg.synth.brain_phantom import HeadPhantom
from radseg.synth.brain_render import render
from radseg.synth.brain_shapes import Grid, Pose, rotation
from radseg.synth.cohort import Subject
from radseg.synth.common import SynthCase, case_uid_seed, patient_attributes

NAME = "brain-ct"
PREFIX = "BCT"
DESCRIPTION = "Head CT with intraparenchymal/intraventricular hemorrhage (HemSeg-200 on RSNA 2019 layout)"
LABELS = {0: "background", 1: "hemorrhage"}
SET_NAME = "IPH_IVH"
DICOM_DIR = "stage_2_train"
SELECTION = "annotion_file_info.jsonl"
SPLITS = ("train", "train", "train", "val", "test")  # by case index modulo 5: 60/20/20
BLUR_MM = 0.35  # in-plane point-spread sigma of a soft-tissue reconstruction
MAX_SLICES = (24, 36)


def make_case(subject: Subject, *, shape: tuple[int, int, int] | None = None,
              spacing: tuple[float, float, float] | None = None) -> SynthCase:
    """Draw and render one head.

    ``shape`` (slices, rows, cols) and ``spacing`` (mm: slice, row, col) override the default
    512 x 512 grid with 24-36 slices covering skull base to vertex (for small test volumes);
    the head is then centred in the given slab.
    """
    rng = subject.rng()
    difficulty = subject.difficulty
    phantom = HeadPhantom(rng, age=subject.age, sex=subject.sex)
    scale = float(difficulty["size"] * rng.uniform(0.95, 1.04))
    angles = (rng.uniform(-5, 5), rng.uniform(-12, 6), rng.uniform(-4, 4))  # yaw, pitch, roll
    bottom = rng.uniform(-84.0, -72.0)  # model z of the lowest slice (skull base)
    top = phantom.axes[2] + phantom.skull_mm + phantom.scalp_mm + rng.uniform(0.0, 8.0)
    if spacing is None:
        fov = float(rng.choice([230.0, 240.0, 250.0]))
        dz = float(rng.choice([5.0, 5.0, 5.0, 4.8, 4.5]))
        cols = 512 if shape is None else shape[2]
        spacing = (dz, round(fov / cols, 6), round(fov / cols, 6))
    if shape is None:
        n = int(np.clip(np.ceil((top - bottom) * scale / spacing[0]) + 1, *MAX_SLICES))
        shape = (n, 512, 512)
    shape = tuple(int(s) for s in shape)
    spacing = tuple(float(s) for s in spacing)
    table = round(float(rng.uniform(-25.0, 10.0)), 1)
    z_first = round(float(rng.uniform(-40.0, 120.0)), 1)
    origin = (round(-shape[2] * spacing[2] / 2, 4), round(-shape[1] * spacing[1] / 2 + table, 4), z_first)
    grid = Grid(shape, spacing, origin)
    mid = np.array([grid.xs().mean(), grid.ys().mean(), grid.zs().mean()])
    centre = mid + np.array([rng.uniform(-6, 6), rng.uniform(-8, 6), -scale * (bottom + top) / 2])
    pose = Pose(centre=centre, rotation=rotation(*angles), scale=scale)
    bleeds = draw_bleeds(rng, phantom, pose, contrast=float(difficulty["contrast"]))

    volume, masks = render(phantom, grid, pose, bleeds)
    noise_sd = float(rng.uniform(3.0, 6.0)) * difficulty["noise"]
    volume = _scanner(volume, grid, rng, noise_sd)
    label = np.zeros(shape, np.int16)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    counted = []
    for mask in masks:
        new = mask & (label == 0)  # a voxel counts once (IPH first, then IVH)
        counted.append(int(new.sum()))
        label[mask] = 1
    image = Image(volume, spacing=spacing, origin=origin, metadata={"modality": "CT"})
    labels = make_label_map(label, LABELS, like=image)

    uid_seed = case_uid_seed(subject, NAME)
    slice_ids = _unique_ids(uid_seed, shape[0])
    params: dict[str, Any] = {
        "split": SPLITS[subject.index % len(SPLITS)], "patient_id": "ID_" + _hex(uid_seed, "patient", 8),
        "scan_id": _hex(uid_seed, "scan", 10), "n_slices": shape[0], "rows": shape[1], "cols": shape[2],
        "slice_spacing_mm": spacing[0], "pixel_spacing_mm": spacing[2],
        "head_scale": round(scale, 4), "atrophy": round(phantom.atrophy, 4),
        "cavity_width_mm": round(2 * phantom.axes[0] * scale, 2),
        "cavity_length_mm": round(2 * phantom.axes[1] * scale, 2),
        "skull_thickness_mm": round(phantom.skull_mm * scale, 2),
        "yaw_deg": round(angles[0], 2), "pitch_deg": round(angles[1], 2), "roll_deg": round(angles[2], 2),
        "head_centre_x_mm": round(centre[0], 2), "head_centre_y_mm": round(centre[1], 2),
        "head_centre_z_mm": round(centre[2], 2), "noise_sd_hu": round(noise_sd, 3), "blur_sigma_mm": BLUR_MM,
        "grey_matter_hu": round(phantom.hu["gm"], 2), "white_matter_hu": round(phantom.hu["wm"], 2),
        "csf_hu": round(phantom.hu["csf"], 2),
    }
    params.update(_bleed_params(bleeds, counted, voxel_ml, pose, phantom.hu["gm"]))
    return SynthCase(subject=subject, image=image, labels=labels, params=params,
                     extras={"slice_ids": slice_ids, "uid_seed": uid_seed, "bleeds": bleeds})


def _scanner(volume: np.ndarray, grid: Grid, rng: np.random.Generator, noise_sd: float) -> np.ndarray:
    """Noise shaped by the reconstruction kernel, which also blurs the anatomy; int16 HU.

    White noise is added before the in-plane Gaussian blur (sigma ``BLUR_MM``), so the noise
    grain is correlated like CT noise; its amplitude is set so that the sd after the blur is
    ``noise_sd``. Outside the reconstruction circle the value is -1024 (stored 0).
    """
    from scipy import ndimage

    sigma = BLUR_MM / grid.spacing[2]
    delta = np.zeros(33)
    delta[16] = 1.0
    kernel = ndimage.gaussian_filter1d(delta, sigma)
    gain = 1.0 / float((kernel ** 2).sum())  # variance kept by a 2D separable blur: (sum k^2)^2
    white = rng.random(volume.shape, dtype=np.float32)  # uniform: sd 1/sqrt(12), Gaussian after the blur
    volume += (white - np.float32(0.5)) * np.float32(noise_sd * gain * np.sqrt(12.0))
    for axis in (1, 2):
        volume = ndimage.gaussian_filter1d(volume, sigma, axis=axis, mode="nearest")
    rows, cols = grid.shape[1:]
    yy, xx = np.ogrid[:rows, :cols]
    outside = (yy - (rows - 1) / 2) ** 2 + (xx - (cols - 1) / 2) ** 2 > (min(rows, cols) / 2) ** 2
    volume[:, outside] = -1024
    return np.clip(np.rint(volume), -1024, 3071).astype(np.int16)


def _bleed_params(bleeds, counted, voxel_ml, pose: Pose, gm_hu: float) -> dict[str, Any]:
    present = [(b, c) for b, c in zip(bleeds, counted) if c > 0]
    iph = [c for b, c in present if b.kind == "iph"]
    ivh = [c for b, c in present if b.kind == "ivh"]
    out: dict[str, Any] = {
        "hemorrhage_count": len(present), "hemorrhage_volume_ml": round(sum(counted) * voxel_ml, 4),
        "iph_count": len(iph), "iph_volume_ml": round(sum(iph) * voxel_ml, 4),
        "ivh_present": int(bool(ivh)), "ivh_volume_ml": round(sum(ivh) * voxel_ml, 4),
        "hemorrhage_hu": round(float(np.mean([b.hu for b, _ in present])), 2) if present else 0.0,
        "hemorrhage_contrast_hu": round(float(np.mean([b.hu for b, _ in present])) - gm_hu, 2) if present else 0.0,
        "hemorrhage_sites": ";".join(f"{b.site}-{b.side}" for b, _ in present),
    }
    for i in range(3):
        b, c = (bleeds[i], counted[i]) if i < len(bleeds) else (None, 0)
        world = pose.world(b.centre) if b is not None else (np.nan,) * 3
        out.update({f"bleed{i + 1}_kind": b.kind if b else "", f"bleed{i + 1}_site": b.site if b else "",
                    f"bleed{i + 1}_side": b.side if b else "", f"bleed{i + 1}_volume_ml": round(c * voxel_ml, 4),
                    f"bleed{i + 1}_hu": round(b.hu, 2) if b else 0.0,
                    f"bleed{i + 1}_x_mm": round(float(world[0]), 2), f"bleed{i + 1}_y_mm": round(float(world[1]), 2),
                    f"bleed{i + 1}_z_mm": round(float(world[2]), 2)})
    return out


def _hex(seed: str, what: str, digits: int) -> str:
    """A deterministic hex id; never all digits or digits and one ``e`` (a table reader would
    turn ``12e456789`` into a number)."""
    text = hashlib.sha256(f"{seed}/{what}".encode()).hexdigest()[:digits]
    if not any(c in "abcdf" for c in text):
        text = text[:-1] + "abcdf"[int(text[-1], 16) % 5]
    return text


def _unique_ids(seed: str, n: int) -> list[str]:
    ids, k = [], 0
    while len(ids) < n:
        candidate = _hex(seed, f"slice/{k}", 9)
        if candidate not in ids:
            ids.append(candidate)
        k += 1
    return ids


# --- files ---------------------------------------------------------------------------------

def write_case(case: SynthCase, outdir: str | Path) -> dict[str, Any]:
    """RSNA slices, the label NIfTI of the split and the image NIfTI; returns metadata columns."""
    from radseg.io import write

    outdir = Path(outdir)
    params = case.params
    scan = params["scan_id"]
    ids = case.extras["slice_ids"]
    write_rsna_slices(case.image, outdir / DICOM_DIR, ids, patient_id=params["patient_id"],
                      uid_seed=case.extras["uid_seed"], patient=patient_attributes(case.subject))
    label_path = Path(SET_NAME) / params["split"] / "label" / f"{scan}.nii.gz"
    write(case.labels, outdir / label_path, kind="nifti")
    image_path = Path("nifti") / f"{scan}.nii.gz"
    write(case.image, outdir / image_path)
    return {"dicom_dir": DICOM_DIR, "slice_ids": " ".join(ids), "label_path": label_path.as_posix(),
            "image_path": image_path.as_posix()}


def write_rsna_slices(image: Image, folder: Path, ids: list[str], *, patient_id: str, uid_seed: str,
                      patient: dict[str, Any]) -> list[Path]:
    """One ``ID_<id>.dcm`` per slice (``ids`` in slice order) with the tags RSNA's files carry."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    from radseg.io.atomic import atomic_path
    from radseg.io.dicom_write import (
        CT_IMAGE_STORAGE,
        IMPLEMENTATION_CLASS_UID,
        make_uid,
    )

    stored = (image.array.astype(np.int32) + 1024).clip(0, 4095).astype(np.uint16)
    study, series, frame = (make_uid(uid_seed, part) for part in ("study", "series", "frame"))
    row_spacing, col_spacing = image.spacing[1], image.spacing[2]
    orientation = [*image.direction[:, 2], *image.direction[:, 1]]
    paths = []
    for k, slice_id in enumerate(ids):
        ds = Dataset()
        ds.SOPClassUID = CT_IMAGE_STORAGE
        ds.SOPInstanceUID = make_uid(uid_seed, "instance", k)
        ds.Modality = "CT"
        ds.PatientName = patient.get("name", "")
        ds.PatientID = patient_id
        ds.PatientSex = patient.get("sex", "")
        ds.PatientAge = f"{int(patient['age']):03d}Y" if patient.get("age") is not None else ""
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.StudyID = ""
        ds.ImagePositionPatient = [f"{v:.6f}" for v in image.index_to_world([k, 0, 0])]
        ds.ImageOrientationPatient = [f"{v:.6f}" for v in orientation]
        ds.SliceThickness = f"{image.spacing[0]:g}"
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = image.shape[1], image.shape[2]
        ds.PixelSpacing = [f"{row_spacing:.6f}", f"{col_spacing:.6f}"]
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.WindowCenter, ds.WindowWidth = "40", "80"
        ds.RescaleIntercept, ds.RescaleSlope = "-1024", "1"
        ds.PixelData = np.ascontiguousarray(stored[k]).tobytes()
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = ds.SOPClassUID
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
        ds.file_meta = meta
        path = folder / f"ID_{slice_id}.dcm"
        with atomic_path(path) as tmp:
            ds.save_as(tmp, enforce_file_format=True)
        paths.append(path)
    return paths


def finish(rows: list[dict[str, Any]], outdir: str | Path) -> Path:
    """``annotion_file_info.jsonl``: one line per scan, sorted by case id; refuses slice-id clashes."""
    from radseg.errors import WriteError
    from radseg.io.atomic import write_text_atomic

    outdir = Path(outdir)
    lines, owner = [], {}
    for row in sorted(rows, key=lambda r: r["case_id"]):
        slices = str(row["slice_ids"]).split()
        for slice_id in slices:
            if owner.setdefault(slice_id, row["case_id"]) != row["case_id"]:
                raise WriteError(outdir / DICOM_DIR / f"ID_{slice_id}.dcm",
                                 f"slice id shared by {owner[slice_id]} and {row['case_id']}")
        lines.append(json.dumps({"patient": row["patient_id"], "scan_": str(row["scan_id"]), "slice_list": slices}))
    write_text_atomic(outdir / SELECTION, "\n".join(lines) + "\n")
    return outdir / SELECTION


def preview(case: SynthCase) -> tuple[Image, Image]:
    """The axial slice with the most hemorrhage (mid slice when none), in a brain window (0-80 HU)."""
    per_slice = (case.labels.array > 0).sum(axis=(1, 2))
    k = int(np.argmax(per_slice)) if per_slice.any() else case.image.shape[0] // 2
    spacing = (float(case.image.spacing[1]), float(case.image.spacing[2]))
    grey = np.clip(case.image.array[k].astype(np.float32), 0.0, 80.0)
    meta = {"label_names": dict(LABELS)}
    return Image(grey, spacing=spacing), Image(case.labels.array[k], spacing=spacing, metadata=meta)
