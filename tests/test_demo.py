"""`radseg demo --quick`: the whole loop runs, and the report's numbers are the stages' own outputs."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from radseg.cli import app


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    result = CliRunner().invoke(app, ["demo", "-o", str(out), "--quick", "--workers", "2"])
    assert result.exit_code == 0, result.output
    return out, result.output


def test_report_is_self_contained_and_complete(demo_run):
    out, output = demo_run
    report = out / "report.html"
    assert str(report.resolve()) in output
    page = report.read_text()
    assert "http://" not in page and "https://" not in page  # opens offline
    summary = json.loads((out / "demo_summary.json").read_text())
    assert [s["name"] for s in summary["stages"]] == ["synth", "annotate", "train", "rank", "evaluate", "measure",
                                                      "export"]
    assert all(s["status"] == "done" for s in summary["stages"])
    for stage in summary["stages"]:
        assert f"id='{stage['name']}'" in page


def test_numbers_match_stage_outputs(demo_run):
    out, _ = demo_run
    stages = {s["name"]: s for s in json.loads((out / "demo_summary.json").read_text())["stages"]}
    per_case = pd.read_csv(out / "evaluate" / "per_case.csv")
    assert stages["evaluate"]["numbers"]["mean_dice"] == pytest.approx(per_case["dice"].mean())
    heads = pd.read_csv(out / "measure" / "femoral_heads.csv").dropna(subset=["on_prediction_mm"])
    assert stages["measure"]["numbers"]["head_mae_mm"] == pytest.approx(
        (heads["on_prediction_mm"] - heads["truth_mm"]).abs().mean(), nan_ok=True)  # NaN when no head was predicted
    # the measurement itself is exact on exact labels: the femoral head fit is within 2% of the truth
    assert stages["measure"]["numbers"]["head_mae_exact_labels_mm"] < 0.02 * heads["truth_mm"].mean()
    ranking = pd.read_csv(out / "rank" / "ranking.csv")
    assert ranking["uncertainty"].is_monotonic_decreasing
    assert ranking["uncertainty"].to_numpy() == pytest.approx(1.0 / (ranking["dice_vs_label"].to_numpy() + 1e-6),
                                                              rel=1e-3)
    assert len(list((out / "predictions" / "dicom-seg").glob("*.dcm"))) == stages["export"]["numbers"]["dicom_seg_files"]


def test_ct_measurements_match_and_are_within_a_voxel_on_exact_labels(demo_run):
    out, _ = demo_run
    numbers = {s["name"]: s for s in json.loads((out / "demo_summary.json").read_text())["stages"]}["measure"]["numbers"]
    table = pd.read_csv(out / "measure" / "ct_hips.csv")
    jsw = table[table["measurement"] == "min_jsw"]
    assert len(jsw) == 2 * jsw["case"].nunique()  # both hips of every CT
    assert numbers["ct_jsw_mae_exact_labels_mm"] == pytest.approx((jsw["on_exact_labels_mm"] - jsw["truth_mm"]).abs().mean())
    measured = jsw.dropna(subset=["on_pseudo_labels_mm"])
    assert numbers["ct_jsw_measured_pseudo"] == len(measured)
    # the quick CT has 3 mm slices: on exact labels the joint space comes within one voxel of the truth
    assert (jsw["on_exact_labels_mm"] - jsw["truth_mm"]).abs().max() < 3.0
    heads = table[table["measurement"] == "femoral_head_diameter"]
    assert (heads["on_exact_labels_mm"] - heads["truth_mm"]).abs().max() < 0.02 * heads["truth_mm"].mean()
