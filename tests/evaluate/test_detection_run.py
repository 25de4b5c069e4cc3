"""evaluate_detection on FracAtlas-layout phantoms, with predictors whose output is known."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from radseg.datasets import prepare
from radseg.datasets.prepared import open_prepared
from radseg.errors import RadsegError
from radseg.evaluate.detection_run import match_at_iou, write_detection
from radseg.evaluate.instances import encode_mask
from radseg.workflows.detection import evaluate_detection


class _Grid:
    def restore_channel(self, channel):
        return np.asarray(channel, dtype=np.float32)


class _ScriptedPredictor:
    """Returns the given foreground probability maps, in the order the split's cases come."""

    def __init__(self, maps):
        self.maps = iter(maps)

    def probabilities(self, image):
        fg = next(self.maps)
        assert fg.shape == image.shape[:2]
        return torch.from_numpy(np.stack([1.0 - fg, fg]).astype(np.float32)), _Grid()


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    from radseg.synth.run import synthesize

    root = tmp_path_factory.mktemp("frac")
    assert not synthesize("fracture-xray", 16, root / "src", seed=4, workers=1).failed
    report = prepare("fracatlas", root / "src", root / "prepared", options={"negatives": True})
    assert report.failed == []
    data = open_prepared(root / "prepared")
    split = max(("train", "val", "test"), key=lambda s: len(data.split(s)))
    cases = data.split(split)
    findings = [bool(data.read_instances(c)) for c in cases]
    assert any(findings) and not all(findings), "the phantom split needs fractured and normal images"
    return root / "prepared", split, data, cases


def _truth_maps(data, cases):
    out = []
    for case in cases:
        out.append((case.label.array > 0).astype(np.float32))
    return out


def test_perfect_predictor_scores_one_everywhere(prepared):
    root, split, data, cases = prepared
    maps = [0.9 * m for m in _truth_maps(data, cases)]
    result = evaluate_detection(_ScriptedPredictor(maps), root, split=split, by=["body_part"], min_pixels=1,
                                resamples=200)
    s = result.summary
    assert s["mask_AP50"] == pytest.approx(1.0) and s["box_AP50"] == pytest.approx(1.0)
    assert s["precision"] == 1.0 and s["recall"] == 1.0
    assert s["dice"] == pytest.approx(1.0) and s["auc"] == 1.0
    assert s["images"] == len(cases) and s["failed"] == []
    assert result.groups["images"].sum() == len(cases)


def test_bootstrap_zero_gives_the_estimates_without_confidence_intervals(prepared):
    """``evaluate-detection --bootstrap 0`` used to crash after scoring every image (resamples must be >= 1)."""
    root, split, data, cases = prepared
    maps = [0.9 * m for m in _truth_maps(data, cases)]
    result = evaluate_detection(_ScriptedPredictor(maps), root, split=split, by=["body_part"], min_pixels=1,
                                resamples=0)
    s = result.summary
    assert s["dice"] == pytest.approx(1.0) and s["auc"] == 1.0
    assert all(s[k] != s[k] for k in ("dice_ci_low", "dice_ci_high", "auc_ci_low", "auc_ci_high"))  # NaN: no CI


def test_missed_findings_and_false_alarms_counted_by_hand(prepared, tmp_path):
    root, split, data, cases = prepared
    truth = _truth_maps(data, cases)
    maps, n_truth, n_kept, n_false = [], 0, 0, 0
    fractured_seen = 0
    for case, t in zip(cases, truth):
        instances = data.read_instances(case) or []
        n_truth += len(instances)
        prob = np.zeros_like(t)
        if instances:
            fractured_seen += 1
            if fractured_seen % 2:  # every other fractured image: all its fractures found
                prob = 0.8 * t
                n_kept += len(instances)
        else:  # a normal image gets one confident false alarm in a corner
            prob[:12, :12] = 0.95
            n_false += 1
        maps.append(prob)
    result = evaluate_detection(_ScriptedPredictor(maps), root, split=split, min_pixels=1, resamples=200)
    s = result.summary
    assert s["recall"] == pytest.approx(n_kept / n_truth)
    assert s["precision"] == pytest.approx(n_kept / (n_kept + n_false))
    # the false alarms outscore every true detection, so AP50 falls below the recall reached
    assert s["mask_AP50"] < s["recall"]
    files = write_detection(result, tmp_path / "out")
    assert all(f.exists() for f in files)


