"""THA adapter: PA/ST/SE DICOM series with per-half, per-slice PNG masks; the hip-ct phantom when slow."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image as PILImage

from radseg.datasets import scan_dataset
from radseg.datasets.preparation import prepare
from radseg.datasets.prepared import open_prepared
from radseg.image import Image
from radseg.io import read_labels
from radseg.io.dicom_write import write_dicom_series

N, H, W = 6, 16, 21  # odd width: the right half is one column wider


def _series(root, pa, st=0, se=0, seed=0):
    rng = np.random.default_rng(seed)
    image = Image(rng.integers(-100, 1200, (N, H, W)).astype(np.int16), spacing=(2.0, 0.8, 0.8),
                  origin=(-8.0, -6.0, 20.0))
    write_dicom_series(image, root / "dicom" / f"PA{pa}" / f"ST{st}" / f"SE{se}", uid_seed=f"tha/{pa}/{st}/{se}")
    return image


def _png(path, mask):
    path.parent.mkdir(parents=True, exist_ok=True)
    PILImage.fromarray(mask.astype(np.uint8)).save(path)


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "tha"
    _series(root, 1)
    expected = np.zeros((N, H, W), np.uint8)
    masks = root / "output" / "PA1_ST0_SE0"
    # THA index 1 is radseg slice N - 2 (index 0 = last slice along the normal)
    left_fem = np.zeros((H, W // 2), np.uint8)
    left_fem[3:7, 2:6] = 255
    _png(masks / "left" / "masks" / "fem" / "00001.png", left_fem)
    expected[N - 2, 3:7, 2:6] = 3  # image left half = patient right: right femur
    left_ace = np.zeros((H, W // 2), np.uint8)
    left_ace[9:12, 2:8] = 255
    _png(masks / "left" / "masks" / "ace" / "00001.png", left_ace)
    expected[N - 2, 9:12, 2:8] = 1
    right_ace = np.zeros((H, W - W // 2), np.uint8)
    right_ace[1:4, 0:3] = 255  # the right half starts at column W // 2 = 10
    _png(masks / "right" / "masks" / "ace" / "00004.png", right_ace)
    expected[N - 5, 1:4, 10:13] = 2
    full = np.zeros((H, W), np.uint8)
    full[12:15, 15:19] = 255  # a full-width PNG: only its own half counts
    _png(masks / "right" / "masks" / "fem" / "00000.png", full)
    expected[N - 1, 12:15, 15:19] = 4
    return root, expected


def test_halves_sides_and_slice_index(tree, tmp_path):
    root, expected = tree
    report = prepare("tha", root, tmp_path / "out")
    assert report.failed == [] and report.written == 1
    data = open_prepared(tmp_path / "out")
    case = data.cases[0]
    assert case.case_id == "PA1_ST0_SE0" and case.patient == "PA1"
    assert data.label_names == {1: "right acetabulum", 2: "left acetabulum", 3: "right femur", 4: "left femur"}
    assert np.array_equal(case.label.array, expected)
    position = prepare("tha", root, tmp_path / "position", options={"index_order": "position"})
    assert position.written == 1
    assert np.array_equal(read_labels(tmp_path / "position" / "labels" / "PA1_ST0_SE0.nii.gz").array, expected[::-1])


def test_patient_with_two_series_stays_in_one_split_and_unpaired_folders_are_reported(tree, tmp_path):
    root, _ = tree
    _series(root, 1, st=1, seed=1)
    _png(root / "output" / "PA1_ST1_SE0" / "left" / "masks" / "ace" / "00002.png", np.full((H, W // 2), 255))
    _series(root, 2, seed=2)  # no masks
    _png(root / "output" / "PA7_ST0_SE0" / "left" / "masks" / "ace" / "00002.png", np.zeros((H, W // 2)))
    scan = scan_dataset("tha", root)
    assert sorted(r.case_id for r in scan.records) == ["PA1_ST0_SE0", "PA1_ST1_SE0"]
    assert ("dicom/PA2/ST0/SE0", "series without masks") in scan.report.skipped
    assert ("output/PA7_ST0_SE0", "no PA/ST/SE series matches this mask folder") in scan.report.skipped
    for seed in range(5):
        prepare("tha", root, tmp_path / f"out{seed}", split="generate", seed=seed)
        data = open_prepared(tmp_path / f"out{seed}")
        assert len({c.split for c in data.cases}) == 1


@pytest.mark.parametrize("problem, message", [
    ("height", "mask shape (15, 10) does not match the left half (16, 10) of image shape (16, 21)"),
    ("value", "unexpected value(s) [128]: THA masks are 0/255"),
    ("index", "slice index 6 outside the series' 6 slices"),
    ("overlap", "femur and acetabulum masks overlap in 4 pixel(s)"),
])
def test_malformed_masks_fail_the_case(tree, tmp_path, problem, message):
    root, _ = tree
    folder = root / "output" / "PA1_ST0_SE0" / "left" / "masks"
    if problem == "height":
        _png(folder / "ace" / "00003.png", np.zeros((H - 1, W // 2)))
    elif problem == "value":
        _png(folder / "ace" / "00003.png", np.full((H, W // 2), 128))
    elif problem == "index":
        _png(folder / "ace" / "00006.png", np.zeros((H, W // 2)))
    else:
        overlap = np.zeros((H, W // 2), np.uint8)
        overlap[3:5, 2:4] = 255  # inside the femur mask of index 1
        _png(folder / "ace" / "00001.png", overlap)
    _series(root, 2, seed=2)  # a good case beside the bad one: the batch goes on
    _png(root / "output" / "PA2_ST0_SE0" / "left" / "masks" / "ace" / "00000.png", np.full((H, W // 2), 255))
    report = prepare("tha", root, tmp_path / "out")
    assert report.written == 1 and [c for c, _ in report.failed] == ["PA1_ST0_SE0"]
    assert message in report.failed[0][1]


def test_pairing_from_a_table(tmp_path):
    root = tmp_path / "tha"
    _series(root, 3)
    _png(root / "masks" / "CASE_A" / "left" / "masks" / "ace" / "00000.png", np.full((H, W // 2), 255))
    _series(root, 4)
    _png(root / "masks" / "CASE_B" / "right" / "masks" / "ace" / "00000.png", np.full((H, W - W // 2), 255))
    (root / "metadata.csv").write_text("case,dicom_dir,masks_dir\nA,dicom/PA3/ST0/SE0,masks/CASE_A\n"
                                       "B,dicom/PA4/ST0/SE0,masks/CASE_B\n")
    scan = scan_dataset("tha", root)
    assert {r.case_id: r.sources[1] for r in scan.records} == {"PA3_ST0_SE0": "masks/CASE_A", "PA4_ST0_SE0": "masks/CASE_B"}
    assert scan.records[0].load().labels.array[N - 1, :, : W // 2].min() == 1  # right acetabulum
    assert scan.records[1].load().labels.array[N - 1, :, W // 2:].min() == 2  # left acetabulum


@pytest.mark.slow
def test_hip_ct_phantom_layout(tmp_path):
    from radseg.synth import phantom_kind
    from radseg.synth.cohort import make_subject
    from radseg.synth.hip_phantom import PART_VALUES
    from radseg.synth.run import synthesize

    assert not synthesize("hip-ct", 1, tmp_path / "hip", seed=3, workers=1).failed
    report = prepare("tha", tmp_path / "hip", tmp_path / "out", fractions=(1.0, 0.0, 0.0))
    assert report.failed == [] and report.written == 1
    module = phantom_kind("hip-ct")
    case = module.make_case(make_subject(0, seed=3, prefix=module.PREFIX))
    labels = read_labels(tmp_path / "out" / "labels" / "PA1_ST0_SE0.nii.gz").array
    parts = case.extras["parts"]
    half = np.arange(parts.shape[2]) < parts.shape[2] // 2  # image left half = patient right
    for side, cols in (("right", half), ("left", ~half)):
        present = (parts == PART_VALUES[f"{side}_femoral_head"]).any(axis=(1, 2))[:, None, None] & cols[None, None, :]
        ace = 1 if side == "right" else 2
        assert np.array_equal(labels == ace, (parts == PART_VALUES[f"{side}_acetabulum"]) & present)
        femur = np.isin(parts, [PART_VALUES[f"{side}_femoral_head"], PART_VALUES[f"{side}_femur"]]) & present
        assert np.array_equal(labels == ace + 2, femur)
