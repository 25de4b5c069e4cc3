"""`radseg evaluate` end to end on hand-built cases with known Dice and distances."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import radseg.io as rio
from radseg.cli import app
from radseg.image import Image
from radseg.labels import make_label_map

runner = CliRunner()
SPACING = (0.5, 0.25)  # rows 0.5 mm, columns 0.25 mm


def square(shift_rows: int) -> np.ndarray:
    array = np.zeros((40, 40), np.uint8)
    array[10:20, 10:20] = 1  # 10 x 10 pixels
    out = np.zeros_like(array)
    out[10 + shift_rows:20 + shift_rows, 10:20] = 1
    return array, out


@pytest.fixture
def folders(tmp_path):
    truth, pred = tmp_path / "truth", tmp_path / "pred"
    shifts = {"c1": 0, "c2": 1, "c3": 2, "c4": 3, "c5": 4, "c6": 5}
    for case, shift in shifts.items():
        t, p = square(shift)
        rio.write(make_label_map(Image(t, spacing=SPACING), {1: "lesion"}), truth / f"{case}.png", kind="png")
        kind, suffix = ("nifti", ".nii.gz") if case == "c6" else ("png", ".png")  # mixed formats on purpose
        rio.write(make_label_map(Image(p, spacing=SPACING), {1: "lesion"}), pred / f"{case}{suffix}", kind=kind)
    rio.write(make_label_map(Image(square(0)[0], spacing=SPACING)), pred / "extra.png", kind="png")
    rio.write(make_label_map(Image(square(0)[0], spacing=SPACING)), truth / "lonely.png", kind="png")
    meta = pd.DataFrame({"case": list(shifts), "sex": ["F", "F", "F", "M", "M", "M"]})
    meta.to_csv(tmp_path / "meta.csv", index=False)
    return tmp_path, shifts


def test_evaluate_end_to_end(folders):
    root, shifts = folders
    out = root / "out"
    result = runner.invoke(app, ["evaluate", "--pred", str(root / "pred"), "--truth", str(root / "truth"),
                                 "-o", str(out), "--metadata", str(root / "meta.csv"), "--by", "sex",
                                 "--bootstrap", "2000", "--workers", "2", "-q"])
    assert result.exit_code == 0, result.output
    assert "extra.png" in result.output and "lonely.png" in result.output  # unmatched files are listed
    per_case = pd.read_csv(out / "per_case.csv").set_index("case")
    for case, shift in shifts.items():
        # A 10x10 square shifted by s rows overlaps (10-s)*10 pixels: Dice = (10-s)/10;
        # the farthest boundary point is s rows away: HD = s * 0.5 mm.
        assert per_case.loc[case, "dice"] == pytest.approx((10 - shift) / 10)
        assert per_case.loc[case, "hd"] == pytest.approx(shift * SPACING[0])
    summary = pd.read_csv(out / "summary.csv")
    dice = summary[summary["metric"] == "dice"].iloc[0]
    assert dice["mean"] == pytest.approx(np.mean([(10 - s) / 10 for s in shifts.values()]))
    assert dice["ci_low"] <= dice["mean"] <= dice["ci_high"] and dice["n"] == 6
    # a ratio carries no unit; distances carry the images' (these PNGs have a pixel size: mm)
    units = summary.set_index("metric")["unit"]
    assert pd.isna(units["dice"]) and pd.isna(units["iou"]) and units["hd95"] == "mm" and units["assd"] == "mm"
    fairness = pd.read_csv(out / "fairness.csv")
    assert set(fairness.columns) >= {"label", "label_name"}
    assert (fairness.astype(str).apply(lambda col: col.str.contains("sex")).any().any())
    data = json.loads((out / "summary.json").read_text())
    assert data["cases"] == 6 and data["unmatched_truths"][0].endswith("lonely.png")
    page = (out / "report.html").read_text()
    assert "data:image/png;base64," in page
    assert not re.search(r"(src|href)=[\"']https?://", page)  # opens offline


def test_evaluate_reports_bad_case_and_finishes(folders):
    root, _ = folders
    (root / "pred" / "c3.png").write_bytes(b"\x89PNG broken")
    result = runner.invoke(app, ["evaluate", "--pred", str(root / "pred"), "--truth", str(root / "truth"),
                                 "-o", str(root / "out"), "--bootstrap", "500", "--workers", "1", "-q"])
    assert result.exit_code == 1 and "c3" in result.output and "1 case(s) failed" in result.output
    assert len(pd.read_csv(root / "out" / "per_case.csv")["case"].unique()) == 5


def test_labels_option_validation(folders):
    root, _ = folders
    result = runner.invoke(app, ["evaluate", "--pred", str(root / "pred"), "--truth", str(root / "truth"),
                                 "-o", str(root / "o"), "--labels", "one=lesion"])
    assert result.exit_code == 1 and "integer" in result.output


def test_report_has_group_plots_and_worst_case_overlays(folders):
    root, _ = folders
    out = root / "out"
    result = runner.invoke(app, ["evaluate", "--pred", str(root / "pred"), "--truth", str(root / "truth"),
                                 "-o", str(out), "--metadata", str(root / "meta.csv"), "--by", "sex",
                                 "--bootstrap", "200", "--workers", "1", "-q"])
    assert result.exit_code == 0, result.output
    page = (out / "report.html").read_text()
    assert 'alt="worst cases"' in page  # the 2D agreement maps of the worst cases
    # one box/strip plot per label x metric for the per-label distribution, plus dice and hd95 by sex
    assert page.count('<img alt="dice"') == 2 and page.count('<img alt="hd95"') == 2


def test_age_group_derived_from_age(folders):
    root, shifts = folders
    meta = pd.DataFrame({"case": list(shifts), "age": [45, 49, 55, 60, 70, 75]})
    meta.to_csv(root / "ages.csv", index=False)
    out = root / "out"
    result = runner.invoke(app, ["evaluate", "--pred", str(root / "pred"), "--truth", str(root / "truth"),
                                 "-o", str(out), "--metadata", str(root / "ages.csv"), "--by", "age_group",
                                 "--bootstrap", "200", "--workers", "1", "-q"])
    assert result.exit_code == 0, result.output
    fairness = pd.read_csv(out / "fairness.csv")
    dice = fairness[(fairness["metric"] == "dice") & (fairness["attribute"] == "age_group")].set_index("group")
    assert set(dice.index) >= {"<=50", "51-64", "65-79"}
    # c1, c2 (shifts 0, 1) are <=50: mean Dice (1.0 + 0.9) / 2
    assert dice.loc["<=50", "mean"] == pytest.approx(0.95)
    assert dice.loc["<=50", "n"] == 2


def test_missing_metadata_column_fails_before_work(folders):
    root, _ = folders
    result = runner.invoke(app, ["evaluate", "--pred", str(root / "pred"), "--truth", str(root / "truth"),
                                 "-o", str(root / "o"), "--metadata", str(root / "meta.csv"), "--by", "race"])
    assert result.exit_code == 1 and "race" in result.output and "meta.csv" in result.output
    assert not (root / "o").exists()


def test_accumulator_matches_folder_evaluation(folders):
    from radseg.evaluate import MetricAccumulator
    from radseg.evaluate.cases import load_pair, pair_cases

    root, shifts = folders
    acc = MetricAccumulator(labels={1: "lesion"})
    for case, p, t in pair_cases(root / "pred", root / "truth").pairs:
        pred, truth, _ = load_pair(p, t)
        acc.add(case, pred, truth)
    table = acc.per_case().set_index("case")
    assert len(acc) == 6
    for case, shift in shifts.items():
        assert table.loc[case, "dice"] == pytest.approx((10 - shift) / 10)
        assert table.loc[case, "hd"] == pytest.approx(shift * SPACING[0])
    summary = acc.summary(resamples=500).set_index("metric")
    assert summary.loc["dice", "mean"] == pytest.approx(np.mean([(10 - s) / 10 for s in shifts.values()]))
