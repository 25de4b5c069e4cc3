"""FracAtlas adapter on small trees in the official layout (real files: test_fracatlas_real.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from radseg.datasets import scan_dataset
from radseg.datasets.base import MissingFilesError
from radseg.datasets.preparation import prepare
from radseg.datasets.prepared import open_prepared, read_instances
from radseg.io import read_labels

from .trees import JSON_PATH, fracatlas_tree


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "FracAtlas"
    expected = fracatlas_tree(root)
    return root, expected


def test_withheld_image_is_reported_by_name_and_stops_without_allow_missing(tree, tmp_path):
    root, _ = tree
    scan = scan_dataset("fracatlas", root)
    assert scan.report.missing == [("IMG0000003.jpg", "listed in the test split")]
    with pytest.raises(MissingFilesError, match="1 listed file.*IMG0000003.jpg.*--allow-missing"):
        prepare("fracatlas", root, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_prepared_masks_instances_metadata_and_split(tree, tmp_path):
    root, expected = tree
    out = tmp_path / "out"
    report = prepare("fracatlas", root, out, allow_missing=True)
    assert report.failed == [] and report.written == 3
    assert report.splits == {"train": 2, "val": 1, "test": 0}
    data = open_prepared(out)
    assert data.label_names == {1: "fractured"}  # category id 0 -> label value 1
    assert data.info["source"]["category_ids"] == {"0": 1}
    assert data.info["preset"] == "fracture-xray" and data.info["modality"] == "XR"
    for case in data.cases:
        labels = read_labels(case.sources["labels"])
        assert np.array_equal(labels.array, expected[case.case_id]), case.case_id
        # the JPEG is copied byte for byte: no second lossy encoding
        assert case.sources["image"].read_bytes() == next(root.glob(f"images/*/{case.case_id}.jpg")).read_bytes()
    instances = read_instances(out / "instances" / "IMG0000001.npz")
    assert [i.source_id for i in instances] == ["0", "1"] and [i.value for i in instances] == [1, 1]
    assert instances[0].mask.sum() == 32 and instances[1].mask.sum() == 100  # 8x4 and 10x10 pixels
    import pandas as pd

    meta = pd.read_csv(out / "metadata.csv").set_index("case")
    assert meta.loc["IMG0000001", "body_part"] == "hand" and meta.loc["IMG0000001", "view"] == "frontal"
    assert meta.loc["IMG0000005", "body_part"] == "mixed" and meta.loc["IMG0000005", "view"] == "oblique"
    assert meta.loc["IMG0000002", "hardware"] == 1 and meta.loc["IMG0000005", "multiscan"] == 1
    assert meta.loc["IMG0000002", "split"] == "val"
    saved = json.loads((out / "report.json").read_text())
    assert saved["missing"] == [{"file": "IMG0000003.jpg", "why": "listed in the test split"}]


def test_category_id_one_gives_the_same_labels(tmp_path):
    root = tmp_path / "fa"
    expected = fracatlas_tree(root, category_id=1)
    out = tmp_path / "out"
    prepare("fracatlas", root, out, allow_missing=True)
    assert np.array_equal(read_labels(out / "labels" / "IMG0000002.nii.gz").array, expected["IMG0000002"])


def test_mask_size_that_does_not_match_its_image_fails_that_case_only(tmp_path):
    root = tmp_path / "fa"
    fracatlas_tree(root, json_sizes={"IMG0000002.jpg": (40, 60)})  # width/height swapped in the JSON
    report = prepare("fracatlas", root, tmp_path / "out", allow_missing=True)
    assert [c for c, _ in report.failed] == ["IMG0000002"]
    assert "the JSON says 40x60 but the image is 60x40 (mask shape does not match its image)" in report.failed[0][1]
    assert report.written == 2
    assert "IMG0000002" not in json.loads((tmp_path / "out" / "dataset.json").read_text())["cases"]


def test_unknown_category_and_bad_polygon_are_reported(tmp_path):
    root = tmp_path / "fa"
    bad = [{"id": 9, "image_id": 5, "category_id": 7, "segmentation": [[1, 1, 5, 1, 5, 5]]},
           {"id": 10, "image_id": 2, "category_id": 0, "segmentation": [[1, 1, 5, 5]]}]
    fracatlas_tree(root, extra_annotations=bad)
    scan = scan_dataset("fracatlas", root)
    assert ("annotation 9", "category 7 not in categories") in scan.report.skipped
    report = prepare("fracatlas", root, tmp_path / "out", allow_missing=True)
    assert [c for c, _ in report.failed] == ["IMG0000002"]
    assert "annotation 10 of IMG0000002.jpg: unreadable segmentation (a polygon needs at least 3 points" in report.failed[0][1]


def test_negatives_add_empty_masks_with_a_generated_split(tree, tmp_path):
    root, _ = tree
    report = prepare("fracatlas", root, tmp_path / "out", allow_missing=True, options={"negatives": "true"},
                     fractions=(1.0, 0.0, 0.0))
    data = open_prepared(tmp_path / "out")
    negative = next(c for c in data.cases if c.case_id == "IMG0000004")
    assert negative.split == "train" and read_labels(negative.sources["labels"]).array.max() == 0
    assert "given by the dataset where listed, else generated" in report.split_source


def test_exif_rotated_image_is_turned_like_the_annotators_saw_it(tmp_path):
    from PIL import Image as PILImage
    from PIL import ImageOps

    from .trees import grey_jpeg

    root = tmp_path / "fa"
    fracatlas_tree(root)  # the JSON says 60 wide x 40 high, as viewers show the image
    # stored 40 wide x 60 high with EXIF 8: viewers turn it to 60 wide x 40 high
    path = root / "images" / "Fractured" / "IMG0000005.jpg"
    grey_jpeg(path, shape=(60, 40), seed=5, exif_orientation=8)
    shown = np.asarray(ImageOps.exif_transpose(PILImage.open(path)))
    report = prepare("fracatlas", root, tmp_path / "out", allow_missing=True)
    assert report.failed == []
    assert any("IMG0000005: EXIF orientation 8" in w for w in report.warnings)
    data = open_prepared(tmp_path / "out")
    case = next(c for c in data.cases if c.case_id == "IMG0000005")
    assert case.sources["image"].suffix == ".png"
    image = case.image
    assert np.array_equal(image.array, shown)
    labels = read_labels(case.sources["labels"])
    assert labels.shape == (40, 60) and labels.array[20:30, 30:40].all() and labels.array.sum() == 100


def test_prepared_folder_is_what_radseg_train_reads(tree, tmp_path):
    from radseg.train import data as data_module
    root, expected = tree
    prepare("fracatlas", root, tmp_path / "out", allow_missing=True)
    train = data_module.load_prepared(tmp_path / "out")
    assert train.label_names == {1: "fractured"} and train.problems == []
    assert sorted(c.case_id for c in train.cases) == sorted(expected)
    for case in train.cases:
        assert np.array_equal(case.label.array, expected[case.case_id])
    assert train.splits["val"] == ["IMG0000002"]


def test_resume_keeps_finished_cases(tree, tmp_path):
    root, _ = tree
    out = tmp_path / "out"
    prepare("fracatlas", root, out, allow_missing=True)
    stamp = (out / "labels" / "IMG0000001.nii.gz").stat().st_mtime_ns
    again = prepare("fracatlas", root, out, allow_missing=True)
    assert again.kept == 3 and again.written == 0
    assert (out / "labels" / "IMG0000001.nii.gz").stat().st_mtime_ns == stamp
    assert (root / JSON_PATH).exists()


def test_fracture_phantom_layout(tmp_path):
    from radseg.synth.run import synthesize

    from .test_polygons import _centre_rule

    assert not synthesize("fracture-xray", 8, tmp_path / "frac", seed=4, workers=1).failed
    report = prepare("fracatlas", tmp_path / "frac", tmp_path / "out", options={"negatives": True})
    assert report.failed == [] and report.missing == []
    coco = json.loads((tmp_path / "frac" / JSON_PATH).read_text())
    polygons = {e["file_name"][:-4]: [a for a in coco["annotations"] if a["image_id"] == e["id"]] for e in coco["images"]}
    data = open_prepared(tmp_path / "out")
    assert len(data.cases) == 8
    for case in data.cases:
        labels = read_labels(case.sources["labels"]).array > 0
        phantom = read_labels(tmp_path / "frac" / "labels" / f"{case.case_id}.png").array > 0
        anns = polygons.get(case.case_id, [])
        instances = read_instances(case.sources["instances"])
        assert len(instances) == len(anns)
        for ann, instance in zip(anns, instances):
            reference = np.zeros(labels.shape, bool)
            for polygon in ann["segmentation"]:
                reference |= _centre_rule(polygon, labels.shape)
            assert np.array_equal(instance.mask, reference)
        if phantom.any():  # the phantom rasterised with pycocotools: boundary pixels may differ
            assert 2 * (labels & phantom).sum() / (labels.sum() + phantom.sum()) >= 0.99
        else:
            assert not labels.any()


def test_interrupted_run_resumes_and_another_run_is_refused(tree, tmp_path):
    from radseg.errors import RadsegError

    root, _ = tree
    out = tmp_path / "out"
    prepare("fracatlas", root, out, allow_missing=True)
    (out / "dataset.json").unlink()  # as if the run had stopped before its tables
    (out / "labels" / "IMG0000005.nii.gz").unlink()  # ... and before this case was complete
    again = prepare("fracatlas", root, out, allow_missing=True)
    assert (again.kept, again.written) == (2, 1) and (out / "dataset.json").exists()
    with pytest.raises(RadsegError, match="holds another preparation"):
        prepare("fracatlas", root, out, allow_missing=True, seed=7)
    redone = prepare("fracatlas", root, out, allow_missing=True, seed=7, overwrite=True)
    assert redone.written == 3
    (out / "notes.txt").write_text("x")
    with pytest.raises(RadsegError, match=r"folder holds other files \(notes.txt\)"):
        prepare("fracatlas", root, out, allow_missing=True, seed=7)


def test_overwrite_with_fewer_cases_leaves_no_stale_files(tree, tmp_path):
    root, _ = tree
    out = tmp_path / "out"
    prepare("fracatlas", root, out, allow_missing=True, options={"negatives": True})
    assert (out / "images" / "IMG0000004.jpg").exists()
    report = prepare("fracatlas", root, out, allow_missing=True, overwrite=True)
    assert "removed images/IMG0000004.jpg: not a case of this preparation" in report.warnings
    assert sorted(p.name for p in (out / "images").iterdir()) == ["IMG0000001.jpg", "IMG0000002.jpg", "IMG0000005.jpg"]
    assert sorted(p.name for p in (out / "instances").iterdir()) == ["IMG0000001.npz", "IMG0000002.npz", "IMG0000005.npz"]


def test_negatives_join_the_split_of_the_nearest_numbered_fractured_image(tree, tmp_path):
    from radseg.datasets.fracatlas import _nearest_splits

    official = {"IMG0000010.jpg": "train", "IMG0000020.jpg": "train", "IMG0000040.jpg": "test", "IMG0000090.jpg": "val"}
    got = _nearest_splits(["IMG0000001.jpg", "IMG0000029.jpg", "IMG0000030.jpg", "IMG0000066.jpg", "IMG0000065.jpg",
                           "IMG0000500.jpg", "notes.jpg"], official)
    # 30 is 10 from 20 and 40: the lower number wins; 65 is 25 from 40 and 90 (tie: test), 66 is nearer 90
    assert got == {"IMG0000001.jpg": "train", "IMG0000029.jpg": "train", "IMG0000030.jpg": "train",
                   "IMG0000066.jpg": "val", "IMG0000065.jpg": "test", "IMG0000500.jpg": "val"}
    root, _ = tree
    prepare("fracatlas", root, tmp_path / "out", allow_missing=True,
            options={"negatives": "true", "negative_split": "nearest"}, fractions=(1.0, 0.0, 0.0))
    negative = next(c for c in open_prepared(tmp_path / "out").cases if c.case_id == "IMG0000004")
    assert negative.split == "test"  # 1 from IMG0000003 (test, withheld) and IMG0000005 (train): the lower
    # the adapter chose that split, FracAtlas did not publish it: prepare may move it beside a copy
    from radseg.datasets.adapters import scan_dataset

    records = scan_dataset("fracatlas", root, negatives=True, negative_split="nearest").records
    assert {r.case_id: r.split_derived for r in records if r.split} == {
        r.case_id: r.case_id == "IMG0000004" for r in records if r.split}
    with pytest.raises(ValueError, match="negative_split must be one of seeded, nearest"):
        prepare("fracatlas", root, tmp_path / "bad", allow_missing=True,
                options={"negatives": "true", "negative_split": "closest"})
