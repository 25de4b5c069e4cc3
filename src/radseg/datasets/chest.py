"""Chest radiograph datasets with anatomy masks: JSRT/SCR, Shenzhen lungs, CXAS output folders.

Layouts::

    jsrt-scr   ROOT/images/JPC*.png (1024x1024 8-bit, 0.35 mm pixels by the dataset's papers)
               ROOT/masks/{heart,left_lung,right_lung,left_clavicle,right_clavicle}/JPC*.png (0/255)
    shenzhen   ROOT/{train,valid,test}/{images,masks}/CHNCXR_<id>_<0|1>.jpg (RGB JPEG, lossy masks,
               both lungs as one region; the official split is the folder)
    cxas       ROOT/images/<case>.<any image>; ROOT/masks/<case>/<class name>.png (0/255 or 0/1),
               the per-class layout ``cxas_segment -ot png`` writes (and radseg's ``png-classes``)

SCR masks overlap (the heart lies over both lungs), so JSRT/SCR and CXAS are **multi-label**:
one bool channel per class. "left"/"right" are the patient's sides as SCR defines them
(the patient's left lung is on the image's right in a PA view). Shenzhen has one region,
``lungs``, a plain label map. Mask JPEGs are lossy: thresholded at 127 as the data's README says.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from radseg.datasets.base import (CaseRecord, DatasetReport, DatasetScan, Loaded, default_metadata_path,
                                 normalise_split, read_metadata_table)
from radseg.errors import ReadError
from radseg.image import Image, to_grey
from radseg.io.atomic import full_suffix, strip_suffix

__all__ = ["SCR_CLASSES", "JSRT_SPACING_MM", "scan_jsrt_scr", "scan_shenzhen", "scan_cxas"]

#: Class name -> SCR mask folder. Names follow CXAS's spelling ("left lung" = patient's left).
SCR_CLASSES = {"heart": "heart", "right lung": "right_lung", "left lung": "left_lung",
               "right clavicle": "right_clavicle", "left clavicle": "left_clavicle"}
#: JSRT originals are 2048 px at 0.175 mm; the SCR masks (and the images here) are 1024 px.
JSRT_SPACING_MM = 0.35
_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".dcm", ".nii", ".nii.gz", ".mha", ".nrrd"}


def _grey(path: Path) -> Image:
    """A raster as one grey channel (Shenzhen JPEGs are stored as RGB with equal channels)."""
    from radseg.io import read

    return to_grey(read(path))


def _mask(path: Path, *, lossy: bool = False) -> np.ndarray:
    """A 0/255 (or 0/1) mask file as bool; JPEG masks are cut at 127 (their edges are smeared)."""
    pixels = np.asarray(_grey(path).array)
    return pixels > 127 if lossy else pixels > 0


def _with_spacing(image: Image, spacing: float, source: str) -> Image:
    meta = {**image.metadata, "spacing_known": True, "spacing_source": source}
    problems = [p for p in meta.get("problems", []) if "pixel size" not in p and "spacing" not in p]
    meta["problems"] = problems
    return Image(image.array, spacing=(spacing, spacing), metadata=meta)


# --- JSRT / SCR --------------------------------------------------------------------------------

def scan_jsrt_scr(root: Path) -> DatasetScan:
    report = DatasetReport(dataset="jsrt-scr", root=str(root))
    image_dir = root / "images"
    if not image_dir.is_dir():
        raise ReadError(image_dir, "no images/ folder (expected images/JPC*.png and masks/<structure>/JPC*.png)")
    folders = {name: root / "masks" / sub for name, sub in SCR_CLASSES.items()}
    absent = [str(p.relative_to(root)) for p in folders.values() if not p.is_dir()]
    if absent:
        raise ReadError(root, f"SCR mask folder(s) missing: {', '.join(absent)}")
    images = {strip_suffix(p): p for p in sorted(image_dir.glob("*.png")) if not p.name.startswith(".")}
    masks = {name: {strip_suffix(p) for p in folder.glob("*.png")} for name, folder in folders.items()}
    report.found = {"images": len(images), **{f"{n} masks": len(m) for n, m in masks.items()}}
    records = []
    for stem, path in images.items():
        lacking = [n for n, have in masks.items() if stem not in have]
        if lacking:
            report.skipped.append((f"images/{path.name}", f"no {', '.join(lacking)} mask"))
            continue
        files = [folders[n] / f"{stem}.png" for n in SCR_CLASSES]
        records.append(CaseRecord(
            case_id=stem, patient=stem,  # JSRT has one radiograph per patient
            metadata={"nodule": stem.startswith("JPCLN")},
            sources=[str(path.relative_to(root))] + [str(f.relative_to(root)) for f in files],
            load=lambda p=path, f=files: _load_scr(p, f)))
    for name, have in masks.items():
        for stem in sorted(have - set(images)):
            report.missing.append((f"images/{stem}.png", f"the SCR {name} mask exists"))
    return DatasetScan(
        name="jsrt-scr", records=records, label_names=dict(enumerate(SCR_CLASSES, start=1)), report=report,
        modality="XR", dims=2, preset="cxr-anatomy", multilabel=True,
        description="JSRT chest radiographs with SCR masks of heart, lungs and clavicles (multi-label)",
        source={"spacing_mm": JSRT_SPACING_MM,
                "terms": "JSRT: research and education use; SCR: research use (credit both papers)"})


def _load_scr(image_path: Path, mask_paths: list[Path]) -> Loaded:
    from radseg.labels import make_multilabel

    image = _with_spacing(_grey(image_path), JSRT_SPACING_MM, "JSRT/SCR papers: 0.35 mm at 1024 px")
    stack = []
    for path in mask_paths:
        mask = _mask(path)
        if mask.shape != image.shape:
            raise ReadError(path, f"mask is {mask.shape} but the image is {image.shape}")
        stack.append(mask)
    return Loaded(image=image, labels=make_multilabel(np.stack(stack), list(SCR_CLASSES), like=image))


# --- Shenzhen ----------------------------------------------------------------------------------

_SHENZHEN = re.compile(r"^(CHNCXR_\d+)_([01])$")


def scan_shenzhen(root: Path) -> DatasetScan:
    report = DatasetReport(dataset="shenzhen", root=str(root))
    records = []
    split_dirs = [d for d in sorted(root.iterdir()) if d.is_dir() and (d / "images").is_dir()] if root.is_dir() else []
    if not split_dirs:
        raise ReadError(root, "no <split>/images folders (expected {train,valid,test}/{images,masks}/CHNCXR_*.jpg)")
    for split_dir in split_dirs:
        split = normalise_split(split_dir.name, where=str(split_dir))
        mask_dir = split_dir / "masks"
        for path in sorted(p for p in (split_dir / "images").iterdir() if p.is_file() and not p.name.startswith(".")):
            stem = strip_suffix(path)
            mask = next((m for m in sorted(mask_dir.glob(f"{stem}.*")) if strip_suffix(m) == stem), None)
            if mask is None:
                report.skipped.append((str(path.relative_to(root)), "image without a lung mask of the same name"))
                continue
            match = _SHENZHEN.match(stem)
            records.append(CaseRecord(
                case_id=stem, patient=match.group(1) if match else stem, split=split,
                metadata={"tuberculosis": bool(int(match.group(2)))} if match else {},
                sources=[str(path.relative_to(root)), str(mask.relative_to(root))],
                load=lambda p=path, m=mask: _load_shenzhen(p, m)))
    report.found = {"cases": len(records)}
    report.warnings.append("Shenzhen images were squashed to 512x512 (aspect ratio not kept) and have no pixel size: "
                           "sizes are in px")
    return DatasetScan(
        name="shenzhen", records=records, label_names={1: "lungs"}, report=report, modality="XR", dims=2,
        preset="xray-2d", description="Shenzhen chest radiographs with lung masks (both lungs as one region)",
        source={"terms": "attribution: cite Jaeger et al. 2014 and Candemir et al. 2014"})


def _load_shenzhen(image_path: Path, mask_path: Path) -> Loaded:
    from radseg.labels import make_label_map

    image = _grey(image_path)
    mask = _mask(mask_path, lossy=True)  # 0/255 masks, stored as JPEG: cut at mid-grey whatever the format
    if mask.shape != image.shape:
        raise ReadError(mask_path, f"mask is {mask.shape} but the image is {image.shape}")
    return Loaded(image=image, labels=make_label_map(mask.astype(np.uint8), {1: "lungs"}, like=image))


# --- CXAS output folders ------------------------------------------------------------------------

def scan_cxas(root: Path, *, images: str = "images", masks: str | None = None,
              metadata: str | None = None) -> DatasetScan:
    """Per-class mask folders; an optional metadata CSV (case, patient, split, subgroups) as for ``folder``."""

    report = DatasetReport(dataset="cxas", root=str(root))
    image_dir = root / images
    mask_dir = root / masks if masks else next((root / d for d in ("masks", "labels") if (root / d).is_dir()), root / "masks")
    for folder, option in ((image_dir, "images"), (mask_dir, "masks")):
        if not folder.is_dir():
            raise ReadError(folder, f"folder not found (option {option}=NAME picks another)")
    image_files = {strip_suffix(p): p for p in sorted(image_dir.iterdir())
                   if not p.name.startswith(".") and (p.is_dir() or full_suffix(p) in _IMAGE_SUFFIXES)}
    from radseg.io.label_png import class_folder_names, is_class_folder

    case_dirs = {p.name: p for p in sorted(mask_dir.iterdir()) if not p.name.startswith(".") and is_class_folder(p)}
    if not case_dirs:
        raise ReadError(mask_dir, "no <case>/<class>.png mask folders found")
    class_names = class_folder_names(next(iter(case_dirs.values())))  # dataset order: the first case's
    table = read_metadata_table(Path(metadata) if metadata else default_metadata_path(root))
    report.found = {"images": len(image_files), "mask folders": len(case_dirs), "classes": len(class_names)}
    records = []
    for stem, path in image_files.items():
        if stem not in case_dirs:
            report.skipped.append((str(path.relative_to(root)), "image without a mask folder of the same name"))
            continue
        row = dict(table.get(stem, {}))
        split = row.pop("split", None)
        records.append(CaseRecord(
            case_id=stem, patient=str(row.pop("patient", None) or stem), metadata=row,
            split=normalise_split(split, where=f"metadata row {stem}") if split else None,
            sources=[str(path.relative_to(root)), str(case_dirs[stem].relative_to(root))],
            load=lambda p=path, d=case_dirs[stem]: _load_cxas(p, d, class_names)))
    for stem in sorted(set(case_dirs) - set(image_files)):
        report.skipped.append((str(case_dirs[stem].relative_to(root)), "mask folder without an image"))
    return DatasetScan(
        name="cxas", records=records, label_names=dict(enumerate(class_names, start=1)), report=report,
        modality="XR", dims=2, preset="chest-xray", multilabel=True,
        description=f"chest radiographs with per-class masks ({len(class_names)} classes, CXAS layout)")


def _load_cxas(image_path: Path, case_dir: Path, class_names: list[str]) -> Loaded:
    from radseg.io import read
    from radseg.io.label_png import read_class_pngs
    from radseg.labels import make_multilabel

    image = read(image_path)
    masks = read_class_pngs(case_dir)
    names = list(masks.metadata["class_names"])
    absent = [n for n in class_names if n not in names]
    if absent:
        raise ReadError(case_dir, f"class mask(s) missing: {', '.join(absent[:5])} (the dataset's classes come from "
                                  "the first case)")
    if masks.shape != image.shape[:2]:
        raise ReadError(case_dir, f"masks are {masks.shape} but the image is {image.shape}")
    stack = np.stack([np.asarray(masks.array[..., names.index(n)], bool) for n in class_names])
    return Loaded(image=image, labels=make_multilabel(stack, class_names, like=image))
