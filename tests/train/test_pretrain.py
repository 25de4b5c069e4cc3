"""`radseg pretrain` (restoration of corrupted images, Models Genesis) and `radseg train --init` from its weights."""

from __future__ import annotations

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

torch = pytest.importorskip("torch")
pytest.importorskip("monai")

from radseg.errors import RadsegError, ReadError  # noqa: E402
from radseg.models.bundle import load_bundle  # noqa: E402
from radseg.models.pretrained import read_pretrained  # noqa: E402
from radseg.train.config import TrainConfig  # noqa: E402
from radseg.train.data import from_pairs  # noqa: E402
from radseg.train.loop import train  # noqa: E402
from radseg.train.pretext import bezier_map, corrupt, in_paint, out_paint, shuffle_blocks  # noqa: E402
from radseg.train.pretrain import pretrain  # noqa: E402
from tests.train.shapes import disc_case  # noqa: E402

NET = {"channels": [8, 16, 32], "strides": [2, 2], "num_res_units": 0}


class _Scripted:
    """A generator stand-in that returns the given numbers in order (to set the Bezier control points)."""

    def __init__(self, *values: float) -> None:
        self.values = list(values)

    def random(self, size=None):
        if size is None:
            return self.values.pop(0)
        return np.array([self.values.pop(0) for _ in range(size)])


def test_the_bezier_map_against_curves_worked_by_hand():
    unit = np.linspace(0, 1, 11)[None]
    # control points on the diagonal: the curve is the line y = x, both with and without sorting y
    for branch in (0.1, 0.9):
        assert np.allclose(bezier_map(unit, _Scripted(1 / 3, 1 / 3, 2 / 3, 2 / 3, branch)), unit, atol=1e-3)
    # p1 = (0, 1), p2 = (1, 0): x(t) = 3t^2 - 2t^3, y(t) = 3t - 6t^2 + 4t^3; at t = 1/2 both are 1/2,
    # at t = 1/4: x = 5/32, y = 7/16 (y unsorted: the map follows the curve)
    mapped = bezier_map(np.array([[0.0, 5 / 32, 0.5, 1.0]]), _Scripted(0, 1, 1, 0, 0.9), samples=20001)
    assert np.allclose(mapped, [[0.0, 7 / 16, 0.5, 1.0]], atol=1e-3)
    # any curve keeps [0, 1] and its ends; with y sorted it keeps the grey-level order
    rng = np.random.default_rng(3)
    for _ in range(20):
        out = bezier_map(unit, rng)
        assert out.min() >= 0 and out.max() <= 1 and out[0, 0] == pytest.approx(0) and out[0, -1] == pytest.approx(1)
    monotone = bezier_map(unit, _Scripted(0.9, 0.1, 0.2, 0.95, 0.1))
    assert np.all(np.diff(monotone[0]) >= 0)


def test_shuffling_moves_pixels_only_inside_its_block():
    patch = np.arange(40 * 50, dtype=float).reshape(1, 40, 50)
    out = shuffle_blocks(patch, np.random.default_rng(0), blocks=1)
    moved = np.argwhere(out[0] != patch[0])
    assert len(moved) > 0
    rows, cols = moved[:, 0], moved[:, 1]
    assert rows.max() - rows.min() < 40 // 10 and cols.max() - cols.min() < 50 // 10  # one block, sides <= 1/10
    assert np.array_equal(np.sort(out[0][out[0] != patch[0]]), np.sort(patch[0][out[0] != patch[0]]))
    many = shuffle_blocks(patch, np.random.default_rng(1))
    assert np.array_equal(np.sort(many.ravel()), np.sort(patch.ravel())) and not np.array_equal(many, patch)


def test_painting_replaces_boxes_or_all_but_boxes():
    patch = np.full((1, 60, 60), 2.0)  # outside [0, 1]: noise can never equal it
    inside = in_paint(patch, np.random.default_rng(0))
    changed = inside != 2.0
    assert 0 < changed.mean() <= 5 * (1 / 3) ** 2 + 1e-9 and inside[changed].min() >= 0 and inside[changed].max() < 1
    outside = out_paint(patch, np.random.default_rng(0))
    kept = (outside == 2.0).sum()
    assert kept >= int(60 * 3 / 7) ** 2 and kept < patch.size


def test_a_corrupted_patch_keeps_its_shape_type_and_grey_range_and_is_seeded():
    patch = np.random.default_rng(0).normal(size=(1, 32, 32)).astype(np.float32)
    a, b = corrupt(patch, np.random.default_rng(5)), corrupt(patch, np.random.default_rng(5))
    assert a.shape == patch.shape and a.dtype == np.float32 and np.array_equal(a, b)
    assert a.min() >= patch.min() - 1e-5 and a.max() <= patch.max() + 1e-5 and not np.allclose(a, patch)


def _config(out, **changes):
    options = dict(output=out, preprocessing={"size": (48, 48)}, arch_kwargs=NET, epochs=4, iters_per_epoch=4,
                   batch_size=2, lr=1e-2, threads=1, val_every=1)
    return TrainConfig(**{**options, **changes})


@pytest.fixture(scope="module")
def discs():
    rng = np.random.default_rng(0)
    return from_pairs([disc_case(rng) for _ in range(6)])


