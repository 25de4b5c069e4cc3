"""The generic folder adapter: images + masks by file stem, any readable format, optional metadata."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image as PILImage

from radseg.datasets import scan_dataset
from radseg.datasets.preparation import prepare
from radseg.datasets.prepared import open_prepared
from radseg.image import Image
from radseg.io import read_labels, write
from radseg.io.dicom_write import write_dicom_series
from radseg.labels import make_label_map
from radseg.registry import UnknownNameError


def _png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    PILImage.fromarray(np.asarray(array, np.uint8)).save(path)


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "data"
    masks = {}
    for k in range(4):
        _png(root / "images" / f"x{k}.png", np.full((20, 30), 40 * k))
        mask = np.zeros((20, 30), np.uint8)
        mask[2:8, 3 + k:12 + k] = 255  # 0/255, as many tools save masks
        masks[f"x{k}"] = mask
        _png(root / "masks" / f"x{k}.png", mask)
    pd.DataFrame({"case": ["x0", "x1", "x2", "x3"], "patient": ["a", "a", "b", "c"],
                  "split": ["train", "train", "valid", ""], "sex": ["F", "F", "M", "M"]}).to_csv(root / "meta.csv", index=False)
    return root, masks


def test_binary_masks_metadata_patients_and_splits(tree, tmp_path):
    root, masks = tree
    report = prepare("folder", root, tmp_path / "out", options={"binary": "true"}, fractions=(0.0, 0.0, 1.0))
    assert report.failed == [] and report.written == 4
    data = open_prepared(tmp_path / "out")
    assert data.label_names == {1: "foreground"}
    splits = {c.case_id: c.split for c in data.cases}
    assert splits == {"x0": "train", "x1": "train", "x2": "val", "x3": "test"}  # x3 has no split: generated
    for case in data.cases:
        assert np.array_equal(read_labels(case.sources["labels"]).array, (masks[case.case_id] > 0).astype(np.uint8))
        assert case.metadata["sex"] in ("F", "M")
        assert case.sources["image"].read_bytes() == (root / "images" / f"{case.case_id}.png").read_bytes()


def test_without_a_table_the_labels_are_the_values_found(tree, tmp_path):
    root, _ = tree
    prepare("folder", root, tmp_path / "out")
    assert open_prepared(tmp_path / "out").label_names == {255: "label_255"}


def test_malformed_pairs_are_reported_and_the_rest_prepared(tree, tmp_path):
    root, masks = tree
    _png(root / "masks" / "x1.png", np.zeros((21, 30)))  # wrong shape
    three = masks["x2"].copy() // 255
    three[0, 0] = 3
    _png(root / "masks" / "x2.png", three)  # unknown value 3
    _png(root / "images" / "lonely.png", np.zeros((5, 5)))
    _png(root / "masks" / "orphan.png", np.zeros((5, 5)))
    _png(root / "masks" / "x0.png", masks["x0"] // 255)
    _png(root / "masks" / "x3.png", masks["x3"] // 255)
    report = prepare("folder", root, tmp_path / "out", options={"labels": "1=lesion"})
    failed = dict(report.failed)
    assert set(failed) == {"x1", "x2"} and report.written == 2
    assert "mask shape (21, 30) does not match image shape (20, 30)" in failed["x1"]
    assert "unknown label value(s) 3 (label table: 0=background, 1=lesion)" in failed["x2"]
    assert ("images/lonely.png", "image without a mask of the same name") in report.skipped
    assert ("masks/orphan.png", "mask without an image of the same name") in report.skipped


def test_dicom_series_folder_and_nifti_mask(tmp_path):
    root = tmp_path / "ct"
    image = Image(np.arange(3 * 8 * 9, dtype=np.int16).reshape(3, 8, 9), spacing=(3.0, 0.5, 0.6), origin=(1.0, 2.0, 3.0))
    write_dicom_series(image, root / "images" / "scan1", uid_seed="folder-test")
    labels = np.zeros((3, 8, 9), np.uint8)
    labels[1, 2:5, 3:7] = 1
    write(make_label_map(image.with_array(labels), {1: "x"}), root / "labels" / "scan1.nii.gz", kind="nifti")
    scan = scan_dataset("folder", root, labels="1=x")
    assert scan.dims == 3 and scan.modality == "CT"
    report = prepare("folder", root, tmp_path / "out", options={"labels": "1=x"}, fractions=(1.0, 0.0, 0.0))
    assert report.failed == []
    data = open_prepared(tmp_path / "out")
    read = data.cases[0].image
    assert np.array_equal(read.array, image.array) and np.allclose(read.affine, image.affine, atol=1e-4)
    assert np.array_equal(read_labels(data.cases[0].sources["labels"]).array, labels)


def test_bad_options_are_named(tree):
    root, _ = tree
    with pytest.raises(ValueError, match="expected VALUE=NAME pairs"):
        scan_dataset("folder", root, labels="femur")
    with pytest.raises(ValueError, match="adapter 'folder' has no option colour"):
        scan_dataset("folder", root, colour="red")
    with pytest.raises(UnknownNameError, match="unknown dataset adapter 'fracatlass'.*Did you mean 'fracatlas'"):
        scan_dataset("fracatlass", root)