def test_mean_instance_score_ranks_broad_findings_above_one_hot_pixel(prepared):
    """Every fracture found at a flat 0.8; every normal image has a 0.55 blob with one 0.99 pixel. Ranked
    by the highest probability the false alarms come first (AP50 below the recall of 1); ranked by the
    mean (about 0.56) they come after every true one, so AP50 is 1 by hand."""
    root, split, data, cases = prepared
    maps = []
    for case, t in zip(cases, _truth_maps(data, cases)):
        prob = 0.8 * t
        if not data.read_instances(case):
            prob[:12, :12] = 0.55
            prob[5, 5] = 0.99
        maps.append(prob)
    by_max, by_mean = (evaluate_detection(_ScriptedPredictor(maps), root, split=split, min_pixels=1, resamples=0,
                                          instance_score=how) for how in ("max", "mean"))
    assert by_max.summary["recall"] == by_mean.summary["recall"] == 1.0
    assert by_max.summary["mask_AP50"] < 0.9
    assert by_mean.summary["mask_AP50"] == pytest.approx(1.0) and by_mean.summary["box_AP50"] == pytest.approx(1.0)
    assert by_mean.settings["instance_score"] == "mean"
    with pytest.raises(RadsegError, match="instance score"):
        evaluate_detection(_ScriptedPredictor(maps), root, split=split, instance_score="median")


def test_match_at_iou_is_one_to_one():
    a = np.zeros((20, 20), bool)
    a[2:10, 2:10] = True
    shifted = np.roll(a, 1, axis=1)
    far = np.zeros_like(a)
    far[12:18, 12:18] = True
    truths = [encode_mask(a)]
    # two detections on one truth: only one matches; the far one never does
    assert match_at_iou(truths, [(encode_mask(a), 0.9), (encode_mask(shifted), 0.8), (encode_mask(far), 0.7)]) == 1
    assert match_at_iou(truths, [(encode_mask(far), 0.9)]) == 0


