"""HemSeg-200 adapter: RSNA slices + JSONL selection + labels (folders or zip), built here; phantom when slow."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from radseg.datasets import scan_dataset
from radseg.datasets.base import LeakageError, MissingFilesError
from radseg.datasets.preparation import prepare
from radseg.datasets.prepared import open_prepared
from radseg.image import Image
from radseg.io import read_labels

from .trees import hemseg_scan, write_label


def _ids(prefix: str, n: int = 5) -> list[str]:
    return [f"{prefix}{k:05x}" for k in range(n)]  # 9 hex digits, as RSNA ids


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "hemseg"
    expected, lines = {}, []
    for seed, (scan, patient, split) in enumerate([("aa11", "ID_p1", "train"), ("bb22", "ID_p2", "val"),
                                                   ("cc33", "ID_p3", "test")], start=1):
        ids = _ids(scan)
        image, labels = hemseg_scan(root, scan, patient, ids, seed=seed)
        expected[scan] = (image, labels)
        lines.append({"patient": patient, "scan_": scan, "slice_list": ids})
        if split == "val":  # this one only inside a zip, as the authors ship the labels
            tmp = write_label(tmp_path / "tmp.nii.gz", image, labels)
            with zipfile.ZipFile(root / "IPH_IVH_label.zip", "w") as archive:
                archive.write(tmp, f"IPH_IVH/val/label/{scan}.nii.gz")
        else:
            write_label(root / "IPH_IVH" / split / "label" / f"{scan}.nii.gz", image, labels)
    (root / "annotion_file_info.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return root, expected


def test_scans_labels_and_splits(tree, tmp_path):
    root, expected = tree
    out = tmp_path / "out"
    report = prepare("hemseg", root, out)
    assert report.failed == [] and report.written == 3
    assert report.splits == {"train": 1, "val": 1, "test": 1} and report.split_source == "given by the dataset"
    data = open_prepared(out)
    assert data.label_names == {1: "hemorrhage"} and data.info["window"] == [12.0, 79.0]
    for case in data.cases:
        image, labels = expected[case.case_id]
        read = case.image
        assert np.array_equal(read.array, image.array) and np.allclose(read.affine, image.affine, atol=1e-4)
        assert np.array_equal(read_labels(case.sources["labels"]).array, labels)
    assert {c.case_id: c.patient for c in data.cases} == {"aa11": "ID_p1", "bb22": "ID_p2", "cc33": "ID_p3"}


def test_500_variant_of_the_selection(tree, tmp_path):
    root, _ = tree
    lines = [json.loads(l) for l in (root / "annotion_file_info.jsonl").read_text().splitlines()]
    variant = [{"patient_name": l["patient"], "scan_name": l["scan_"],
                "slice_list": {str(k): s for k, s in enumerate(reversed(l["slice_list"]))}} for l in lines]
    (root / "annotion_file_info.jsonl").unlink()
    (root / "annotion_file_info_500.jsonl").write_text("".join(json.dumps(v) + "\n" for v in variant))
    scan = scan_dataset("hemseg", root)
    assert sorted(r.case_id for r in scan.records) == ["aa11", "bb22", "cc33"]
    assert {r.patient for r in scan.records} == {"ID_p1", "ID_p2", "ID_p3"}
    loaded = scan.records[0].load()  # slices sorted by position, whatever the listed order
    assert loaded.image.shape == (5, 16, 20)


def test_jsonl_line_naming_a_missing_file(tree, tmp_path):
    root, _ = tree
    with open(root / "annotion_file_info.jsonl", "a") as handle:
        handle.write(json.dumps({"patient": "ID_p9", "scan_": "dd44", "slice_list": ["0000000aa", "0000000ab"]}) + "\n")
    write_label(root / "IPH_IVH" / "train" / "label" / "dd44.nii.gz", Image(np.zeros((2, 3, 3))), np.zeros((2, 3, 3), np.uint8))
    with pytest.raises(MissingFilesError, match="2 listed file.*ID_0000000aa.dcm, ID_0000000ab.dcm"):
        prepare("hemseg", root, tmp_path / "out")
    report = prepare("hemseg", root, tmp_path / "out", allow_missing=True)
    assert ("ID_0000000aa.dcm", "slice of scan dd44, annotion_file_info.jsonl line 4") in report.missing
    assert report.written == 3


def test_one_patient_in_two_splits_is_leakage(tree, tmp_path):
    root, _ = tree
    ids = _ids("ee55")
    image, labels = hemseg_scan(root, "ee55", "ID_p1", ids, seed=7)  # patient p1 again, now in test
    write_label(root / "IPH_IVH" / "test" / "label" / "ee55.nii.gz", image, labels)
    with open(root / "annotion_file_info.jsonl", "a") as handle:
        handle.write(json.dumps({"patient": "ID_p1", "scan_": "ee55", "slice_list": ids}) + "\n")
    with pytest.raises(LeakageError, match="patient ID_p1 is in test and train"):
        prepare("hemseg", root, tmp_path / "out")
    kept = prepare("hemseg", root, tmp_path / "kept", allow_leakage=True)
    assert any("leakage kept on request" in w and "ID_p1" in w for w in kept.warnings)
    fixed = prepare("hemseg", root, tmp_path / "fixed", split="generate", seed=1)
    data = open_prepared(tmp_path / "fixed")
    assert len({c.split for c in data.cases if c.patient == "ID_p1"}) == 1 and fixed.written == 4


def test_bad_labels_fail_their_scan_only(tree, tmp_path):
    root, expected = tree
    wrong = Image(np.zeros((5, 16, 21), np.uint8), spacing=(5.0, 0.5, 0.45))
    write_label(root / "IPH_IVH" / "test" / "label" / "cc33.nii.gz", wrong, wrong.array)
    image_a, labels_a = expected["aa11"]
    two = labels_a.copy()
    two[0, 0, 0] = 2
    write_label(root / "IPH_IVH" / "train" / "label" / "aa11.nii.gz", image_a, two)
    write_label(root / "IPH_IVH" / "train" / "label" / "zz99.nii.gz", image_a, labels_a)  # no such scan
    report = prepare("hemseg", root, tmp_path / "out")
    failed = dict(report.failed)
    assert "mask shape (5, 16, 21) does not match image shape (5, 16, 20) of scan cc33" in failed["cc33"]
    assert "unknown label value(s) 2" in failed["aa11"]
    assert ("IPH_IVH/train/label/zz99.nii.gz", "label of a scan that is not in the selection") in report.skipped
    assert report.written == 1


def test_label_stored_in_another_axis_order_is_aligned(tree, tmp_path):
    root, expected = tree
    image, labels = expected["aa11"]
    # the same voxels with the slice axis reversed, as a writer that sorts slices the other way would store them
    affine = image.affine.copy()
    affine[:3, 0] *= -1
    affine[:3, 3] = image.index_to_world([image.shape[0] - 1, 0, 0])
    flipped = Image(labels[::-1], affine=affine)
    write_label(root / "IPH_IVH" / "train" / "label" / "aa11.nii.gz", flipped, flipped.array)
    prepare("hemseg", root, tmp_path / "out")
    assert np.array_equal(read_labels(tmp_path / "out" / "labels" / "aa11.nii.gz").array, labels)


@pytest.mark.slow
def test_brain_ct_phantom_layout(tmp_path):
    from radseg.synth import phantom_kind
    from radseg.synth.cohort import make_subject
    from radseg.synth.run import synthesize

    assert not synthesize("brain-ct", 2, tmp_path / "brain", seed=2, workers=1).failed
    report = prepare("hemseg", tmp_path / "brain", tmp_path / "out", split="generate", fractions=(0.5, 0.5, 0.0))
    assert report.failed == [] and report.written == 2
    module = phantom_kind("brain-ct")
    data = open_prepared(tmp_path / "out")
    for index in range(2):
        case = module.make_case(make_subject(index, seed=2, prefix=module.PREFIX))
        prepared = next(c for c in data.cases if c.case_id == case.params["scan_id"])
        assert np.array_equal(read_labels(prepared.sources["labels"]).array, case.labels.array)
        image = prepared.image
        assert np.array_equal(image.array, case.image.array) and np.allclose(image.affine, case.image.affine, atol=1e-3)
