"""``radseg benchmark`` end to end on small hand-made data: folds, resume, identical models, the outputs."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("monai")

import radseg.io as rio  # noqa: E402
from radseg.errors import RadsegError  # noqa: E402
from radseg.workflows import benchmark as bench  # noqa: E402
from radseg.workflows.benchmark import BenchmarkPlan, run_benchmark  # noqa: E402
from radseg.workflows.benchmark_output import make_tables, write_benchmark  # noqa: E402
from tests.train.shapes import disc_case  # noqa: E402

BUDGET = {"epochs": 1, "iters_per_epoch": 2, "batch_size": 2}
PRE = {"size": (64, 64), "patch_size": (64, 64)}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """8 disc/square cases of 4 patients (2 each); a given split for the --split mode."""
    root = tmp_path_factory.mktemp("bench") / "prepared"
    rng = np.random.default_rng(0)
    rows = ["case,patient,sex"]
    for i in range(8):
        image, labels = disc_case(rng)
        rio.write(image, root / "images" / f"case{i}.nii.gz")
        rio.write(labels, root / "labels" / f"case{i}.nii.gz")
        rows.append(f"case{i},p{i // 2},{'FM'[i % 2]}")
    (root / "metadata.csv").write_text("\n".join(rows) + "\n")
    info = {"name": "discs", "labels": {"background": 0, "disc": 1, "square": 2},
            "splits": {"train": ["case0", "case1", "case2", "case3"], "val": ["case4", "case5"],
                       "test": ["case6", "case7"]}}
    (root / "dataset.json").write_text(json.dumps(info))
    return root


@pytest.fixture(scope="module")
def two_models(prepared, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "out"
    plan = BenchmarkPlan(data=prepared, output=out, architectures=["unet", "basicunet"], folds=2, preprocessing=PRE,
                         training=dict(BUDGET), device="cpu", threads=1)
    per_case, runs = run_benchmark(plan)
    return plan, per_case, runs


def test_every_case_is_held_out_once_per_model_in_patient_grouped_folds(two_models):
    plan, per_case, runs = two_models
    folds = json.loads((plan.output / "folds.json").read_text())
    patients = [{f"p{int(c[4:]) // 2}" for c in fold} for fold in folds]
    assert not patients[0] & patients[1] and sorted(sum(folds, [])) == [f"case{i}" for i in range(8)]
    for arch in ("unet", "basicunet"):
        rows = per_case[per_case["architecture"] == arch]
        assert sorted(rows["case"]) == sorted([f"case{i}" for i in range(8)] * 2)  # two labels per case
        for fold, held in enumerate(folds):
            assert set(rows[rows["fold"] == fold]["case"]) == set(held)
    assert set(per_case["label_name"]) == {"disc", "square"} and set(per_case["unit"]) == {"mm"}
    assert set(per_case["sex"]) == {"F", "M"}  # subject columns travel with the scores (for --by)
    assert len(runs) == 4 and (runs["parameters"] > 0).all() and (runs["n_train"] == 4).all()
    unet, basic = (runs[runs["architecture"] == a]["parameters"].iloc[0] for a in ("unet", "basicunet"))
    assert unet != basic


def test_scores_match_an_independent_dice(two_models):
    plan, per_case, _ = two_models
    from radseg.infer.predictor import Predictor

    row = per_case[(per_case["architecture"] == "unet") & (per_case["label_name"] == "disc")].iloc[0]
    model = plan.output / "runs" / "unet" / f"fold{int(row['fold'])}" / "train" / "model"
    image = rio.read(plan.data / "images" / f"{row['case']}.nii.gz")
    truth = rio.read(plan.data / "labels" / f"{row['case']}.nii.gz").array == 1
    pred = Predictor.load(model, device="cpu").predict(image).array == 1
    expected = 2 * (pred & truth).sum() / (pred.sum() + truth.sum())
    assert row["dice"] == pytest.approx(expected)


def test_a_rerun_skips_finished_pairs_and_adds_a_new_architecture(two_models, monkeypatch):
    plan, per_case, _ = two_models
    trained = []
    real_train = bench._train

    def counting(plan_, arch, *args, **kwargs):
        trained.append(arch)
        return real_train(plan_, arch, *args, **kwargs)

    monkeypatch.setattr(bench, "_train", counting)
    again, _ = run_benchmark(plan)
    assert trained == [] and again.equals(per_case)
    more = BenchmarkPlan(**{**plan.__dict__, "architectures": ["unet", "basicunet", "segresnet"]})
    run_benchmark(more)
    assert trained == ["segresnet", "segresnet"]  # two folds of the new one only


def test_a_changed_recipe_is_refused(two_models):
    plan, _, _ = two_models
    with pytest.raises(RadsegError, match="another plan"):
        run_benchmark(BenchmarkPlan(**{**plan.__dict__, "seed": 1}))


def test_one_model_under_two_names_shows_no_difference(two_models, tmp_path):
    plan, _, _ = two_models
    run = plan.output / "runs" / "unet" / "fold0" / "train"  # a run folder stands for its model
    same = BenchmarkPlan(data=plan.data, output=tmp_path / "same", bundles={"first": str(run / "model"),
                                                                          "second": str(run)},
                         folds=None, device="cpu", threads=1)
    per_case, runs = run_benchmark(same)
    assert sorted(set(per_case["case"])) == ["case6", "case7"]  # the test split
    tables = make_tables(per_case, runs, resamples=500)
    dice = tables.paired[tables.paired["metric"] == "dice"]
    assert (dice["difference"] == 0).all() and (dice["p_value"] == 1).all()
    assert set(dice["verdict"]) == {"no evidence of a difference"}


def test_tables_and_report(two_models, tmp_path):
    plan, per_case, runs = two_models
    tables = make_tables(per_case, runs, by=["sex"], ci="hemseg", resamples=5000,
                         settings={"folds": plan.folds})
    written = write_benchmark(tables, tmp_path)
    assert {p.name for p in written} >= {"summary.csv", "paired.csv", "subgroups.csv", "benchmark.md", "report.html"}
    summary = tables.summary
    dice = summary[(summary["architecture"] == "unet") & (summary["metric"] == "dice") &
                   (summary["label_name"] == "disc")].iloc[0]
    values = per_case[(per_case["architecture"] == "unet") & (per_case["label_name"] == "disc")]["dice"]
    assert dice["mean"] == pytest.approx(values.mean()) and dice["n"] == 8
    from radseg.evaluate.bootstrap import hemseg_protocol_ci
    from radseg.evaluate.paired import patient_bootstrap_ci

    # two slices per patient: patients are resampled, whatever --ci asked
    patients = per_case[(per_case["architecture"] == "unet") & (per_case["label_name"] == "disc")]["patient"]
    assert dice["ci_method"] == "patient bootstrap (percentile)"
    assert (dice["ci_low"], dice["ci_high"]) == pytest.approx(
        patient_bootstrap_ci(values.to_numpy(), patients.to_numpy(), resamples=5000, seed=0))
    # one case per patient: HemSeg-200's protocol exactly
    single = make_tables(per_case.assign(patient=per_case["case"]), runs, ci="hemseg", resamples=5000).summary
    row = single[(single["architecture"] == "unet") & (single["metric"] == "dice") &
                 (single["label_name"] == "disc")].iloc[0]
    assert row["ci_method"] == "hemseg" and row["ci_low"] == pytest.approx(hemseg_protocol_ci(values.to_numpy()).low)
    assert len(tables.paired) == 2 * 4  # one pair x two labels x four metrics
    assert set(tables.subgroups["group"]) == {"F", "M"}
    text = (tmp_path / "benchmark.md").read_text()
    assert "| unet |" in text and "| basicunet |" in text and "Only 8 held-out cases" in text
    assert "### Dice by sex: disc" in text and "| model | F | M |" in text
    assert "data:image/png;base64" in (tmp_path / "report.html").read_text()


def test_impossible_plans_fail_before_training(prepared, tmp_path):
    with pytest.raises(RadsegError, match="nothing to compare"):
        run_benchmark(BenchmarkPlan(data=prepared, output=tmp_path / "a"))
    with pytest.raises(RadsegError, match="cross-validation"):
        run_benchmark(BenchmarkPlan(data=prepared, output=tmp_path / "b", bundles={"x": "model"}, folds=3))
    with pytest.raises(ValueError, match="5 folds need at least 5 patients"):
        run_benchmark(BenchmarkPlan(data=prepared, output=tmp_path / "c", architectures=["unet"], folds=5))


def test_the_command_runs_resumes_and_refuses_bad_input(prepared, tmp_path):
    from typer.testing import CliRunner

    from radseg.cli import app

    out = tmp_path / "cli"
    args = ["benchmark", "--data", str(prepared), "-o", str(out), "--arch", "unet", "--folds", "2", "--size", "64,64",
            "--patch-size", "64,64", "--epochs", "1", "--iters-per-epoch", "2", "--batch-size", "2", "--bootstrap",
            "200", "--threads", "1", "--device", "cpu"]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "| unet |" in first.output and (out / "report.html").exists()
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0 and "done before, skipped" in again.output
    bad = CliRunner().invoke(app, [*args[:5], "--arch", "unte"])
    assert bad.exit_code == 1 and "unet" in bad.output
    bad_by = CliRunner().invoke(app, [*args, "--by", "site"])
    assert bad_by.exit_code == 1 and "no column(s) site" in bad_by.output and "sex" in bad_by.output
    bad_model = CliRunner().invoke(app, [*args[:5], "--model", "nameonly", "--split"])
    assert bad_model.exit_code == 1 and "NAME=BUNDLE" in bad_model.output


def test_validation_is_a_patient_grouped_part_of_the_training_cases(two_models):
    plan, _, _ = two_models
    from radseg.models.bundle import load_bundle

    folds = json.loads((plan.output / "folds.json").read_text())
    for fold, held in enumerate(folds):
        data = load_bundle(plan.output / "runs" / "unet" / f"fold{fold}" / "train" / "model", weights=False).manifest["data"]
        train, val = set(data["train_cases"]), set(data["val_cases"])
        assert val and not (train | val) & set(held)  # model selection never sees a held-out case
        patient = {f"case{i}": f"p{i // 2}" for i in range(8)}
        assert not {patient[c] for c in train} & {patient[c] for c in val}


def test_changed_data_and_scoring_after_training(two_models, tmp_path, monkeypatch):
    import shutil

    plan, per_case, _ = two_models
    data, out = tmp_path / "data", tmp_path / "out"
    shutil.copytree(plan.data, data)
    shutil.copytree(plan.output, out)
    moved = BenchmarkPlan(**{**plan.__dict__, "data": data, "output": out})
    with pytest.raises(RadsegError, match="another plan"):  # the data path is part of the plan
        run_benchmark(moved)
    (out / "plan.json").unlink()
    calls = []
    monkeypatch.setattr("radseg.train.loop.train", lambda *a, **k: calls.append(a))
    (out / "runs" / "unet" / "fold0" / "result.json").unlink()  # as if scoring had been interrupted
    again, _ = run_benchmark(moved)
    assert calls == []  # the finished training run is reused, not trained further
    unet = again[again["architecture"] == "unet"].sort_values(["case", "label"])["dice"].to_numpy()
    before = per_case[per_case["architecture"] == "unet"].sort_values(["case", "label"])["dice"].to_numpy()
    assert np.allclose(unet, before, equal_nan=True)
    image = rio.read(data / "labels" / "case0.nii.gz")
    rio.write(image.with_array((image.array > 0).astype(np.uint8)), data / "labels" / "case0.nii.gz")
    with pytest.raises(RadsegError, match="another plan"):  # relabelled under the same ids
        run_benchmark(moved)


def test_a_split_with_a_patient_on_both_sides_is_refused(prepared, tmp_path):
    import shutil

    data = tmp_path / "leaky"
    shutil.copytree(prepared, data)
    (data / "metadata.csv").write_text("case,patient\n" + "".join(f"case{i},p{min(i, 6) // 2}\n" for i in range(8)))
    model = tmp_path / "unused"
    with pytest.raises(RadsegError, match="patient"):
        run_benchmark(BenchmarkPlan(data=data, output=tmp_path / "o", bundles={"x": str(model)}, folds=None))


def test_an_infinite_distance_counts_against_the_model_that_failed():
    import pandas as pd

    from radseg.evaluate.benchmark_table import paired_table

    rows = []
    for i in range(10):
        for arch, hd in (("good", 2.0), ("bad", np.inf if i < 3 else 2.5)):
            rows.append({"architecture": arch, "case": f"c{i}", "patient": f"p{i}", "label": 1, "label_name": "bleed",
                         "unit": "mm", "dice": 0.8, "hd95": hd, "max_distance": 100.0})
    paired = paired_table(pd.DataFrame(rows), metrics=["hd95"])
    row = paired.iloc[0]
    assert row["n"] == 10 and row["n_penalised"] == 3
    assert row["difference"] == pytest.approx((3 * (100.0 - 2.0) + 7 * 0.5) / 10)
    assert row["verdict"] == "good better than bad"
    with pytest.raises(ValueError, match="repeated"):
        paired_table(pd.DataFrame(rows + rows[:1]), metrics=["hd95"])
