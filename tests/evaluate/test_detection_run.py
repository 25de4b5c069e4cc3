"""evaluate_detection on FracAtlas-layout phantoms, with predictors whose output is known."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from radseg.datasets import prepare
from radseg.datasets.prepared import open_prepared
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
