"""Label maps as PNG: one label PNG, one binary PNG per class (CXAS layout), and previews.

* ``write_label_png`` / ``read_label_png``: a 2D label map as one lossless PNG (8-bit when
  the largest value fits, else 16-bit). Label names and geometry travel in PNG text chunks
  (``radseg:label_names``, ``radseg:spacing``, ``radseg:affine``, all JSON) because a
  PNG has no other place for them and every viewer ignores unknown text chunks.
* ``write_class_pngs`` / ``read_class_pngs``: ``<folder>/<case>/<class name>.png`` with
  values 0/255, as CXAS writes them, plus ``classes.json`` (order, values, geometry).
* ``write_overlay``: a coloured preview (PNG or JPEG) with outlines and a legend.

Labels are never written lossy: JPEG targets are refused for label data.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from pathlib import Path

import numpy as np

from radseg.errors import ReadError, WriteError
from radseg.image import Image
from radseg.io.atomic import atomic_path, full_suffix, write_text_atomic
from radseg.io.raster import LOSSY_SUFFIXES, read_raster, write_raster
from radseg.labels import (
    is_multilabel, iter_classes, label_names, make_label_map, make_multilabel, require_label_map, to_class_stack,
)

__all__ = ["write_label_png", "read_label_png", "write_class_pngs", "read_class_pngs", "write_overlay",
           "label_colour", "NAMES_KEY", "SPACING_KEY", "AFFINE_KEY", "CLASSES_FILE"]

NAMES_KEY, SPACING_KEY, AFFINE_KEY = "radseg:label_names", "radseg:spacing", "radseg:affine"  # PNG text chunks
CLASSES_FILE = "classes.json"  # class order, values and geometry beside the per-class PNGs


# --- helpers shared by the label writers (label_arrays and coco import them) -------------

# --- one label PNG -----------------------------------------------------------------------

def write_label_png(labels: Image, path: str | Path) -> Path:
    """Write a 2D label map as one lossless PNG, with its names and spacing in text chunks.

    8-bit when the largest value is at most 255, else 16-bit. A multi-label mask is
    accepted when its classes do not overlap (values 1..C). 3D data, negative values,
    values above 65535 and JPEG targets are refused with a WriteError naming ``path``.
    """
    from PIL import Image as PILImage
    from PIL.PngImagePlugin import PngInfo

    path = Path(path)
    suffix = full_suffix(path)
    if suffix in LOSSY_SUFFIXES:
        raise WriteError(path, "JPEG is lossy and would change label values; write labels as .png "
                               "(JPEG is for previews: write_overlay)")
    if suffix != ".png":
        raise WriteError(path, f"a label PNG needs the .png suffix, got {suffix or '(none)'}")
    if labels.ndim != 2:
        raise WriteError(path, f"a PNG holds one 2D label map; these labels are {labels.ndim}D "
                               "(use .nii.gz, .npz or one PNG per slice)")
    label_map = require_label_map(labels, path)
    array = label_map.array
    low, high = (int(array.min()), int(array.max())) if array.size else (0, 0)
    if low < 0 or high > 65535:
        raise WriteError(path, f"label values {low}..{high} do not fit an unsigned 16-bit PNG; use .nii.gz or .npz")
    array = array.astype(np.uint8 if high <= 255 else np.uint16)
    info = PngInfo()
    names = {str(value): name for value, name in label_names(label_map).items()}
    info.add_text(NAMES_KEY, json.dumps(names), zip=len(names) > 20)
    # 1 mm placeholder spacing must not come back as if it had been measured.
    if label_map.metadata.get("spacing_known", True):
        info.add_text(SPACING_KEY, json.dumps([float(s) for s in label_map.spacing]))
    info.add_text(AFFINE_KEY, json.dumps(label_map.affine.tolist()))
    pil = PILImage.fromarray(array)  # uint8 -> "L", uint16 -> "I;16": grey, never palette-quantised
    with atomic_path(path) as tmp:
        pil.save(tmp, format="PNG", pnginfo=info)
    return path


def read_label_png(path: str | Path) -> Image:
    """A label map from a PNG; names, spacing and affine restored when radseg wrote it.

    ``spacing_known`` is True only when the ``radseg:spacing`` chunk is present.
    """
    from PIL import Image as PILImage

    path = Path(path)
    pixels = read_raster(path)  # pixel decoding and its error messages live there
    if pixels.ndim != 2 or pixels.channels is not None:
        raise ReadError(path, f"not a label PNG: expected one grey 2D image, got shape {pixels.array.shape}")
    with PILImage.open(path) as pil:
        text = dict(getattr(pil, "text", {}) or {})
    try:
        names = {int(k): str(v) for k, v in json.loads(text.get(NAMES_KEY, "{}")).items()}
        spacing = json.loads(text[SPACING_KEY]) if SPACING_KEY in text else None
        affine = np.asarray(json.loads(text[AFFINE_KEY]), float) if AFFINE_KEY in text else None
    except (ValueError, TypeError, AttributeError) as exc:
        raise ReadError(path, f"unreadable radseg text chunk ({exc})") from None
    meta = {"format": "label_png", "source_files": [str(path)], "spacing_known": spacing is not None, "problems": []}
    try:
        geometry = {"affine": affine} if affine is not None else {"spacing": spacing or (1.0, 1.0)}
        image = Image(pixels.array, metadata=meta, **geometry)
    except ValueError as exc:
        raise ReadError(path, f"bad geometry in the radseg text chunks ({exc})") from None
    if spacing is None:
        meta["problems"].append("no pixel spacing stored: no physical pixel size, lengths are in px")
    return make_label_map(image, names)


# --- one binary PNG per class (CXAS layout) ------------------------------------------------

_UNSAFE = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]')
_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)), *(f"lpt{i}" for i in range(1, 10))}


def _file_stem(name: str, value: int) -> str:
    """A readable file name for a class: only characters no common file system rejects."""
    stem = _UNSAFE.sub("_", name).strip(" .")  # Windows drops trailing dots/spaces; leading dots hide files
    if stem.lower() in _RESERVED:
        stem += "_"
    stem = stem.encode("utf-8")[:200].decode("utf-8", "ignore").strip(" .")
    return stem or f"label_{value}"


def _unique_stems(names: list[str], values: list[int]) -> list[str]:
    # Compare case-insensitively: "Lung" and "lung" are one file on macOS and Windows.
    taken: set[str] = set()
    stems = []
    for name, value in zip(names, values):
        stem = _file_stem(name, value)
        candidate, n = stem, 1
        while candidate.lower() in taken:
            candidate, n = f"{stem}_{value}" + (f"_{n}" if n > 1 else ""), n + 1
        taken.add(candidate.lower())
        stems.append(candidate)
    return stems


def write_class_pngs(labels: Image, folder: str | Path, case: str, *, ext: str = ".png") -> list[Path]:
    """Write ``<folder>/<case>/<class name>.png`` (0/255) per class and ``classes.json``.

    ``ext=".jpg"`` writes CXAS's ``-ot jpg`` layout instead: the same masks as JPEG (lossy at
    the edges; :func:`read_class_pngs` thresholds them at 127, which restores them exactly
    for 0/255 masks at quality 95).

    Accepts a label map (one file per label value in its table) or a multi-label mask
    (one per class, overlaps kept). Empty classes get an all-zero PNG, as CXAS writes them.
    Files are written into a hidden staging folder first and moved in when all succeeded,
    so a failure never leaves a half-written case. Returns the PNGs in class order, then
    ``classes.json``.
    """
    folder = Path(folder)
    target = folder / case
    if not case or case in (".", "..") or "/" in case or "\\" in case or "\x00" in case:
        raise WriteError(target, f"case {case!r} is not a plain folder name")
    if labels.ndim != 2:
        raise WriteError(target, f"class PNGs hold 2D masks; these labels are {labels.ndim}D")
    if not is_multilabel(labels):
        labels = require_label_map(labels, target)
    stack, names, values = to_class_stack(labels)
    stems = _unique_stems(names, values)
    manifest = {
        "format": "radseg-class-pngs", "version": 1, "kind": "multilabel" if is_multilabel(labels) else "label_map",
        "shape": list(labels.shape), "affine": labels.affine.tolist(),
        "spacing_known": bool(labels.metadata.get("spacing_known", True)),
        "classes": [{"name": n, "value": int(v), "file": f"{s}{ext}"} for n, v, s in zip(names, values, stems)],
    }
    staging = folder / f".{case}.partial-{uuid.uuid4().hex[:8]}"
    try:
        staging.mkdir(parents=True)
        for mask, stem in zip(stack, stems):
            write_raster(Image(mask.astype(np.uint8) * 255, affine=labels.affine), staging / f"{stem}{ext}")
        write_text_atomic(staging / CLASSES_FILE, json.dumps(manifest, indent=1, ensure_ascii=False))
        if not target.exists():
            os.replace(staging, target)  # one rename: the case appears complete or not at all
        else:
            # Existing case folder (a rerun): replace file by file, the manifest last, so a
            # reader never sees a new manifest naming files that are not there yet.
            for stem in stems:
                os.replace(staging / f"{stem}{ext}", target / f"{stem}{ext}")
            os.replace(staging / CLASSES_FILE, target / CLASSES_FILE)
            staging.rmdir()
    except OSError as exc:
        raise WriteError(target, f"cannot write here ({exc.strerror or exc})") from exc
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)  # only our own staging folder
    return [target / f"{stem}{ext}" for stem in stems] + [target / CLASSES_FILE]


_MASK_SUFFIXES = (".png", ".jpg", ".jpeg")


def is_class_folder(path: str | Path) -> bool:
    """A CXAS case folder: radseg's (``classes.json``) or CXAS's own (only per-class PNG/JPEG masks)."""
    path = Path(path)
    if not path.is_dir():
        return False
    if (path / CLASSES_FILE).is_file():
        return True
    entries = [p for p in path.iterdir() if not p.name.startswith(".")]
    return bool(entries) and all(p.is_file() and p.suffix.lower() in _MASK_SUFFIXES for p in entries)


def class_folder_names(case_folder: str | Path) -> list[str]:
    """Class names of a case folder in its order, from ``classes.json`` or the file names (no pixels read)."""
    folder = Path(case_folder)
    manifest = folder / CLASSES_FILE
    if manifest.is_file():
        try:
            return [str(c["name"]) for c in json.loads(manifest.read_text(encoding="utf-8"))["classes"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise ReadError(manifest, f"not a radseg classes.json ({exc})") from None
    return [Path(f).stem for f in sorted(p.name for p in folder.iterdir()
                                         if p.suffix.lower() in _MASK_SUFFIXES and not p.name.startswith("."))]


def read_class_pngs(case_folder: str | Path, *, like: Image | None = None) -> Image:
    """A multi-label mask from a folder of per-class PNGs (non-zero = inside the class).

    Class order, values (``metadata["class_values"]``) and geometry come from
    ``classes.json`` when present; otherwise (plain CXAS output) the PNGs are taken in
    file-name order and named by their stems. ``like`` gives the geometry (and must have
    the same shape).
    """
    folder = Path(case_folder)
    if not folder.is_dir():
        raise ReadError(folder, "no such folder")
    manifest_path = folder / CLASSES_FILE
    problems: list[str] = []
    if manifest_path.is_file():
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            classes = [(str(c["name"]), int(c["value"]), str(c["file"])) for c in manifest["classes"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise ReadError(manifest_path, f"not a radseg classes.json ({exc})") from None
    else:
        manifest = {}
        files = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in _MASK_SUFFIXES and not p.name.startswith("."))
        classes = [(Path(f).stem, i + 1, f) for i, f in enumerate(files)]
        problems.append("no classes.json: classes taken in file-name order")
    if not classes:
        raise ReadError(folder, "no class PNGs found")
    masks = []
    for name, _, file in classes:
        pixels = read_raster(folder / file)
        if pixels.ndim != 2 or pixels.channels is not None:
            raise ReadError(folder / file, f"a class mask must be one grey 2D image, got shape {pixels.array.shape}")
        if masks and pixels.shape != masks[0].shape:
            raise ReadError(folder / file, f"size {pixels.shape} differs from {classes[0][2]} {masks[0].shape}")
        lossy = Path(file).suffix.lower() in (".jpg", ".jpeg")  # JPEG smears edges: cut at mid-grey
        masks.append(pixels.array > (127 if lossy else 0))
    shape = masks[0].shape
    if like is not None:
        if like.shape != shape:
            raise ReadError(folder, f"masks are {shape} but the reference image is {like.shape}")
        base = like
    else:
        known = "affine" in manifest
        meta = {"format": "class_pngs", "source_files": [str(folder)], "problems": problems,
                "spacing_known": bool(manifest.get("spacing_known", True)) and known}
        blank = np.broadcast_to(np.zeros((), bool), shape)  # geometry carrier only: no allocation
        base = Image(blank, metadata=meta, **({"affine": manifest["affine"]} if known else {"spacing": (1.0, 1.0)}))
    result = make_multilabel(np.stack(masks), [c[0] for c in classes], like=base)
    result.metadata["class_values"] = [c[1] for c in classes]
    return result


# --- preview overlay -------------------------------------------------------------------------

# Distinct colours (Trubetskoy's list without white, black, greys and beige, which vanish on
# a grey image). Value v gets entry v-1; values past the table get a golden-ratio hue, so a
# value has the same colour in every preview.
_PALETTE = [
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (220, 190, 255),
    (170, 110, 40), (128, 0, 0), (170, 255, 195), (128, 128, 0), (255, 215, 180), (0, 0, 128),
]


def label_colour(value: int) -> tuple[int, int, int]:
    """The fixed RGB colour previews use for label ``value`` (same value, same colour)."""
    import colorsys

    value = int(value)
    if 1 <= value <= len(_PALETTE):
        return _PALETTE[value - 1]
    # Alternate saturation and brightness too, so hues that land near a table colour still differ.
    saturation, brightness = (0.85, 0.55)[value % 2], (0.95, 0.7)[(value // 2) % 2]
    r, g, b = colorsys.hsv_to_rgb((value * 0.618033988749895) % 1.0, saturation, brightness)
    return round(r * 255), round(g * 255), round(b * 255)


def _display_grey(image: Image, window: tuple[float, float] | None) -> np.ndarray:
    """``[H, W, 3]`` float 0..255: windowed grey (16-bit and HU data included) or the RGB as is."""
    array = image.array
    if image.channels is not None:
        if array.dtype != np.uint8 or image.channels not in (3, 4):
            raise ValueError(f"colour images must be uint8 RGB/RGBA, got {array.dtype} with {image.channels} channels")
        return array[..., :3].astype(np.float32)
    values = array.astype(np.float64)
    if window is None:
        finite = values[np.isfinite(values)]
        low, high = np.percentile(finite, [1, 99]) if finite.size else (0.0, 1.0)
        if high <= low and finite.size:  # mostly constant image: fall back to the full range
            low, high = finite.min(), finite.max()
    else:
        low, high = map(float, window)
    if high <= low:
        high = low + 1.0
    grey = np.clip((np.nan_to_num(values, nan=low) - low) / (high - low), 0.0, 1.0) * 255.0
    if image.metadata.get("photometric") == "MONOCHROME1":
        grey = 255.0 - grey  # stored inverted: show bone white, as a viewer would
    return np.repeat(grey.astype(np.float32)[..., None], 3, axis=-1)


def write_overlay(image: Image, labels: Image, path: str | Path, *, alpha: float = 0.45,
                  window: tuple[float, float] | None = None) -> Path:
    """Write a preview (PNG or JPEG) of a 2D image with coloured labels, outlines and a legend.

    The grey levels are windowed to ``window`` (low, high) or the image's 1st-99th
    percentile. Each label value has a fixed colour (:func:`label_colour`); overlapping
    classes of a multi-label mask are blended; outlines are drawn in full colour. The
    legend sits to the right of the image, so the picture is ``W + legend`` wide and at
    least ``H`` high, and the image keeps its pixel size.
    """
    from PIL import Image as PILImage, ImageDraw, ImageFont
    from scipy import ndimage

    path = Path(path)
    suffix = full_suffix(path)
    if suffix not in (".png", ".jpg", ".jpeg"):
        raise WriteError(path, f"an overlay is a .png or .jpg picture, got {suffix or '(no suffix)'}")
    if not 0.0 <= alpha <= 1.0:
        raise WriteError(path, f"alpha must be between 0 and 1, got {alpha}")
    if image.ndim != 2 or labels.ndim != 2 or image.shape != labels.shape:
        raise WriteError(path, f"an overlay needs a 2D image and labels of one size (pass one slice); "
                               f"got {image.ndim}D {image.shape} and {labels.ndim}D {labels.shape}")
    if not is_multilabel(labels):
        labels = require_label_map(labels, path)
    try:
        base = _display_grey(image, window)
    except ValueError as exc:
        raise WriteError(path, str(exc)) from None

    height, width = image.shape
    colour_sum = np.zeros((height, width, 3), np.float32)
    count = np.zeros((height, width), np.int32)
    edges, legend = [], []
    thickness = max(1, round(min(height, width) / 400))  # visible once a large radiograph is scaled down
    for value, name, mask in iter_classes(labels, include_empty=False):
        colour = np.asarray(label_colour(value), np.float32)
        colour_sum[mask] += colour
        count += mask
        edges.append((mask & ~ndimage.binary_erosion(mask, iterations=thickness, border_value=1), colour))
        legend.append((colour, name if is_multilabel(labels) else f"{name} ({value})"))
    covered = count > 0
    mean_colour = colour_sum[covered] / count[covered, None]  # overlapping classes: average colour
    base[covered] = (1.0 - alpha) * base[covered] + alpha * mean_colour
    for edge, colour in edges:
        base[edge] = colour
    picture = PILImage.fromarray(np.clip(np.rint(base), 0, 255).astype(np.uint8))

    # Legend: one swatch and name per class, in columns no taller than the image when possible.
    size = max(12, min(48, round(height / 32)))
    font = ImageFont.load_default(size=size)
    pad, row = max(4, size // 2), round(size * 1.5)
    entries = legend or [(None, "no labels")]
    text_width = max(ImageDraw.Draw(picture).textlength(text, font=font) for _, text in entries)
    per_column = max(1, (height - 2 * pad) // row, min(len(entries), 8))
    columns = -(-len(entries) // per_column)
    column_width = int(pad + size + pad + text_width + pad)
    canvas_height = max(height, 2 * pad + min(len(entries), per_column) * row)
    canvas = PILImage.new("RGB", (width + columns * column_width, canvas_height), (24, 24, 24))
    canvas.paste(picture, (0, 0))
    draw = ImageDraw.Draw(canvas)
    for index, (colour, text) in enumerate(entries):
        x, y = width + (index // per_column) * column_width + pad, pad + (index % per_column) * row
        if colour is not None:
            draw.rectangle([x, y, x + size - 1, y + size - 1], fill=tuple(int(c) for c in colour))
        top, bottom = font.getbbox(text)[1::2]  # centre the text on the swatch (no anchors: bitmap fonts lack them)
        draw.text((x + size + pad, y + (size - top - bottom) / 2), text, fill=(235, 235, 235), font=font)
    with atomic_path(path) as tmp:
        canvas.save(tmp, **({"format": "PNG"} if suffix == ".png" else {"format": "JPEG", "quality": 92}))
    return path
