"""Head-CT haemorrhage slices with colour masks: the BHSD and CT-ICH extracts (2D, windowed, 8-bit).

Layouts (``ROOT`` is the folder holding both subsets, or one subset folder itself)::

    ROOT/bhsd-mini/images/<scan:3 digits><slice:3 digits>.png   512x512 8-bit grey, already windowed
    ROOT/bhsd-mini/masks/<same name>.png                         RGB colour mask, black = background
    ROOT/ctich-mini/images/<number>.jpg                          650x650 RGB JPEG of a grey windowed slice
    ROOT/ctich-mini/masks/<number>.png or .jpg                   RGB colour mask (the source names PNGs .jpg)

A subset folder is recognised by its name (``bhsd`` or ``ctich``/``ct-ich`` in it). Images and
masks pair by file stem; an image without a mask and a mask without an image are reported
(``report.skipped``) and the other cases go on. Mask files are read by content, whatever
their extension says.

**Colours.** BHSD (as the source states): EDH red (255, 0, 0), IPH blue (0, 0, 255), IVH
yellow (255, 255, 0), SAH cyan (0, 255, 255), SDH green (0, 255, 0). CT-ICH: (210, 80, 0) =
haemorrhage of unknown type. Only these exact colours and black are accepted: every one of
the 72 real masks holds nothing else (no anti-aliased edges, checked pixel by pixel), so
there is no tolerance; any other colour is an error naming the mask file and the colour(s)
(a mask that is really a lossy JPEG fails that way, and the message says it is one). A mask
whose size differs from its image is an error naming both files.

**Labels** (option ``labels``): ``any`` (default) gives one class, 1 = ``hemorrhage``, the
union of all colours, for both subsets; ``types`` gives BHSD's five classes 1 EDH, 2 IPH,
3 IVH, 4 SAH, 5 SDH, and leaves the CT-ICH slices out (each one listed in ``report.skipped``:
their masks carry no type).

**Images** become one grey channel: BHSD PNGs are grey already; the CT-ICH JPEGs are RGB with
(in the real files exactly) equal channels, so the channels' mean is taken after checking
that they differ by at most :data:`GREY_TOLERANCE` grey levels (JPEG chroma noise); a real
colour image is an error. The files carry no pixel size: images have ``spacing_known``
False, so the prepared dataset lists every case in ``no_pixel_size`` and lengths are in px.

**Patients** (``CaseRecord.patient``; ``metadata["source"]`` is ``bhsd`` or ``ctich``).

* BHSD: ``bhsd-<first 3 digits>``; the name is a 3-digit scan id and a 3-digit slice index.
  Checked on the real images: the slices sharing a prefix show one head at rising levels
  with the same haemorrhage (123010 skull base -> 123017; 136009/013/016 the same frontal
  SDH + IPH; 145006 posterior fossa -> 145014/015/017 the same IPH with IVH; 173019/020
  nearly identical SDH slices), and BHSD has one scan per patient. A name not of that form
  cannot be placed: all such slices share the patient ``bhsd-unparsed`` (too coarse is
  safe, too fine leaks), with a warning.
* CT-ICH: the names (10185..10224 with gaps) are running numbers that do not name the
  patient (the source has one scan per patient, 82 patients). The grouping
  :data:`CTICH_HEADS` comes from the real images, viewed as montages in name order and
  measured:

  - ``ctich-A`` 10185-10186: head centred (head centroid x 323 px), small headrest arcs at
    x 622-643 / 11-25 px in both slices, a right-sided (image left) extra-axial bleed and
    no scalp swelling.
  - ``ctich-B`` 10187-10197: the level restarts at the skull base and rises to the
    ventricle bodies; head centroid x 284-296 px, headrest arcs at x 589-643 / 11-50 px
    identical in every slice that shows them, a right-sided extra-axial haematoma under a
    scalp swelling that A lacks at the same level; so A is another scan.
  - ``ctich-C`` 10198: one slice from another reconstruction: smaller and blurrier head
    (centroid x 275 px, 414 px wide against B's ~500), large headrest arcs at x 489-643 /
    11-153 px; its best pixel correlation with any other slice is 0.55.
  - ``ctich-D`` 10199-10209: the head lies far right in the field (centroid x 420-440 px,
    right edge 629-642 px) with no headrest in view in any slice, and the blood is
    intraventricular throughout (4th ventricle, occipital horns). The name order is not
    the level order here: 10208 -> 10209 -> 10199 are consecutive levels (maxillary sinus,
    orbit floor, globe; pixel correlation 0.87-0.89) below 10201-10207, so a restart of
    the level alone does not mark a new head.
  - ``ctich-E`` 10210-10224: one monotonic run from the orbital roof to the vertex,
    centroid x 319-321 px, long headrest arcs at x 11-80 / 562-636 px growing smoothly
    with the level, and one left-sided (image right) convexity subdural in every slice.

  Pixel correlation of the slices at 128x128 px backs this up: every slice's most similar
  other slice is in its own group (r 0.87-0.98), the most similar slices of two different
  groups reach only r 0.64, and D's two runs correlate up to 0.72 with each other but at
  most 0.32 with any other head. CT-ICH names outside 10185-10224 are not covered by this
  evidence: they all share the patient ``ctich-unassigned`` (with a warning).

There is no official split: :func:`radseg.datasets.preparation.prepare` generates one per
patient (seed, fractions), so no patient is in two splits. The prepared dataset names the
task preset ``brain-ct-2d`` (:mod:`radseg.models.presets`).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from radseg.datasets.base import CaseRecord, DatasetReport, DatasetScan, Loaded
from radseg.errors import ReadError
from radseg.image import Image
from radseg.io.atomic import strip_suffix

__all__ = [
    "BHSD_COLOURS",
    "CTICH_COLOUR",
    "CTICH_HEADS",
    "GREY_TOLERANCE",
    "LABEL_MODES",
    "NAME",
    "TYPE_NAMES",
    "bhsd_patient",
    "ctich_patient",
    "label_table",
    "mask_to_labels",
    "scan",
]

NAME = "brain-ct-slices"
LABEL_MODES = ("any", "types")
#: BHSD mask colour -> type label value (``labels=types``).
BHSD_COLOURS: dict[tuple[int, int, int], int] = {
    (255, 0, 0): 1,      # EDH red
    (0, 0, 255): 2,      # IPH blue
    (255, 255, 0): 3,    # IVH yellow
    (0, 255, 255): 4,    # SAH cyan
    (0, 255, 0): 5,      # SDH green
}
TYPE_NAMES = {1: "EDH", 2: "IPH", 3: "IVH", 4: "SAH", 5: "SDH"}
_COLOUR_NAMES = {1: "red", 2: "blue", 3: "yellow", 4: "cyan", 5: "green"}
#: The CT-ICH haemorrhage colour (type unknown).
CTICH_COLOUR = (210, 80, 0)
#: CT-ICH patients inferred from the images (module docstring): (first, last number, head).
CTICH_HEADS: tuple[tuple[int, int, str], ...] = (
    (10185, 10186, "A"), (10187, 10197, "B"), (10198, 10198, "C"), (10199, 10209, "D"), (10210, 10224, "E"),
)
#: Largest difference (grey levels) between the colour channels of a "grey" JPEG slice.
GREY_TOLERANCE = 12

_SOURCES = {"bhsd": "BHSD", "ctich": "CT-ICH"}
_SUFFIXES = {".png", ".jpg", ".jpeg"}
_BHSD_NAME = re.compile(r"^(\d{3})(\d{3})$")


def bhsd_patient(stem: str) -> str | None:
    """``123010`` -> ``bhsd-123`` (3-digit scan id + 3-digit slice); None for another name."""
    match = _BHSD_NAME.match(stem)
    return f"bhsd-{match.group(1)}" if match else None


def ctich_patient(stem: str) -> str | None:
    """The inferred CT-ICH head of slice ``stem`` (``ctich-A`` ...); None outside :data:`CTICH_HEADS`."""
    if not stem.isdigit():
        return None
    number = int(stem)
    return next((f"ctich-{head}" for first, last, head in CTICH_HEADS if first <= number <= last), None)


def label_table(source: str, mode: str) -> dict[tuple[int, int, int], int]:
    """RGB colour -> label value of ``source`` (``bhsd``/``ctich``) under ``mode`` (black is 0)."""
    if source == "bhsd":
        table = dict(BHSD_COLOURS) if mode == "types" else {colour: 1 for colour in BHSD_COLOURS}
    elif source == "ctich":
        if mode == "types":
            raise ValueError("CT-ICH masks have no haemorrhage types")
        table = {CTICH_COLOUR: 1}
    else:
        raise ValueError(f"unknown source {source!r}")
    return {(0, 0, 0): 0, **table}


def _describe(source: str) -> str:
    if source == "bhsd":
        return ", ".join(f"{TYPE_NAMES[v]} {_COLOUR_NAMES[v]} {c}" for c, v in BHSD_COLOURS.items())
    return f"haemorrhage {CTICH_COLOUR}"


def scan(root: Path, *, labels: str = "any") -> DatasetScan:
    root = Path(root)
    mode = str(labels).strip().lower()
    if mode not in LABEL_MODES:
        raise ValueError(f"option labels must be any or types, not {labels!r}")
    report = DatasetReport(dataset=NAME, root=str(root))
    subsets = _subsets(root, report)
    records: list[CaseRecord] = []
    unplaced: dict[str, int] = {"bhsd": 0, "ctich": 0}
    for source, folder in subsets:
        images, masks = _listing(folder / "images", report, root), _listing(folder / "masks", report, root)
        title = _SOURCES[source]
        report.found[f"{title} images"] = report.found.get(f"{title} images", 0) + len(images)
        report.found[f"{title} masks"] = report.found.get(f"{title} masks", 0) + len(masks)
        for stem in sorted(set(masks) - set(images)):
            report.skipped.append((_rel(masks[stem], root), "mask without an image of the same name"))
        for stem, image_path in images.items():
            if stem not in masks:
                report.skipped.append((_rel(image_path, root), "image without a mask of the same name"))
                continue
            if source == "ctich" and mode == "types":
                report.skipped.append((_rel(image_path, root), "CT-ICH masks have one haemorrhage colour and no "
                                                                "type: left out with labels=types"))
                continue
            patient = bhsd_patient(stem) if source == "bhsd" else ctich_patient(stem)
            if patient is None:
                unplaced[source] += 1
                patient = "bhsd-unparsed" if source == "bhsd" else "ctich-unassigned"
            records.append(CaseRecord(
                case_id=f"{source}-{stem}", patient=patient, metadata={"source": source},
                sources=[_rel(image_path, root), _rel(masks[stem], root)],
                load=lambda i=image_path, m=masks[stem], s=source: _load(i, m, s, mode)))
    if unplaced["bhsd"]:
        report.warnings.append(f"{unplaced['bhsd']} BHSD slice name(s) are not <3-digit scan><3-digit slice>: "
                               "they share one patient, bhsd-unparsed")
    if unplaced["ctich"]:
        report.warnings.append(f"{unplaced['ctich']} CT-ICH slice(s) lie outside the numbers whose heads are known "
                               "(10185-10224): they share one patient, ctich-unassigned")
    if any(source == "ctich" for source, _ in subsets) and mode == "any":
        report.warnings.append("CT-ICH names do not give the patient: heads inferred from the images "
                               "(see radseg.datasets.brain_slices)")
    report.warnings.append("the slices have no pixel size: lengths and areas are in px")
    label_names = dict(TYPE_NAMES) if mode == "types" else {1: "hemorrhage"}
    return DatasetScan(
        name=NAME, records=records, label_names=label_names, report=report, modality="CT", dims=2,
        preset="brain-ct-2d",
        description="windowed head-CT slices with haemorrhage masks (BHSD and CT-ICH extracts)",
        source={"labels": mode, "subsets": [f"{source}:{_rel(folder, root) or '.'}" for source, folder in subsets],
                "terms": "BHSD: MIT; CT-ICH v1.0 (Hssayeni et al. 2020, PhysioNet): CC BY 4.0"})


def _subsets(root: Path, report: DatasetReport) -> list[tuple[str, Path]]:
    if not root.is_dir():
        raise ReadError(root, "no such folder")
    if (root / "images").is_dir():
        kind = _kind(root.name)
        if kind is None:
            raise ReadError(root, "cannot tell BHSD from CT-ICH slices: the subset folder's name must contain "
                                  "bhsd or ctich (e.g. bhsd-mini, ctich-mini)")
        found = [(kind, root)]
    else:
        found = []
        for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            kind = _kind(folder.name)
            if kind is not None and (folder / "images").is_dir():
                found.append((kind, folder))
            elif (folder / "images").is_dir():
                report.skipped.append((folder.name, "neither a bhsd nor a ctich folder"))
        if not found:
            raise ReadError(root, "no bhsd-*/ or ctich-*/ folder with images/ and masks/ (or give one subset folder)")
    for _, folder in found:
        if not (folder / "masks").is_dir():
            raise ReadError(folder / "masks", "mask folder not found (expected masks/ beside images/)")
    return found


def _kind(name: str) -> str | None:
    text = name.lower().replace("_", "-")
    if "bhsd" in text:
        return "bhsd"
    if "ctich" in text or "ct-ich" in text:
        return "ctich"
    return None


def _listing(folder: Path, report: DatasetReport, root: Path) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.is_file() or path.suffix.lower() not in _SUFFIXES:
            continue
        stem = strip_suffix(path)
        if stem in files:
            report.warnings.append(f"{_rel(path, root)}: another file named {stem} is used ({files[stem].name})")
            continue
        files[stem] = path
    return files


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root)) if path != root else ""
    except ValueError:
        return str(path)


def _grey(path: Path) -> tuple[Image, bool]:
    """The slice as one grey channel (the mean of RGB channels that agree within JPEG noise),
    and whether those are the file's own pixels (then the file can be copied unchanged)."""
    from radseg.io import read

    image = read(path)
    as_stored = image.channels is None
    if not as_stored:
        array = np.asarray(image.array)
        colour = array[..., :3].astype(np.int16) if array.shape[-1] >= 3 else array[..., :1].astype(np.int16)
        spread = int(np.abs(colour - colour[..., :1]).max())
        if spread > GREY_TOLERANCE:
            raise ReadError(path, f"not a grey CT slice: its colour channels differ by up to {spread} grey levels "
                                  f"(JPEG noise stays within {GREY_TOLERANCE})")
        grey = np.rint(colour.mean(axis=-1)).astype(array.dtype)
        image = Image(grey, affine=image.affine, metadata=dict(image.metadata))
    if image.ndim != 2:
        raise ReadError(path, f"expected a 2D slice, got shape {tuple(image.shape)}")
    return image, as_stored


