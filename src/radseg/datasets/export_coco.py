"""A prepared dataset as COCO instance segmentation: ``images/<split>/`` + ``annotations/instances_<split>.json``.

One annotation per object (:func:`radseg.datasets.export_common.objects`): compressed RLE by
default (exact, holes kept), or ``polygons=True`` for tools that only take polygons (one
outer polygon per connected piece, holes filled). ``category_id`` is the label value and
``bbox``/``area`` come from the mask, so ``pycocotools`` and Detectron2/MMDetection load it
as is. ``file_name`` is relative to ``images/<split>/``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from radseg.datasets.export_common import (
    ExportResult,
    check_output,
    items,
    objects,
    progress_hooks,
    write_8bit,
)
from radseg.datasets.prepared import open_prepared
from radseg.errors import RadsegError
from radseg.io.atomic import write_text_atomic

__all__ = ["annotation", "export"]


def export(prepared: str | Path, out: str | Path, *, polygons: bool = False, slices: str = "labelled",
           overwrite: bool = False, on_progress: Callable[[str], None] | None = None,
           jobs_total: Callable[[int], None] | None = None) -> ExportResult:
    """Write ``prepared`` as COCO to ``out``; a case that fails is reported, the rest are written."""
    dataset = open_prepared(prepared)
    out = Path(out)
    check_output(out, "annotations", overwrite, ("annotations", "images"))
    result = ExportResult(root=out)
    values = sorted(dataset.label_names)
    categories = [{"id": v, "name": dataset.label_names[v], "supercategory": dataset.info.get("name", "")} for v in values]
    collected: dict[str, dict[str, list]] = {}
    tick = progress_hooks(on_progress, jobs_total, len(dataset.cases))
    image_ids = iter(range(1, 10**9))
    for case in dataset.cases:
        tick(case.case_id)
        try:
            found = []  # the case's (split, image entry, annotations), committed only when all went well
            for item in items(dataset, case, slices=slices):
                image_path = write_8bit(item, out / "images" / item.split / item.name)
                height, width = item.size
                entry = {"id": next(image_ids), "file_name": image_path.name, "width": int(width),
                         "height": int(height), "radseg_case": case.case_id}
                anns = []
                for value, mask in objects(item, values):
                    ann = annotation(mask, polygons=polygons)
                    ann.update(image_id=entry["id"], category_id=int(value), iscrowd=0)
                    anns.append(ann)
                found.append((item.split, entry, anns))
            for split, entry, anns in found:
                content = collected.setdefault(split, {"images": [], "annotations": []})
                content["images"].append(entry)
                content["annotations"].extend(anns)
            result.written += 1
        except RadsegError as exc:
            result.failed.append((case.case_id, str(exc)))
        except Exception as exc:  # keep the batch going
            result.failed.append((case.case_id, f"{type(exc).__name__}: {exc}"))
    next_id = 1
    for split, content in sorted(collected.items()):
        for ann in content["annotations"]:  # ids unique across all splits
            ann["id"] = next_id
            next_id += 1
        data = {"info": {"description": dataset.info.get("description") or dataset.info.get("name", ""),
                         "version": "1.0", "contributor": "radseg datasets export"},
                "licenses": [], "images": content["images"], "annotations": content["annotations"],
                "categories": categories}
        write_text_atomic(out / "annotations" / f"instances_{split}.json", json.dumps(data))
    return result


def annotation(mask: np.ndarray, *, polygons: bool = False) -> dict[str, Any]:
    """``segmentation``, ``area`` and ``bbox`` ``[x, y, w, h]`` of one object mask."""
    from pycocotools import mask as mask_api

    rle = mask_api.encode(np.asfortranarray(mask.astype(np.uint8)))
    entry: dict[str, Any] = {"area": float(mask_api.area(rle)), "bbox": [float(v) for v in mask_api.toBbox(rle)]}
    if polygons:
        from radseg.datasets.polygons import mask_to_polygons

        entry["segmentation"] = mask_to_polygons(mask)
    else:
        entry["segmentation"] = {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}
    return entry
