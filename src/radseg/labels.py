"""Label maps and multi-label masks: the two shapes a segmentation takes in radseg.

* A **label map** is an :class:`~radseg.image.Image` with an integer (or bool) array, one
  value per pixel/voxel, 0 = background, and ``metadata["label_names"]``: ``{value: name}``.
* A **multi-label mask** (classes may overlap, as in CXAS) is an Image with a bool array
  and a trailing class axis ``[..., C]`` and ``metadata["class_names"]``: a list of C names.

Both carry the geometry of the image they segment. Writers accept either; the helpers
below convert between them without loss (a label map becomes one channel per label value;
a multi-label mask becomes a label map only when its classes do not overlap).
"""

from __future__ import annotations

from typing import Iterator, Mapping, Sequence

import numpy as np

from radseg.image import Image

__all__ = [
    "label_names",
    "make_label_map",
    "make_multilabel",
    "is_multilabel",
    "to_class_stack",
    "to_label_map",
    "class_values",
    "iter_classes",
    "require_label_map",
    "METAL_HU",
]

#: A CT voxel at or above this is metal (an implant, a screw), never bone: cortical bone stays below
#: ~2000 HU. One threshold for the annotation (metal is kept out of the bone mask and of its Otsu
#: histogram) and for the hip-ct phantom's labels (bone the scan's blur makes read as metal has none).
METAL_HU = 2500.0


def make_label_map(image_or_array, names: Mapping[int, str] | None = None, *, like: Image | None = None) -> Image:
    """A label-map Image from an array (geometry from ``like``) or an Image, with label names."""
    if isinstance(image_or_array, Image):
        base = image_or_array
    elif like is not None:
        base = like.with_array(image_or_array)
    else:
        base = Image(image_or_array)
    array = np.asarray(base.array)
    if array.dtype == bool:
        array = array.astype(np.uint8)
    if array.dtype.kind not in "ui":
        if not np.all(np.isfinite(array)) or not np.array_equal(array, np.round(array)):
            raise ValueError("a label map needs integer values")
        array = array.astype(np.int32)
    meta = dict(base.metadata)
    meta["label_names"] = {int(k): str(v) for k, v in (names or meta.get("label_names") or {}).items()}
    return Image(array, affine=base.affine, metadata=meta)


def make_multilabel(stack, class_names: Sequence[str], *, like: Image, channels_first: bool = True) -> Image:
    """A multi-label Image from a bool stack (``[C, ...]`` by default, as CXAS stores it)."""
    stack = np.asarray(stack).astype(bool)
    if channels_first:
        stack = np.moveaxis(stack, 0, -1)
    if stack.shape[-1] != len(class_names):
        raise ValueError(f"{stack.shape[-1]} channels but {len(class_names)} class names")
    meta = {**like.metadata, "class_names": [str(n) for n in class_names]}
    meta.pop("label_names", None)
    return Image(stack, affine=like.affine, metadata=meta)


def class_values(image: Image) -> list[int]:
    """Label value of each channel of a multi-label mask: ``metadata["class_values"]`` or 1..C."""
    names = image.metadata["class_names"]
    values = image.metadata.get("class_values") or range(1, len(names) + 1)
    return [int(v) for v in values]


def is_multilabel(image: Image) -> bool:
    return image.channels is not None and "class_names" in image.metadata


def label_names(image: Image) -> dict[int, str]:
    """``{value: name}`` for every non-zero value present (names from metadata, else ``label_<v>``)."""
    if is_multilabel(image):
        return dict(zip(class_values(image), image.metadata["class_names"]))
    known = {int(k): str(v) for k, v in (image.metadata.get("label_names") or {}).items()}
    present = [int(v) for v in np.unique(image.array) if v != 0]
    return {v: known.get(v, f"label_{v}") for v in sorted(set(present) | set(k for k in known if k != 0))}


def to_class_stack(image: Image, *, include_empty: bool = True) -> tuple[np.ndarray, list[str], list[int]]:
    """``(stack [C, ...] bool, names, values)``: one channel per class.

    For a label map the values are the label values; for a multi-label mask, 1..C.
    ``include_empty=False`` drops classes with no pixel.
    """
    if is_multilabel(image):
        stack = np.moveaxis(image.array.astype(bool), -1, 0)
        names = list(image.metadata["class_names"])
        values = class_values(image)
    else:
        table = label_names(image)
        values = list(table)
        names = [table[v] for v in values]
        stack = np.stack([image.array == v for v in values]) if values else np.zeros((0, *image.shape), bool)
    if not include_empty:
        keep = [i for i in range(len(values)) if stack[i].any()]
        stack, names, values = stack[keep], [names[i] for i in keep], [values[i] for i in keep]
    return stack, names, values


def to_label_map(image: Image) -> Image:
    """A label map from either form; overlapping classes in a multi-label mask are an error."""
    if not is_multilabel(image):
        return make_label_map(image)
    stack = image.array.astype(bool)
    if stack.shape[-1] and stack.sum(axis=-1).max() > 1:
        raise ValueError("classes overlap: this multi-label mask has no single-label-map form")
    values = class_values(image)
    dtype = np.uint8 if max(values, default=0) < 256 else np.uint16
    array = np.zeros(stack.shape[:-1], dtype)
    for channel, value in enumerate(values):
        array[stack[..., channel]] = value
    names = dict(zip(values, image.metadata["class_names"]))
    meta = {k: v for k, v in image.metadata.items() if k not in ("class_names", "class_values")}
    return make_label_map(Image(array, affine=image.affine, metadata=meta), names)


def iter_classes(labels: Image, *, include_empty: bool) -> Iterator[tuple[int, str, np.ndarray]]:
    """``(value, name, mask)`` per class in ``to_class_stack`` order, one mask at a time
    (a full ``[C, H, W]`` stack of 100 classes on a large radiograph costs hundreds of MB)."""
    multi = is_multilabel(labels)
    table = label_names(labels)
    for channel, (value, name) in enumerate(table.items()):
        mask = labels.array[..., channel].astype(bool, copy=False) if multi else labels.array == value
        if include_empty or mask.any():
            yield value, name, mask


def require_label_map(labels: Image, path) -> Image:
    """A validated integer label map for a single-label-map writer, or a WriteError saying why not."""
    from radseg.errors import WriteError

    if is_multilabel(labels):
        try:
            return to_label_map(labels)
        except ValueError:
            raise WriteError(path, "classes overlap, so they do not fit one label map; "
                                   "write one PNG per class (png-classes), .npz or DICOM-SEG") from None
    if labels.channels is not None:
        raise WriteError(path, f"a label map has one value per pixel; this array has {labels.channels} channels "
                               "and no class_names (not a multi-label mask)")
    try:
        return make_label_map(labels)
    except ValueError as exc:
        raise WriteError(path, str(exc)) from None
