"""Promises of ``radseg evaluate`` and ``radseg features`` on bad input: refuse naming the file,
finish the rest of the batch, exit non-zero, never a traceback, never a half-written output."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import radseg.io as rio
from radseg.cli import app
from radseg.image import Image
from radseg.labels import make_label_map

runner = CliRunner()


def square(shift: int = 0, size=(40, 40), value: int = 1) -> np.ndarray:
    array = np.zeros(size, np.uint8)
    array[10 + shift:20 + shift, 10:20] = value
    return array


def write(array, path, spacing=(0.5, 0.5)):
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image(array, spacing=spacing)
    if array.dtype.kind == "f":
        return rio.write(image, path)
    return rio.write(make_label_map(image, {1: "lesion"}), path)


@pytest.fixture
def good(tmp_path):
    """Two good cases (c1, c2) in pred/ and truth/."""
    for case, shift in (("c1", 0), ("c2", 2)):
        write(square(0), tmp_path / "truth" / f"{case}.nii.gz")
        write(square(shift), tmp_path / "pred" / f"{case}.nii.gz")
    return tmp_path


def evaluate(root, *extra):
    return runner.invoke(app, ["evaluate", "--pred", str(root / "pred"), "--truth", str(root / "truth"),
                               "-o", str(root / "out"), "--workers", "1", "-q", *extra])


def assert_refused(result, name: str):
    assert result.exit_code != 0, result.output
    assert name in result.output, result.output
    assert "Traceback" not in result.output and not isinstance(result.exception, (TypeError, KeyError, IndexError))


def test_shape_mismatch_names_the_file_and_finishes_the_batch(good):
    write(square(0, (30, 40)), good / "pred" / "bad.nii.gz")
    write(square(0), good / "truth" / "bad.nii.gz")
    result = evaluate(good, "--bootstrap", "50")
    assert_refused(result, "bad.nii.gz")
    assert "shape" in result.output and "1 case(s) failed" in result.output
    assert sorted(pd.read_csv(good / "out" / "per_case.csv")["case"]) == ["c1", "c2"]


def test_spacing_mismatch_between_prediction_and_truth(good):
    write(square(0), good / "pred" / "bad.nii.gz", spacing=(1.0, 1.0))
    write(square(0), good / "truth" / "bad.nii.gz", spacing=(0.5, 0.5))
    result = evaluate(good, "--bootstrap", "50")
    assert_refused(result, "bad.nii.gz")
    assert "spacing" in result.output
    assert sorted(pd.read_csv(good / "out" / "per_case.csv")["case"]) == ["c1", "c2"]


def test_float_label_map_refused_by_evaluate(good):
    probability = square(0).astype(np.float32) * 0.6
    probability[0, 0] = 2.7
    write(probability, good / "pred" / "soft.nii.gz")
    write(square(0), good / "truth" / "soft.nii.gz")
    result = evaluate(good, "--bootstrap", "50")
    assert_refused(result, "soft.nii.gz")
    assert "integer" in result.output
    assert sorted(pd.read_csv(good / "out" / "per_case.csv")["case"]) == ["c1", "c2"]


def test_float_label_map_refused_by_features(good):
    labels = good / "labels"
    write(square(0), labels / "c1.nii.gz")
    soft = square(0).astype(np.float32)
    soft[25:30, 25:30] = 1.5
    soft[30:33, 2:5] = 2.7
    write(soft, labels / "soft.nii.gz")
    out = good / "features.csv"
    result = runner.invoke(app, ["features", str(labels), "--set", "shape", "-o", str(out), "-q", "--workers", "1"])
    assert_refused(result, "soft.nii.gz")
    assert "1.5, 2.7" in result.output
    table = pd.read_csv(out)
    assert set(table[table["case"] == "c1"]["status"]) == {"ok"}  # the rest of the batch was measured
    assert table[table["case"] == "soft"]["status"].tolist() == ["error"]


def test_unknown_label_values_refused_when_preparing(tmp_path):
    from radseg.datasets.base import CaseRecord, DatasetReport, DatasetScan, Loaded
    from radseg.datasets.preparation import write_prepared

    def record(case: str, value: int) -> CaseRecord:
        image = Image(np.zeros((40, 40), np.float32), spacing=(0.5, 0.5))
        labels = Image(square(0, value=value), spacing=(0.5, 0.5))
        return CaseRecord(case, case, lambda: Loaded(image, labels), split="train", sources=[f"{case}_mask.png"])

    scan = DatasetScan("test", [record("good", 1), record("odd", 7)], {1: "lesion"},
                       DatasetReport("test", str(tmp_path)), "XR", 2)
    report = write_prepared(scan, tmp_path / "prepared")
    assert report.written == 1 and len(report.failed) == 1
    case, message = report.failed[0]
    assert case == "odd" and "odd_mask.png" in message and "unknown label value(s) 7" in message
    assert not list((tmp_path / "prepared" / "labels").glob("odd*"))  # nothing half-written


@pytest.mark.parametrize("labels", [None, "1=lesion"])
def test_case_with_both_masks_empty_always_appears(good, labels):
    write(np.zeros((40, 40), np.uint8), good / "pred" / "empty.nii.gz")
    write(np.zeros((40, 40), np.uint8), good / "truth" / "empty.nii.gz")
    result = evaluate(good, "--bootstrap", "50", *(["--labels", labels] if labels else []))
    assert result.exit_code == 0, result.output
    per_case = pd.read_csv(good / "out" / "per_case.csv")
    assert sorted(per_case["case"]) == ["c1", "c2", "empty"]
    assert np.isnan(per_case.set_index("case").loc["empty", "dice"])
    dice = pd.read_csv(good / "out" / "summary.csv").query("metric == 'dice'").iloc[0]
    assert dice["n"] == 2 and dice["n_nan"] == 1


def test_bootstrap_zero_means_no_confidence_intervals(good):
    result = evaluate(good, "--bootstrap", "0")
    assert result.exit_code == 0, result.output
    assert "no CI" in result.output
    dice = pd.read_csv(good / "out" / "summary.csv").query("metric == 'dice'").iloc[0]
    assert dice["mean"] == pytest.approx(0.9) and np.isnan(dice["ci_low"]) and np.isnan(dice["ci_high"])
    assert (good / "out" / "report.html").exists() and (good / "out" / "summary.json").exists()


@pytest.mark.parametrize("extra", [["--bootstrap", "-1"], ["--bootstrap", "0", "--by", "sex", "--metadata", "meta.csv"]])
def test_impossible_bootstrap_refused_before_the_work(good, extra):
    pd.DataFrame({"case": ["c1", "c2"], "sex": ["F", "M"]}).to_csv(good / "meta.csv", index=False)
    extra = [str(good / e) if e == "meta.csv" else e for e in extra]
    result = evaluate(good, *extra)
    assert_refused(result, "--bootstrap")
    assert not (good / "out").exists()  # refused before any case was read or anything written


def _cohort(root):
    rows = []
    for index in range(24):
        case, sex = f"s{index:02d}", "F" if index % 2 else "M"
        write(square(0), root / "truth" / f"{case}.nii.gz")
        write(square(1 + (index % 2) if index % 3 else 0), root / "pred" / f"{case}.nii.gz")
        rows.append({"case": case, "sex": sex})
    pd.DataFrame(rows).to_csv(root / "meta.csv", index=False)


def test_reference_group_is_named_and_used(tmp_path):
    _cohort(tmp_path)
    result = evaluate(tmp_path, "--bootstrap", "200", "--metadata", str(tmp_path / "meta.csv"), "--by", "sex",
                      "--reference", "sex=F")
    assert result.exit_code == 0, result.output
    fairness = pd.read_csv(tmp_path / "out" / "fairness.csv")
    dice = fairness[(fairness["metric"] == "dice") & fairness["reference_group"].notna()].iloc[0]
    assert (str(dice["reference_group"]), str(dice["compared_group"])) == ("F", "M")


def test_reference_for_an_attribute_not_audited_is_refused_before_the_work(tmp_path):
    _cohort(tmp_path)
    result = evaluate(tmp_path, "--metadata", str(tmp_path / "meta.csv"), "--by", "sex", "--reference", "site=A")
    assert_refused(result, "--reference names site")
    assert not (tmp_path / "out").exists()


def test_background_named_in_the_files_is_not_scored_as_a_label(tmp_path):
    for case, shift in (("c1", 0), ("c2", 2)):
        for folder, offset in (("truth", 0), ("pred", shift)):
            path = tmp_path / folder / f"{case}.nii.gz"
            path.parent.mkdir(parents=True, exist_ok=True)
            rio.write(make_label_map(Image(square(offset), spacing=(0.5, 0.5)), {0: "background", 1: "lesion"}), path)
    result = evaluate(tmp_path, "--bootstrap", "50")
    assert result.exit_code == 0, result.output
    assert set(pd.read_csv(tmp_path / "out" / "per_case.csv")["label"]) == {1}