def test_cli_with_a_trained_model_and_bad_input(prepared, tmp_path):
    import json

    import pandas as pd
    from typer.testing import CliRunner

    from radseg.cli import app
    from radseg.train.config import TrainConfig
    from radseg.train.loop import train

    root, split, _, _ = prepared
    config = TrainConfig(output=tmp_path / "run", preset="fracture-xray", preprocessing={"size": (96, 96)},
                         arch_kwargs={"channels": [8, 16, 32], "strides": [2, 2], "num_res_units": 0},
                         epochs=2, iters_per_epoch=4, batch_size=4, val_every=2, threads=2)
    model = train(config, data=root).model_path
    runner = CliRunner()
    out = tmp_path / "eval"
    result = runner.invoke(app, ["evaluate-detection", "-m", str(model), "--data", str(root), "--split", split,
                                 "--by", "body_part", "--bootstrap", "100", "--threshold", "0.3", "-q", "-o", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    per_case = pd.read_csv(out / "per_case.csv")
    assert summary["images"] == len(per_case) and summary["with_finding"] == int(per_case["finding"].sum())
    # the AUC printed and stored is the pairwise definition on the stored image scores
    from tests.evaluate.test_detection import _pairwise_auc

    assert summary["auc"] == pytest.approx(_pairwise_auc(per_case["image_score"], per_case["finding"]))
    assert summary["auc_ci_low"] <= summary["auc"] <= summary["auc_ci_high"]
    groups = pd.read_csv(out / "groups.csv")
    assert groups["images"].sum() == len(per_case)

    missing = runner.invoke(app, ["evaluate-detection", "-m", str(model), "--data", str(tmp_path / "nowhere"),
                                  "-o", str(tmp_path / "x")])
    assert missing.exit_code == 1 and "nowhere" in missing.output
    bad_column = runner.invoke(app, ["evaluate-detection", "-m", str(model), "--data", str(root), "--split", split,
                                     "--by", "shoe_size", "-o", str(tmp_path / "y")])
    assert bad_column.exit_code == 1 and "shoe_size" in bad_column.output


def test_operating_point_chosen_on_holdout_stored_and_used_by_segment(prepared, tmp_path):
    """train --holdout -> evaluate-detection --split holdout --save-operating-point -> the model carries the
    threshold; on val its rates are reported, and segment's image_scores.csv gives the same scores and flags."""
    import json
    import shutil

    import pandas as pd
    from typer.testing import CliRunner

    from radseg.cli import app
    from radseg.datasets.prepared import IMAGE
    from radseg.evaluate.operating_point import choose_operating_point
    from radseg.models.bundle import load_bundle
    from radseg.train.config import TrainConfig
    from radseg.train.loop import train

    root, split, data, _ = prepared
    config = TrainConfig(output=tmp_path / "run", preset="fracture-xray", preprocessing={"size": (96, 96)},
                         arch_kwargs={"channels": [8, 16, 32], "strides": [2, 2], "num_res_units": 0},
                         epochs=2, iters_per_epoch=4, batch_size=4, val_every=2, threads=2, holdout=0.5, seed=2)
    model = train(config, data=root).model_path
    manifest = load_bundle(model, weights=False).manifest
    held = manifest["data"]["val_cases"]
    assert held and set(held) <= {c.case_id for c in data.split("train")}  # validated on train cases only
    runner = CliRunner()
    # a model that trained on one of this dataset's val images (prepared otherwise) is not scored on val as unseen
    leaky = load_bundle(model)
    leaky.manifest["data"]["train_cases"] = [*leaky.manifest["data"]["train_cases"], data.split("val")[0].case_id]
    leaky.save(tmp_path / "leaky")
    refused = runner.invoke(app, ["evaluate-detection", "-m", str(tmp_path / "leaky"), "--data", str(root), "--split",
                                  "val", "-o", str(tmp_path / "no")])
    assert refused.exit_code == 1 and "1 of split 'val'" in refused.output and data.split("val")[0].case_id in refused.output
    for wrong in ("val", "train"):  # the reported split, and images the weights were trained on
        refused = runner.invoke(app, ["evaluate-detection", "-m", str(model), "--data", str(root), "--split", wrong,
                                      "--save-operating-point", "-o", str(tmp_path / "no")])
        assert refused.exit_code == 1 and "held-out training cases" in refused.output
    shipped = runner.invoke(app, ["evaluate-detection", "-m", "fracatlas", "--data", str(root), "--split", "holdout",
                                  "--save-operating-point", "-o", str(tmp_path / "no")])
    assert shipped.exit_code == 1 and "read-only" in shipped.output
    assert "operating_point" not in load_bundle(model, weights=False).manifest
    exported = runner.invoke(app, ["export-onnx", str(model)])
    assert exported.exit_code == 0, exported.output
    before = load_bundle(model, weights=False)

    out = tmp_path / "holdout"
    result = runner.invoke(app, ["evaluate-detection", "-m", str(model), "--data", str(root), "--split", "holdout",
                                 "--sensitivity", "0.8", "--save-operating-point", "--bootstrap", "50", "-q",
                                 "-o", str(out)])
    assert result.exit_code == 0, result.output
    per_case = pd.read_csv(out / "per_case.csv")
    assert sorted(per_case["case"]) == sorted(held)
    expected = choose_operating_point(per_case["image_score"], per_case["finding"], sensitivity=0.8)
    after = load_bundle(model, weights=False)
    point = after.manifest["operating_point"]
    assert after.digest == before.digest and after.onnx_bytes == before.onnx_bytes  # the same network, ONNX kept
    assert point["threshold"] == pytest.approx(expected["threshold"])
    assert point["specificity"] == pytest.approx(expected["specificity"]) and "holdout" in point["chosen_on"]

    scored = tmp_path / "val"
    result = runner.invoke(app, ["evaluate-detection", "-m", str(model), "--data", str(root), "--split", split,
                                 "--bootstrap", "50", "-q", "-o", str(scored)])
    assert result.exit_code == 0, result.output
    summary = json.loads((scored / "summary.json").read_text())
    val_cases = pd.read_csv(scored / "per_case.csv")
    shipped = summary["at_model_operating_point"]
    hits = val_cases["image_score"] >= point["threshold"]
    assert list(val_cases["flagged"]) == list(hits)
    assert shipped["sensitivity"] == pytest.approx(hits[val_cases["finding"]].mean())
    assert shipped["specificity"] == pytest.approx((~hits[~val_cases["finding"]]).mean())

    images = tmp_path / "images"
    images.mkdir()
    for case in data.split(split):
        shutil.copy(case.sources[IMAGE], images / case.sources[IMAGE].name)
    segmented = tmp_path / "segmented"
    # the torch backend, as evaluate-detection ran: the split holds the held-out case whose score is the
    # threshold, and ONNX's float rounding (1e-7) would flip that one flag
    result = runner.invoke(app, ["segment", "-i", str(images), "-m", str(model), "-o", str(segmented), "-q",
                                 "--backend", "torch"])
    assert result.exit_code == 0, result.output
    assert "image_scores.csv" in result.output
    table = pd.read_csv(segmented / "image_scores.csv").set_index("case")
    expected_scores = val_cases.set_index("case")["image_score"]
    assert sorted(table.index) == sorted(expected_scores.index)
    assert np.allclose(table.loc[expected_scores.index, "image_score"], expected_scores, atol=1e-6)
    assert (table["threshold"] == point["threshold"]).all()
    evaluated = val_cases.set_index("case")["flagged"]  # evaluate-detection's own flags for the same images
    assert table.loc[evaluated.index, "flagged"].tolist() == evaluated.tolist()
    again = runner.invoke(app, ["segment", "-i", str(images), "-m", str(model), "-o", str(segmented), "-q",
                                "--backend", "torch"])
    assert again.exit_code == 0 and "kept" in again.output  # resumed: the scores come from the state records
    assert pd.read_csv(segmented / "image_scores.csv").set_index("case").equals(table)
    assert load_bundle(model, weights=False).manifest["operating_point"]["tta"] is False
    with_tta = runner.invoke(app, ["segment", "-i", str(images), "-m", str(model), "-o", str(tmp_path / "tta"),
                                   "--tta", "-q"])
    assert with_tta.exit_code == 0 and "chosen on scores without flip TTA" in with_tta.output
    assert "drop --tta" in with_tta.output

    assert point["instance_score"] == "max" and summary["settings"]["instance_score"] == "max"
    # a wider image-score square and mean-ranked detections chosen on the holdout travel with the point
    result = runner.invoke(app, ["evaluate-detection", "-m", str(model), "--data", str(root), "--split", "holdout",
                                 "--window", "9", "--instance-score", "mean", "--save-operating-point",
                                 "--bootstrap", "0", "-q", "-o", str(tmp_path / "w9")])
    assert result.exit_code == 0, result.output
    from radseg.infer.predictor import Predictor

    stored = load_bundle(model, weights=False).manifest["operating_point"]
    assert stored["window"] == 9 and stored["instance_score"] == "mean"
    assert Predictor.load(model, device="cpu").image_score_window == 9
    follows = runner.invoke(app, ["evaluate-detection", "-m", str(model), "--data", str(root), "--split", split,
                                  "--bootstrap", "0", "-q", "-o", str(tmp_path / "w9val")])
    summary = json.loads((tmp_path / "w9val" / "summary.json").read_text())
    assert follows.exit_code == 0 and summary["settings"]["window"] == 9 and "at_model_operating_point" in summary
    assert summary["settings"]["instance_score"] == "mean"
    bad = runner.invoke(app, ["evaluate-detection", "-m", str(model), "--data", str(root), "--split", split,
                              "--instance-score", "median", "-q", "-o", str(tmp_path / "bad")])
    assert bad.exit_code == 1 and "'max' or 'mean'" in bad.output
    other = runner.invoke(app, ["evaluate-detection", "-m", str(model), "--data", str(root), "--split", split,
                                "--window", "5", "--bootstrap", "0", "-q", "-o", str(tmp_path / "w5val")])
    summary = json.loads((tmp_path / "w5val" / "summary.json").read_text())
    assert other.exit_code == 0 and "at_model_operating_point" not in summary and "not applied" in other.output
    with_tta = runner.invoke(app, ["evaluate-detection", "-m", str(model), "--data", str(root), "--split", split,
                                   "--tta", "--bootstrap", "0", "-q", "-o", str(tmp_path / "ttaval")])
    summary = json.loads((tmp_path / "ttaval" / "summary.json").read_text())
    assert with_tta.exit_code == 0 and "at_model_operating_point" not in summary  # chosen without TTA
    assert "without flip TTA" in summary["operating_point_note"]
    # a hand-edited manifest whose window is no whole number of pixels: the point is ignored, with a reason
    edited = load_bundle(model)
    edited.manifest = {**edited.manifest, "operating_point": {**edited.manifest["operating_point"], "window": 9.5}}
    edited.save(model)
    scored = runner.invoke(app, ["evaluate-detection", "-m", str(model), "--data", str(root), "--split", split,
                                 "--bootstrap", "0", "-q", "-o", str(tmp_path / "edited")])
    summary = json.loads((tmp_path / "edited" / "summary.json").read_text())
    assert scored.exit_code == 0 and summary["settings"]["window"] == 5 and "at_model_operating_point" not in summary
    warned = runner.invoke(app, ["segment", "-i", str(images), "-m", str(model), "-o", str(tmp_path / "edited-seg"),
                                 "-q", "--backend", "torch"])
    assert warned.exit_code == 0 and "cannot be applied as stored" in warned.output and "9.5" in warned.output
    assert pd.read_csv(tmp_path / "edited-seg" / "image_scores.csv")["flagged"].isna().all()


def test_flip_tta_follows_the_operating_point_unless_told(prepared, tmp_path):
    """A model whose operating point was chosen on flip-TTA scores: segment, evaluate-detection and serve run with
    TTA by default, so its threshold applies; --no-tta turns it off and is warned about."""
    import json
    import shutil

    import pandas as pd
    from typer.testing import CliRunner

    from radseg.cli import app
    from radseg.datasets.prepared import IMAGE
    from radseg.serve.models import ModelCache
    from radseg.train.config import TrainConfig
    from radseg.train.loop import train

    root, split, data, _ = prepared
    config = TrainConfig(output=tmp_path / "run", preset="fracture-xray", preprocessing={"size": (96, 96)},
                         arch_kwargs={"channels": [8, 16, 32], "strides": [2, 2], "num_res_units": 0},
                         epochs=2, iters_per_epoch=4, batch_size=4, val_every=2, threads=2, holdout=0.5, seed=3)
    model = train(config, data=root).model_path
    plain = tmp_path / "plain"
    shutil.copytree(model, plain)  # no operating point: TTA stays off
    runner = CliRunner()
    chosen = runner.invoke(app, ["evaluate-detection", "-m", str(model), "--data", str(root), "--split", "holdout",
                                 "--tta", "--save-operating-point", "--bootstrap", "0", "-q", "-o", str(tmp_path / "ho")])
    assert chosen.exit_code == 0, chosen.output

    def evaluate(*options):
        out = tmp_path / f"val{len(options)}"
        result = runner.invoke(app, ["evaluate-detection", "-m", str(model), "--data", str(root), "--split", split,
                                     "--bootstrap", "0", "-q", "-o", str(out), *options])
        assert result.exit_code == 0, result.output
        return json.loads((out / "summary.json").read_text())

    default, without = evaluate(), evaluate("--no-tta")
    assert default["settings"]["tta"] is True and "at_model_operating_point" in default
    assert without["settings"]["tta"] is False and "at_model_operating_point" not in without

    images = tmp_path / "images"
    images.mkdir()
    for case in data.split(split):
        shutil.copy(case.sources[IMAGE], images / case.sources[IMAGE].name)

    def segment(name, *options):
        result = runner.invoke(app, ["segment", "-i", str(images), "-m", str(model), "-o", str(tmp_path / name),
                                     "--backend", "torch", *options])
        assert result.exit_code == 0, result.output
        return result.output, pd.read_csv(tmp_path / name / "image_scores.csv").set_index("case")

    said, scores = segment("default")
    _, told = segment("told", "--tta", "-q")
    warned, off = segment("off", "--no-tta", "-q")
    assert "flip TTA on" in said and "do not carry over" not in said
    assert np.allclose(scores["image_score"], told.loc[scores.index, "image_score"])
    assert not np.allclose(scores["image_score"], off.loc[scores.index, "image_score"])  # TTA changes the scores
    assert "do not carry over" in warned and "leave out --no-tta" in warned
    cache = ModelCache({"chosen-with-tta": model, "no-point": plain}, device="cpu")
    assert cache.tta_default("chosen-with-tta") is True
    assert cache.tta_default("no-point") is False and cache.tta_default("not-a-model") is False
    from radseg.serve.service import Service

    service = Service(cache, work_dir=tmp_path / "serve")
    upload = next(images.iterdir())
    ticked, unticked = (service.analyse(upload, "chosen-with-tta", tta=t) for t in (True, False))
    assert ticked.ok and "Warning" not in ticked.status
    assert unticked.ok and unticked.warning and "tick flip TTA" in unticked.status
    pytest.importorskip("gradio")
    from radseg.serve.app import build_app

    config = build_app(service).get_config_file()
    box = next(c for c in config["components"] if c["props"].get("elem_id") == "tta")
    assert box["props"]["value"] is True  # the first model, whose threshold was chosen with TTA
    dropdown = next(c for c in config["components"] if c["props"].get("elem_id") == "model")
    assert any(dep["targets"] and dep["targets"][0][0] == dropdown["id"] and dep["targets"][0][1] == "change"
               and box["id"] in dep["outputs"] for dep in config["dependencies"])  # another model sets it again


def test_without_copies_sets_aside_images_the_model_saw_under_another_id_and_repeats(prepared, tmp_path):
    import shutil

    root, split, data, cases = prepared
    copy = tmp_path / "prepared"
    shutil.copytree(root, copy)
    others = [c for c in data.cases if c.split != split]
    assert others, "the phantom dataset needs a case outside the scored split"
    image = lambda case: case.sources["image"]  # noqa: E731
    # cases[1] becomes a repeat of cases[0]; cases[2] a copy of a case of another split the model trained on
    shutil.copy(image(cases[0]), copy / "images" / image(cases[1]).name)
    shutil.copy(image(others[0]), copy / "images" / image(cases[2]).name)

    class _Bundle:
        manifest = {"data": {"train_cases": [others[0].case_id]}}

    kept = [c for i, c in enumerate(cases) if i not in (1, 2)]
    predictor = _ScriptedPredictor(_truth_maps(data, kept))
    predictor.bundle = _Bundle()
    result = evaluate_detection(predictor, copy, split=split, min_pixels=1, resamples=0, without_copies=True)
    assert result.summary["images"] == len(cases) - 2
    assert result.summary["copies_set_aside"] == [
        [cases[1].case_id, f"the same pixels as {cases[0].case_id}, earlier in this split"],
        [cases[2].case_id, f"the same pixels as {others[0].case_id}, which the model trained on"]]
    assert list(result.per_case["case"]) == [c.case_id for c in kept]
    assert result.summary["copies_compared"] == "compared with the 1 images the model trained on or held out"
    # a model whose manifest names no training cases: only the repeat within the split is found, and it is said
    blind = _ScriptedPredictor(_truth_maps(data, [c for i, c in enumerate(cases) if i != 1]))
    alone = evaluate_detection(blind, copy, split=split, min_pixels=1, resamples=0, without_copies=True)
    assert [c for c, _ in alone.summary["copies_set_aside"]] == [cases[1].case_id]
    assert alone.summary["copies_compared"].startswith("the model's manifest names no training cases")
    # without the option every image is scored, copies included
    everything = _ScriptedPredictor(_truth_maps(open_prepared(copy), open_prepared(copy).split(split)))
    assert evaluate_detection(everything, copy, split=split, min_pixels=1, resamples=0).summary["images"] == len(cases)
