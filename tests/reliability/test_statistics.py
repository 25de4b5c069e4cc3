"""Fairness statistics that agree with themselves: calibration, power, CI/p agreement, named direction.

The cohorts mimic the full demo's test set (``radseg demo``): 23 cases with sex=F and 17 with
sex=M, per-case mean Dice about 0.953 with SD 0.014 (F) and 0.007 (M), measured on the demo's
per_case.csv; its planted contrast shift for sex=F costs about 0.011 Dice.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from radseg.evaluate.bootstrap import group_difference, permutation_p
from radseg.evaluate.fairness import fairness_report, fairness_table

COHORTS = 200
FAST = {"resamples": 500, "permutations": 500}
N_F, N_M, SD_F, SD_M, GAP = 23, 17, 0.014, 0.0073, 0.011


def cohort(rng, gap: float, sd_f: float = SD_F, sd_m: float = SD_M) -> pd.DataFrame:
    f = np.clip(rng.normal(0.953 - gap, sd_f, N_F), 0, 1)
    m = np.clip(rng.normal(0.953, sd_m, N_M), 0, 1)
    return pd.DataFrame({"case_id": range(N_F + N_M), "sex": ["F"] * N_F + ["M"] * N_M, "dice": np.r_[f, m]})


def run_cohorts(gap: float, seed: int, **sds) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [fairness_table(cohort(rng, gap, **sds), metric="dice", by="sex", seed=i, **FAST)[1]
            for i in range(COHORTS)]


@pytest.fixture(scope="module")
def null_runs():
    sd = float(np.sqrt((SD_F ** 2 + SD_M ** 2) / 2))
    return run_cohorts(0.0, 1, sd_f=sd, sd_m=sd)


@pytest.fixture(scope="module")
def planted_runs():
    return run_cohorts(GAP, 2)


def test_calibration_no_gap_declared_at_most_about_5_percent(null_runs):
    # 200 cohorts: at a true rate of 5% the observed rate has SD sqrt(.05 * .95 / 200) = 1.5%, so 8% is
    # 2 SD above: a larger rate would mean the test is miscalibrated, not unlucky. (Seeded: the same
    # cohorts every run; measured 4.5%.)
    rate = np.mean([s["finding"] == "gap" for s in null_runs])
    assert rate <= 0.08, rate
    assert rate >= 0.01  # and the test is not vacuous (it does declare gaps by chance at about alpha)


def test_calibration_with_unequal_spreads(null_runs):
    # The studentised permutation test stays calibrated when the groups' spreads differ (the demo's 2:1).
    runs = run_cohorts(0.0, 4)  # SD 0.014 vs 0.0073, same mean; 1000 such cohorts: 3.9% and 4.8%
    assert np.mean([s["finding"] == "gap" for s in runs]) <= 0.08


def test_power_planted_gap_of_the_demo_size_is_found(planted_runs):
    found = [s["finding"] == "gap" and s["worse_group"] == "F" for s in planted_runs]
    assert np.mean(found) >= 0.80, np.mean(found)  # measured 0.92
    assert not any(s["finding"] == "gap" and s["worse_group"] == "M" for s in planted_runs)  # never backwards


def test_ci_and_p_agree(null_runs, planted_runs):
    runs = null_runs + planted_runs
    by_ci = np.array([not (s["difference_ci_low"] <= 0 <= s["difference_ci_high"]) for s in runs])
    by_p = np.array([s["p_value"] < 0.05 for s in runs])
    assert np.mean(by_ci == by_p) >= 0.95, np.mean(by_ci == by_p)
    # where they disagree, the p-value sits near alpha: the two only part at the boundary
    for s in np.array(runs, dtype=object)[by_ci != by_p]:
        assert 0.01 < s["p_value"] < 0.15


def test_old_failure_gone_ci_covers_zero_when_p_is_large(null_runs):
    # the former max-min gap had a CI above 0 for every cohort, whatever its p; the signed
    # difference's CI covers 0 whenever p is large
    large_p = [s for s in null_runs if s["p_value"] > 0.5]
    assert len(large_p) > 50
    assert all(s["difference_ci_low"] < 0 < s["difference_ci_high"] for s in large_p)


def test_signed_difference_names_the_groups():
    table = cohort(np.random.default_rng(7), 0.03)
    _, to_m = fairness_table(table, metric="dice", by="sex", reference="M", **FAST)
    assert (to_m["reference_group"], to_m["compared_group"], to_m["worse_group"]) == ("M", "F", "F")
    assert to_m["difference"] < 0 and to_m["difference_ci_high"] < 0 and to_m["finding"] == "gap"
    _, to_f = fairness_table(table, metric="dice", by="sex", **FAST)  # default: the largest group, F
    assert (to_f["reference_group"], to_f["compared_group"], to_f["worse_group"]) == ("F", "M", "F")
    assert to_f["difference"] == pytest.approx(-to_m["difference"])
    # a distance: lower is better, so the group with the larger mean is the worse one
    hd = table.assign(hd95=lambda t: 10 * (1 - t["dice"]))
    _, dist = fairness_table(hd, metric="hd95", by="sex", reference="M", **FAST)
    assert dist["difference"] > 0 and dist["worse_group"] == "F"
    with pytest.raises(ValueError, match="reference sex=X"):
        fairness_table(table, metric="dice", by="sex", reference="X", **FAST)


def test_single_group_attribute_is_reported_not_compared():
    table = cohort(np.random.default_rng(0), 0.0).assign(site="only")
    groups, summary = fairness_table(table, metric="dice", by="site", **FAST)
    assert summary["finding"] == "not compared: site has a single group (only)"
    assert np.isnan(summary["p_value"]) and summary["reference_group"] is None
    assert len(groups) == 1 and groups["n"].iloc[0] == N_F + N_M
    report = fairness_report(table, metrics=["dice"], by=["site"], **FAST)
    assert report["finding"].iloc[0].startswith("not compared") and "single group" in report["warnings"].iloc[0]


def test_tiny_groups_are_not_compared():
    rng = np.random.default_rng(5)
    # 3 cases far below the rest: a bootstrap of 3 values gives a CI far too narrow to trust
    table = pd.DataFrame({"case_id": range(33), "g": ["big"] * 30 + ["tiny"] * 3,
                          "dice": np.r_[rng.normal(0.9, 0.02, 30), [0.7, 0.72, 0.71]]})
    groups, summary = fairness_table(table, metric="dice", by="g", **FAST)
    assert summary["finding"].startswith("not compared: fewer than two g groups with at least 10 cases")
    assert groups.set_index("group").loc["tiny", "note"] == "too small to judge"
    assert summary["min_group"] == "tiny"  # still in the descriptive measures
    # three groups, one tiny: one comparison, no Bonferroni factor
    table3 = pd.concat([table, pd.DataFrame({"case_id": range(33, 53), "g": "mid",
                                             "dice": rng.normal(0.9, 0.02, 20)})])
    _, three = fairness_table(table3, metric="dice", by="g", **FAST)
    assert three["comparisons"] == 1 and "tiny" not in (three["reference_group"], three["compared_group"])


def test_bonferroni_with_three_groups():
    rng = np.random.default_rng(11)
    table = pd.DataFrame({"case_id": range(60), "g": ["a"] * 25 + ["b"] * 20 + ["c"] * 15,
                          "dice": np.r_[rng.normal(0.9, 0.02, 25), rng.normal(0.9, 0.02, 20),
                                        rng.normal(0.88, 0.02, 15)]})
    _, summary = fairness_table(table, metric="dice", by="g", resamples=2000, permutations=2000)
    assert summary["reference_group"] == "a" and summary["comparisons"] == 2 and summary["ci_level"] == 0.975
    a = table.loc[table["g"] == "a", "dice"].to_numpy()
    other = table.loc[table["g"] == summary["compared_group"], "dice"].to_numpy()
    raw = permutation_p(a, other, permutations=2000, seed=np.random.default_rng(1))
    assert summary["p_value"] == pytest.approx(min(1.0, 2 * raw), abs=0.02)  # two Monte-Carlo p's


def test_group_difference_exact_cases():
    same = group_difference([0.5, 0.6, 0.7], [0.5, 0.6, 0.7], resamples=200, permutations=200)
    assert same.difference == 0 and same.p_value == 1.0 and same.low <= 0 <= same.high
    apart = group_difference(np.linspace(0, 0.1, 12), np.linspace(0.5, 0.6, 12), resamples=500, permutations=999)
    assert apart.difference == pytest.approx(0.5) and apart.p_value == pytest.approx(1 / 1000) and apart.low > 0.4
    with pytest.raises(ValueError, match="at least 2"):
        permutation_p([1.0], [1.0, 2.0])
