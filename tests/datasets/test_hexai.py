"""HexAI-KneeHipBoneSeg adapter: the real layout built here, and the knee-xray phantom."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from radseg.datasets import scan_dataset
from radseg.datasets.preparation import prepare
from radseg.datasets.prepared import open_prepared
from radseg.image import Image
from radseg.io import read_labels
from radseg.io.dicom_write import write_dicom_radiograph


def _hexai_mask(mask_image: np.ndarray, slices: int | None = None, labelled: int = 0) -> np.ndarray:
    """What a HexAI NIfTI holds: nibabel's data is the image transposed (optionally 3D, one slice labelled)."""
    stored = mask_image.T
    if slices is None:
        return stored
    volume = np.zeros((*stored.shape, slices), stored.dtype)
    volume[..., labelled] = stored
    return volume


def _write_case(root, anatomy, case, image, stored_mask):
    import nibabel as nib

    folder = root / anatomy.capitalize()
    write_dicom_radiograph(Image(image, spacing=(0.2, 0.2)), folder / "Images" / f"{case}.dcm", bits_stored=12)
    (folder / "Annotations").mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(stored_mask.astype(np.uint8), np.eye(4)), str(folder / "Annotations" / f"{case}.nii.gz"))


@pytest.fixture
def knee_tree(tmp_path):
    root = tmp_path / "HexAI"
    rng = np.random.default_rng(0)
    shape = (30, 44)  # not square: a wrong transpose cannot go unnoticed
    masks = {}
    for k, case in enumerate(["9000099", "9000100", "9000101", "9000102"]):
        image = rng.integers(0, 4000, shape).astype(np.uint16)
        mask = np.zeros(shape, np.uint8)
        mask[2 + k: 10 + k, 3:12] = 2  # right femur
        mask[15:25, 30:40] = 7  # left tibia
        masks[case] = mask
        stored = _hexai_mask(mask, slices=3 if case == "9000100" else None, labelled=0)
        _write_case(root, "knee", case, image, stored)
    table = pd.DataFrame({"ID": ["9000099", "9000100", "9000101", "9000102"],
                          "P02SEX": ["1: Male", "2: Female", "2: Female", "1: Male"],
                          "P02RACE": ["1: White or Caucasian", "2: Black or African American", "3: Asian",
                                      "0: Other Non-white"],
                          "V00AGE": [50, 51, 79, 80]})
    table.to_excel(root / "HexAI-KneeHipBoneSeg_MetaData.xlsx", index=False)
    return root, masks


def test_hexai_transform_is_a_transpose():
    # HexAI: cv2.rotate(ROTATE_90_CLOCKWISE) then cv2.flip(code=1); numpy's equivalent is a transpose
    data = np.arange(12).reshape(3, 4)
    assert np.array_equal(np.fliplr(np.rot90(data, k=-1)), data.T)


def test_real_layout_masks_land_on_the_dicom_grid(knee_tree, tmp_path):
    root, masks = knee_tree
    out = tmp_path / "out"
    report = prepare("hexai-kneehip", root, out, options={"anatomy": "knee"}, fractions=(0.5, 0.25, 0.25))
    assert report.failed == [] and report.written == 4
    assert any("9000100: 3D mask of 3 slices: used slice 0" in w for w in report.warnings)
    data = open_prepared(out)
    assert data.label_names[2] == "right femur" and data.label_names[7] == "left tibia" and len(data.label_names) == 8
    assert data.info["preset"] == "knee-xray"
    for case in data.cases:
        labels = read_labels(case.sources["labels"])
        image = case.image
        assert np.array_equal(labels.array, masks[case.case_id]), case.case_id
        assert np.allclose(labels.spacing, [0.2, 0.2]) and np.allclose(image.spacing, [0.2, 0.2])
    meta = pd.read_csv(out / "metadata.csv", dtype={"case": str}).set_index("case")
    assert list(meta.loc[["9000099", "9000100", "9000101", "9000102"], "age_group"]) == ["<=50", "51-64", "65-79", "80+"]
    assert list(meta["sex"]) == ["M", "F", "F", "M"]
    assert list(meta["race"]) == ["White", "Black", "Asian", "Other"]
    assert meta.loc["9000100", "P02SEX"] == "2: Female"


