"""fracture-xray phantom: FracAtlas layout, COCO polygons equal to the label map, determinism, difficulty."""

from __future__ import annotations

import dataclasses
import filecmp
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pycocotools.coco import COCO

import radseg.io
from radseg.synth import fracture_xray as kind
from radseg.synth import limb_anatomy as limb
from radseg.synth.cohort import make_subject
from radseg.synth.run import synthesize

COCO_PATH = Path("Annotations") / "COCO JSON" / "COCO_fracture_masks.json"
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # pycocotools on numpy 2


def subject(index: int = 0, seed: int = 3, **difficulty):
    base = make_subject(index, seed=seed, prefix=kind.PREFIX)
    return dataclasses.replace(base, difficulty={**base.difficulty, **difficulty}) if difficulty else base


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """Eight cases with many fractures (rate 0.8), written by the driver with previews."""
    out = tmp_path_factory.mktemp("fracatlas")
    result = synthesize(kind.NAME, 8, out, seed=4, preview=True, options={"fracture_rate": 0.8})
    assert not result.failed, result.failed
    return out, {row["image_id"]: row for row in result.rows}


def test_coco_polygons_rasterise_to_the_label_maps(cohort):
    out, rows = cohort
    coco = COCO(str(out / COCO_PATH))
    raw = json.loads((out / COCO_PATH).read_text())
    assert list(raw) == ["info", "images", "annotations", "categories"]
    assert raw["categories"] == [{"id": 0, "name": "fractured"}]  # the distributed copy's category id
    ids = [a["id"] for a in raw["annotations"]]
    assert ids == list(range(len(ids))) and len(ids) >= 3
    fractured = {r["image_id"] for r in rows.values() if int(r["fractured"])}
    assert {image["file_name"] for image in raw["images"]} == fractured
    for image in raw["images"]:
        labels = radseg.io.read_labels(out / "labels" / image["file_name"].replace(".jpg", ".png")).array
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[image["id"]]))
        assert len(anns) == int(rows[image["file_name"]]["fracture_count"]) == labels.max()
        for k, ann in enumerate(anns, start=1):
            region = coco.annToMask(ann).astype(bool)
            assert np.array_equal(region, labels == k)
            assert ann["area"] == region.sum()
            xs, ys = np.array(ann["segmentation"][0][0::2]), np.array(ann["segmentation"][0][1::2])
            assert ann["bbox"] == pytest.approx([xs.min(), ys.min(), np.ptp(xs), np.ptp(ys)])
            rr, cc = np.nonzero(region)  # pixel (col, row) covers [col, col + 1): inside the box
            assert xs.min() - 1 <= cc.min() and cc.max() <= xs.max() and ys.min() - 1 <= rr.min() and rr.max() <= ys.max()


def test_dataset_csv_and_splits_follow_fracatlas(cohort):
    out, rows = cohort
    table = pd.read_csv(out / "dataset.csv")
    assert tuple(table.columns) == kind.CSV_COLUMNS
    assert list(table.image_id) == [f"IMG{k:07d}.jpg" for k in range(8)]
    assert (table.fractured == (table.fracture_count > 0).astype(int)).all()
    assert (table[["hand", "leg", "hip", "shoulder"]].sum(axis=1) == 1).all()
    assert (table[["frontal", "lateral", "oblique"]].sum(axis=1) == 1).all()
    for record in table.itertuples():
        folder = "Fractured" if record.fractured else "Non_fractured"
        assert (out / "images" / folder / record.image_id).exists()
        assert getattr(record, rows[record.image_id]["region"]) == 1
        yolo = (out / "Annotations" / "YOLO" / record.image_id.replace(".jpg", ".txt")).read_text().splitlines()
        assert len(yolo) == record.fracture_count
    splits = {name: pd.read_csv(out / "Utilities" / "Fracture Split" / f"{name}.csv") for name in ("train", "valid", "test")}
    listed = [name for frame in splits.values() for name in frame.image_id]
    assert sorted(listed) == sorted(table.image_id[table.fractured == 1]) and len(set(listed)) == len(listed)
    metadata = pd.read_csv(out / "metadata.csv")
    assert list(metadata.case_id) == [f"FRAC{k:04d}" for k in range(1, 9)]
    assert list(metadata.image_id) == list(table.image_id)  # FRAC0001 is IMG0000000.jpg
    for case_id in metadata.case_id:
        assert (out / "preview" / f"{case_id}.png").exists()


