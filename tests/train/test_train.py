"""Training: learns a 2D disc in seconds, is reproducible, resumes exactly, stops cleanly."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("monai")

from radseg.errors import RadsegError  # noqa: E402
from radseg.infer.predictor import Predictor  # noqa: E402
from radseg.models.bundle import load_bundle  # noqa: E402
from radseg.system import usable_cores  # noqa: E402
from radseg.train.config import TrainConfig  # noqa: E402
from radseg.train.data import from_pairs  # noqa: E402
from radseg.train.loop import cosine_lr, train  # noqa: E402
from tests.train.shapes import dice, disc_case  # noqa: E402

TINY = {"channels": [8, 16, 32], "strides": [2, 2], "num_res_units": 1}


def tiny_config(tmp_path, name="run", **changes) -> TrainConfig:
    options = dict(output=tmp_path / name, preprocessing={"size": (64, 64)}, arch_kwargs=TINY, epochs=6,
                   iters_per_epoch=10, batch_size=4, val_every=2, lr=1e-2, threads=2)
    options.update(changes)
    return TrainConfig(**options)


@pytest.fixture(scope="module")
def discs():
    rng = np.random.default_rng(0)
    return from_pairs([disc_case(rng) for _ in range(12)])


def test_learns_a_disc_and_a_square_in_seconds(tmp_path, discs):
    result = train(tiny_config(tmp_path), discs)
    assert result.stopped == "completed" and result.epochs_done == 6
    assert result.best_dice is not None and result.best_dice > 0.8
    image, truth = disc_case(np.random.default_rng(99))
    predicted = Predictor.load(result.model_path).predict(image)
    assert predicted.same_geometry(image) and predicted.metadata["label_names"] == {1: "disc", 2: "square"}
    assert dice(predicted.array == 1, truth.array == 1) > 0.9
    assert dice(predicted.array == 2, truth.array == 2) > 0.8
    # run folder contents
    run = result.run_dir
    rows = (run / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,iteration,time_s,lr,train_loss,val_dice") and len(rows) == 7
    assert (run / "learning_curve.png").read_bytes()[:4] == b"\x89PNG"
    manifest = load_bundle(result.model_path).manifest
    assert manifest["data"]["n_train"] + manifest["data"]["n_val"] == 12
    assert manifest["metrics"]["best_val_dice"] == pytest.approx(result.best_dice)
    assert manifest["environment"]["torch"] == torch.__version__
    losses = [r["train_loss"] for r in result.history]
    assert losses[-1] < losses[0]


def _weights(path):
    return load_bundle(path).state_dict


def test_same_seed_same_model_other_seed_other_model(tmp_path, discs):
    a = train(tiny_config(tmp_path, "a", epochs=2, iters_per_epoch=3), discs)
    b = train(tiny_config(tmp_path, "b", epochs=2, iters_per_epoch=3), discs)
    c = train(tiny_config(tmp_path, "c", epochs=2, iters_per_epoch=3, seed=1), discs)
    wa, wb, wc = _weights(a.model_path), _weights(b.model_path), _weights(c.model_path)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)


def test_interrupt_keeps_the_checkpoint_and_resume_continues_exactly(tmp_path, discs):
    straight = train(tiny_config(tmp_path, "straight", epochs=4, iters_per_epoch=3, val_every=1), discs)

    def ctrl_c_after_epoch_2(event):
        if event["kind"] == "epoch" and event["epoch"] == 2:
            raise KeyboardInterrupt

    config = tiny_config(tmp_path, "resumed", epochs=4, iters_per_epoch=3, val_every=1)
    stopped = train(config, discs, on_event=ctrl_c_after_epoch_2)
    assert stopped.stopped == "interrupted" and stopped.epochs_done == 2
    assert load_bundle(stopped.model_path).manifest["metrics"]["stopped"] == "interrupted"
    with pytest.raises(RadsegError, match="already holds a training run"):
        train(config, discs)
    resumed = train(tiny_config(tmp_path, "resumed", epochs=4, iters_per_epoch=3, val_every=1, resume=True), discs)
    assert resumed.stopped == "completed" and resumed.epochs_done == 4
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3, 4]
    ckpt_a = torch.load(tmp_path / "straight/checkpoints/last.pt", weights_only=True)["model"]
    ckpt_b = torch.load(tmp_path / "resumed/checkpoints/last.pt", weights_only=True)["model"]
    assert all(torch.equal(ckpt_a[k], ckpt_b[k]) for k in ckpt_a)
    assert resumed.best_dice == pytest.approx(straight.best_dice)
    # both parts ran here, so the manifest names one stretch of epochs on this machine's CPU
    cores = f"cpu ({usable_cores()} cores)"
    assert load_bundle(resumed.model_path).manifest["hardware"] == [{"device": cores, "epochs": [1, 4]}]
    assert (tmp_path / "resumed/metrics.csv").read_text().count(cores) == 4


def test_a_checkpoint_from_before_the_device_was_recorded_resumes_with_those_epochs_not_recorded(tmp_path, discs):
    def ctrl_c_after_epoch_2(event):
        if event["kind"] == "epoch" and event["epoch"] == 2:
            raise KeyboardInterrupt

    train(tiny_config(tmp_path, "old", epochs=4, iters_per_epoch=2), discs, on_event=ctrl_c_after_epoch_2)
    last = tmp_path / "old/checkpoints/last.pt"
    state = torch.load(last, weights_only=True)
    state["history"] = [{k: v for k, v in row.items() if k != "device"} for row in state["history"]]
    torch.save(state, last)  # as an older radseg wrote it
    resumed = train(tiny_config(tmp_path, "old", epochs=4, iters_per_epoch=2, resume=True), discs)
    cores = f"cpu ({usable_cores()} cores)"
    assert load_bundle(resumed.model_path).manifest["hardware"] == [{"device": "not recorded", "epochs": [1, 2]},
                                                                   {"device": cores, "epochs": [3, 4]}]
    rows = (tmp_path / "old/metrics.csv").read_text().splitlines()
    device = rows[0].split(",").index("device")
    assert [row.split(",")[device] for row in rows[1:]] == ["", "", cores, cores]


def test_resume_refuses_a_recipe_change_instead_of_ignoring_it(tmp_path, discs):
    run = tiny_config(tmp_path, "r", epochs=1, iters_per_epoch=1, holdout=0.25)
    train(run, discs)
    for change, named in (({"lr": 0.5}, "lr was given as 0.5 (run: 0.01)"),
                          ({"holdout_order": "last"}, "holdout_order was given as 'last' (run: 'random')"),
                          ({"preprocessing": {"size": (32, 32)}}, "size=[32, 32] (run: [64, 64])")):
        with pytest.raises(ValueError, match=re.escape(named)):
            train(tiny_config(tmp_path, "r", epochs=2, iters_per_epoch=1, holdout=0.25, resume=True, **change), discs)
    # the same recipe again, with a longer run, the patch size it used spelled out: continues
    resumed = train(tiny_config(tmp_path, "r", epochs=2, iters_per_epoch=1, holdout=0.25, resume=True,
                                preprocessing={"size": (64, 64), "patch_size": (64, 64)}), discs)
    assert resumed.epochs_done == 2


def test_resume_refuses_other_data(tmp_path, discs):
    train(tiny_config(tmp_path, "d", epochs=1, iters_per_epoch=1), discs)
    fewer = from_pairs([disc_case(np.random.default_rng(0)) for _ in range(11)])  # another dataset, other ids
    with pytest.raises(RadsegError, match="cases differ from the data given"):
        train(tiny_config(tmp_path, "d", epochs=2, iters_per_epoch=1, resume=True), fewer)
    assert torch.load(tmp_path / "d/checkpoints/last.pt", weights_only=True)["epoch"] == 1  # untouched
    assert train(tiny_config(tmp_path, "d", epochs=2, iters_per_epoch=1, resume=True), discs).epochs_done == 2


def test_resume_without_a_run_is_an_error(tmp_path, discs):
    with pytest.raises(RadsegError, match="nothing to resume"):
        train(tiny_config(tmp_path, resume=True), discs)


def test_early_stopping_and_time_limit(tmp_path, discs):
    # lr 0: the model never improves after its first validation
    result = train(tiny_config(tmp_path, "es", epochs=20, iters_per_epoch=1, val_every=1, patience=2, lr=1e-12), discs)
    assert result.stopped == "early-stopping" and result.epochs_done == 3
    timed = train(tiny_config(tmp_path, "tl", epochs=1000, iters_per_epoch=5, time_limit=5.0), discs)
    assert timed.stopped == "time-limit" and timed.epochs_done < 1000
    # how long it took is for benchmarks/, not a unit test; the manifest must record why and when it stopped
    metrics = json.loads((tmp_path / "tl/model/manifest.json").read_text())["metrics"]
    assert metrics["stopped"] == "time-limit" and metrics["epochs_done"] == timed.epochs_done


def test_learning_rate_schedule():
    assert cosine_lr(1.0, 0.0, 0.1) == pytest.approx(0.1)
    assert cosine_lr(1.0, 0.1, 0.1) == pytest.approx(1.0)
    assert cosine_lr(1.0, 1.0, 0.1) == pytest.approx(0.01)
    assert cosine_lr(1.0, 0.55, 0.1) == pytest.approx(0.01 + 0.99 * 0.5)


def test_time_limit_only_stops_the_schedule_follows_planned_iterations(tmp_path, discs):
    """Same seed and data: a limit that does not bind changes nothing; one that binds stops early
    with exactly the unlimited run's learning rates up to there (the schedule is not wall clock)."""
    plan = dict(epochs=4, iters_per_epoch=3, val_every=2)
    free = train(tiny_config(tmp_path, "free", **plan), discs)
    generous = train(tiny_config(tmp_path, "generous", time_limit=3600.0, **plan), discs)
    assert generous.stopped == "completed"
    wf, wg = _weights(free.model_path), _weights(generous.model_path)
    assert all(torch.equal(wf[k], wg[k]) for k in wf)
    assert [r["lr"] for r in generous.history] == [r["lr"] for r in free.history]

    import time

    def slow(event):  # a slow machine: ~0.25 s per iteration, so 3.6 s (3 s kept back) binds after a few
        if event["kind"] == "iteration":
            time.sleep(0.25)

    bound = train(tiny_config(tmp_path, "bound", time_limit=3.6, **plan), discs, on_event=slow)
    assert bound.stopped == "time-limit" and bound.epochs_done < plan["epochs"]
    done = bound.history[-1]["iteration"]
    assert 0 < done < plan["epochs"] * plan["iters_per_epoch"]
    whole = [r for r in bound.history if r["iteration"] % plan["iters_per_epoch"] == 0]
    assert [r["lr"] for r in whole] == [r["lr"] for r in free.history[:len(whole)]]
    total = plan["epochs"] * plan["iters_per_epoch"]
    assert bound.history[-1]["lr"] == pytest.approx(cosine_lr(1e-2, (done - 1) / total, 0.05))
