"""Patient-level splits, the leakage check and the grid/label checks every adapter relies on."""

from __future__ import annotations

import numpy as np
import pytest

from radseg.datasets.base import (
    CaseRecord,
    Loaded,
    assign_splits,
    check_label_values,
    check_leakage,
    labels_on_grid,
    normalise_split,
)
from radseg.errors import ReadError
from radseg.image import Image


def _records(patients, splits=None):
    splits = splits or [None] * len(patients)
    return [CaseRecord(case_id=f"c{i}", patient=p, split=s, load=lambda: None) for i, (p, s) in enumerate(zip(patients, splits))]


def test_generated_split_keeps_patients_together_and_follows_fractions():
    patients = [f"p{i // 3}" for i in range(300)]  # 100 patients with 3 cases each
    records = _records(patients)
    how = assign_splits(records, fractions=(0.6, 0.2, 0.2), seed=3)
    assert "generated per patient" in how
    assert check_leakage(records) == []
    counts = {s: sum(r.split == s for r in records) for s in ("train", "val", "test")}
    assert counts == {"train": 180, "val": 60, "test": 60}  # whole patients of 3 cut exactly at 60/20/20
    again = _records(patients)
    assign_splits(again, fractions=(0.6, 0.2, 0.2), seed=3)
    assert [r.split for r in again] == [r.split for r in records]
    other = _records(patients)
    assign_splits(other, fractions=(0.6, 0.2, 0.2), seed=4)
    assert [r.split for r in other] != [r.split for r in records]


def test_given_splits_are_kept_and_extend_to_the_patients_other_cases():
    records = _records(["a", "a", "b", "c"], ["test", None, "train", None])
    how = assign_splits(records, fractions=(1.0, 0.0, 0.0), seed=0)
    assert [r.split for r in records] == ["test", "test", "train", "train"]
    assert how.startswith("given by the dataset where listed")


def test_generate_mode_ignores_given_splits_and_given_mode_needs_them():
    records = _records(["a", "b"], ["test", "test"])
    assign_splits(records, mode="generate", fractions=(1.0, 0.0, 0.0))
    assert [r.split for r in records] == ["train", "train"]
    with pytest.raises(ValueError, match="no given split"):
        assign_splits(_records(["a", "b"], ["val", None]), mode="given")
    with pytest.raises(ValueError, match="fractions"):
        assign_splits(_records(["a"]), fractions=(0.5, 0.5, 0.5))


def test_leakage_check_names_the_patient_and_duplicate_ids():
    records = _records(["p1", "p1", "p2"], ["train", "test", "val"])
    assert check_leakage(records) == ["patient p1 is in test and train"]
    records.append(CaseRecord(case_id="c2", patient="p3", split="val", load=lambda: None))
    assert "case id c2 appears 2 times" in check_leakage(records)


def test_split_spellings():
    assert [normalise_split(s) for s in ("Training", "valid", "validation", "Ts")] == ["train", "val", "val", "test"]
    with pytest.raises(ReadError, match="unknown split 'dev'"):
        normalise_split("dev", where="split.csv")


def test_labels_on_grid_reorders_axes_takes_geometry_or_refuses():
    image = Image(np.zeros((4, 5, 6)), spacing=(2.0, 0.5, 0.7), origin=(1.0, 2.0, 3.0))
    mask = np.zeros((4, 5, 6), np.uint8)
    mask[1, 2, 4] = 1
    # the same voxels stored with the column axis reversed (as an RAS-ordered file would)
    flipped_affine = image.affine.copy()
    flipped_affine[:3, 2] *= -1
    flipped_affine[:3, 3] = image.index_to_world([0, 0, 5])
    flipped = Image(mask[:, :, ::-1], affine=flipped_affine)
    aligned = labels_on_grid(flipped, image, name="m.nii.gz")
    assert np.array_equal(aligned.array, mask)
    plain = labels_on_grid(Image(mask), image, name="m.png")  # no geometry: takes the image's
    assert np.allclose(plain.affine, image.affine) and np.array_equal(plain.array, mask)
    assert "grid_warning" not in plain.metadata
    shifted = labels_on_grid(Image(mask, spacing=(2.0, 0.5, 0.7), origin=(1.0, 2.0, 4.5)), image, name="m.nii.gz")
    assert np.allclose(shifted.affine, image.affine)  # a real but different geometry: kept, and said so
    assert shifted.metadata["grid_warning"].startswith("m.nii.gz: mask geometry differs from its image (affines up to 1.5 mm")
    with pytest.raises(ReadError, match=r"m.png: mask shape \(4, 6, 5\) does not match image shape \(4, 5, 6\)"):
        labels_on_grid(Image(np.zeros((4, 6, 5))), image, name="m.png")


def test_unknown_label_value_is_named():
    labels = Image(np.array([[0, 1], [2, 9]], np.uint8))
    check_label_values(labels, None, name="x")  # no table: anything goes
    with pytest.raises(ReadError, match=r"x: unknown label value\(s\) 2, 9 \(label table: 0=background, 1=bone\)"):
        check_label_values(labels, {1: "bone"}, name="x")


def test_loaded_defaults():
    image = Image(np.zeros((2, 2)))
    loaded = Loaded(image=image, labels=image)
    assert loaded.instances is None and loaded.image_file is None and loaded.warnings == []