def test_images_are_8bit_jpegs_of_the_case(tmp_path):
    case = kind.make_case(subject(1), fracture_rate=1.0)
    columns = kind.write_case(case, tmp_path)
    image = radseg.io.read(tmp_path / columns["image_path"])
    assert image.metadata["lossy"] and image.shape == case.image.shape
    assert np.abs(image.array.astype(int) - case.image.array).mean() < 2.0  # quality-95 JPEG of the same picture
    assert columns["image_path"] == f"images/Fractured/{case.params['image_id']}"
    assert case.params["fracture_count"] >= 1 and case.labels.array.max() == case.params["fracture_count"]
    for k in range(1, case.params["fracture_count"] + 1):
        assert (case.labels.array == k).sum() == case.params[f"fracture_{k}_area_px"]


def test_fracture_gap_removes_bone_along_the_line():
    rng = np.random.default_rng(1)
    bones, _, _ = limb.build("leg", rng)
    tibia = bones[0]
    tibia.fracture = limb.sample_fracture(tibia, rng, 180.0)
    tibia.fracture.shift, tibia.fracture.tilt = (0.0, 0.0), 0.0
    d = np.linspace(-8.0, 8.0, 33)
    on_line = tibia.point(tibia.line(d), d)
    away = tibia.point(tibia.line(d) - 6.0, d)
    cut = sum(tibia.paths(on_line[:, 0], on_line[:, 1]))
    intact = sum(tibia.paths(away[:, 0], away[:, 1]))
    assert np.all(cut == 0) and np.all(intact > 10)  # the gap holds no bone; 6 mm away the shaft is whole
    polygon = tibia.polygon()
    assert polygon.shape == (14, 2)


def test_undisplaced_fracture_changes_the_image_only_at_its_region():
    """The same subject with and without its fracture: the darkest change lies in the labelled region."""
    for index in range(40):
        case = kind.make_case(subject(index), fracture_rate=1.0, region="leg")
        if case.params["fracture_count"] == 1 and case.params["fracture_1_shift_across_mm"] == 0:
            break
    else:
        pytest.fail("no undisplaced fracture in 40 subjects")
    intact = kind.make_case(subject(index), fracture_rate=0.0, region="leg")
    change = case.image.array.astype(int) - intact.image.array.astype(int)
    region = case.labels.array > 0
    assert change[region].min() < -8  # the gap shows as a dark line
    row, col = np.unravel_index(np.argmin(change), change.shape)
    assert region[row, col]


def test_deterministic_files_including_jpeg(tmp_path):
    for name in ("a", "b"):
        kind.write_case(kind.make_case(subject(6), fracture_rate=1.0), tmp_path / name)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert any(str(f).endswith(".jpg") for f in files)
    for rel in files:
        assert filecmp.cmp(tmp_path / "a" / rel, tmp_path / "b" / rel, shallow=False), rel
    assert not np.array_equal(kind.make_case(subject(6, seed=9)).image.array, kind.make_case(subject(6)).image.array)


def test_difficulty_factors(tmp_path):
    base = kind.make_case(subject(0), region="leg", fracture_rate=1.0)
    image = base.image.array.astype(float)
    body = image > 20
    bone = image > np.percentile(image[body], 90)
    soft = body & (image < np.percentile(image[body], 40))
    low = kind.make_case(subject(0, contrast=0.6), region="leg", fracture_rate=1.0).image.array.astype(float)
    assert low[bone].mean() - low[soft].mean() < 0.85 * (image[bone].mean() - image[soft].mean())

    def noise(values):
        return float(np.std((values - np.roll(values, 1, axis=1))[soft]))

    noisy = kind.make_case(subject(0, noise=2.0), region="leg", fracture_rate=1.0).image.array.astype(float)
    assert noise(noisy) > 1.4 * noise(image)
    small = kind.make_case(subject(0, size=0.85), region="leg", fracture_rate=1.0)
    assert small.params["body_scale"] == pytest.approx(0.85 * base.params["body_scale"])
    assert small.params["fracture_1_bone"] == base.params["fracture_1_bone"]
    # the same fracture drawn 0.85x smaller on the same pixel grid covers 0.85^2 of the pixels
    assert small.params["fracture_1_area_px"] == pytest.approx(0.85 ** 2 * base.params["fracture_1_area_px"], rel=0.12)


def test_left_and_right_limbs_mirror():
    rng = np.random.default_rng(0)
    for _ in range(6):
        bones, _, facts = limb.build("leg", rng)
        tibia, fibula = bones[0], bones[1]
        # AP view, patient's right on image left: the fibula (lateral) is image-left of the tibia on a right leg
        assert (fibula.p0[0] < tibia.p0[0]) == (facts["laterality"] == "R")


def test_fracture_rate_and_regions():
    cases = [kind.make_case(subject(k, seed=21)) for k in range(20)]
    fractured = sum(c.params["fractured"] for c in cases)
    assert 1 <= fractured <= 12  # ~30% of 20; the binomial 1..12 range holds with p > 0.999
    assert {c.params["region"] for c in cases} <= set(kind.REGIONS)
    assert all(c.params["image_id"] == f"IMG{k:07d}.jpg" for k, c in enumerate(cases))
