"""What the page shows and lets you download, as plain functions of an image and its labels.

* :func:`overlay_png`: the radseg overlay preview (:func:`radseg.io.label_png.write_overlay`
  through the ``overlay`` writer) of a 2D image, or of one axial slice of a volume.
* :func:`legend_rows` / :func:`legend_html`: label value, name, colour and size per label.
* :func:`measurements_table`: :func:`radseg.features.measure` as a table.
* :func:`write_download`: the labels in any ``radseg segment`` output type (the shared
  label writers); several files come as one zip.
"""

from __future__ import annotations

import html
import zipfile
from pathlib import Path

import numpy as np

from radseg.errors import RadsegError
from radseg.image import Image

__all__ = [
    "DOWNLOAD_FORMATS",
    "FEATURE_CHOICES",
    "blank_like",
    "feature_set_for",
    "fullest_slice",
    "legend_html",
    "legend_rows",
    "measurements_table",
    "overlay_png",
    "slice_pair",
    "write_download",
]

#: Output type (as ``radseg segment -ot``) -> what the page calls it.
DOWNLOAD_FORMATS = {
    "nifti": "NIfTI label map (.nii.gz)",
    "png": "PNG label map (.png, 2D)",
    "png-classes": "one PNG per class, CXAS layout (.zip)",
    "npz": "NumPy NPZ (.npz)",
    "npy": "NumPy NPY + JSON names (.zip)",
    "json": "COCO RLE (.json)",
    "dicom-seg": "DICOM-SEG (.dcm, DICOM uploads only)",
    "jpg": "overlay preview (.jpg)",
}
FEATURE_CHOICES = ("auto", "shape", "chest", "knee", "hip", "ct")
MEASUREMENT_COLUMNS = ["structure", "measurement", "value", "unit", "status", "note"]


def blank_like(labels: Image) -> Image:
    """A black image on the labels' grid: the overlay background when no image was uploaded."""
    return Image(np.zeros(labels.shape, np.float32), affine=labels.affine, metadata={"spacing_known": True})


def fullest_index(labels: Image) -> int:
    """The axial slice (array axis 0) with the most labelled voxels."""
    array = labels.array if labels.channels is None else labels.array.any(axis=-1)
    counts = (array.reshape(array.shape[0], -1) != 0).sum(axis=1)
    return int(np.argmax(counts))


def slice_pair(image: Image, labels: Image, index: int | None = None) -> tuple[Image, Image, int]:
    """2D image and labels: as they are, or slice ``index`` (default: the fullest) of a volume."""
    if labels.ndim == 2:
        return image, labels, 0
    k = fullest_index(labels) if index is None or index < 0 else min(int(index), labels.shape[0] - 1)
    spacing = labels.spacing[1:]
    image2 = Image(image.array[k], spacing=spacing, metadata=dict(image.metadata))
    labels2 = Image(labels.array[k], spacing=spacing, metadata=dict(labels.metadata))
    return image2, labels2, k


def fullest_slice(image: Image, labels: Image) -> tuple[Image, Image]:
    image2, labels2, _ = slice_pair(image, labels)
    return image2, labels2


