"""Prepared-dataset folders, the train CLI, a 3D run and a multi-label head."""

from __future__ import annotations

import json

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

torch = pytest.importorskip("torch")
pytest.importorskip("monai")

from radseg.commands import train as train_commands  # noqa: E402
from radseg.errors import ReadError  # noqa: E402
from radseg.infer.predictor import Predictor  # noqa: E402
from radseg.labels import is_multilabel, make_multilabel  # noqa: E402
from radseg.train.config import TrainConfig  # noqa: E402
from radseg.train.data import TrainData, data_hash, from_pairs, load_prepared, split_cases  # noqa: E402
from radseg.train.loop import train  # noqa: E402
from tests.train.shapes import ball_case, dice, disc_case  # noqa: E402


def test_prepared_folder_contract(prepared):
    data = load_prepared(prepared)
    assert sorted(c.case_id for c in data.cases) == ["case0", "case1", "case2", "case3", "case4"]  # test held out
    assert data.label_names == {1: "disc", 2: "square"}  # nnU-Net style {"name": value} accepted
    problems = dict((p.split("/")[-1], m) for p, m in data.problems)
    assert "no label file" in problems["orphan.nii.gz"] and "broken.nii.gz" in problems
    train_cases, val_cases = split_cases(data, val_fraction=0.5, seed=0)
    assert [c.case_id for c in val_cases] == ["case4"] and len(train_cases) == 4
    assert data.cases[0].label.same_geometry(data.cases[0].image)
    with pytest.raises(ReadError, match="images/ and labels/"):
        load_prepared(prepared / "images")


def test_seeded_split_and_data_hash():
    rng = np.random.default_rng(0)
    data = from_pairs([disc_case(rng) for _ in range(10)])
    a, b = split_cases(data, val_fraction=0.2, seed=3), split_cases(data, val_fraction=0.2, seed=3)
    assert [c.case_id for c in a[1]] == [c.case_id for c in b[1]] and len(a[1]) == 2
    changed = from_pairs([(c.image.with_array(c.image.array + 1), c.label) for c in data.cases])
    assert data_hash(data.cases) != data_hash(changed.cases) and len(data_hash(data.cases)) == 64


def test_holdout_validates_on_train_cases_and_never_touches_val():
    from dataclasses import replace

    rng = np.random.default_rng(0)
    data = from_pairs([disc_case(rng) for _ in range(12)])
    ids = [c.case_id for c in data.cases]
    data = replace(data, splits={"train": ids[:8], "val": ids[8:11], "test": ids[11:]})
    official = split_cases(data, val_fraction=0.2, seed=1)
    assert [c.case_id for c in official[1]] == ids[8:11]  # without holdout: the dataset's own val split
    train, held = split_cases(data, val_fraction=0.2, seed=1, holdout=0.25)
    train_ids, held_ids = [c.case_id for c in train], [c.case_id for c in held]
    assert len(held_ids) == 2 and len(train_ids) == 6  # 25% of the 8 train-split cases
    assert set(train_ids) | set(held_ids) == set(ids[:8]) and not set(train_ids) & set(held_ids)
    assert not (set(train_ids) | set(held_ids)) & set(ids[8:])  # val and test: neither trained on nor looked at
    assert held_ids == [c.case_id for c in split_cases(data, val_fraction=0.2, seed=1, holdout=0.25)[1]]
    with pytest.raises(ValueError, match="holdout 1.5"):
        split_cases(data, val_fraction=0.2, seed=1, holdout=1.5)


def test_holdout_order_last_holds_out_the_block_at_the_end_of_the_id_order():
    from types import SimpleNamespace

    # ids numbered out of order and without zero padding: img10 comes after img9, not between img1 and img2
    ids = ["img3", "img10", "img1", "img9", "img12", "img2", "img11", "img4"]
    data = TrainData(cases=[SimpleNamespace(case_id=i) for i in ids], label_names={1: "x"}, splits={"train": ids})
    train, held = split_cases(data, val_fraction=0.2, seed=5, holdout=0.25, holdout_order="last")
    assert sorted(c.case_id for c in held) == ["img11", "img12"]  # 25% of 8: the two highest numbers
    assert sorted(c.case_id for c in train) == sorted(set(ids) - {"img11", "img12"})
    other_seed = split_cases(data, val_fraction=0.2, seed=99, holdout=0.25, holdout_order="last")[1]
    assert [c.case_id for c in other_seed] == [c.case_id for c in held]  # no draw: the seed does not matter
    random = split_cases(data, val_fraction=0.2, seed=5, holdout=0.25)[1]
    assert [c.case_id for c in random] == [c.case_id for c in split_cases(data, val_fraction=0.2, seed=5, holdout=0.25,
                                                                          holdout_order="random")[1]]
    with pytest.raises(ValueError, match="holdout order 'first'"):
        split_cases(data, val_fraction=0.2, seed=5, holdout=0.25, holdout_order="first")