def _read_rgb(path: Path) -> tuple[np.ndarray, str]:
    """A mask file as ``[H, W, 3]`` uint8 RGB, read by content, and its real format."""
    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError

    try:
        with PILImage.open(path) as handle:
            if handle.mode not in ("1", "L", "LA", "P", "PA", "RGB", "RGBA"):
                raise ReadError(path, f"unexpected mask pixel mode {handle.mode} (an 8-bit colour mask is expected)")
            return np.asarray(handle.convert("RGB")), str(handle.format or "")
    except (OSError, UnidentifiedImageError) as exc:
        raise ReadError(path, f"not a readable mask image ({exc})") from None


def mask_to_labels(rgb: np.ndarray, table: dict[tuple[int, int, int], int], *, name: str | Path,
                   source: str = "", lossy: bool = False) -> np.ndarray:
    """A colour mask ``[H, W, 3]`` -> uint8 label map by exact colour; error naming ``name`` and the colour(s)."""
    rgb = np.asarray(rgb, np.uint8)
    codes = (rgb[..., 0].astype(np.uint32) << 16) | (rgb[..., 1].astype(np.uint32) << 8) | rgb[..., 2]
    out = np.zeros(codes.shape, np.uint8)
    known = np.zeros(codes.shape, bool)
    for (r, g, b), value in table.items():
        hit = codes == ((r << 16) | (g << 8) | b)
        out[hit] = value
        known |= hit
    if not known.all():
        values, counts = np.unique(codes[~known], return_counts=True)
        order = np.argsort(-counts, kind="stable")
        unknown = [(((int(values[i]) >> 16) & 255, (int(values[i]) >> 8) & 255, int(values[i]) & 255), int(counts[i]))
                   for i in order]
        shown = ", ".join(f"{c} in {n} px" for c, n in unknown[:5]) + (f" and {len(unknown) - 5} more"
                                                                        if len(unknown) > 5 else "")
        allowed = _describe(source) if source else ", ".join(map(str, table))
        hint = " (the file is a lossy JPEG: its colours are not exact)" if lossy else ""
        raise ReadError(name, f"mask colour(s) not in the colour table: {shown}{hint}; "
                              f"allowed: black (0, 0, 0) = background, {allowed}")
    return out


def _load(image_path: Path, mask_path: Path, source: str, mode: str) -> Loaded:
    from radseg.labels import make_label_map

    image, as_stored = _grey(image_path)
    rgb, fmt = _read_rgb(mask_path)
    if rgb.shape[:2] != image.shape:
        (h, w), (ih, iw) = rgb.shape[:2], image.shape
        raise ReadError(mask_path, f"mask is {w}x{h} px but its image {image_path} is {iw}x{ih} px")
    array = mask_to_labels(rgb, label_table(source, mode), name=mask_path, source=source, lossy=fmt == "JPEG")
    names = dict(TYPE_NAMES) if mode == "types" else {1: "hemorrhage"}
    # A grey PNG is copied byte for byte; a JPEG (lossy, or RGB on disk) is stored as the grey it was read as.
    copy = image_path if as_stored and image.metadata.get("lossy") is False else None
    return Loaded(image=image, labels=make_label_map(array, names, like=image), image_file=copy)
