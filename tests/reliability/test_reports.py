"""Reports that say what was found: every --by attribute, one sentence each, cut tables that say
so, distances in their unit, and results below their aim shown as warnings, not as done."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from radseg.demo.stages import StageLog
from radseg.evaluate.fairness import fairness_table
from radseg.evaluate.report import finding_sentence, report_html
from radseg.evaluate.run import Evaluation, fairness_by_label, summarise

FAST = {"resamples": 300, "permutations": 300}


def evaluation(*, cases: int = 60, gap: float = 0.05, unit: str | None = None, by=("sex", "age_group")) -> Evaluation:
    """Two labels, ``cases`` cases; sex=F loses ``gap`` Dice on both labels, age has no effect."""
    rng = np.random.default_rng(0)
    meta = pd.DataFrame({"case": [f"c{i:03d}" for i in range(cases)],
                         "sex": np.where(np.arange(cases) % 2 == 0, "F", "M"),
                         "age_group": np.array(["51-64", "65-79", "<=50"])[np.arange(cases) % 3]})
    rows = []
    for _, subject in meta.iterrows():
        for label, name in ((1, "femur"), (2, "acetabulum")):
            dice = 0.9 - (gap if subject["sex"] == "F" else 0.0) + rng.normal(0, 0.02)
            rows.append({"case": subject["case"], "label": label, "label_name": name, "dice": dice,
                         "hd95": 20 * (1 - dice), **({"unit": unit} if unit else {})})
    per_case = pd.DataFrame(rows)
    numeric = per_case.drop(columns=["unit"], errors="ignore")
    summary = summarise(numeric, resamples=200, method="percentile", seed=0)
    if unit:
        summary["unit"] = unit
    return Evaluation(per_case=per_case, summary=summary, groups=per_case.merge(meta, on="case"),
                      fairness=fairness_by_label(numeric, meta, by=list(by), resamples=200, seed=0),
                      settings={"by": list(by), "bootstrap_resamples": 200, "ci_method": "percentile", "seed": 0})


@pytest.fixture(scope="module")
def page():
    return report_html(evaluation())


def test_every_by_attribute_has_a_section_and_a_sentence_per_label(page):
    for attribute in ("sex", "age_group"):
        assert f"<h3>By {attribute}</h3>" in page
        section = page.split(f"<h3>By {attribute}</h3>")[1].split("<h3>")[0]
        assert section.count("<li") == 2  # femur and acetabulum dice
        assert "femur dice is" in section and "acetabulum dice is" in section


def test_gap_sentence_names_groups_direction_ci_and_p(page):
    section = page.split("<h3>By sex</h3>")[1].split("<h3>")[0]
    sentence = re.search(r"<li class='warn'>(femur dice is [^<]*)</li>", section).group(1)
    match = re.match(r"femur dice is ([\d.]+) lower for sex=F \(the reference\) than for sex=M "
                     r"\(95% CI ([\d.]+) to ([\d.]+); permutation p=([\d.e-]+)\): a gap, worse for sex=F\.", sentence)
    assert match, sentence
    size, low, high, p = map(float, match.groups())
    assert 0.03 < size < 0.07 and 0 < low < size < high and p < 0.05
    age = page.split("<h3>By age_group</h3>")[1].split("<h3>")[0]
    assert "no evidence of a gap" in age and "Bonferroni" in age  # three age groups: two comparisons


def test_not_compared_sentence_says_why():
    _, summary = fairness_table(pd.DataFrame({"case_id": range(12), "site": "A", "dice": np.linspace(0.8, 0.9, 12)}),
                                metric="dice", by="site", **FAST)
    assert finding_sentence(summary) == "dice by site: not compared: site has a single group (A)."


def test_long_tables_are_cut_and_say_so():
    page = report_html(evaluation(cases=150))  # 300 per-case rows
    worst = page.split("<h2>Worst cases by Dice</h2>")[1].split("<h2>")[0]
    assert worst.count("<tr") == 1 + 10  # header + 10 rows, not 300
    assert "Table cut: 10 of 300 rows shown; 290 more rows in per_case.csv." in worst
    assert page.count("<tr") < 150


def test_distance_unit_follows_the_unit_column():
    px = report_html(evaluation(unit="px"))
    assert "HD95: larger of the two directed 95th percentiles (MONAI&#x27;s definition), px" in px
    assert "distances in px" in px and "distances in mm" not in px
    mm = report_html(evaluation())
    assert "distances in mm" in mm and ", px" not in mm
    row = {"metric": "hd95", "attribute": "sex", "reference_group": "M", "compared_group": "F", "worse_group": "F",
           "difference": 1.2, "difference_ci_low": 0.4, "difference_ci_high": 2.0, "ci_level": 0.95,
           "p_value": 0.004, "comparisons": 1, "finding": "gap"}
    assert finding_sentence(row, unit="px").startswith("hd95 is 1.2 px higher for sex=F than for sex=M (the reference)")
    assert "(95% CI 0.4 to 2 px; permutation p=0.004): a gap, worse for sex=F." in finding_sentence(row, unit="px")


def test_poor_result_is_a_warning_not_done():
    from radseg.demo.report import render

    log = StageLog(echo=lambda line: None)
    with log.stage("annotate", "Annotation synthesis on the CTs") as record:
        record.results["warnings"] = ["acetabulum Dice 0.601 is below its aim of 0.90 per side, with 2 side(s) at 0"]
    with log.stage("export", "Export") as record:
        record.results["findings"] = ["all good"]
    page = render(log, {"seed": 0})
    assert "<div class='warning'><b>Annotation synthesis on the CTs</b>: acetabulum Dice 0.601" in page
    assert "done, with 1 warning(s)" in page
    assert not re.search(r"class='finding'>[^<]*<b>Annotation", page)  # never in a green finding box
    assert "<div class='finding'><b>Export</b>: all good</div>" in page


def test_annotation_aims_name_the_misses_and_why():
    from radseg.demo.annotate_stage import aim_warnings

    frame = pd.DataFrame({"case": ["CT1", "CT2"], "bone_dice": [0.96, 0.84],
                          "right acetabulum dice": [0.92, 0.0], "left acetabulum dice": [0.0, 0.91],
                          "right femoral head dice": [0.95, 0.93], "left femoral head dice": [0.94, 0.92],
                          "right split": ["found", "not split: no bone 8 mm thick on this side"],
                          "left split": ["not split: no round head", "found"]})
    warnings = aim_warnings(frame)
    assert len(warnings) == 2  # bone and acetabulum; the femoral heads meet 0.90
    assert warnings[0] == "bone extraction Dice misses its aim of 0.95 in 1 of 2 case(s) (CT2 0.840); mean 0.900."
    assert warnings[1].startswith("acetabulum Dice misses its aim of 0.90 per side in 2 of 4 side(s), 2 of them at 0")
    assert "CT2 right 0.000, not split: no bone 8 mm thick on this side" in warnings[1] and "mean 0.458" in warnings[1]
    good = frame.assign(bone_dice=0.97, **{"right acetabulum dice": 0.95, "left acetabulum dice": 0.95})
    assert aim_warnings(good) == []


def test_unmeasured_cell_says_why():
    from radseg.demo.measure_stage import with_reasons

    table = pd.DataFrame({"case": ["CT1", "CT1"], "side": ["right", "left"], "on_pseudo_labels_mm": [44.91234, np.nan],
                          "pseudo_note": ["", "not measured: side could not be split (no round head)"]})
    shown = with_reasons(table, "on_pseudo_labels_mm", "pseudo_note")
    assert list(shown["on_pseudo_labels_mm"]) == [44.912, "not measured: side could not be split (no round head)"]
    assert "pseudo_note" not in shown.columns


def test_demo_compares_every_attribute():
    from radseg.demo.pipeline import AUDIT_BY, _macro_comparison

    groups = evaluation(gap=0.05).groups
    assert set(AUDIT_BY) == {"sex", "age_group"}
    sex, age = (_macro_comparison(groups, a) for a in ("sex", "age_group"))
    assert sex["warn"] and sex["numbers"]["gap_found"] and "planted difficulty" in sex["sentence"]
    assert "a gap, worse for sex=F" in sex["sentence"]
    assert not age["warn"] and "no evidence of a gap" in age["sentence"]
