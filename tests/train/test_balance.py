"""--balance-by: training images with and without a finding drawn equally often within each group."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("monai")

from radseg.case import Case  # noqa: E402
from radseg.errors import RadsegError  # noqa: E402
from radseg.image import Image  # noqa: E402
from radseg.models.bundle import load_bundle  # noqa: E402
from radseg.train.data import balance_weights, from_pairs  # noqa: E402
from radseg.train.loop import train  # noqa: E402
from radseg.train.sampler import GridCase, PatchSampler, finding_balance  # noqa: E402
from radseg.train.session import Session  # noqa: E402
from tests.train.test_train import disc_case, tiny_config  # noqa: E402


def test_each_group_keeps_its_share_split_half_and_half():
    # group a: 3 cases (2 with a finding), b: 2 (1 and 1), c: 1 (a finding only)
    p = finding_balance(list("aaabbc"), [True, True, False, True, False, True])
    # shares 3/6, 2/6, 1/6; a's half for findings over 2 cases, its other half on 1; c uniform
    expected = np.array([3 / 6 / 2 / 2, 3 / 6 / 2 / 2, 3 / 6 / 2, 2 / 6 / 2, 2 / 6 / 2, 1 / 6])
    np.testing.assert_allclose(p, expected)
    assert p.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(finding_balance(["x"] * 4, [True] * 4), 0.25)  # one kind: uniform
    with pytest.raises(ValueError, match="groups for"):
        finding_balance(["a"], [True, False])


def test_the_sampler_draws_cases_by_their_weights():
    cases = [GridCase(name, np.full((1, 32, 32), float(k), np.float32), np.zeros((32, 32), np.uint8))
             for k, name in enumerate("abc")]
    sampler = PatchSampler(cases, (16, 16), foreground_fraction=0.0, rng=np.random.default_rng(0),
                           case_weights=[6, 3, 1])
    drawn = sampler.batch(3000)[0][:, 0, 0, 0].astype(int)  # each case's pixels hold its index
    np.testing.assert_allclose(np.bincount(drawn, minlength=3) / drawn.size, [0.6, 0.3, 0.1], atol=0.03)
    for bad in ([1, 1], [1, -1, 1], [0, 0, 0], [1, np.nan, 1]):
        with pytest.raises(ValueError, match="case weights"):
            PatchSampler(cases, (16, 16), foreground_fraction=0.0, rng=np.random.default_rng(0), case_weights=bad)


def _case(case_id: str, finding: bool, part) -> Case:
    label = np.zeros((8, 8), np.uint8)
    label[2, 2] = finding
    image = Image(np.zeros((8, 8), np.float32), spacing=(1.0, 1.0))
    return Case(case_id, images={"image": image}, labels={"label": Image(label, spacing=(1.0, 1.0))},
                metadata={} if part == "absent" else {"body_part": part})


def test_weights_come_from_the_metadata_column_and_the_labels():
    cases = [_case("1", True, "hand"), _case("2", True, "hand"), _case("3", False, "hand"), _case("4", False, "absent"),
             _case("5", True, None), _case("6", True, float("nan"))]
    # hand: 3 of 6 cases, half on its 2 fractured, half on its 1 normal; the three without a value are one
    # group (absent, empty, NaN alike): 3 of 6, half on the normal one, half on the two fractured
    np.testing.assert_allclose(balance_weights(cases, "body_part"), [1 / 8, 1 / 8, 1 / 4, 1 / 4, 1 / 8, 1 / 8])
    with pytest.raises(RadsegError, match="no training case has a value in the metadata column 'site'.*body_part"):
        balance_weights(cases, "site")
    with pytest.raises(RadsegError, match="no training case has a value"):
        balance_weights([_case("7", True, None), _case("8", False, "")], "body_part")


def test_nan_groups_are_one_group_not_left_unweighted():
    p = finding_balance([float("nan"), float("nan"), "a", "a"], [True, False, True, False])
    np.testing.assert_allclose(p, 0.25)


def _half_normal(seed: int = 0):
    rng = np.random.default_rng(seed)
    data = from_pairs([disc_case(rng) for _ in range(8)])
    for k, case in enumerate(data.cases):
        case.metadata["site"] = "AB"[k % 2]
        if k in (0, 1):  # one normal image per site (the seeded split keeps both in training)
            case.label.array[...] = 0
    return data


def test_a_balanced_session_draws_by_the_weights_and_resumes_exactly(tmp_path):
    data = _half_normal()
    config = tiny_config(tmp_path, "straight", epochs=2, iters_per_epoch=2, val_every=1, balance_by="site")
    session = Session(config.resolved(2), data, on_event=lambda e: None)
    session._setup()
    expected = balance_weights(session.train_cases, "site")
    assert session.sampler.case_p is not None and len(set(np.round(expected, 9))) > 1
    np.testing.assert_allclose(session.sampler.case_p, expected)

    straight = train(config, data)
    assert load_bundle(straight.model_path).manifest["config"]["balance_by"] == "site"

    def ctrl_c_after_epoch_1(event):
        if event["kind"] == "epoch" and event["epoch"] == 1:
            raise KeyboardInterrupt

    options = dict(epochs=2, iters_per_epoch=2, val_every=1)
    train(tiny_config(tmp_path, "resumed", balance_by="site", **options), data, on_event=ctrl_c_after_epoch_1)
    # resumed without typing --balance-by: the run's own balance continues, draw for draw
    resumed = train(tiny_config(tmp_path, "resumed", resume=True, **options), data)
    assert resumed.epochs_done == 2
    a = torch.load(tmp_path / "straight/checkpoints/last.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "resumed/checkpoints/last.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="balance_by was given as 'other'"):
        train(tiny_config(tmp_path, "resumed", resume=True, balance_by="other", **{**options, "epochs": 3}), data)
    with pytest.raises(RadsegError, match="--balance-by body_part"):
        train(tiny_config(tmp_path, "fresh", epochs=1, iters_per_epoch=2, balance_by="body_part"), data)