def enlarge(image: Image, labels: Image, min_side: int) -> tuple[Image, Image]:
    """Both 2D images repeated by a whole factor (at most 8) so the picture's long side reaches
    ``min_side``: a small image stays legible on the page, and every label pixel stays a block."""
    factor = min(8, -(-min_side // max(labels.shape))) if max(labels.shape) < min_side else 1
    if factor <= 1:
        return image, labels

    def grow(item: Image) -> Image:
        array = np.repeat(np.repeat(item.array, factor, axis=0), factor, axis=1)
        return Image(array, spacing=item.spacing / factor, metadata=dict(item.metadata))

    return grow(image), grow(labels)


def overlay_png(image: Image, labels: Image, path: str | Path, *, index: int | None = None,
                min_side: int = 640, caption: list[str] | None = None) -> tuple[Path, int]:
    """Write the overlay preview (image, coloured labels, outlines, legend) as PNG; returns (path, slice).

    Small images are enlarged by a whole factor for display (see :func:`enlarge`); ``caption``
    lines (a model's intended use and validation figures) are printed under the picture, so a
    saved overlay carries them."""
    import radseg.io as rio

    if image.shape != labels.shape:
        image = blank_like(labels)
    image2, labels2, k = slice_pair(image, labels, index)
    image2, labels2 = enlarge(image2, labels2, min_side)
    out = Path(rio.write(labels2, Path(path), kind="overlay", image=image2))
    if caption:
        add_caption(out, caption)
    return out, k


def add_caption(path: Path, lines: list[str]) -> Path:
    """Append a white band with ``lines`` of black text under the picture at ``path`` (in place, atomic)."""
    import textwrap

    from PIL import Image as PILImage, ImageDraw, ImageFont

    from radseg.io.atomic import atomic_path

    with PILImage.open(path) as opened:
        picture = opened.convert("RGB")
    font = ImageFont.load_default()
    per_line = max(40, picture.width // 7)
    wrapped = [part for line in lines for part in textwrap.wrap(line, per_line)]
    band = 14 * len(wrapped) + 10
    out = PILImage.new("RGB", (picture.width, picture.height + band), "white")
    out.paste(picture, (0, 0))
    draw = ImageDraw.Draw(out)
    for i, line in enumerate(wrapped):
        draw.text((6, picture.height + 5 + 14 * i), line, fill="black", font=font)
    with atomic_path(path) as tmp:
        out.save(tmp, format="JPEG" if path.suffix.lower() in (".jpg", ".jpeg") else "PNG")
    return path


def _hex(rgb) -> str:
    return "#{:02x}{:02x}{:02x}".format(*(int(c) for c in rgb))


def legend_rows(labels: Image) -> list[dict]:
    """One row per label present: value, name, colour (#rrggbb), voxels and area (mm²) or volume (mL);
    without a physical pixel size (``spacing_known`` False) the size is the pixel count and ``unit``
    says ``px``."""
    from radseg.io.label_png import label_colour
    from radseg.labels import iter_classes

    known = labels.metadata.get("spacing_known", True) is not False
    voxel = float(np.prod(labels.spacing)) if known else 1.0
    rows = []
    for value, name, mask in iter_classes(labels, include_empty=False):
        count = int(mask.sum())
        row = {"value": int(value), "name": name, "colour": _hex(label_colour(value)), "pixels": count,
               "unit": "mm" if known else "px"}
        if labels.ndim == 2:
            row["area_mm2" if known else "area_px2"] = round(count * voxel, 2)
        else:
            row["volume_ml" if known else "volume_voxels"] = round(count * voxel / 1000.0, 3) if known else count
        rows.append(row)
    return rows


def legend_html(rows: list[dict], *, spacing_known: bool = True) -> str:
    """The legend as a small self-contained HTML table (inline styles only)."""
    if not rows:
        return '<div class="radseg-legend"><p>No labels were found in this image.</p></div>'
    heads = {"area_mm2": "area (mm²)", "volume_ml": "volume (mL)", "area_px2": "area (px², no pixel size)",
             "volume_voxels": "volume (voxels, no voxel size)"}
    size_key = next(k for k in heads if k in rows[0])
    size_head = heads[size_key]
    body = "".join(
        f'<tr data-value="{r["value"]}"><td><span class="swatch" style="display:inline-block;width:1em;height:1em;'
        f'background:{r["colour"]};border:1px solid #0006;vertical-align:middle"></span></td>'
        f'<td>{r["value"]}</td><td class="name">{html.escape(r["name"])}</td><td>{r["pixels"]}</td>'
        f'<td>{r[size_key]}</td></tr>' for r in rows)
    count_head = "pixels" if size_key.startswith("area") else "voxels"
    return ('<div class="radseg-legend"><table><thead><tr><th></th><th>value</th><th>label</th>'
            f'<th>{count_head}</th>'
            f'<th>{size_head}</th></tr></thead><tbody>{body}</tbody></table></div>')


def feature_set_for(choice: str, labels: Image) -> str:
    if choice in (None, "", "auto"):
        return "ct" if labels.ndim == 3 else "shape"
    return choice


def measurements_table(labels: Image, image: Image | None = None, feature_set: str = "auto",
                       source: str | None = None):
    """``(pandas DataFrame, set used)``: one row per structure and measurement (value None: not measured).
    Without a pixel size the units are px/px2/voxels and the notes name ``source`` (the upload)."""
    import pandas as pd

    from radseg.features import FEATURE_SETS, measure

    chosen = feature_set_for(feature_set, labels)
    if chosen not in FEATURE_SETS:
        raise RadsegError(f"unknown measurement set {chosen!r}; choose one of {', '.join(FEATURE_SETS.names())}")
    if image is not None and (image.shape != labels.shape or image.channels is not None):
        image = None  # HU statistics need the scalar image on the labels' grid
    try:
        rows = [m.row() for m in measure(labels, chosen, image=image, source=source)]
    except ValueError as exc:
        raise RadsegError(f"{chosen} measurements: {exc}") from None
    table = pd.DataFrame(rows, columns=MEASUREMENT_COLUMNS)
    table["value"] = [None if v is None or (isinstance(v, float) and not np.isfinite(v)) else round(float(v), 3)
                      for v in table["value"]]
    return table, chosen


def write_download(image: Image | None, labels: Image, out_dir: str | Path, case: str, output_type: str,
                   caption: list[str] | None = None) -> Path:
    """Write ``labels`` as ``output_type`` (``radseg segment -ot`` names) into ``out_dir``; one file or a zip.
    ``caption`` (a model's intended use and validation) is printed under an overlay picture (``jpg``)."""
    from radseg.infer.segment import OUTPUT_TYPES, write_output

    if output_type not in OUTPUT_TYPES:
        raise RadsegError(f"unknown download format {output_type!r}; choose one of {', '.join(OUTPUT_TYPES)}")
    if output_type == "dicom-seg" and not _is_dicom(image):
        raise RadsegError("DICOM-SEG refers to the source DICOM: it is offered for DICOM uploads only")
    if image is None or image.shape != labels.shape:
        image = blank_like(labels)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    try:
        files = write_output(image, labels, out, case, output_type)
    except RadsegError:
        raise
    except (ValueError, TypeError, KeyError) as exc:
        raise RadsegError(f"could not write {DOWNLOAD_FORMATS.get(output_type, output_type)}: {exc}") from None
    files = [Path(f) for f in files]
    if caption and output_type == "jpg":
        for f in files:
            if f.is_file() and f.suffix.lower() in (".jpg", ".jpeg", ".png"):
                add_caption(f, caption)
    if len(files) == 1 and files[0].is_file():
        return files[0]
    target = out / f"{case}_{output_type}.zip"
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for f in files:
            if f.is_file():
                archive.write(f, f.relative_to(out).as_posix())
    return target


def _is_dicom(image: Image | None) -> bool:
    if image is None:
        return False
    sources = image.metadata.get("source_files") or []
    if not sources:
        return False
    try:
        with open(sources[0], "rb") as handle:
            head = handle.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"
