"""FracAtlas (Abedeen et al., Sci Data 2023) in its official layout.

::

    images/Fractured/IMG0000019.jpg, images/Non_fractured/...
    Annotations/COCO JSON/COCO_fracture_masks.json   polygons per fracture (category id 0 or 1)
    dataset.csv                                       body-part, view and fracture flags per image
    Utilities/Fracture Split/{train,valid,test}.csv   the official split of the fractured images

Cases are the images of the official split (the fractured ones); ``negatives=True`` adds the
non-fractured images with empty masks, split per image with the seed, or with
``negative_split=nearest`` into the split of the fractured image whose number is nearest theirs:
the official splits are consecutive id ranges and neighbouring ids are often one patient's
images, so a seeded draw puts some of a valid patient's normal views into train. Each case gets a
semantic label map (label value k for the k-th category in id order, names from the JSON)
and one instance mask per annotation, rasterised exactly at pixel centres
(:mod:`radseg.datasets.polygons`). FracAtlas has no patient ids: every image is its own
"patient", so leakage between images of one patient (``multiscan``) cannot be checked.
The JPEGs are copied unchanged. Images the split or JSON list but the folders lack are
reported by name (the shared copy withholds the test split on purpose).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from radseg.datasets.base import (
    CaseRecord,
    DatasetReport,
    DatasetScan,
    Instance,
    Loaded,
    normalise_split,
    option_bool,
)
from radseg.errors import ReadError

NAME = "fracatlas"
BODY_PARTS = ("hand", "leg", "hip", "shoulder")
VIEWS = ("frontal", "lateral", "oblique")
FLAGS = ("hand", "leg", "hip", "shoulder", "mixed", "hardware", "multiscan", "fractured", "fracture_count",
         "frontal", "lateral", "oblique")
JSON_PATH = Path("Annotations") / "COCO JSON" / "COCO_fracture_masks.json"
SPLIT_DIR = Path("Utilities") / "Fracture Split"


NEGATIVE_SPLITS = ("seeded", "nearest")


def scan(root: Path, *, negatives: bool | str = False, negative_split: str = "seeded") -> DatasetScan:
    import pandas as pd

    negatives = option_bool(negatives, "negatives")
    if negative_split not in NEGATIVE_SPLITS:
        raise ValueError(f"option negative_split must be one of {', '.join(NEGATIVE_SPLITS)}, not {negative_split!r}")
    report = DatasetReport(dataset=NAME, root=str(root))
    if not (root / "images").is_dir():
        raise ReadError(root, "no images/ folder (images/Fractured, images/Non_fractured): is this the FracAtlas root?")
    table = _read_table(root / "dataset.csv", pd)
    coco = _read_json(root / JSON_PATH)
    categories = sorted(int(c["id"]) for c in coco.get("categories", []))
    if not categories:
        raise ReadError(root / JSON_PATH, "no categories")
    value_of = {cid: k for k, cid in enumerate(categories, start=1)}  # never assume the id (0 here, 1 elsewhere)
    label_names = {value_of[int(c["id"])]: str(c["name"]) for c in coco["categories"]}
    images = {str(entry["file_name"]): entry for entry in coco.get("images", [])}
    image_ids = {entry.get("id") for entry in images.values()}
    annotations: dict[Any, list[dict]] = defaultdict(list)
    for ann in coco.get("annotations", []):
        if ann.get("image_id") not in image_ids:
            report.skipped.append((f"annotation {ann.get('id')}", f"image id {ann.get('image_id')} not in images"))
            continue
        if int(ann.get("category_id", -1)) not in value_of:
            report.skipped.append((f"annotation {ann.get('id')}", f"category {ann.get('category_id')} not in categories"))
            continue
        annotations[ann.get("image_id")].append(ann)
    splits = _read_splits(root, pd)
    files = {p.name: p for folder in ("Fractured", "Non_fractured") for p in sorted((root / "images" / folder).glob("*"))}
    report.found = {"rows in dataset.csv": len(table), "images listed in the JSON": len(images),
                    "annotations": sum(len(v) for v in annotations.values()),
                    **{f"{s} split": sum(1 for v in splits.values() if v == s) for s in ("train", "val", "test")},
                    "image files": len(files)}

    selected = list(splits)
    derived: dict[str, str] = {}  # splits this adapter chose (nearest), not the dataset's
    for name in images:
        if name not in splits:
            report.warnings.append(f"{name} has annotations but is in no split file: added, split generated")
            selected.append(name)
    if negatives:
        normal = [n for n, row in table.items() if not int(row.get("fractured", 0)) and n not in splits and n not in images]
        selected += normal
        if negative_split == "nearest":
            derived = _nearest_splits(normal, splits)
            splits = {**splits, **derived}
    records = []
    for name in selected:
        row = table.get(name)
        if row is None:
            report.warnings.append(f"{name} is not in dataset.csv: no body-part or view metadata")
            row = {}
        _consistency(name, row, images, annotations, report)
        if name not in files:
            report.missing.append((name, f"listed in the {splits.get(name, 'annotation')} split" if name in splits
                                   else "a non-fractured image in dataset.csv"))
            continue
        entry = images.get(name)
        anns = annotations.get(entry["id"], []) if entry else []
        case_id = Path(name).stem
        records.append(CaseRecord(
            case_id=case_id, patient=case_id, split=splits.get(name), split_derived=name in derived,
            metadata=_metadata(row, len(anns)),
            sources=[str(files[name].relative_to(root))],
            load=lambda path=files[name], entry=entry, anns=anns: _load(path, entry, anns, value_of, label_names, root),
        ))
    report.warnings.append("FracAtlas has no patient ids: each image is treated as its own patient")
    return DatasetScan(
        name=NAME, records=records, label_names=label_names, report=report, modality="XR", dims=2,
        preset="fracture-xray",
        description="FracAtlas musculoskeletal radiographs with fracture polygons (CC BY 4.0, Abedeen et al. 2023)",
        source={"category_ids": {str(k): v for k, v in value_of.items()}, "negatives": negatives,
                **({"negative_split": negative_split} if negatives else {})},
    )


def image_number(name: str) -> int | None:
    """The id number of a FracAtlas image or case (``IMG0000019.jpg`` -> 19; the last run of digits), else None."""
    import re

    digits = re.findall(r"\d+", Path(name).stem)
    return int(digits[-1]) if digits else None


def _nearest_splits(names: list[str], splits: dict[str, str]) -> dict[str, str]:
    """``{name: split}``: each image joins the split of the officially split image numbered nearest it
    (ties: the lower number); names without a number keep a generated split."""
    import bisect

    official = sorted((n, s) for n, s in ((image_number(k), v) for k, v in splits.items()) if n is not None)
    if not official:
        return {}
    numbers = [n for n, _ in official]
    out = {}
    for name in names:
        number = image_number(name)
        if number is None:
            continue
        at = bisect.bisect_left(numbers, number)
        near = [i for i in (at - 1, at) if 0 <= i < len(numbers)]
        out[name] = official[min(near, key=lambda i: (abs(numbers[i] - number), numbers[i]))][1]
    return out


def _read_table(path: Path, pd) -> dict[str, dict[str, Any]]:
    if not path.exists():
        raise ReadError(path, "dataset.csv not found: is this the FracAtlas root folder?")
    try:
        frame = pd.read_csv(path)
    except Exception as exc:
        raise ReadError(path, f"unreadable CSV ({exc})") from None
    if "image_id" not in frame.columns:
        raise ReadError(path, f"no image_id column (columns: {', '.join(frame.columns)})")
    return {str(row["image_id"]): row for row in frame.to_dict("records")}


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReadError(path, "COCO annotation file not found") from None
    except (OSError, ValueError) as exc:
        raise ReadError(path, f"not a readable COCO JSON file ({exc})") from None


def _read_splits(root: Path, pd) -> dict[str, str]:
    splits: dict[str, str] = {}
    folder = root / SPLIT_DIR
    for stem in ("train", "valid", "test"):
        path = folder / f"{stem}.csv"
        if not path.exists():
            raise ReadError(path, "split file not found")
        frame = pd.read_csv(path)
        column = "image_id" if "image_id" in frame.columns else frame.columns[0]
        for name in frame[column].astype(str):
            if name in splits:
                raise ReadError(path, f"{name} is also in the {splits[name]} split")
            splits[name] = normalise_split(stem, where=str(path))
    return splits


def _consistency(name: str, row: dict, images: dict, annotations: dict, report: DatasetReport) -> None:
    """Warn where dataset.csv and the JSON disagree (the real files have one such image)."""
    entry = images.get(name)
    count = len(annotations.get(entry["id"], [])) if entry else 0
    if row and "fractured" in row and bool(int(row["fractured"])) != (count > 0):
        report.warnings.append(f"{name}: dataset.csv says fractured={int(row['fractured'])} but the JSON has "
                               f"{count} annotation(s); the annotations are used")
    if row and "fracture_count" in row and count and int(row["fracture_count"]) != count:
        report.warnings.append(f"{name}: fracture_count {int(row['fracture_count'])} but {count} annotation(s)")


def _metadata(row: dict[str, Any], n_annotations: int) -> dict[str, Any]:
    flags = {k: int(row[k]) for k in FLAGS if k in row and row[k] == row[k]}
    parts = [p for p in BODY_PARTS if flags.get(p)]
    body_part = "mixed" if flags.get("mixed") or len(parts) > 1 else parts[0] if parts else "unknown"
    views = [v for v in VIEWS if flags.get(v)]
    return {"body_part": body_part, "view": "+".join(views) or "unknown", **flags, "annotations": n_annotations}


def _load(path: Path, entry: dict | None, anns: list[dict], value_of: dict[int, int],
          label_names: dict[int, str], root: Path) -> Loaded:
    from radseg.datasets.polygons import parse_segmentation, polygon_mask
    from radseg.io import read
    from radseg.labels import make_label_map

    image = read(path)  # turned by its EXIF tag, as the annotators saw it in a browser
    warnings, image_file = [], path
    orientation = image.metadata.get("exif_orientation")
    if orientation is not None:
        # Two real FracAtlas images: store the turned pixels as PNG, without the tag.
        image_file = None
        warnings.append(f"EXIF orientation {orientation}: pixels turned as viewers show them (annotations "
                        "were drawn that way); stored as PNG")
    height, width = image.shape
    json_path = root / JSON_PATH
    if entry is not None and (int(entry["height"]), int(entry["width"])) != (height, width):
        raise ReadError(json_path, f"{path.name}: the JSON says {entry['width']}x{entry['height']} but the image "
                                   f"is {width}x{height} (mask shape does not match its image)")
    semantic = np.zeros((height, width), np.uint8)
    instances = []
    for ann in anns:
        value = value_of[int(ann["category_id"])]
        try:
            segmentation = parse_segmentation(ann.get("segmentation"))
            if isinstance(segmentation, dict):  # RLE: decode as COCO defines it
                from radseg.io.coco import _decode

                mask = _decode(segmentation, height, width, json_path, ann.get("id"))
            else:
                mask = np.zeros((height, width), bool)
                for polygon in segmentation:
                    mask |= polygon_mask(polygon, (height, width))
        except (ValueError, TypeError) as exc:
            raise ReadError(json_path, f"annotation {ann.get('id')} of {path.name}: unreadable segmentation ({exc})") from None
        if not mask.any():
            warnings.append(f"annotation {ann.get('id')} covers no pixel centre (polygon too thin or outside)")
        semantic[mask] = value
        instances.append(Instance(value=value, mask=mask, source_id=ann.get("id")))
    labels = make_label_map(image.with_array(semantic), label_names)
    return Loaded(image=image, labels=labels, instances=instances, image_file=image_file, warnings=warnings)
