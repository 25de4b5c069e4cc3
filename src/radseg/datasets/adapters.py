"""The dataset adapter and exporter registries, and :func:`scan_dataset` (run one adapter, write nothing)."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from typing import Any

from radseg.registry import Registry

__all__ = ["DATASETS", "EXPORTERS", "Adapter", "scan_dataset"]


@dataclass(frozen=True)
class Adapter:
    name: str
    summary: str
    expects: str
    module: str
    options: dict[str, str] = field(default_factory=dict)
    function: str = "scan"


DATASETS: Registry[Adapter] = Registry("dataset adapter")
for _adapter in (
    Adapter(
        "fracatlas", "FracAtlas fracture radiographs (JPEG, COCO polygons, body-part flags, official split)",
        "images/{Fractured,Non_fractured}/IMG*.jpg; Annotations/COCO JSON/COCO_fracture_masks.json; "
        "dataset.csv (hand, leg, hip, shoulder, mixed, hardware, multiscan, fractured, fracture_count, frontal, "
        "lateral, oblique); Utilities/Fracture Split/{train,valid,test}.csv",
        "radseg.datasets.fracatlas",
        {"negatives": "also the non-fractured images, with empty masks (split generated per image); default false",
         "negative_split": "seeded (default: a seeded draw per image) or nearest (the split of the fractured image "
                           "numbered nearest: keeps a patient's neighbouring normal views out of the other splits)"},
    ),
    Adapter(
        "hexai-kneehip", "HexAI-KneeHipBoneSeg knee/hip radiographs (OAI DICOM, NIfTI masks, subject metadata)",
        "{Knee,Hip}/Images/<id>.dcm; {Knee,Hip}/Annotations/<id>.nii.gz (mask transposed against the image, "
        "possibly 3D with one labelled slice), or images/ + masks/ (the knee-xray/hip-xray phantoms); a metadata "
        "table (.xlsx/.csv) with id, P02SEX, P02RACE, V00AGE",
        "radseg.datasets.hexai",
        {"anatomy": "knee or hip (the label tables differ; found by itself when the root has only Knee/ or only Hip/)",
         "metadata": "path of the metadata table (default: the one .xlsx/.csv found under the root)"},
    ),
    Adapter(
        "hemseg", "HemSeg-200 brain-CT hemorrhage (RSNA DICOM slices, JSONL selection, NIfTI labels)",
        "RSNA slices ID_<hex>.dcm anywhere under the root; annotion_file_info.jsonl (or _500 variant); "
        "labels <set>/<split>/label/<scan>.nii.gz, extracted or inside .zip files",
        "radseg.datasets.hemseg",
        {"selection": "the JSONL selection file (default: annotion_file_info*.jsonl under the root)"},
    ),
    Adapter(
        "brain-ct-slices", "BHSD and CT-ICH head-CT slices (windowed 8-bit PNG/JPEG, colour haemorrhage masks, 2D)",
        "bhsd-*/{images,masks}/<scan:3><slice:3>.png (EDH red, IPH blue, IVH yellow, SAH cyan, SDH green); "
        "ctich-*/images/<n>.jpg, ctich-*/masks/<n>.{png,jpg} (210,80,0 = haemorrhage); the root holds both "
        "subsets or is one of them",
        "radseg.datasets.brain_slices",
        {"labels": "any (default: one class hemorrhage, both subsets) or types (BHSD's 1 EDH, 2 IPH, 3 IVH, "
                   "4 SAH, 5 SDH; CT-ICH slices left out and reported)"},
    ),
    Adapter(
        "tha", "THA hip CT (DICOM PA*/ST*/SE* series, per-slice PNG masks of femoral head and acetabulum)",
        "PA<n>/ST<n>/SE<n>/ DICOM series; masks <folder>/{left,right}/masks/{fem,ace}/%05d.png (0/255, image "
        "halves, THA slice index), the folder named by its PA/ST/SE ids or paired in a dicom_dir,masks_dir CSV",
        "radseg.datasets.tha",
        {"pairs": "CSV with dicom_dir and masks_dir columns (default: metadata.csv under the root, if it has them)",
         "index_order": "tha (default: index 0 = last slice along the normal, as THA's reversed GDCM order) or position"},
    ),
    Adapter(
        "jsrt-scr", "JSRT chest radiographs with SCR masks: heart, lungs, clavicles (multi-label, 0.35 mm)",
        "images/JPC*.png (1024x1024); masks/{heart,left_lung,right_lung,left_clavicle,right_clavicle}/JPC*.png",
        "radseg.datasets.chest", function="scan_jsrt_scr",
    ),
    Adapter(
        "shenzhen", "Shenzhen chest radiographs with lung masks (one region, official split by folder)",
        "{train,valid,test}/{images,masks}/CHNCXR_<id>_<0|1>.jpg (masks thresholded at 127)",
        "radseg.datasets.chest", function="scan_shenzhen",
    ),
    Adapter(
        "cxas", "chest radiographs with per-class masks in the CXAS layout (multi-label)",
        "images/<case>.<ext>; masks/<case>/<class name>.png (what cxas_segment -ot png writes)",
        "radseg.datasets.chest", {"images": "image folder name (default images)",
                                  "masks": "mask folder name (default masks, else labels)",
                                  "metadata": "metadata CSV (case, patient, split, subgroup columns)"},
        function="scan_cxas",
    ),
    Adapter(
        "folder", "any images + masks matched by file stem, any readable format, optional metadata CSV",
        "images/<case>.<any readable format or DICOM folder>; masks/<case>.<png|nii.gz|npy|npz|...> "
        "(or labels/); optional metadata CSV with a case column (+ patient, split, subgroup columns)",
        "radseg.datasets.folder",
        {"images": "image folder name (default images)", "masks": "mask folder name (default masks, else labels)",
         "metadata": "metadata CSV path", "labels": "label table, e.g. 1=femur,2=tibia (default: values found)",
         "binary": "true: any non-zero mask value is label 1 (0/255 masks)", "modality": "e.g. CT, X-ray"},
    ),
):
    DATASETS.register(_adapter.name, _adapter)

#: Export target -> module with ``export(prepared, out, **options)``.
EXPORTERS: Registry[str] = Registry("export format")
EXPORTERS.register("nnunet", "radseg.datasets.export_nnunet")
EXPORTERS.register("coco", "radseg.datasets.export_coco")
EXPORTERS.register("yolo", "radseg.datasets.export_yolo")


def scan_dataset(name: str, root: str | Path, **options: Any):
    """Run adapter ``name`` on ``root``: a :class:`~radseg.datasets.base.DatasetScan` (nothing written)."""
    adapter = DATASETS[name]
    unknown = sorted(set(options) - set(adapter.options))
    if unknown:
        valid = ", ".join(adapter.options) or "none"
        raise ValueError(f"adapter {name!r} has no option {', '.join(unknown)} (valid: {valid})")
    return getattr(import_module(adapter.module), adapter.function)(Path(root), **options)