def test_pretraining_learns_leaves_the_holdout_alone_and_resumes_exactly(tmp_path, discs):
    straight = pretrain(_config(tmp_path / "a", holdout=0.34, holdout_order="last"), discs)
    assert straight.stopped == "completed" and straight.epochs_done == 4
    state = read_pretrained(straight.weights)
    history = torch.load(tmp_path / "a/checkpoints/last.pt", weights_only=True)["history"]
    assert history[-1]["train_loss"] < history[0]["train_loss"]  # it learns to restore
    # the two last ids (the block --holdout-order last holds out) are never pretrained on
    assert state["manifest"]["data"]["train_cases"] == [f"case{i:04d}" for i in range(4)]
    assert state["architecture"] == "unet" and state["spatial_dims"] == 2 and state["arch_kwargs"]["channels"] == [8, 16, 32]
    assert state["preprocessing"]["size"] == [48, 48]
    assert (tmp_path / "a/learning_curve.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "a/metrics.csv").read_text().startswith("epoch,iteration,time_s,lr,train_loss,device")

    def ctrl_c_after_epoch_2(event):
        if event["kind"] == "epoch" and event["epoch"] == 2:
            raise KeyboardInterrupt

    stopped = pretrain(_config(tmp_path / "b", holdout=0.34, holdout_order="last"), discs, on_event=ctrl_c_after_epoch_2)
    assert stopped.stopped == "interrupted" and stopped.epochs_done == 2
    with pytest.raises(RadsegError, match="--resume"):
        pretrain(_config(tmp_path / "b", holdout=0.34, holdout_order="last"), discs)
    resumed = pretrain(_config(tmp_path / "b", holdout=0.34, holdout_order="last", resume=True), discs)
    assert resumed.epochs_done == 4
    a, b = state["state_dict"], read_pretrained(resumed.weights)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)  # same patches, corruptions and weights as one run


def test_train_init_takes_every_fitting_tensor_and_refuses_another_network(tmp_path, discs):
    weights = pretrain(_config(tmp_path / "pre"), discs).weights
    pretrained = read_pretrained(weights)["state_dict"]
    events = []
    # a vanishing learning rate keeps the starting weights; hard negatives are not mined at epoch 0
    tuned = train(_config(tmp_path / "tuned", init=str(tmp_path / "pre"), lr=1e-12, weight_decay=0.0, epochs=1,
                          hard_negatives=0.3, mine_every=5), discs, on_event=events.append)
    after = load_bundle(tuned.model_path).state_dict
    same = [k for k in after if k in pretrained and pretrained[k].shape == after[k].shape]
    fresh = [k for k in after if k not in same]
    assert same and fresh and len(same) > len(fresh)
    assert all(float((after[k] - pretrained[k]).abs().max()) < 1e-6 for k in same)
    assert all(pretrained[k].shape[:2] != after[k].shape[:2] for k in fresh if k in pretrained)
    started = [e for e in events if e["kind"] == "initialised"]
    assert started == [{"kind": "initialised", "source": str(tmp_path / "pre"), "from": "pretrained",
                        "taken": len(same), "total": len(after), "fresh": fresh}]
    assert not [e for e in events if e["kind"] == "mined"]
    assert load_bundle(tuned.model_path).manifest["hardware"][0]["initialised_from"] == str(tmp_path / "pre")

    wider = {**NET, "channels": [8, 16, 48]}
    with pytest.raises(RadsegError, match="same --arch and --model-args"):
        train(_config(tmp_path / "wide", init=str(weights), arch_kwargs=wider), discs)
    foreign = tmp_path / "foreign.pt"
    torch.save({"model": {}}, foreign)
    with pytest.raises(ReadError, match="foreign.pt.*not radseg pretrained weights"):
        train(_config(tmp_path / "f", init=str(foreign)), discs)
    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(weights.read_bytes()[:200])
    with pytest.raises(ReadError, match="damaged.pt.*damaged pretrained weights"):
        train(_config(tmp_path / "d", init=str(damaged)), discs)


def test_pretrain_and_train_init_from_the_command_line(tmp_path):
    import json

    import radseg.io as rio
    from radseg.commands import train as train_commands

    root = tmp_path / "prepared"
    rng = np.random.default_rng(0)
    for i in range(4):
        image, labels = disc_case(rng)
        rio.write(image, root / "images" / f"case{i}.nii.gz")
        rio.write(labels, root / "labels" / f"case{i}.nii.gz")
    (root / "dataset.json").write_text(json.dumps({"name": "discs", "labels": {"background": 0, "disc": 1, "square": 2},
                                                   "splits": {"train": ["case0", "case1", "case2"], "val": ["case3"]}}))
    app = typer.Typer()
    app.callback()(lambda: None)
    train_commands.register(app)
    small = ["--epochs", "1", "--iters-per-epoch", "2", "--batch-size", "2", "--model-args", json.dumps(NET), "-q"]
    run = tmp_path / "pre"
    done = CliRunner().invoke(app, ["pretrain", "--data", str(root), "-o", str(run), *small[:-1]])
    assert done.exit_code == 0, done.output
    assert "pretraining on 3 case(s) (labels unused)" in done.output
    assert f"radseg train --init {run}" in done.output and (run / "pretrained.pt").is_file()
    # only the train split is pretrained on: the val split stays unseen
    assert read_pretrained(run / "pretrained.pt")["manifest"]["data"]["train_cases"] == ["case0", "case1", "case2"]
    tuned = CliRunner().invoke(app, ["train", "--data", str(root), "-o", str(tmp_path / "t"), "--init", str(run),
                                     *small[:-1]])
    assert tuned.exit_code == 0, tuned.output
    assert f"started from pretrained weights {run}" in tuned.output and "start from random weights" in tuned.output
    wrong = CliRunner().invoke(app, ["train", "--data", str(root), "-o", str(tmp_path / "w"), "--init", str(run), "-q"])
    assert wrong.exit_code == 1 and "same --arch and --model-args" in wrong.output
