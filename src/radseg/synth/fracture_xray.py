"""``fracture-xray``: musculoskeletal radiographs with fractures, in the FracAtlas layout.

Regions as FracAtlas groups them (:mod:`radseg.synth.limb_anatomy`): ``hand`` (distal forearm,
carpus, metacarpals), ``leg`` (tibia and fibula with the knee or ankle), ``hip`` (proximal femur,
acetabulum) and ``shoulder`` (proximal humerus, glenoid, clavicle). Long bones have a cortical
shell around a medullary canal or cancellous ends, inside a soft-tissue envelope with a fat
layer; Beer-Lambert, scatter, quantum noise and detector blur (:mod:`radseg.synth.projection`)
give an 8-bit image saved as JPEG (bone bright). About ``fracture_rate`` (30%) of the images
have 1-3 fractures: a thin jagged gap across the bone, sometimes with the distal fragment shifted
or angulated (a cortical step-off, overlapping fragments look denser). Some images carry an
intramedullary nail with locking screws (``hardware``).

Labels: ``case.labels`` is an **instance label map**: value ``k`` = the region of the ``k``-th
fracture (the ``k``-th COCO annotation of the image), 0 elsewhere; ``labels > 0`` is the binary
fracture mask. Each region is a polygon around the fracture line reaching a few mm past the
cortex and covering the displaced fragment, as FracAtlas annotators outline fractures; the label
map is that polygon rasterised by pycocotools, so ``annToMask`` of the COCO annotation equals it.

Files (FracAtlas layout, ``IMG%07d.jpg`` with the case's 0-based index; case ``FRAC0001`` is
``IMG0000000.jpg``): ``images/{Fractured,Non_fractured}/IMG*.jpg``; from :func:`finish`:
``dataset.csv`` (FracAtlas columns), ``Annotations/COCO JSON/COCO_fracture_masks.json`` (fractured
images only, image ids from 1, annotation ids from 0, one category ``{"id": 0, "name":
"fractured"}`` as in the distributed copy, polygons in pixel coordinates, bbox from the polygon,
``area`` = the polygon's rasterised pixel count where FracAtlas stores its shoelace area) and
``Utilities/Fracture Split/{train,valid,test}.csv`` (fractured images, about 80/11/9% by a stable
hash of the name). Extra: ``Annotations/YOLO/IMG*.txt`` (class 0 and the normalised box, empty when
not fractured) and ``labels/IMG*.png`` (the instance label map).
"""

from __future__ import annotations

import json
import warnings
import zlib
from pathlib import Path

import numpy as np

import radseg.synth.limb_anatomy as limb
import radseg.synth.projection as projection
import radseg.synth.shapes2d as sh
from radseg.image import Image
from radseg.labels import make_label_map
from radseg.synth.common import SynthCase
from radseg.synth.dx_processing import equalise

NAME = "fracture-xray"
PREFIX = "FRAC"
DESCRIPTION = "Hand/leg/hip/shoulder radiographs (JPEG) with fracture polygons in the FracAtlas layout"
MAX_FRACTURES = 3
LABELS = {k: f"fracture {k}" for k in range(1, MAX_FRACTURES + 1)}
REGIONS = ("hand", "leg", "hip", "shoulder")
REGION_WEIGHTS = (0.35, 0.45, 0.1, 0.1)
VIEWS = ("frontal", "lateral", "oblique")
CSV_COLUMNS = ("image_id", "hand", "leg", "hip", "shoulder", "mixed", "hardware", "multiscan", "fractured",
               "fracture_count", "frontal", "lateral", "oblique")
CATEGORY = {"id": 0, "name": "fractured"}
UNION_PARTS = ("femur", "femoral neck", "greater trochanter")
MU_TITANIUM = 0.20  # 1/mm at ~65 keV (4.5 g/cm3 x ~0.45 cm2/g)


def image_name(subject) -> str:
    return f"IMG{subject.index:07d}.jpg"


