"""2D segmentation results as COCO JSON (instance annotations with RLE masks).

One annotation per connected instance of each class (8-connectivity), with compressed
RLE ``segmentation``, ``bbox`` ``[x, y, w, h]`` and ``area`` computed by pycocotools, so
COCO tools read back exactly what radseg wrote. Category ids are the label values (1..C
for a multi-label mask); nothing assumes a particular first id (FracAtlas ships one copy
with category 0 and another with 1). Annotation ids count up across everything added to
one :class:`CocoWriter`, so a whole folder of results never repeats an id (a CXAS bug).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from radseg.errors import ReadError, WriteError
from radseg.image import Image
from radseg.io.atomic import full_suffix, write_text_atomic
from radseg.labels import is_multilabel, iter_classes, make_label_map, make_multilabel, require_label_map

__all__ = ["CocoWriter", "write_coco", "read_coco"]


def _mask_api():
    from pycocotools import mask as mask_api  # imported on use: radseg's start-up stays fast

    return mask_api


def _instances(mask: np.ndarray) -> list[dict[str, Any]]:
    """RLE, bbox and area of each 8-connected instance of ``mask``."""
    from scipy import ndimage

    mask_api = _mask_api()
    components, _ = ndimage.label(mask, structure=np.ones((3, 3), int))
    # One Fortran-ordered buffer reused per instance: only its bounding box is set and
    # cleared, instead of building a full-size mask for every speck of a noisy prediction.
    buffer = np.zeros(mask.shape, np.uint8, order="F")
    found = []
    for number, box in enumerate(ndimage.find_objects(components), start=1):
        if box is None:
            continue
        buffer[box] = components[box] == number
        rle = mask_api.encode(buffer)
        buffer[box] = 0
        found.append({
            "segmentation": {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")},
            "area": int(mask_api.area(rle)),
            "bbox": [float(x) for x in mask_api.toBbox(rle)],
        })
    return found


class CocoWriter:
    """Collect 2D results of many images and write them as one COCO JSON file.

    >>> writer = CocoWriter()
    >>> writer.add(labels, "case1.png")   # doctest: +SKIP
    >>> writer.write("results.json")      # doctest: +SKIP
    """

    def __init__(self) -> None:
        self.images: list[dict[str, Any]] = []
        self.annotations: list[dict[str, Any]] = []
        self.categories: dict[int, str] = {}
        self._next_annotation_id = 1

    def add(self, labels: Image, file_name: str, *, image_id: int | None = None) -> list[int]:
        """Add the label map or multi-label mask of one image; returns its annotation ids.

        ``image_id`` defaults to one more than the largest id so far. Nothing is added when
        the labels are refused (3D, a category id already used with another name, a file
        name or image id already added).
        """
        if labels.ndim != 2:
            raise WriteError(file_name, "COCO is 2D; write one image per slice")
        if not is_multilabel(labels):
            labels = require_label_map(labels, Path(file_name))
        if any(entry["file_name"] == file_name for entry in self.images):
            raise WriteError(file_name, "this file name was already added to the COCO file")
        if image_id is None:
            image_id = max((entry["id"] for entry in self.images), default=0) + 1
        elif any(entry["id"] == image_id for entry in self.images):
            raise WriteError(file_name, f"image id {image_id} is already used by another image")
        classes = list(iter_classes(labels, include_empty=True))
        for value, name, _ in classes:
            if self.categories.get(value, name) != name:
                raise WriteError(file_name, f"category id {value} is {self.categories[value]!r} in an earlier "
                                            f"image but {name!r} here; give every image the same label table")
        # Everything is computed before the writer changes, so a failure leaves it as it was.
        annotations = []
        for value, _, mask in classes:
            for instance in _instances(mask):
                annotations.append({"image_id": int(image_id), "category_id": int(value), "iscrowd": 0,
                                    **instance, "attributes": {"label_value": int(value)}})
        first = self._next_annotation_id
        for offset, annotation in enumerate(annotations):
            annotation["id"] = first + offset
        self._next_annotation_id = first + len(annotations)
        self.categories.update({value: name for value, name, _ in classes})
        height, width = labels.shape
        self.images.append({"id": int(image_id), "file_name": file_name, "width": int(width), "height": int(height)})
        self.annotations.extend(annotations)
        return [annotation["id"] for annotation in annotations]

    def to_dict(self) -> dict[str, Any]:
        """The COCO dataset as a JSON-ready dict."""
        return {
            "info": {"description": "segmentation results written by radseg", "version": "1.0"},
            "licenses": [],
            "images": list(self.images),
            "annotations": list(self.annotations),
            "categories": [{"id": int(i), "name": n, "supercategory": ""} for i, n in sorted(self.categories.items())],
        }

    def write(self, path: str | Path) -> Path:
        """Write everything added so far to ``path`` (.json), atomically."""
        path = Path(path)
        if full_suffix(path) != ".json":
            raise WriteError(path, f"a COCO file is .json, got {full_suffix(path) or '(no suffix)'}")
        write_text_atomic(path, json.dumps(self.to_dict()))
        return path


def write_coco(labels: Image, path: str | Path, *, file_name: str) -> Path:
    """Write the labels of one image as a COCO JSON file (``file_name`` names the image)."""
    writer = CocoWriter()
    writer.add(labels, file_name)
    return writer.write(path)


def _decode(segmentation: Any, height: int, width: int, path: Path, ann_id: Any) -> np.ndarray:
    """A bool mask from RLE (compressed or not) or polygons, as COCO files carry them."""
    mask_api = _mask_api()
    try:
        if isinstance(segmentation, list):  # polygons (FracAtlas and most annotation tools)
            rle = mask_api.merge(mask_api.frPyObjects(segmentation, height, width))
        elif isinstance(segmentation.get("counts"), list):  # uncompressed RLE
            rle = mask_api.frPyObjects(segmentation, height, width)
        else:
            rle = segmentation
        if list(rle["size"]) != [height, width]:
            raise ValueError(f"mask size {list(rle['size'])} but the image is {height}x{width}")
        with warnings.catch_warnings():  # pycocotools' own numpy-2 deprecation noise, not the user's problem
            warnings.simplefilter("ignore", DeprecationWarning)
            return mask_api.decode(rle).astype(bool)
    except (ValueError, TypeError, KeyError, AttributeError, IndexError) as exc:
        raise ReadError(path, f"annotation {ann_id}: unreadable segmentation ({exc})") from None


def read_coco(path: str | Path, *, file_name: str | None = None) -> Image:
    """The annotations of one image of a COCO file as a label map or a multi-label mask.

    A label map (values = category ids) when no two categories overlap and every id is
    at least 1; otherwise a multi-label mask with one class per category in id order
    (``metadata["category_ids"]`` keeps the ids). Names come from the categories; pixels
    are 1 mm with ``spacing_known`` False (COCO has no pixel size). ``file_name`` picks
    the image when the file holds several.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        images, categories = data["images"], {int(c["id"]): str(c["name"]) for c in data.get("categories", [])}
        annotations = data.get("annotations", [])
    except FileNotFoundError:
        raise ReadError(path, "no such file") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ReadError(path, f"not a COCO JSON file ({exc})") from None
    if file_name is None:
        if len(images) != 1:
            raise ReadError(path, f"{len(images)} images in this COCO file; pass file_name= to pick one")
        entry = images[0]
    else:
        matches = [e for e in images if e.get("file_name") == file_name] or \
                  [e for e in images if Path(str(e.get("file_name", ""))).name == Path(file_name).name]
        if len(matches) != 1:
            known = ", ".join(str(e.get("file_name")) for e in images[:5])
            raise ReadError(path, f"{len(matches)} images named {file_name!r} (first names: {known})")
        entry = matches[0]
    try:
        height, width, image_id = int(entry["height"]), int(entry["width"]), entry["id"]
    except (KeyError, TypeError, ValueError) as exc:
        raise ReadError(path, f"image entry without id/width/height ({exc})") from None

    masks = {cid: np.zeros((height, width), bool) for cid in categories}
    for ann in annotations:
        if ann.get("image_id") != image_id:
            continue
        cid = int(ann.get("category_id", -1))
        if cid not in masks:
            raise ReadError(path, f"annotation {ann.get('id')} has category {cid}, which is not in categories")
        masks[cid] |= _decode(ann.get("segmentation"), height, width, path, ann.get("id"))

    ids = sorted(masks)
    meta = {"format": "coco", "source_files": [str(path)], "file_name": entry.get("file_name"),
            "problems": ["COCO stores no pixel size: no physical pixel size, lengths are in px"]}
    like = Image(np.broadcast_to(np.zeros((), bool), (height, width)), spacing=None, metadata=meta)
    cover = sum((masks[c].astype(np.uint16) for c in ids), np.zeros((height, width), np.uint16))
    if min(ids, default=1) >= 1 and cover.max(initial=0) <= 1:
        top = max(ids, default=0)
        dtype = np.uint8 if top <= 255 else np.uint16 if top <= 65535 else np.int32
        array = np.zeros((height, width), dtype)
        for cid in ids:
            array[masks[cid]] = cid
        return make_label_map(like.with_array(array), {cid: categories[cid] for cid in ids})
    stack = np.stack([masks[c] for c in ids])
    result = make_multilabel(stack, [categories[c] for c in ids], like=like)
    result.metadata["category_ids"] = ids
    return result
