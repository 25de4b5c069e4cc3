"""The FracAtlas adapter on the real files in ../shared/data/fracatlas (skipped when absent)."""

from __future__ import annotations

import json
from collections import defaultdict

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def root():
    from tests.conftest import SHARED_DATA

    path = SHARED_DATA / "fracatlas"
    if not path.is_dir():
        pytest.skip(f"real FracAtlas folder {path} not present")
    return path


@pytest.fixture(scope="module")
def scan(root):
    from radseg.datasets import scan_dataset

    return scan_dataset("fracatlas", root)


def test_counts_match_the_official_figures(scan):
    found = scan.report.found
    assert found["images listed in the JSON"] == 717
    assert found["annotations"] == 922
    assert (found["train split"], found["val split"], found["test split"]) == (574, 82, 61)
    assert found["rows in dataset.csv"] == 4083
    assert scan.label_names == {1: "fractured"}  # the JSON's category id is 0 in this copy


def test_withheld_test_images_are_reported_by_name(root, scan):
    test_names = set(pd.read_csv(root / "Utilities" / "Fracture Split" / "test.csv")["image_id"])
    present = {p.name for p in (root / "images").glob("*/*.jpg")}
    withheld = test_names - present
    assert len(withheld) == 61  # the shared copy withholds the whole official test split
    assert {name for name, _ in scan.report.missing} == withheld
    assert all(why == "listed in the test split" for _, why in scan.report.missing)
    assert len(scan.records) == 574 + 82


def test_known_inconsistency_of_the_real_files_is_reported(scan):
    # IMG0003298 is in the test split and has a polygon, but dataset.csv says fractured=0
    assert any(w.startswith("IMG0003298.jpg: dataset.csv says fractured=0") for w in scan.report.warnings)


def _centre_rule(points, shape):
    """Independent rasteriser: matplotlib point-in-polygon at pixel centres, on the polygon's box."""
    from matplotlib.path import Path

    points = np.asarray(points, float).reshape(-1, 2)
    mask = np.zeros(shape, bool)
    x0, y0 = np.maximum(np.floor(points.min(axis=0)).astype(int) - 1, 0)
    x1, y1 = np.ceil(points.max(axis=0)).astype(int) + 1
    rows, cols = np.mgrid[y0:min(y1, shape[0]), x0:min(x1, shape[1])]
    inside = Path(points).contains_points(np.column_stack([cols.ravel() + 0.5, rows.ravel() + 0.5]))
    mask[rows.ravel()[inside], cols.ravel()[inside]] = True
    return mask


TURNED = ["IMG0002588", "IMG0002628"]  # the two real JPEGs with an EXIF orientation tag


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_polygon_masks_of_a_sample_match_an_independent_rasterisation(root, scan):
    sample = [r for k, r in enumerate(scan.records) if k % 10 == 0 or r.case_id in TURNED]
    _check_masks(root, sample, expected_turned=TURNED)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_every_polygon_mask_matches_an_independent_rasterisation(root, scan):
    assert len(scan.records) == 656
    _check_masks(root, scan.records, expected_turned=TURNED)


def _check_masks(root, records, *, expected_turned):
    from PIL import Image as PILImage
    from pycocotools import mask as mask_api

    from radseg.io.raster import apply_orientation

    coco = json.loads((root / "Annotations" / "COCO JSON" / "COCO_fracture_masks.json").read_text())
    by_name = {entry["file_name"]: entry for entry in coco["images"]}
    polygons = defaultdict(list)
    for ann in coco["annotations"]:
        polygons[ann["image_id"]].append(ann)
    worst, worst_coco, turned, checked = 1.0, 1.0, [], 0
    for record in records:
        loaded = record.load()
        entry = by_name[record.case_id + ".jpg"]
        shape = (entry["height"], entry["width"])
        assert loaded.labels.shape == shape, record.case_id
        anns = polygons[entry["id"]]
        assert [i.source_id for i in loaded.instances] == [a["id"] for a in anns]
        union, union_coco = np.zeros(shape, bool), np.zeros(shape, bool)
        for ann, instance in zip(anns, loaded.instances):
            reference = np.zeros(shape, bool)
            for polygon in ann["segmentation"]:
                reference |= _centre_rule(polygon, shape)
            assert np.array_equal(instance.mask, reference), (record.case_id, ann["id"])
            union |= reference
            union_coco |= mask_api.decode(mask_api.frPyObjects(ann["segmentation"], *shape)).any(axis=-1).astype(bool)
        semantic = loaded.labels.array > 0
        dice = 2 * (semantic & union).sum() / (semantic.sum() + union.sum())
        dice_coco = 2 * (semantic & union_coco).sum() / (semantic.sum() + union_coco.sum())
        worst, worst_coco = min(worst, dice), min(worst_coco, dice_coco)
        checked += 1
        with PILImage.open(root / record.sources[0]) as pil:  # the tag read independently of radseg
            orientation = pil.getexif().get(0x0112)
            raw = np.asarray(pil.convert("L")) if orientation not in (None, 1) else None
        if raw is not None:
            turned.append(record.case_id)
            assert np.array_equal(loaded.image.array, apply_orientation(raw, orientation))
    assert checked == len(records)
    # exact by construction: the label map is the union of the instance masks, each asserted equal to
    # its reference above, so the Dice is 2n / (n + n) = 1.0 exactly
    assert worst == 1.0, worst
    # pycocotools' own scan conversion differs on boundary pixels of small polygons (documented)
    assert worst_coco >= 0.95, worst_coco
    assert sorted(turned) == expected_turned
