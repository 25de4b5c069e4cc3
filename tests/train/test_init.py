"""`radseg train --init`: a run that starts from a trained bundle's weights (fine-tuning)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("monai")

from radseg.errors import RadsegError  # noqa: E402
from radseg.models.bundle import load_bundle  # noqa: E402
from radseg.train.config import TrainConfig  # noqa: E402
from radseg.train.data import from_pairs  # noqa: E402
from radseg.train.loop import train  # noqa: E402
from tests.train.shapes import disc_case  # noqa: E402

NET = {"channels": [8, 16, 32], "strides": [2, 2], "num_res_units": 0}


def _config(out, **changes):
    options = dict(output=out, preprocessing={"size": (48, 48)}, arch_kwargs=NET, epochs=2, iters_per_epoch=4,
                   batch_size=2, val_every=1, lr=1e-2, threads=1)
    return TrainConfig(**{**options, **changes})


def test_init_starts_from_the_given_weights_and_refuses_other_classes(tmp_path):
    rng = np.random.default_rng(0)
    data = from_pairs([disc_case(rng) for _ in range(4)])
    source = train(_config(tmp_path / "a"), data).model_path
    # with a vanishing learning rate and no weight decay the fine-tuned net keeps the source weights
    tuned = train(_config(tmp_path / "b", init=str(source), lr=1e-12, weight_decay=0.0,
                          preprocessing={"size": (64, 64)}), data).model_path
    before, after = load_bundle(source).state_dict, load_bundle(tuned).state_dict
    assert set(before) == set(after)
    assert max(float((before[k].float() - after[k].float()).abs().max()) for k in before) < 1e-6
    assert load_bundle(tuned).manifest["config"]["init"] == str(source)
    # the weights' record names the source run's hardware first, then this run's epochs
    here = load_bundle(source).manifest["hardware"][0]["device"]
    assert load_bundle(tuned).manifest["hardware"] == [{"device": here, "initialised_from": str(source)},
                                                       {"device": here, "epochs": [1, 2]}]
    scratch = load_bundle(train(_config(tmp_path / "c", lr=1e-12, weight_decay=0.0), data).model_path).state_dict
    assert max(float((before[k].float() - scratch[k].float()).abs().max()) for k in before) > 1e-3

    relabelled = from_pairs([disc_case(rng) for _ in range(4)], label_names={1: "ball", 2: "cube"})
    with pytest.raises(RadsegError, match="does not match"):
        train(_config(tmp_path / "d", init=str(source)), relabelled)

    from radseg.models.ensemble import combine_bundles

    scratch_model = tmp_path / "c" / "model"
    pair = combine_bundles([load_bundle(source), load_bundle(scratch_model)]).save(tmp_path / "pair.zip")
    with pytest.raises(RadsegError, match="ensemble of 2 networks cannot start one network"):
        train(_config(tmp_path / "e", init=str(pair)), data)


def test_left_right_pairs_only_for_a_model_trained_with_flips(tmp_path):
    from radseg.infer.predictor import Predictor
    from radseg.models.bundle import load_bundle

    rng = np.random.default_rng(1)
    data = from_pairs([disc_case(rng) for _ in range(3)], label_names={1: "right disc", 2: "left disc"})
    flipped = load_bundle(train(_config(tmp_path / "a", flip_lr=True, epochs=1), data).model_path)
    assert flipped.mirror_pairs == [(1, 2)]
    plain = train(_config(tmp_path / "b", flip_lr=False, epochs=1), data).model_path
    assert load_bundle(plain).mirror_pairs == []
    predictor = Predictor.load(plain, tta=True)
    with pytest.raises(RadsegError, match="without left-right flips"):
        predictor.predict(data.cases[0].image)
    predictor.tta = False
    assert predictor.predict(data.cases[0].image).shape == data.cases[0].image.shape
