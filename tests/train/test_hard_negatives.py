"""Hard-negative mining: patches centred on the network's own false positives, mined, checkpointed, resumed."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("monai")

from radseg.errors import RadsegError  # noqa: E402
from radseg.train.loop import train  # noqa: E402
from radseg.train.sampler import GridCase, PatchSampler  # noqa: E402
from radseg.train.session import Session  # noqa: E402
from tests.train.test_train import discs, tiny_config  # noqa: E402,F401 - the fixture is shared

PATCH = (16, 16)


def _coordinate_case(case_id: str, shape=(64, 64)) -> GridCase:
    """Each pixel holds 1000 * row + column, so a patch's first pixel tells its corner; one labelled pixel top left."""
    rows, cols = np.indices(shape)
    target = np.zeros(shape, np.uint8)
    target[4, 4] = 1
    return GridCase(case_id, (1000 * rows + cols)[None].astype(np.float32), target)


def _corners(images: np.ndarray) -> np.ndarray:
    first = images[:, 0, 0, 0].astype(int)
    return np.stack([first // 1000, first % 1000], axis=1)


def test_a_hard_share_of_patches_holds_the_mined_voxel_in_its_central_half():
    cases = [_coordinate_case("a"), _coordinate_case("b")]
    sampler = PatchSampler(cases, PATCH, foreground_fraction=0.0, rng=np.random.default_rng(0), hard_fraction=0.8)
    mined = np.array([50, 40])  # far from the label: uniform 16 px patches would hold it ~1 time in 13
    sampler.set_hard_negatives({1: mined[None], 0: np.empty((0, 2))})
    assert sorted(sampler.hard_points) == [1]  # a case without mined voxels is left out
    corners = _corners(sampler.batch(400)[0])
    inside = np.all((mined - corners >= PATCH[0] // 4) & (mined - corners <= 3 * PATCH[0] // 4), axis=1)
    # 0.8 by construction, plus uniform patches that happen to hold it centrally (about 0.2 x 1/16)
    assert 0.74 < inside.mean() < 0.88


def _draws_before_mining_existed(cases, count: int, seed: int, foreground: float) -> np.ndarray:
    """The corners the sampler drew before hard negatives (frozen from its documented order: a case,
    then a foreground coin, then either a labelled voxel and a jitter, or a uniform corner)."""
    rng, patch, corners = np.random.default_rng(seed), np.array(PATCH), []
    for _ in range(count):
        case = cases[rng.integers(len(cases))]
        room = np.maximum(np.array(case.shape) - patch, 0)
        if case.points and rng.random() < foreground:
            points = case.points[rng.integers(len(case.points))]
            centre = points[rng.integers(len(points))]
            corner = np.clip(centre - (patch // 2 + rng.integers(-(patch // 4), patch // 4 + 1)), 0, room)
        else:
            corner = np.array([rng.integers(r + 1) for r in room])
        corners.append(corner)
    return np.array(corners)


def test_without_mined_voxels_or_with_a_zero_share_the_draws_are_unchanged():
    cases = [_coordinate_case("a"), _coordinate_case("b")]
    expected = _draws_before_mining_existed(cases, 64, seed=3, foreground=0.5)

    def draw(**kwargs):
        sampler = PatchSampler(cases, PATCH, foreground_fraction=0.5, rng=np.random.default_rng(3), **kwargs)
        if kwargs.get("hard_fraction") == 0.0:
            sampler.set_hard_negatives({0: np.array([[40, 40]])})
        return _corners(sampler.batch(64)[0])

    assert np.array_equal(draw(), expected)
    assert np.array_equal(draw(hard_fraction=0.5), expected)  # nothing mined yet: no extra random draw
    assert np.array_equal(draw(hard_fraction=0.0), expected)  # mined but off
    with pytest.raises(ValueError, match="hard-negative share"):
        PatchSampler(cases, PATCH, foreground_fraction=0.5, rng=np.random.default_rng(0), hard_fraction=1.0)


def test_mining_keeps_exactly_the_background_voxels_called_foreground(tmp_path, discs):  # noqa: F811
    session = Session(tiny_config(tmp_path, hard_negatives=0.3).resolved(2), discs, on_event=lambda e: None)
    session._setup()
    called = {}

    def shifted_prediction(case):
        # the truth moved 3 px right: its right rim is a false positive, its left rim a miss
        labels = np.roll(case.target, 3, axis=1)
        called[case.case_id] = labels
        return torch.from_numpy(np.eye(session.out_channels, dtype=np.float32)[labels].transpose(2, 0, 1))

    session._probabilities = shifted_prediction
    mined = session.mine_hard_negatives()
    assert len(called) == len(session.grid_train)
    for index, case in enumerate(session.grid_train):
        expected = np.argwhere((called[case.case_id] > 0) & (case.target == 0))
        got = mined.get(index, np.empty((0, 2), int))
        assert len(expected) > 0
        assert sorted(map(tuple, got)) == sorted(map(tuple, expected))


def test_a_mining_run_resumes_exactly_and_mines_on_schedule(tmp_path, discs):  # noqa: F811
    options = dict(epochs=4, iters_per_epoch=3, val_every=1, hard_negatives=0.5, mine_every=2)
    events = []
    straight = train(tiny_config(tmp_path, "straight", **options), discs, on_event=events.append)
    mined = [e for e in events if e["kind"] == "mined"]
    assert [e["epoch"] for e in mined] == [2]  # not at epoch 0: random weights have nothing worth mining
    state = torch.load(tmp_path / "straight/checkpoints/last.pt", weights_only=True)
    stored = state["hard_negatives"]
    assert sum(len(v) for v in stored.values()) == mined[0]["voxels"] > 0
    # the pass is recorded in metrics.csv on the epoch it preceded (epoch 3, counted from 1)
    import csv

    rows = list(csv.DictReader((tmp_path / "straight/metrics.csv").open()))
    assert [r["epoch"] for r in rows if r["mined_voxels"]] == ["3"]
    assert int(rows[2]["mined_voxels"]) == mined[0]["voxels"] and int(rows[2]["mined_cases"]) == mined[0]["cases"]

    def ctrl_c_after_epoch_3(event):
        if event["kind"] == "epoch" and event["epoch"] == 3:
            raise KeyboardInterrupt

    train(tiny_config(tmp_path, "resumed", **options), discs, on_event=ctrl_c_after_epoch_3)
    resumed = train(tiny_config(tmp_path, "resumed", resume=True, **options), discs)
    assert resumed.epochs_done == 4
    weights_a = state["model"]
    weights_b = torch.load(tmp_path / "resumed/checkpoints/last.pt", weights_only=True)["model"]
    assert all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)

    # weights from --init are worth mining before the first step
    events.clear()
    train(tiny_config(tmp_path, "init", epochs=1, iters_per_epoch=2, hard_negatives=0.5, mine_every=5,
                      init=str(straight.model_path)), discs, on_event=events.append)
    assert [e["epoch"] for e in events if e["kind"] == "mined"] == [0]


def test_mining_settings_are_checked_and_stay_in_one_process(tmp_path, discs):  # noqa: F811
    with pytest.raises(RadsegError, match="one process only"):
        train(tiny_config(tmp_path, hard_negatives=0.5, nproc=2), discs)
    for bad in (dict(hard_negatives=0.5, mine_every=0), dict(mine_every=3)):  # mining every 0 epochs; no share
        with pytest.raises(RadsegError, match="whole number >= 1, with a hard-negative share"):
            train(tiny_config(tmp_path, **bad), discs)
    # a mining run cannot be resumed in several processes either (the stored recipe mines)
    train(tiny_config(tmp_path, "one", epochs=1, iters_per_epoch=2, hard_negatives=0.5), discs)
    with pytest.raises(RadsegError, match="one process only"):
        train(tiny_config(tmp_path, "one", epochs=2, iters_per_epoch=2, resume=True, nproc=2), discs)


def test_false_positives_by_hand_for_both_heads_and_3d():
    from radseg.train.mining import false_positives, mine

    # multi-class, 1x4 pixels: background, class 1 (right), class 2 (wrong class: not a false positive), class 1 on background
    probs = np.array([[[0.9, 0.2, 0.1, 0.3]], [[0.05, 0.7, 0.6, 0.6]], [[0.05, 0.1, 0.3, 0.1]]])
    target = np.array([[0, 1, 2, 0]])
    assert false_positives(probs, target, multilabel=False).tolist() == [[False, False, False, True]]
    # multi-label, 2 channels over 1x3 pixels: a voxel is a false positive when some channel fires and no class is there
    probs = np.array([[[0.6, 0.2, 0.7]], [[0.1, 0.8, 0.2]]])
    target = np.array([[[False, False, True]], [[False, False, False]]])
    assert false_positives(probs, target, multilabel=True).tolist() == [[True, True, False]]
    # 3D cases: at most `cap` voxels each, drawn from the false positives; a clean case is left out
    volume = np.zeros((1, 4, 5, 6), np.float32)
    target = np.zeros((4, 5, 6), np.uint8)
    target[1, 1, 1] = 1
    cases = [GridCase("dirty", volume, target), GridCase("clean", volume, target)]
    called = {"dirty": np.stack([1 - target, target]).astype(float), "clean": np.stack([target, 1 - target])[::-1]}
    called["dirty"][:, 2, 3, :] = [[0.0] * 6, [1.0] * 6]  # a row of 6 false voxels
    got = mine(cases, lambda case: called[case.case_id], multilabel=False, rng=np.random.default_rng(0), cap=4)
    assert list(got) == [0] and got[0].shape == (4, 3)
    assert all(tuple(p[:2]) == (2, 3) for p in got[0]) and len({int(p[2]) for p in got[0]}) == 4
