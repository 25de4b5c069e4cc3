"""Ensembles of trained networks: probabilities averaged exactly, bundles that round-trip, members checked."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from typer.testing import CliRunner  # noqa: E402

from radseg.cli import app  # noqa: E402
from radseg.errors import RadsegError  # noqa: E402
from radseg.image import Image  # noqa: E402
from radseg.infer.predictor import Predictor  # noqa: E402
from radseg.models.bundle import ModelBundle, load_bundle  # noqa: E402
from radseg.models.ensemble import ProbabilityEnsemble, combine_bundles  # noqa: E402
from radseg.models.preprocess import Preprocessing  # noqa: E402
from radseg.models.registry import build  # noqa: E402

KWARGS = {"channels": [4, 8, 16], "strides": [2, 2], "num_res_units": 0}
PRE = Preprocessing(spatial_dims=2, mode="fit", size=(32, 32), intensity="window", window=(0.0, 255.0))


def member(seed: int, *, head: str = "multiclass", holdout=("a", "b"), flip_lr: bool = True, names=("fracture",),
           pre: Preprocessing = PRE) -> ModelBundle:
    torch.manual_seed(seed)
    out = len(names) + (1 if head == "multiclass" else 0)
    net = build("unet", spatial_dims=2, in_channels=1, out_channels=out, overrides=KWARGS)
    for p in net.parameters():  # larger weights than the init: members that disagree clearly
        p.data.mul_(3.0)
    config = {"holdout": 0.15 if holdout else None, "flip_lr": flip_lr, "lr": 0.001 * (seed + 1), "preset": "x"}
    return ModelBundle(architecture="unet", spatial_dims=2, in_channels=1, arch_kwargs=KWARGS, head=head,
                       class_values=list(range(1, len(names) + 1)), class_names=list(names), preprocessing=pre,
                       manifest={"config": config, "data": {"val_cases": list(holdout or [])}, "summary": f"run {seed}"},
                       state_dict=net.state_dict())


def _probabilities(bundle: ModelBundle, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        logits = bundle.build_network()(x)
    return torch.sigmoid(logits) if bundle.head == "multilabel" else torch.softmax(logits, dim=1)


@pytest.mark.parametrize("head", ["multiclass", "multilabel"])
def test_ensemble_output_is_the_logit_of_the_mean_probability(head):
    x = torch.randn(2, 1, 32, 32)
    members = [member(seed, head=head, names=("a", "b")) for seed in range(3)]
    expected = torch.stack([_probabilities(m, x) for m in members]).mean(0)  # by hand: the members' mean
    ensemble = combine_bundles(members)
    got = _probabilities(ensemble, x)
    assert ensemble.members == 3
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    # the members disagree, so the mean is not any one member's output
    assert all((_probabilities(m, x) - expected).abs().max() > 0.05 for m in members)


def test_ensemble_survives_extreme_logits_without_overflow():
    class Constant(torch.nn.Module):
        def __init__(self, value):
            super().__init__()
            self.value = value

        def forward(self, x):
            return torch.full((x.shape[0], 2, *x.shape[2:]), self.value)

    net = ProbabilityEnsemble([Constant(400.0), Constant(-400.0)], "multilabel")
    p = torch.sigmoid(net(torch.zeros(1, 1, 4, 4)))
    torch.testing.assert_close(p, torch.full_like(p, 0.5))  # mean of 1 and 0, not nan
    multi = ProbabilityEnsemble([Constant(400.0), Constant(400.0)], "multiclass")
    assert torch.isfinite(multi(torch.zeros(1, 1, 4, 4))).all()


@pytest.mark.parametrize("name", ["ensemble", "ensemble.zip"])
def test_ensemble_bundle_round_trip_and_predictor_with_tta(tmp_path, name):
    members = [member(seed) for seed in range(2)]
    path = combine_bundles(members).save(tmp_path / name)
    config = json.loads((path / "model.json").read_text()) if path.is_dir() else None
    if config is not None:
        assert config["format_version"] == 2 and config["architecture"]["members"] == 2
    loaded = load_bundle(path)
    assert loaded.members == 2 and loaded.class_names == ["fracture"]
    image = Image(np.random.default_rng(0).integers(0, 255, (32, 32)).astype(np.float32), spacing=(0.5, 0.5))
    mean = np.mean([Predictor(m, device="cpu", tta=True).probabilities(image)[0].numpy() for m in members], axis=0)
    got = Predictor.load(path, device="cpu", tta=True).probabilities(image)[0].numpy()
    np.testing.assert_allclose(got, mean, atol=1e-5)
    # a single network is still written as format 1, which older radseg reads
    single = members[0].save(tmp_path / "single")
    assert json.loads((single / "model.json").read_text())["format_version"] == 1


def test_nested_ensemble_weights_every_network_equally():
    a, b, c = (member(seed) for seed in range(3))
    x = torch.randn(1, 1, 32, 32)
    nested = combine_bundles([combine_bundles([a, b]), c])
    flat = torch.stack([_probabilities(m, x) for m in (a, b, c)]).mean(0)
    assert nested.members == 3
    torch.testing.assert_close(_probabilities(nested, x), flat, rtol=0, atol=1e-6)
    assert len(nested.manifest["ensemble"]["members"]) == 3


def test_members_must_match(tmp_path):
    a = member(0)
    a.path = tmp_path / "a"
    other_labels = member(1, names=("fracture", "implant"))
    other_labels.path = tmp_path / "b"
    with pytest.raises(RadsegError, match=r"b: class names \['fracture', 'implant'\], but .*a: \['fracture'\]"):
        combine_bundles([a, other_labels])
    finer = member(1, pre=Preprocessing(spatial_dims=2, mode="fit", size=(64, 64), intensity="window",
                                        window=(0.0, 255.0)))
    with pytest.raises(RadsegError, match="preprocessing differs"):
        combine_bundles([a, finer])
    with pytest.raises(RadsegError, match="two or more"):
        combine_bundles([a])


def test_holdout_and_flips_are_kept_only_when_every_member_shares_them():
    same = combine_bundles([member(0), member(1)])
    assert same.manifest["data"]["val_cases"] == ["a", "b"] and same.manifest["config"]["holdout"] == 0.15
    assert "lr" not in same.manifest["config"]  # differs between the members: not the ensemble's
    other = combine_bundles([member(0), member(1, holdout=("a", "c"))])
    assert "val_cases" not in other.manifest["data"] and "holdout" not in other.manifest["config"]
    no_flip = combine_bundles([member(0), member(1, flip_lr=False)])
    assert no_flip.manifest["config"]["flip_lr"] is False
    with pytest.raises(RadsegError, match="without left-right flips"):
        Predictor(no_flip, device="cpu", tta=True).probabilities(Image(np.zeros((32, 32), np.float32)))


def test_holdout_scoring_is_refused_when_members_held_out_different_cases(tmp_path):
    from radseg.workflows.detection import _holdout_cases

    bundle = combine_bundles([member(0), member(1, holdout=("a", "c"))])
    predictor = Predictor(bundle, device="cpu")
    with pytest.raises(RadsegError, match="not trained with --holdout"):
        _holdout_cases(predictor, None, tmp_path)


def test_ensemble_onnx_matches_torch():
    pytest.importorskip("onnxruntime")
    from radseg.infer.onnx import OnnxForward, export_onnx

    bundle = combine_bundles([member(0), member(1)])
    data = export_onnx(bundle, store=False)
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        expected = torch.softmax(bundle.build_network()(x), dim=1)
    got = torch.softmax(OnnxForward(data, weights=bundle.weights_payload())(x), dim=1)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


def test_cli_builds_an_ensemble_and_refuses_bad_members(tmp_path):
    runner = CliRunner()
    for seed in range(2):
        member(seed).save(tmp_path / f"run{seed}")
    out = tmp_path / "ens.zip"
    result = runner.invoke(app, ["models", "ensemble", str(tmp_path / "run0"), str(tmp_path / "run1"), "-o", str(out),
                                 "--no-onnx", "--summary", "two runs"])
    assert result.exit_code == 0, result.output
    loaded = load_bundle(out)
    assert loaded.members == 2 and loaded.manifest["summary"] == "two runs"
    assert [m["summary"] for m in loaded.manifest["ensemble"]["members"]] == ["run 0", "run 1"]
    member(2, names=("a", "b")).save(tmp_path / "other")
    bad = runner.invoke(app, ["models", "ensemble", str(tmp_path / "run0"), str(tmp_path / "other"), "-o",
                              str(tmp_path / "bad.zip"), "--no-onnx"])
    assert bad.exit_code != 0 and "class names" in bad.output and not (tmp_path / "bad.zip").exists()
    one = runner.invoke(app, ["models", "ensemble", str(tmp_path / "run0"), "-o", str(tmp_path / "one.zip")])
    assert one.exit_code != 0 and "two or more" in one.output
    missing = runner.invoke(app, ["models", "ensemble", str(tmp_path / "run0"), str(tmp_path / "nope"), "-o",
                                  str(tmp_path / "m.zip")])
    assert missing.exit_code != 0 and "nope" in missing.output