def make_case(subject, *, shape=(512, 512), fracture_rate: float = 0.3, region: str | None = None) -> SynthCase:
    """One radiograph; ``region`` forces hand/leg/hip/shoulder (else drawn 35/45/10/10%)."""
    # Separate streams: whether and where a fracture is drawn changes neither the anatomy nor the noise.
    rng, fracture_rng, noise_rng = subject.rng().spawn(3)
    region = region or str(rng.choice(REGIONS, p=REGION_WEIGHTS))
    view = str(rng.choice(VIEWS, p=(0.6, 0.3, 0.1)))
    bones, soft, facts = limb.build(region, rng)
    if view == "lateral":
        _lateral(bones, region)
    scale = (0.94 if subject.sex == "F" else 1.0) * float(np.clip(1 + 0.04 * rng.standard_normal(), 0.9, 1.1))
    scale *= subject.difficulty["size"]
    spacing = limb.SPACING_MM[region]
    det = projection.Detector.centred(shape, spacing / scale)  # standard frame: scale 1 anatomy
    hardware = bool(rng.random() < 0.05)
    want = int(fracture_rng.choice([1, 2, 3], p=(0.75, 0.2, 0.05))) if fracture_rng.random() < fracture_rate else 0
    placed = _place_fractures(bones, det, fracture_rng, want)
    line, soft_line = _line_integral(bones, soft, det, noise_rng, scale, subject.difficulty["contrast"], hardware)
    _, intensity = projection.render(line, noise_rng, spacing_mm=spacing, center=1.0, width=0.4, bits=8,
                                     photons=8000.0, noise_factor=subject.difficulty["noise"],
                                     blur_mm=0.12 + spacing / 4, scatter_fraction=0.15, scatter_mm=25.0, heel=0.04)
    stored = _process(intensity, spacing, soft_line > 0.05)
    image = Image(stored.astype(np.uint8), spacing=(spacing, spacing), metadata={"modality": "DX", "photometric": "MONOCHROME2"})
    label_map = np.zeros(det.shape, np.uint8)
    annotations = []
    for k, (bone, polygon, mask) in enumerate(placed, start=1):
        label_map[mask] = k
        flat = [round(float(c), 3) for point in polygon for c in point]
        x, y = polygon[:, 0], polygon[:, 1]
        annotations.append({"segmentation": [flat], "bbox": [float(x.min()), float(y.min()), float(np.ptp(x)), float(np.ptp(y))],
                            "area": float(mask.sum())})
    names = {k: LABELS[k] for k in range(1, len(placed) + 1)}
    labels = make_label_map(image.with_array(label_map), names)
    labels.metadata.pop("photometric", None)
    params = {"image_id": image_name(subject), "region": region, "view": view, "laterality": facts["laterality"],
              "hardware": int(hardware), "fractured": int(bool(placed)), "fracture_count": len(placed),
              "pixel_spacing_mm": spacing, "body_scale": round(scale, 6), "rows": det.shape[0], "cols": det.shape[1]}
    for key, value in facts.items():
        if key != "laterality":
            params[key] = value
    for k, (bone, polygon, mask) in enumerate(placed, start=1):
        fr = bone.fracture
        params.update({f"fracture_{k}_bone": bone.name, f"fracture_{k}_position_mm": round(fr.s * scale, 3),
                       f"fracture_{k}_angle_deg": round(float(np.rad2deg(fr.angle)), 3),
                       f"fracture_{k}_gap_mm": round(fr.gap * scale, 3),
                       f"fracture_{k}_shift_across_mm": round(fr.shift[0] * scale, 3),
                       f"fracture_{k}_shift_along_mm": round(fr.shift[1] * scale, 3),
                       f"fracture_{k}_angulation_deg": round(float(np.rad2deg(fr.tilt)), 3),
                       f"fracture_{k}_area_px": int(mask.sum())})
    return SynthCase(subject=subject, image=image, labels=labels, params=params, extras={"annotations": annotations})


def _process(intensity: np.ndarray, spacing: float, body: np.ndarray) -> np.ndarray:
    """DX processing, then a film curve centred a little above the median tissue density (the
    soft tissue in most views: bone stays bright whatever its contrast, air black)."""
    density = equalise(intensity, spacing, strength=0.5, detail=0.6, broad_mm=25.0, fine_mm=1.2)
    center = float(np.median(density[body])) + 0.4 if body.any() else 1.0
    return projection.film_curve(np.exp(-density), center=center, width=0.4, bits=8)


def _lateral(bones, region: str) -> None:
    """A lateral view superimposes the paired bones."""
    if region in ("leg", "hand"):
        main = bones[0]
        for bone in bones[1:]:
            bone.p0 = (main.p0[0] + 0.3 * (bone.p0[0] - main.p0[0]), bone.p0[1])


