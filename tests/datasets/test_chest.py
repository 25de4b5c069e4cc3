"""Chest adapters (jsrt-scr, shenzhen, cxas): built layouts with known masks, and the real files when present."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image as PILImage

from radseg.datasets import open_prepared, prepare, scan_dataset
from radseg.datasets.chest import JSRT_SPACING_MM, SCR_CLASSES
from radseg.errors import ReadError
from radseg.labels import is_multilabel


def _png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    PILImage.fromarray(array.astype(np.uint8)).save(path)


def _scr_layout(root, cases=("JPCLN001", "JPCNN002"), size=32):
    """Masks that overlap on purpose: the heart covers part of both lungs, as in SCR."""
    masks = {}
    for index, case in enumerate(cases):
        _png(root / "images" / f"{case}.png", np.full((size, size), 40 + index, np.uint8))
        right = np.zeros((size, size), bool)
        right[4:28, 3:14] = True
        left = np.zeros((size, size), bool)
        left[4:28, 18:29] = True
        heart = np.zeros((size, size), bool)
        heart[16:26, 10 + index:22] = True
        clav_r = np.zeros((size, size), bool)
        clav_r[2:4, 4:14] = True
        clav_l = np.zeros((size, size), bool)
        clav_l[2:4, 18:28] = True
        truth = {"heart": heart, "right lung": right, "left lung": left, "right clavicle": clav_r, "left clavicle": clav_l}
        for name, folder in SCR_CLASSES.items():
            _png(root / "masks" / folder / f"{case}.png", truth[name] * 255)
        masks[case] = truth
    return masks


def test_jsrt_scr_keeps_overlapping_classes_and_spacing(tmp_path):
    truth = _scr_layout(tmp_path / "scr")
    scan = scan_dataset("jsrt-scr", tmp_path / "scr")
    assert scan.multilabel and scan.label_names == {1: "heart", 2: "right lung", 3: "left lung",
                                                   4: "right clavicle", 5: "left clavicle"}
    loaded = scan.records[0].load()
    assert is_multilabel(loaded.labels) and loaded.labels.array.shape == (32, 32, 5)
    for channel, name in enumerate(SCR_CLASSES):
        assert np.array_equal(loaded.labels.array[..., channel], truth["JPCLN001"][name]), name
    heart, right = loaded.labels.array[..., 0], loaded.labels.array[..., 1]
    assert (heart & right).sum() == 10 * 4  # rows 16-25 x cols 10-13: the overlap survives
    assert loaded.image.spacing == pytest.approx((JSRT_SPACING_MM, JSRT_SPACING_MM))
    assert loaded.image.metadata["spacing_known"] is True
    assert scan.records[0].metadata == {"nodule": True} and scan.records[1].metadata == {"nodule": False}


def test_jsrt_scr_names_a_case_missing_a_mask(tmp_path):
    _scr_layout(tmp_path / "scr")
    (tmp_path / "scr" / "masks" / "left_clavicle" / "JPCNN002.png").unlink()
    (tmp_path / "scr" / "masks" / "heart" / "JPCLN001.png").rename(tmp_path / "scr" / "masks" / "heart" / "JPCLN009.png")
    scan = scan_dataset("jsrt-scr", tmp_path / "scr")
    skipped = dict(scan.report.skipped)
    assert "no left clavicle mask" in skipped["images/JPCNN002.png"]
    assert "no heart mask" in skipped["images/JPCLN001.png"]
    assert ("images/JPCLN009.png", "the SCR heart mask exists") in scan.report.missing
    (tmp_path / "scr" / "masks" / "heart").rename(tmp_path / "scr" / "masks" / "cor")
    with pytest.raises(ReadError, match="masks/heart"):
        scan_dataset("jsrt-scr", tmp_path / "scr")


def test_prepared_multilabel_dataset_round_trips(tmp_path):
    truth = _scr_layout(tmp_path / "scr", cases=("JPCLN001", "JPCNN002", "JPCNN003"))
    report = prepare("jsrt-scr", tmp_path / "scr", tmp_path / "prep", allow_missing=False, fractions=(1.0, 0.0, 0.0))
    assert report.written == 3
    info = json.loads((tmp_path / "prep" / "dataset.json").read_text())
    assert info["multilabel"] is True and info["cases"]["JPCNN002"]["labels"] == "labels/JPCNN002.npz"
    dataset = open_prepared(tmp_path / "prep")
    case = next(c for c in dataset.cases if c.case_id == "JPCNN002")
    image = case.image
    labels = case.label
    assert image.spacing == pytest.approx((JSRT_SPACING_MM,) * 2)
    assert labels.metadata["class_names"] == list(SCR_CLASSES)
    for channel, name in enumerate(SCR_CLASSES):
        assert np.array_equal(labels.array[..., channel], truth["JPCNN002"][name])
    again = prepare("jsrt-scr", tmp_path / "scr", tmp_path / "prep", fractions=(1.0, 0.0, 0.0))
    assert (again.written, again.kept) == (0, 3)  # a rerun resumes from the .npz label files


def test_shenzhen_split_by_folder_and_lossy_masks_thresholded(tmp_path):
    root = tmp_path / "sz"
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[..., :] = 90
    mask = np.zeros((16, 16), np.uint8)
    mask[4:12, 2:14] = 250
    mask[0, 0] = 100  # JPEG ringing below mid-grey is not lung
    for split, case in (("train", "CHNCXR_0001_0"), ("valid", "CHNCXR_0002_1"), ("test", "CHNCXR_0003_0")):
        for folder in ("images", "masks"):
            (root / split / folder).mkdir(parents=True)
        PILImage.fromarray(rgb).save(root / split / "images" / f"{case}.png")
        PILImage.fromarray(mask).save(root / split / "masks" / f"{case}.png")
    PILImage.fromarray(rgb).save(root / "test" / "images" / "CHNCXR_0004_1.png")  # no mask
    scan = scan_dataset("shenzhen", root)
    assert {r.case_id: r.split for r in scan.records} == {"CHNCXR_0001_0": "train", "CHNCXR_0002_1": "val",
                                                          "CHNCXR_0003_0": "test"}
    assert {r.case_id: r.metadata["tuberculosis"] for r in scan.records}["CHNCXR_0002_1"] is True
    assert [s for s, _ in scan.report.skipped] == ["test/images/CHNCXR_0004_1.png"]
    loaded = scan.records[0].load()
    assert loaded.image.channels is None and int(loaded.image.array[0, 0]) == 90
    assert loaded.labels.array.sum() == 8 * 12 and loaded.labels.metadata["label_names"] == {1: "lungs"}


def test_cxas_adapter_reads_what_the_class_png_writer_wrote(tmp_path):
    from radseg.image import Image
    from radseg.io import write
    from radseg.labels import make_multilabel

    rng = np.random.default_rng(0)
    for case in ("a", "b"):
        image = Image(rng.integers(0, 255, (20, 24)).astype(np.uint8))
        write(image, tmp_path / "images" / f"{case}.png")
        stack = rng.random((3, 20, 24)) > 0.5
        write(make_multilabel(stack, ["left lung", "heart", "spine"], like=image), tmp_path / "masks", kind="png-classes",
              case=case)
        if case == "a":
            expected = stack
    scan = scan_dataset("cxas", tmp_path)
    assert list(scan.label_names.values()) == ["left lung", "heart", "spine"]  # classes.json order, not file order
    loaded = next(r for r in scan.records if r.case_id == "a").load()
    assert np.array_equal(np.moveaxis(loaded.labels.array, -1, 0), expected)


def test_folder_adapter_hands_class_folders_to_the_cxas_reader(tmp_path):
    from radseg.synth import synthesize

    synthesize("chest-xray", 2, tmp_path / "synth", seed=3)
    scan = scan_dataset("folder", tmp_path / "synth", masks="labels")
    assert scan.multilabel and len(scan.label_names) == 76
    assert {"sex", "age"} <= set(scan.records[0].metadata)  # the phantom's cohort table comes along
    loaded = scan.records[0].load()
    assert loaded.labels.array.shape[-1] == 76


# --- the real files -------------------------------------------------------------------------------

@pytest.mark.realdata
def test_real_jsrt_scr(shared_data):
    scan = scan_dataset("jsrt-scr", shared_data / "cxr" / "jsrt-scr")
    assert len(scan.records) == 150 and not scan.report.missing and not scan.report.skipped
    loaded = next(r for r in scan.records if r.case_id == "JPCLN002").load()
    masks = {n: loaded.labels.array[..., c] for c, n in enumerate(SCR_CLASSES)}
    assert loaded.image.shape == (1024, 1024)
    cols = {n: np.argwhere(m)[:, 1].mean() for n, m in masks.items()}
    # SCR's "left" is the patient's left: on the image's right in a PA view
    assert cols["right lung"] < cols["heart"] < cols["left lung"]
    assert cols["right clavicle"] < cols["left clavicle"]
    assert (masks["heart"] & masks["left lung"]).any()  # real SCR masks overlap: multi-label


@pytest.mark.realdata
def test_real_shenzhen(shared_data):
    scan = scan_dataset("shenzhen", shared_data / "cxr" / "shenzhen-lung-512")
    splits = [r.split for r in scan.records]
    assert len(scan.records) == 566 and set(splits) == {"train", "val", "test"}
    loaded = scan.records[0].load()
    share = loaded.labels.array.mean()
    assert loaded.image.shape == (512, 512) and 0.1 < share < 0.6  # both lungs, a plausible share


def test_multilabel_exports_keep_overlapping_classes(tmp_path):
    from radseg.datasets import export
    from radseg.io import read_labels

    truth = _scr_layout(tmp_path / "scr", cases=("JPCLN001", "JPCNN002", "JPCNN003"))
    prepare("jsrt-scr", tmp_path / "scr", tmp_path / "prep", fractions=(0.34, 0.33, 0.33), seed=1)
    export(tmp_path / "prep", tmp_path / "nn", to="nnunet")
    root = tmp_path / "nn" / "Dataset501_jsrt-scr"
    spec = json.loads((root / "dataset.json").read_text())
    # regions from the largest class to the smallest: a small class painted over a large one stays visible
    assert list(spec["labels"])[1:] == ["right lung", "left lung", "heart", "right clavicle", "left clavicle"]
    assert len(spec["regions_class_order"]) == 5
    for case, masks in truth.items():
        path = next(root.glob(f"labels*/{case}.nii.gz"))
        label = np.asarray(read_labels(path).array)
        for name in SCR_CLASSES:  # each class is exactly the union of its region's values
            assert np.array_equal(np.isin(label, spec["labels"][name]), masks[name]), (case, name)
    export(tmp_path / "prep", tmp_path / "coco", to="coco")
    anns = [a for f in (tmp_path / "coco" / "annotations").glob("*.json") for a in json.loads(f.read_text())["annotations"]]
    heart = [a for a in anns if a["category_id"] == 1]
    assert sorted(a["area"] for a in heart) == [100.0, 110.0, 120.0]  # rows 16-25 x 12, 11, 10 columns
    lungs = [a for a in anns if a["category_id"] == 2]
    assert sorted(a["area"] for a in lungs) == [24 * 11] * 3  # the heart over it does not cut the lung
