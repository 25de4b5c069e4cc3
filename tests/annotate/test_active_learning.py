"""Active-learning ranking: corrupted pseudo-labels come out on top; merge keeps a versioned record."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from radseg.annotate.active_learning import merge_labels, rank_cases, slice_uncertainties, uncertainty, write_ranking
from radseg.errors import WriteError
from radseg.image import Image
from radseg.io import read_labels, write
from radseg.labels import make_label_map

NAMES = {1: "bone", 2: "right_acetabulum", 3: "left_acetabulum"}
CORRUPTED = {"case03": "eroded", "case06": "shifted", "case09": "swapped"}


def _truth(index: int) -> np.ndarray:
    """Two balls (right 2, left 3) on a bar (1); sizes vary a little per case."""
    k, j, i = np.indices((16, 40, 60))
    r = 7 + index % 3
    labels = np.zeros((16, 40, 60), np.uint8)
    labels[(np.abs(k - 8) <= 3) & (np.abs(j - 20) <= 3)] = 1
    labels[(k - 8) ** 2 + (j - 20) ** 2 + (i - 15) ** 2 <= r * r] = 2
    labels[(k - 8) ** 2 + (j - 20) ** 2 + (i - 45) ** 2 <= r * r] = 3
    return labels


def _corrupt(labels: np.ndarray, how: str) -> np.ndarray:
    if how == "eroded":
        out = np.zeros_like(labels)
        for value in (1, 2, 3):
            out[ndimage.binary_erosion(labels == value, iterations=2)] = value
        return out
    if how == "shifted":
        return np.roll(labels, 5, axis=2)
    swapped = labels.copy()
    swapped[labels == 2], swapped[labels == 3] = 3, 2
    return swapped


def _save(array: np.ndarray, path: Path) -> Path:
    write(make_label_map(Image(array, spacing=(2.0, 1.0, 1.0)), NAMES), path, kind="nifti")
    return path


@pytest.fixture
def folders(tmp_path):
    """12 cases: predictions = truth with one-voxel boundary noise; pseudo-labels = truth except CORRUPTED."""
    rng = np.random.default_rng(0)
    pred, pseudo, images = tmp_path / "pred", tmp_path / "pseudo", tmp_path / "images"
    for index in range(12):
        case = f"case{index:02d}"
        truth = _truth(index)
        noisy = truth.copy()
        edge = (ndimage.grey_dilation(truth, size=3) != truth) & (rng.random(truth.shape) < 0.3)
        noisy[edge] = ndimage.grey_dilation(truth, size=3)[edge]
        _save(noisy, pred / f"{case}.nii.gz")
        _save(_corrupt(truth, CORRUPTED[case]) if case in CORRUPTED else truth, pseudo / f"{case}.nii.gz")
        write(Image(truth.astype(np.int16) * 300, spacing=(2.0, 1.0, 1.0)), images / f"{case}_0000.nii.gz")
    return pred, pseudo, images


def test_uncertainty_is_inverse_dice():
    a = _truth(0)
    value, score = uncertainty(a, a)
    assert score == 1.0 and value == pytest.approx(1.0, rel=1e-5)
    value, score = uncertainty(a, _corrupt(a, "swapped"), labels=[2, 3])
    assert score == 0.0 and value == pytest.approx(1e6)
    with pytest.raises(ValueError, match="shape"):
        uncertainty(a, a[:-1])


def test_mean_dice_skips_labels_absent_from_both_maps():
    pred = np.array([[1, 1, 0, 0], [2, 0, 0, 0]])
    pseudo = np.array([[1, 0, 0, 0], [0, 0, 0, 0]])
    # label 1: 2 * 1 / 3; label 2 only predicted: 0; label 7 in neither: skipped
    assert uncertainty(pred, pseudo, labels=[1, 2, 7])[1] == pytest.approx((2 / 3 + 0.0) / 2)
    assert uncertainty(pred, pseudo, labels=[7])[1] == 1.0  # nothing to compare counts as agreement
    assert uncertainty(np.zeros((2, 2)), np.zeros((2, 2)))[1] == 1.0


def test_corrupted_cases_rank_on_top(folders, tmp_path):
    pred, pseudo, images = folders
    result = rank_cases(pred, pseudo)
    assert set(result.cases.case.head(3)) == set(CORRUPTED)
    assert list(result.cases["rank"]) == list(range(1, 13))
    assert result.cases.uncertainty.is_monotonic_decreasing
    paths = write_ranking(result, tmp_path / "ranked", k=3, images_dir=images)
    top = pd.read_csv(paths["topk"])
    assert set(top.case) == set(CORRUPTED) and len(pd.read_csv(paths["ranking"])) == 12
    labels = sorted(p.name for p in (paths["to_correct"] / "labels").iterdir())
    assert labels == sorted(f"{c}.nii.gz" for c in CORRUPTED)
    copied = sorted(p.name for p in (paths["to_correct"] / "images").iterdir())
    assert copied == sorted(f"{c}_0000.nii.gz" for c in CORRUPTED)


def test_per_slice_finds_the_corrupted_slices(folders, tmp_path):
    pred, pseudo, _ = folders
    clean = _truth(1)
    broken = clean.copy()
    broken[10] = 0  # one slice lost
    _save(broken, pseudo / "case01.nii.gz")
    result = rank_cases(pred, pseudo, per_slice=True)
    worst = result.slices[result.slices.case == "case01"].iloc[0]
    assert int(worst["slice"]) == 10 and worst.dice < 0.1
    rows = slice_uncertainties(clean, broken)
    assert max(rows, key=lambda r: r[1])[0] == 10
    write_ranking(result, tmp_path / "ranked", k=2)
    assert (tmp_path / "ranked" / "slices.csv").exists()


def test_unreadable_and_unpaired_cases_are_reported(folders):
    pred, pseudo, _ = folders
    (pseudo / "case11.nii.gz").write_bytes(b"not a nifti")
    _save(_truth(0), pred / "extra.nii.gz")
    result = rank_cases(pred, pseudo)
    assert [case for case, _ in result.failed] == ["case11"]
    assert [p.name for p in result.only_prediction] == ["extra.nii.gz"]
    assert len(result.cases) == 11


def test_merge_records_sources_and_versions(folders, tmp_path):
    _, pseudo, _ = folders
    corrected, out = tmp_path / "corrected", tmp_path / "merged"
    for case in CORRUPTED:
        _save(_truth(int(case[-2:])), corrected / f"{case}.nii.gz")
    first = merge_labels(pseudo, corrected, out)
    assert first.version == 1 and sorted(first.manual) == sorted(CORRUPTED) and len(first.pseudo) == 9
    record = pd.read_csv(out / "provenance.csv")
    assert set(record[record.source == "manual"].case) == set(CORRUPTED)
    assert (record.version == 1).all() and (record.changed_in_version == 1).all()
    assert record.sha256.str.len().eq(64).all()
    merged = read_labels(out / "labels" / "case06.nii.gz").array
    assert np.array_equal(merged, _truth(6))  # the correction, not the shifted pseudo-label

    # a second round corrects one more case: version 2, only that case changed in it
    fixed = _truth(1)
    fixed[0] = 0
    _save(fixed, corrected / "case01.nii.gz")
    second = merge_labels(pseudo, corrected, out)
    assert second.version == 2
    record = pd.read_csv(out / "provenance.csv").set_index("case")
    assert record.loc["case01", "source"] == "manual" and record.loc["case01", "changed_in_version"] == 2
    assert record.loc["case06", "changed_in_version"] == 1 and (record.version == 2).all()
    history = pd.read_csv(out / "history.csv")
    assert sorted(history.version.unique()) == [1, 2] and len(history) == 24


def test_merge_counts_a_change_of_source(folders, tmp_path):
    """A correction identical to its pseudo-label still changes where the label came from."""
    _, pseudo, _ = folders
    corrected, out = tmp_path / "corrected", tmp_path / "merged"
    corrected.mkdir()
    merge_labels(pseudo, corrected, out)
    _save(_truth(1), corrected / "case01.nii.gz")  # the same content as the pseudo-label
    merge_labels(pseudo, corrected, out)
    record = pd.read_csv(out / "provenance.csv").set_index("case")
    assert record.loc["case01", "source"] == "manual" and record.loc["case01", "changed_in_version"] == 2
    assert record.loc["case02", "changed_in_version"] == 1


def test_merge_keeps_pseudo_label_when_correction_is_bad(folders, tmp_path):
    _, pseudo, _ = folders
    corrected = tmp_path / "corrected"
    _save(np.zeros((8, 8, 8), np.uint8), corrected / "case03.nii.gz")  # wrong grid
    result = merge_labels(pseudo, corrected, tmp_path / "merged")
    assert [case for case, _ in result.failed] == ["case03"] and "case03" in result.pseudo
    with pytest.raises(WriteError, match="pseudo: the output folder must differ"):
        merge_labels(pseudo, corrected, pseudo)
