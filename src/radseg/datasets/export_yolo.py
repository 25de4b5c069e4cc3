"""A prepared dataset in Ultralytics' YOLO segmentation layout.

::

    OUT/dataset.yaml                 path, train/val/test image folders, names {0: ..., 1: ...}
    OUT/images/<split>/<item>.png|jpg
    OUT/labels/<split>/<item>.txt    one line per object piece: class x1 y1 x2 y2 ... (0-1)

Class k is the k-th label value in ascending order (``names`` lists them). Each 8-connected
piece of an object is one polygon line (YOLO has no multi-part objects or holes); an image
without objects gets an empty file, which Ultralytics treats as a background image.
Coordinates are COCO pixel coordinates divided by the width and height.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from radseg.datasets.export_common import (
    ExportResult,
    check_output,
    items,
    objects,
    progress_hooks,
    write_8bit,
)
from radseg.datasets.polygons import mask_to_polygons
from radseg.datasets.prepared import open_prepared
from radseg.errors import RadsegError
from radseg.io.atomic import write_text_atomic

__all__ = ["export", "polygon_lines"]


def export(prepared: str | Path, out: str | Path, *, slices: str = "labelled", tolerance: float = 0.0,
           overwrite: bool = False, on_progress: Callable[[str], None] | None = None,
           jobs_total: Callable[[int], None] | None = None) -> ExportResult:
    """Write ``prepared`` as a YOLO segmentation dataset to ``out``."""
    dataset = open_prepared(prepared)
    out = Path(out)
    check_output(out, "dataset.yaml", overwrite, ("dataset.yaml", "images", "labels"))
    result = ExportResult(root=out)
    values = sorted(dataset.label_names)
    classes = {v: k for k, v in enumerate(values)}
    splits_seen: set[str] = set()
    tick = progress_hooks(on_progress, jobs_total, len(dataset.cases))
    for case in dataset.cases:
        tick(case.case_id)
        try:
            for item in items(dataset, case, slices=slices):
                height, width = item.size
                lines = [line for value, mask in objects(item, values)
                         for line in polygon_lines(mask, classes[value], width, height, tolerance=tolerance)]
                write_8bit(item, out / "images" / item.split / item.name)
                write_text_atomic(out / "labels" / item.split / f"{item.name}.txt", "".join(f"{l}\n" for l in lines))
                splits_seen.add(item.split)
            result.written += 1
        except RadsegError as exc:
            result.failed.append((case.case_id, str(exc)))
        except Exception as exc:  # keep the batch going
            result.failed.append((case.case_id, f"{type(exc).__name__}: {exc}"))
    if "val" not in splits_seen:
        result.warnings.append("no val split: Ultralytics needs one (prepare with a val fraction > 0)")
    lines = [f"path: {json.dumps(str(out.resolve()))}"]
    lines += [f"{split}: images/{split}" for split in ("train", "val", "test") if split in splits_seen]
    lines.append("names:")
    lines += [f"  {classes[v]}: {json.dumps(dataset.label_names[v])}" for v in values]
    write_text_atomic(out / "dataset.yaml", "\n".join(lines) + "\n")
    return result


def polygon_lines(mask, cls: int, width: int, height: int, *, tolerance: float = 0.0) -> list[str]:
    """YOLO lines of one object mask: ``cls x1 y1 ...`` normalised to 0-1, one per piece."""
    lines = []
    for polygon in mask_to_polygons(mask, tolerance=tolerance):
        coords = [min(max(v / (width if i % 2 == 0 else height), 0.0), 1.0) for i, v in enumerate(polygon)]
        lines.append(f"{cls} " + " ".join(f"{c:.6f}" for c in coords))
    return lines