def test_malformed_masks_fail_their_case_and_the_rest_go_on(knee_tree, tmp_path):
    root, masks = knee_tree
    image = np.zeros((30, 44), np.uint16)
    wrong_shape = np.zeros((30, 44), np.uint8)  # stored un-transposed: (30, 44) reads as (44, 30)
    _write_case(root, "knee", "9000200", image, wrong_shape)
    unknown = masks["9000099"].copy()
    unknown[0, 0] = 9  # knee labels stop at 8
    _write_case(root, "knee", "9000201", image, _hexai_mask(unknown))
    two_slices = _hexai_mask(masks["9000099"], slices=2, labelled=0)
    two_slices[..., 1] = two_slices[..., 0]
    _write_case(root, "knee", "9000202", image, two_slices)
    report = prepare("hexai-kneehip", root, tmp_path / "out", options={"anatomy": "knee"})
    failed = dict(report.failed)
    assert set(failed) == {"9000200", "9000201", "9000202"} and report.written == 4
    assert "mask shape (44, 30) (after HexAI's transpose) does not match image shape (30, 44)" in failed["9000200"]
    assert "unknown label value(s) 9" in failed["9000201"]
    assert "3D mask with 2 labelled slices ([0, 1]); expected one" in failed["9000202"]
    assert any("9000200: no metadata row" in w for w in report.warnings)


def test_hip_labels_and_unpaired_files(tmp_path):
    root = tmp_path / "HexAI"
    mask = np.zeros((20, 24), np.uint8)
    mask[2:6, 2:6], mask[10:14, 15:20] = 1, 6
    _write_case(root, "hip", "h1", np.ones((20, 24), np.uint16), _hexai_mask(mask))
    _write_case(root, "hip", "h2", np.ones((20, 24), np.uint16), _hexai_mask(mask))
    (root / "Hip" / "Annotations" / "h2.nii.gz").unlink()
    scan = scan_dataset("hexai-kneehip", root)  # only Hip/ exists: anatomy found
    assert scan.label_names == {1: "right acetabulum", 2: "left acetabulum", 3: "right ilium-ischium-pubis",
                                4: "left ilium-ischium-pubis", 5: "right femur", 6: "left femur"}
    assert scan.report.skipped == [("Hip/Images/h2.dcm", "image without a mask of the same id")]
    assert "no metadata table found" in scan.report.warnings[0]
    with pytest.raises(ValueError, match="anatomy must be knee or hip"):
        scan_dataset("hexai-kneehip", root, anatomy="elbow")


@pytest.mark.parametrize("anatomy", ["knee", "hip"])
def test_phantom_layout(tmp_path, anatomy):
    from radseg.synth import phantom_kind
    from radseg.synth.cohort import make_subject
    from radseg.synth.run import synthesize

    result = synthesize(f"{anatomy}-xray", 2, tmp_path / "phantom", seed=5, workers=1)
    assert not result.failed
    report = prepare("hexai-kneehip", tmp_path / "phantom", tmp_path / "out", options={"anatomy": anatomy},
                     fractions=(0.5, 0.5, 0.0))
    assert report.failed == [] and report.written == 2
    module = phantom_kind(f"{anatomy}-xray")
    data = open_prepared(tmp_path / "out")
    assert data.label_names == {k: v for k, v in module.LABELS.items() if k}
    for index in range(2):
        case = module.make_case(make_subject(index, seed=5, prefix=module.PREFIX))
        prepared = next(c for c in data.cases if c.case_id == case.subject.case_id)
        assert np.array_equal(read_labels(prepared.sources["labels"]).array, case.labels.array)
        image = prepared.image
        assert np.array_equal(image.array, case.image.array)
        assert np.allclose(image.spacing, case.image.spacing, rtol=1e-5)
        assert prepared.metadata["sex"] == case.subject.sex and prepared.metadata["race"] == case.subject.race
        assert prepared.metadata["age_group"] == case.subject.age_group