def _place_fractures(bones, det, rng, want: int) -> list:
    """Put up to ``want`` fractures on distinct bones, each region inside the image, none overlapping."""
    from pycocotools import mask as mask_api

    rows, cols = det.shape
    taken = np.zeros(det.shape, bool)
    placed = []
    candidates = [b for b in bones if b.fracturable]
    order = list(rng.permutation(len(candidates)))
    for index in order:
        if len(placed) == want:
            break
        bone = candidates[int(index)]
        for _ in range(6):
            s = float(rng.uniform(*bone.fracturable))
            bone.fracture = limb.sample_fracture(bone, rng, s)
            polygon_mm = bone.polygon()
            r, c = det.to_pixel(polygon_mm[:, 0], polygon_mm[:, 1])
            polygon = np.stack([c + 0.5, r + 0.5], axis=1)  # COCO: pixel (col, row) covers [col, col + 1)
            if polygon.min() < 4 or polygon[:, 0].max() > cols - 4 or polygon[:, 1].max() > rows - 4:
                continue
            flat = [[round(float(v), 3) for v in polygon.ravel()]]
            with warnings.catch_warnings():  # pycocotools' numpy-2 copy= deprecation notice
                warnings.simplefilter("ignore", DeprecationWarning)
                mask = mask_api.decode(mask_api.frPyObjects(flat, rows, cols))[..., 0].astype(bool)
            if mask.sum() < 30 or (mask & taken).any():
                continue
            polygon = np.asarray(flat[0]).reshape(-1, 2)
            taken |= mask
            placed.append((bone, polygon, mask))
            break
        else:
            bone.fracture = None
    return placed


