"""Fairness measures: the signed reference comparison (CI, permutation test), HexAI's SER and SD, reporting."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.stats as st

from radseg.evaluate.fairness import MISSING, REPORT_COLUMNS, age_group, fairness_report, fairness_table

FAST = {"resamples": 2000, "permutations": 2000}


@pytest.fixture
def small():
    scores = {"A": [0.9, 0.8, 0.85], "B": [0.7, 0.6, 0.65], "C": [0.95, 0.95]}
    rows = [(f"{g}{i}", g, v) for g, vals in scores.items() for i, v in enumerate(vals)]
    return pd.DataFrame(rows, columns=["case_id", "site", "dice"])


def test_hand_computed_ser_difference_and_sd(small):
    groups, summary = fairness_table(small, metric="dice", by="site", min_group_size=1, **FAST)
    assert list(groups["group"]) == ["A", "B", "C"] and list(groups["n"]) == [3, 3, 2]
    assert groups["mean"].tolist() == pytest.approx([0.85, 0.65, 0.95])
    # SER = max(1 - s) / min(1 - s) = (1 - 0.65) / (1 - 0.95) = 0.35 / 0.05
    assert summary["ser"] == pytest.approx(7.0)
    # reference: the largest group, A (3 cases, first of the ties); compared: farthest mean from A's, B
    assert (summary["reference_group"], summary["compared_group"], summary["worse_group"]) == ("A", "B", "B")
    assert summary["difference"] == pytest.approx(0.65 - 0.85) and summary["comparisons"] == 2
    assert (summary["max_group"], summary["min_group"]) == ("C", "B")
    # Population SD (numpy.std, as HexAI): sqrt(((.85-m)^2 + (.65-m)^2 + (.95-m)^2) / 3), m = 2.45/3
    m = 2.45 / 3
    assert summary["sd_groups"] == pytest.approx(np.sqrt(((0.85 - m) ** 2 + (0.65 - m) ** 2 + (0.95 - m) ** 2) / 3))
    assert summary["sd_groups"] != pytest.approx(np.std([0.85, 0.65, 0.95], ddof=1))
    assert summary["warnings"] == [] and summary["n_cases"] == 8
    c = groups.set_index("group").loc["C"]
    assert c["ci_low"] == c["ci_high"] == pytest.approx(0.95)  # constant group: zero-width CI


def test_ser_edge_cases(small):
    perfect = small.assign(dice=np.where(small["site"] == "C", 1.0, small["dice"]))
    assert fairness_table(perfect, metric="dice", by="site", min_group_size=1, **FAST)[1]["ser"] == np.inf
    distances = small.assign(hd=small["dice"] * 10)  # mm: 1 - s means nothing
    _, summary = fairness_table(distances, metric="hd", by="site", min_group_size=1, **FAST)
    assert np.isnan(summary["ser"]) and summary["difference"] == pytest.approx(-2.0)
    assert summary["worse_group"] == "A"  # hd: lower is better, so B (6.5 mm) beats A (8.5 mm)
    assert any("outside [0, 1]" in w for w in summary["warnings"])


def two_groups(shift: float, n: int = 30, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    a, b = rng.normal(0.85, 0.05, n), rng.normal(0.85 - shift, 0.05, n)
    return pd.DataFrame({"case_id": [f"c{i}" for i in range(2 * n)], "sex": ["F"] * n + ["M"] * n,
                         "dice": np.concatenate([a, b])})


def test_permutation_p_value_small_for_a_real_difference():
    _, summary = fairness_table(two_groups(0.1), metric="dice", by="sex", reference="F", **FAST)
    assert summary["p_value"] == pytest.approx(1 / 2001)  # no shuffle reaches it: (0 + 1) / (P + 1)
    assert summary["difference_ci_low"] < summary["difference"] < summary["difference_ci_high"] < -0.05
    assert summary["finding"] == "gap" and summary["worse_group"] == "M"


def test_permutation_p_value_large_for_identical_distributions():
    _, summary = fairness_table(two_groups(0.0, seed=3), metric="dice", by="sex", **FAST)
    assert summary["p_value"] > 0.2
    same = pd.DataFrame({"case_id": range(20), "g": ["x"] * 10 + ["y"] * 10,
                         "dice": np.tile(np.linspace(0.5, 0.9, 10), 2)})
    assert fairness_table(same, metric="dice", by="g", **FAST)[1]["p_value"] == 1.0  # t = 0: every shuffle >= 0


def test_permutation_p_value_matches_scipy():
    table = two_groups(0.015, n=25, seed=4)  # p about 0.12
    groups = [table.loc[table["sex"] == s, "dice"].to_numpy() for s in ("F", "M")]
    def welch(a, b, axis):
        se = np.sqrt(np.var(a, axis=axis, ddof=1) / a.shape[axis] + np.var(b, axis=axis, ddof=1) / b.shape[axis])
        return np.abs(np.mean(a, axis=axis) - np.mean(b, axis=axis)) / se

    ref = st.permutation_test(groups, welch, n_resamples=9999, alternative="greater", vectorized=True,
                              rng=np.random.default_rng(1)).pvalue
    _, summary = fairness_table(table, metric="dice", by="sex", resamples=200, permutations=9999)
    # Two independent Monte-Carlo p-values, each with SE sqrt(p(1-p)/9999); allow 4 SE of their difference.
    assert 0.05 < ref < 0.5
    assert abs(summary["p_value"] - ref) < 4 * np.sqrt(2 * ref * (1 - ref) / 9999)


def test_small_groups_are_flagged_not_dropped(small):
    groups, summary = fairness_table(small, metric="dice", by="site", min_group_size=3, **FAST)
    assert groups.set_index("group")["note"].to_dict() == {"A": "", "B": "", "C": "too small to judge"}
    assert len(summary["warnings"]) == 1 and "site=C" in summary["warnings"][0]
    assert "too small to judge" in summary["warnings"][0]
    assert summary["n_groups"] == 3 and summary["sd_groups"] > 0  # kept in the descriptive measures
    assert summary["comparisons"] == 1 and "C" not in (summary["reference_group"], summary["compared_group"])


def test_missing_metadata_is_reported(small):
    metadata = small[["case_id", "site"]].copy()
    metadata.loc[metadata["case_id"] == "A0", "site"] = None     # value missing
    metadata = metadata[metadata["case_id"] != "B2"]               # no metadata row at all
    metrics = small.drop(columns="site").assign(dice=lambda t: t["dice"].where(t["case_id"] != "C1", np.nan))
    groups, summary = fairness_table(metrics, metadata=metadata, metric="dice", by="site", min_group_size=1, **FAST)
    missing = groups.set_index("group").loc[MISSING]
    assert missing["n"] == 2 and missing["note"] == "metadata missing"
    assert missing["mean"] == pytest.approx((0.9 + 0.65) / 2)
    assert summary["n_missing_metadata"] == 2 and summary["n_nonfinite"] == 1
    c = groups.set_index("group").loc["C"]
    assert (c["n"], c["n_nonfinite"]) == (1, 1)
    # The comparison uses only cases with metadata: A = {.8, .85}, B = {.7, .6}, C = {.95} (too small)
    assert (summary["max_group"], summary["min_group"]) == ("C", "B")
    assert summary["difference"] == pytest.approx(0.65 - 0.825)
    assert any("(missing)" in w for w in summary["warnings"])


def test_age_group_edges():
    assert [age_group(a) for a in (45, 50, 50.5, 51, 64, 65, 79, 80, 90)] == [
        "<=50", "<=50", "51-64", "51-64", "51-64", "65-79", "65-79", "80+", "80+"]
    assert age_group(np.nan) is None and age_group(None) is None
    series = age_group(pd.Series([50, 51, 64, 65, 79, None], index=list("abcdef")))
    assert series.tolist()[:5] == ["<=50", "51-64", "51-64", "65-79", "65-79"] and pd.isna(series["f"])
    assert list(series.index) == list("abcdef") and series.cat.ordered


def test_age_group_derived_and_ordered():
    table = pd.DataFrame({"case_id": range(9), "age": [45, 48, 50, 55, 60, 64, 70, 75, 79],
                          "dice": [0.7, 0.7, 0.7, 0.8, 0.8, 0.8, 0.9, 0.9, 0.9]})
    groups, summary = fairness_table(table, metric="dice", by="age_group", min_group_size=2, **FAST)
    assert list(groups["group"]) == ["<=50", "51-64", "65-79"]  # age order, not string order
    assert summary["ser"] == pytest.approx(0.3 / 0.1)


def test_fairness_report_stacks_metrics_and_attributes():
    table = two_groups(0.1, n=12).assign(iou=lambda t: t["dice"] / (2 - t["dice"]),
                                         race=["White", "Black"] * 12)
    report = fairness_report(table, metrics=["dice", "iou"], by=["sex", "race"], **FAST)
    assert list(report.columns) == REPORT_COLUMNS
    assert len(report) == 2 * 2 * 2
    assert set(zip(report["metric"], report["attribute"])) == {
        (m, a) for m in ("dice", "iou") for a in ("sex", "race")}
    dice_sex = report[(report["metric"] == "dice") & (report["attribute"] == "sex")]
    _, summary = fairness_table(table, metric="dice", by="sex", **FAST)
    assert (dice_sex["difference"] == summary["difference"]).all() and (dice_sex["p_value"] == summary["p_value"]).all()
    assert set(dice_sex["role"]) == {"reference", "compared"}
    assert (report["warnings"] == "").all() and (report["n"] == 12).all()  # 12 cases per group >= 10
