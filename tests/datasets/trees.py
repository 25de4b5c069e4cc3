"""Small dataset trees in the exact published layouts, built by the tests themselves."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

SPLIT_DIR = Path("Utilities") / "Fracture Split"
JSON_PATH = Path("Annotations") / "COCO JSON" / "COCO_fracture_masks.json"
FLAGS = "hand,leg,hip,shoulder,mixed,hardware,multiscan,fractured,fracture_count,frontal,lateral,oblique"


def grey_jpeg(path: Path, shape=(40, 60), seed=0, exif_orientation: int | None = None) -> np.ndarray:
    from PIL import Image as PILImage

    rng = np.random.default_rng(seed)
    array = (rng.random(shape) * 50 + 100).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    pil = PILImage.fromarray(array)
    if exif_orientation:
        exif = PILImage.Exif()
        exif[0x0112] = exif_orientation
        pil.save(path, quality=95, exif=exif)
    else:
        pil.save(path, quality=95)
    return array


def fracatlas_tree(root: Path, *, category_id: int = 0, withhold=("IMG0000003.jpg",), json_sizes=None,
                   extra_annotations=()) -> dict:
    """Five images: 1, 2, 3 fractured (train, valid, test), 4 not fractured, 5 fractured (train).

    Image 1 has two rectangles (one stored as a JSON string), image 2 a triangle, image 3 a
    rectangle, image 5 a rectangle. Returns the expected masks per image name.
    """
    names = [f"IMG000000{i}.jpg" for i in range(1, 6)]
    folders = {1: "Fractured", 2: "Fractured", 3: "Fractured", 4: "Non_fractured", 5: "Fractured"}
    for i, name in enumerate(names, start=1):
        if name not in withhold:
            grey_jpeg(root / "images" / folders[i] / name, seed=i)
    rect1, rect2 = [2, 2, 10, 2, 10, 6, 2, 6], [30, 20, 40, 20, 40, 30, 30, 30]
    triangle = [10.2, 10.2, 30.2, 10.2, 10.2, 30.2]  # no pixel centre on an edge
    images = [{"id": k, "width": 60, "height": 40, "file_name": n} for k, n in ((1, names[0]), (2, names[1]), (3, names[2]), (5, names[4]))]
    for entry in images:
        if json_sizes and entry["file_name"] in json_sizes:
            entry["width"], entry["height"] = json_sizes[entry["file_name"]]
    annotations = [
        {"id": 0, "image_id": 1, "category_id": category_id, "iscrowd": 0, "segmentation": [rect1], "bbox": [2, 2, 8, 4], "area": 32},
        {"id": 1, "image_id": 1, "category_id": category_id, "iscrowd": 0, "segmentation": json.dumps([rect2]), "bbox": [30, 20, 10, 10], "area": 100},
        {"id": 2, "image_id": 2, "category_id": category_id, "iscrowd": 0, "segmentation": [triangle], "bbox": [10, 10, 20, 20], "area": 200},
        {"id": 3, "image_id": 3, "category_id": category_id, "iscrowd": 0, "segmentation": [rect1], "bbox": [2, 2, 8, 4], "area": 32},
        {"id": 4, "image_id": 5, "category_id": category_id, "iscrowd": 0, "segmentation": [rect2], "bbox": [30, 20, 10, 10], "area": 100},
        *extra_annotations,
    ]
    (root / JSON_PATH).parent.mkdir(parents=True, exist_ok=True)
    (root / JSON_PATH).write_text(json.dumps({"info": {}, "images": images, "annotations": annotations,
                                              "categories": [{"id": category_id, "name": "fractured"}]}))
    rows = {1: "1,0,0,0,0,0,0,1,2,1,0,0", 2: "0,1,0,0,0,1,0,1,1,0,1,0", 3: "0,0,1,0,0,0,0,1,1,1,0,0",
            4: "0,0,0,1,0,0,0,0,0,1,1,0", 5: "1,1,0,0,1,0,1,1,1,0,0,1"}
    (root / "dataset.csv").write_text("image_id," + FLAGS + "\n" + "".join(f"{names[i - 1]},{r}\n" for i, r in rows.items()))
    (root / SPLIT_DIR).mkdir(parents=True, exist_ok=True)
    for split, members in (("train", [names[0], names[4]]), ("valid", [names[1]]), ("test", [names[2]])):
        (root / SPLIT_DIR / f"{split}.csv").write_text("image_id\n" + "".join(f"{m}\n" for m in members))
    # expected masks by hand: pixel (r, c) is in when its centre (c + .5, r + .5) is inside
    one = np.zeros((40, 60), np.uint8)
    one[2:6, 2:10] = 1
    one[20:30, 30:40] = 1
    two = np.zeros((40, 60), np.uint8)
    rr, cc = np.mgrid[:40, :60]
    two[(cc >= 10) & (rr >= 10) & (cc + rr <= 39)] = 1  # centres with x, y >= 10.2 and x + y <= 40.4
    five = np.zeros((40, 60), np.uint8)
    five[20:30, 30:40] = 1
    return {"IMG0000001": one, "IMG0000002": two, "IMG0000005": five}


def hemseg_scan(root: Path, scan: str, patient: str, slice_ids: list[str], *, seed: int = 0,
                shape=(16, 20)) -> tuple[object, np.ndarray]:
    """RSNA-style slices of one scan under ROOT/stage_2_train; returns (image, a label array)."""
    from radseg.image import Image
    from radseg.synth.brain_ct import write_rsna_slices

    rng = np.random.default_rng(seed)
    volume = rng.integers(-20, 90, (len(slice_ids), *shape)).astype(np.int16)
    image = Image(volume, spacing=(5.0, 0.5, 0.45), origin=(-4.0, -5.0, 10.0 * seed))
    write_rsna_slices(image, root / "stage_2_train", slice_ids, patient_id=patient, uid_seed=f"t/{scan}",
                      patient={"name": "X", "sex": "F", "age": 60})
    labels = np.zeros(volume.shape, np.uint8)
    labels[1:3, 4:9, 5:12] = 1
    return image, labels


def write_label(path: Path, image, array: np.ndarray) -> Path:
    from radseg.io import write
    from radseg.labels import make_label_map

    return write(make_label_map(image.with_array(array), {1: "hemorrhage"}), path, kind="nifti")