def test_train_cli_on_a_prepared_folder(prepared, tmp_path):
    app = typer.Typer()
    app.callback()(lambda: None)
    train_commands.register(app)
    run = tmp_path / "run"
    args = ["train", "--data", prepared, "-o", run, "--size", "64,64", "--epochs", "2", "--iters-per-epoch", "3",
            "--batch-size", "2", "--model-args", '{"channels": [4, 8, 16], "strides": [2, 2], "num_res_units": 0}',
            "--zip", "-q"]
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    assert "completed after 2 epoch(s)" in result.output
    for name in ("config.json", "metrics.csv", "learning_curve.png", "checkpoints/last.pt", "checkpoints/best.pt",
                 "model/model.json", "model.zip"):
        assert (run / name).exists(), name
    again = CliRunner().invoke(app, [str(a) for a in args])
    assert again.exit_code == 1 and "--resume" in again.output
    bad = CliRunner().invoke(app, ["train", "--data", str(prepared), "-o", str(tmp_path / "r2"), "--arch", "unte"])
    assert bad.exit_code == 1 and "Did you mean 'unet'" in bad.output and "deprecated" not in bad.output
    old = CliRunner().invoke(app, ["train", "--data", str(prepared), "-o", str(tmp_path / "r2"), "--model", "unte"])
    assert old.exit_code == 1 and "Did you mean 'unet'" in old.output  # the old spelling still names the architecture
    orphan = CliRunner().invoke(app, ["train", "--data", str(prepared), "-o", str(tmp_path / "r3"), "--holdout-order", "last"])
    assert orphan.exit_code == 1 and "give --holdout too" in orphan.output
    typo = CliRunner().invoke(app, ["train", "--data", str(prepared), "-o", str(tmp_path / "r3"), "--holdout", "0.2",
                                    "--holdout-order", "lst"])
    assert typo.exit_code == 1 and "last" in typo.output
    assert "--model is deprecated" in old.output and "use --arch" in old.output
    # the first run's weights start a mining run: mined before epoch 1 (--init) and again before epoch 2
    mining = [tmp_path / "r3" if a == run else a for a in args if a not in ("--zip", "-q")]
    mined = CliRunner().invoke(app, [str(a) for a in mining] + ["--hard-negatives", "0.5", "--mine-every", "1",
                                                                "--init", str(run / "model")])
    assert mined.exit_code == 0, mined.output
    assert json.loads((tmp_path / "r3/config.json").read_text())["hard_negatives"] == 0.5
    assert "epoch 1: hard negatives mined on" in mined.output and "epoch 2: hard negatives mined on" in mined.output
    too_many = CliRunner().invoke(app, ["train", "--data", str(prepared), "-o", str(tmp_path / "r4"),
                                        "--hard-negatives", "1"])
    assert too_many.exit_code == 2 and "--hard-negatives" in too_many.output


def test_3d_training_runs_and_predicts_on_the_input_grid(tmp_path):
    rng = np.random.default_rng(0)
    data = from_pairs([ball_case(rng) for _ in range(5)])
    config = TrainConfig(output=tmp_path / "run3d", preprocessing={"spacing": (3.0, 3.0, 3.0), "patch_size": (16, 16, 16),
                                                                   "window": (-500, 1500)},
                         arch_kwargs={"channels": [4, 8, 16], "strides": [2, 2], "num_res_units": 0},
                         epochs=4, iters_per_epoch=8, batch_size=2, val_every=2, lr=1e-2, threads=2)
    result = train(config, data)
    assert result.best_dice is not None and result.best_dice > 0.6
    image, truth = ball_case(np.random.default_rng(9))
    out = Predictor.load(result.model_path, device="cpu").predict(image)
    assert out.same_geometry(image) and dice(out.array == 1, truth.array == 1) > 0.6


def test_multilabel_head_trains_and_predicts_overlapping_classes(tmp_path):
    rng = np.random.default_rng(0)
    pairs = []
    for _ in range(6):
        image, labels = disc_case(rng)
        disc = labels.array == 1
        bright = image.array > 150  # overlaps the disc almost entirely
        pairs.append((image, make_multilabel(np.stack([disc, disc | (labels.array == 2), bright]),
                                             ["disc", "object", "bright"], like=image)))
    data = from_pairs(pairs)
    assert data.multilabel and data.label_names == {1: "disc", 2: "object", 3: "bright"}
    config = TrainConfig(output=tmp_path / "ml", preprocessing={"size": (64, 64)},
                         arch_kwargs={"channels": [4, 8, 16], "strides": [2, 2], "num_res_units": 0},
                         epochs=2, iters_per_epoch=3, batch_size=2, threads=2)
    result = train(config, data)
    out = Predictor.load(result.model_path, device="cpu").predict(pairs[0][0])
    assert is_multilabel(out) and out.metadata["class_names"] == ["disc", "object", "bright"]
    assert out.array.shape == (*pairs[0][0].shape, 3) and out.array.dtype == bool