def _line_integral(bones, soft, det, rng, scale: float, contrast: float, hardware: bool):
    """(line integral, its soft-tissue part), real mm."""
    from scipy import ndimage

    mu = projection.mu_table(contrast=contrast)
    u, v = det.grid(slice(0, det.shape[0]), slice(0, det.shape[1]))
    tissue, fat, air = np.zeros(det.shape), np.zeros(det.shape), np.zeros(det.shape)
    for part in soft:  # overlapping envelopes (arm and chest) are one body: take the thicker
        s, d = part.local(u, v)
        r, t, _ = part.profile(s)
        outer = 2 * part.depth * np.sqrt(np.clip(r * r - d * d, 0.0, None))
        if part.material == "lung":
            air = np.maximum(air, outer)
            continue
        inner = 2 * part.depth * np.sqrt(np.clip((r - t) ** 2 - d * d, 0.0, None)) * (r > t)
        fat = np.where(outer > tissue, outer - inner, fat)
        tissue = np.maximum(tissue, outer)
    cortical, cancellous, marrow = (np.zeros(det.shape) for _ in range(3))
    femur = None  # pieces of one bone (femoral neck, shaft, trochanter) are a union: max, not sum
    for bone in bones:
        found = sh.window(det, bone.bbox(pad=8.0))
        if not found:
            continue
        rows, cols, uu, vv = found
        paths = bone.paths(uu, vv)
        if bone.name in UNION_PARTS:
            femur = femur if femur is not None else [np.zeros(det.shape) for _ in range(3)]
            for total, path in zip(femur, paths):
                total[rows, cols] = np.maximum(total[rows, cols], path)
        else:
            for total, path in zip((cortical, cancellous, marrow), paths):
                total[rows, cols] += path
    if femur is not None:
        cortical, cancellous, marrow = (a + b for a, b in zip((cortical, cancellous, marrow), femur))
    half = ndimage.gaussian_filter(rng.standard_normal(((det.shape[0] + 1) // 2, (det.shape[1] + 1) // 2)), 1.0)
    grain = ndimage.zoom(half, 2, order=1)[: det.shape[0], : det.shape[1]]
    cancellous = cancellous * (1.0 + 1.0 * grain)  # trabecular texture, about +-25%
    lung_mu = 0.26 * mu["soft_tissue"]  # inflated lung: a quarter tissue
    soft_line = mu["soft_tissue"] * (tissue - fat) + mu["fat"] * fat + (lung_mu - mu["soft_tissue"]) * np.minimum(air, 0.8 * tissue)
    line = (soft_line + (mu["cortical"] - mu["soft_tissue"]) * cortical
            + (mu["cancellous"] - mu["soft_tissue"]) * cancellous + (mu["fat"] - mu["soft_tissue"]) * marrow)
    if hardware:
        line = line + MU_TITANIUM * _nail(bones[0], u, v)
    return np.clip(line, 0.0, None) * scale, soft_line * scale


def _nail(bone, u, v) -> np.ndarray:
    """An intramedullary nail with two locking screws along the main bone (mm of metal)."""
    s, d = bone.local(u, v)
    lo, hi = bone.fracturable
    rod = np.where((s > lo) & (s < hi), sh.tube_chord(d, 4.5), 0.0)
    screws = sum(np.where(np.abs(d) < 22.0, sh.tube_chord(s - at, 2.2), 0.0) for at in (lo + 12.0, hi - 12.0))
    return rod + screws


def write_case(case: SynthCase, outdir) -> dict:
    import radseg.io

    outdir = Path(outdir)
    name = case.params["image_id"]
    stem = name[:-4]
    folder = "Fractured" if case.params["fractured"] else "Non_fractured"
    jpg = outdir / "images" / folder / name
    jpg.parent.mkdir(parents=True, exist_ok=True)
    radseg.io.write(case.image, jpg)
    label_png = outdir / "labels" / f"{stem}.png"
    label_png.parent.mkdir(parents=True, exist_ok=True)
    radseg.io.write(case.labels, label_png, kind="png")
    yolo = outdir / "Annotations" / "YOLO" / f"{stem}.txt"
    yolo.parent.mkdir(parents=True, exist_ok=True)
    rows, cols = case.image.shape
    lines = [f"0 {(x + w / 2) / cols:.6f} {(y + h / 2) / rows:.6f} {w / cols:.6f} {h / rows:.6f}"
             for x, y, w, h in (a["bbox"] for a in case.extras["annotations"])]
    yolo.write_text("".join(line + "\n" for line in lines))
    return {"image_path": str(jpg.relative_to(outdir)), "label_path": str(label_png.relative_to(outdir)),
            "yolo_path": str(yolo.relative_to(outdir)),
            "fracture_polygons": json.dumps(case.extras["annotations"], separators=(",", ":"))}


def split_of(image_id: str) -> str:
    """Stable split of a fractured image (~80/11/9 as FracAtlas's 574/82/61)."""
    bucket = zlib.crc32(image_id.encode()) % 1000
    return "train" if bucket < 800 else "valid" if bucket < 914 else "test"


def finish(rows: list[dict], outdir) -> None:
    """``dataset.csv``, the COCO JSON and the split lists, from every case's row."""
    import pandas as pd

    from radseg.io.atomic import write_text_atomic

    outdir = Path(outdir)
    rows = sorted(rows, key=lambda row: row["image_id"])
    table = []
    for row in rows:
        entry = {key: 0 for key in CSV_COLUMNS}
        entry.update({"image_id": row["image_id"], row["region"]: 1, row["view"]: 1, "hardware": int(row["hardware"]),
                      "fractured": int(row["fractured"]), "fracture_count": int(row["fracture_count"])})
        table.append(entry)
    write_text_atomic(outdir / "dataset.csv", pd.DataFrame(table, columns=list(CSV_COLUMNS)).to_csv(index=False))
    images, annotations = [], []
    for row in rows:
        if not int(row["fractured"]):
            continue
        image_id = len(images) + 1
        images.append({"id": image_id, "width": int(row["cols"]), "height": int(row["rows"]), "file_name": row["image_id"]})
        for ann in json.loads(row["fracture_polygons"]):
            annotations.append({"id": len(annotations), "iscrowd": 0, "image_id": image_id, "category_id": CATEGORY["id"],
                                "segmentation": ann["segmentation"], "bbox": ann["bbox"], "area": ann["area"]})
    coco = {"info": {"description": "radseg synthetic fractures (FracAtlas layout)"}, "images": images,
            "annotations": annotations, "categories": [dict(CATEGORY)]}
    write_text_atomic(outdir / "Annotations" / "COCO JSON" / "COCO_fracture_masks.json", json.dumps(coco))
    splits = {"train": [], "valid": [], "test": []}
    for image in images:
        splits[split_of(image["file_name"])].append(image["file_name"])
    for split, names in splits.items():
        write_text_atomic(outdir / "Utilities" / "Fracture Split" / f"{split}.csv", "image_id\n" + "".join(f"{n}\n" for n in names))
