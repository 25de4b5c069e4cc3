"""What the COCO and YOLO exporters share: 2D items (slices of 3D cases), 8-bit images, objects.

COCO and YOLO are 2D and their tools read 8-bit PNG/JPEG, so:

* a 2D case is one item; a 3D case gives one item per axial slice (array axis 0), named
  ``<case>_s<k>``, only the slices with labels by default (``slices="all"`` for every one);
* an image that is already an 8-bit JPEG/PNG file is copied unchanged; any other image is
  windowed to 8 bits (the dataset's ``window``, else its 0.5-99.5 percentiles) and written
  as PNG;
* the objects of an item are its instances when the prepared dataset has them (FracAtlas
  fractures), else the 8-connected components of each label.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from radseg.case import Case
from radseg.datasets.prepared import IMAGE, PreparedDataset
from radseg.image import Image
from radseg.io.atomic import atomic_path, full_suffix

__all__ = ["ExportResult", "Item", "export_split", "items", "objects", "progress_hooks", "write_8bit"]


@dataclass
class ExportResult:
    root: Path
    written: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass
class Item:
    """One 2D export unit: name, split, grey image, label map array, instances (value, mask) or None."""

    name: str
    split: str
    image: Image
    labels: np.ndarray
    instances: list[tuple[int, np.ndarray]] | None
    source: Path | None  # file to copy unchanged, when the image is already an 8-bit raster file
    multilabel: bool = False  # labels is a [H, W, C] class stack (class value = channel + 1), classes may overlap

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the item."""
        return tuple(int(s) for s in self.labels.shape[:2])  # type: ignore[return-value]

    def mask(self, value: int) -> np.ndarray:
        return self.labels[..., value - 1] if self.multilabel else self.labels == value


def export_split(case: Case) -> str:
    """The split a case is exported under: its own, or ``train`` for a case no split lists (hand-made folders)."""
    return case.split or "train"


def items(dataset: PreparedDataset, case: Case, *, slices: str = "labelled") -> Iterator[Item]:
    """The 2D items of one prepared case (see the module docstring); its arrays are freed afterwards."""
    try:
        yield from _items(dataset, case, slices)
    finally:
        case.unload()


def _items(dataset: PreparedDataset, case: Case, slices: str) -> Iterator[Item]:
    image, label_image = case.image, case.label
    labels, multi = label_image.array, label_image.channels is not None
    found = dataset.read_instances(case)
    instances = [(i.value, i.mask) for i in found] if found is not None else None
    if image.ndim == 2:
        source = case.sources[IMAGE]
        copyable = full_suffix(source) in (".jpg", ".jpeg", ".png") and image.array.dtype == np.uint8
        yield Item(case.case_id, export_split(case), image, labels, instances, source if copyable else None, multi)
        return
    window = _window(dataset, image.array)
    for k in range(image.shape[0]):
        if slices == "labelled" and not labels[k].any():
            continue
        plane = Image(image.array[k], spacing=image.spacing[1:], metadata={"window": window})
        sliced = [(v, m[k]) for v, m in instances] if instances is not None else None
        yield Item(f"{case.case_id}_s{k:04d}", export_split(case), plane, labels[k], sliced, None, multi)


def _window(dataset: PreparedDataset, array: np.ndarray) -> tuple[float, float]:
    window = dataset.info.get("window") or dataset.info.get("intensity_window")
    if window:
        return float(window[0]), float(window[1])
    low, high = np.percentile(array, [0.5, 99.5])
    return float(low), float(high) if high > low else float(low) + 1.0


def write_8bit(item: Item, target_stem: Path) -> Path:
    """The item's image as an 8-bit file: the source copied, else windowed PNG. Returns the path."""
    from PIL import Image as PILImage

    if item.source is not None:
        target = target_stem.with_name(target_stem.name + full_suffix(item.source))
        with atomic_path(target) as tmp:
            shutil.copyfile(item.source, tmp)
        return target
    array = item.image.array
    if item.image.channels is not None:
        array = array[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])  # grey, as PIL "L"
    if array.dtype == np.uint8:
        grey = array
    else:
        low, high = item.image.metadata.get("window") or np.percentile(array, [0.5, 99.5])
        scale = 255.0 / max(float(high) - float(low), 1e-6)
        grey = np.clip(np.rint((array.astype(np.float64) - float(low)) * scale), 0, 255).astype(np.uint8)
    target = target_stem.with_name(target_stem.name + ".png")
    with atomic_path(target) as tmp:
        PILImage.fromarray(np.ascontiguousarray(grey), mode="L").save(tmp, format="PNG")
    return target


def objects(item: Item, values: list[int]) -> list[tuple[int, np.ndarray]]:
    """(label value, mask) per object: the instances, else 8-connected components per label (per class of a
    multi-label stack, so overlapping classes give overlapping objects, as COCO allows)."""
    from scipy import ndimage

    if item.instances is not None:
        return [(v, m.astype(bool)) for v, m in item.instances if m.any()]
    found = []
    for value in values:
        components, _ = ndimage.label(item.mask(value), structure=np.ones((3, 3), int))
        for number, box in enumerate(ndimage.find_objects(components), start=1):
            if box is not None:
                found.append((value, components == number))
    return found


def progress_hooks(on_progress: Callable[[str], None] | None,
                   jobs_total: Callable[[int], None] | None, total: int) -> Callable[[str], None]:
    if jobs_total:
        jobs_total(total)
    return on_progress or (lambda _name: None)


def check_output(out: Path, marker: str, overwrite: bool, owned: tuple[str, ...]) -> None:
    """Use ``out`` only when empty, or when it holds an earlier export of this kind and ``overwrite``.

    An earlier export is cleared first (its ``owned`` entries only), so no stale file of it
    stays beside the new one (YOLO and nnU-Net read whole folders).
    """
    from radseg.errors import WriteError

    if not out.exists() or not any(out.iterdir()):
        return
    if not (out / marker).exists():
        raise WriteError(out, f"folder is not empty and holds no {marker} (not an earlier export); choose an empty folder")
    if not overwrite:
        raise WriteError(out, "holds an earlier export; use --overwrite to replace it")
    for name in owned:
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def safe_name(text: Any) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9_-]+", "_", str(text)).strip("_") or "dataset"
