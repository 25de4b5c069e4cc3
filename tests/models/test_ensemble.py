"""Ensembles of trained networks: probabilities averaged exactly, bundles that round-trip, members checked."""

from __future__ import annotations

import contextlib
import json
import zipfile

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from typer.testing import CliRunner  # noqa: E402

from radseg.cli import app  # noqa: E402
from radseg.errors import RadsegError  # noqa: E402
from radseg.image import Image  # noqa: E402
from radseg.infer.predictor import Predictor  # noqa: E402
from radseg.models.bundle import ModelBundle, load_bundle  # noqa: E402
from radseg.models.ensemble import combine_bundles  # noqa: E402
from radseg.models.grid import activate  # noqa: E402
from radseg.models.preprocess import Preprocessing  # noqa: E402
from radseg.models.registry import build  # noqa: E402
from radseg.models.hardware import trained_on  # noqa: E402

KWARGS = {"channels": [4, 8, 16], "strides": [2, 2], "num_res_units": 0}
PRE = Preprocessing(spatial_dims=2, mode="fit", size=(32, 32), intensity="window", window=(0.0, 255.0))
#: fitted to 64 px, run in 32 px windows: the sliding window blends logits across overlapping windows
TILED = Preprocessing(spatial_dims=2, mode="fit", size=(64, 64), patch_size=(32, 32), intensity="window",
                      window=(0.0, 255.0))


def member(seed: int, *, head: str = "multiclass", holdout=("a", "b"), flip_lr: bool = True, names=("fracture",),
           pre: Preprocessing = PRE, kwargs=KWARGS) -> ModelBundle:
    torch.manual_seed(seed)
    out = len(names) + (1 if head == "multiclass" else 0)
    net = build("unet", spatial_dims=2, in_channels=1, out_channels=out, overrides=kwargs)
    for p in net.parameters():  # larger weights than the init: members that disagree clearly
        p.data.mul_(3.0)
    config = {"holdout": 0.15 if holdout else None, "flip_lr": flip_lr, "lr": 0.001 * (seed + 1), "preset": "x"}
    return ModelBundle(architecture="unet", spatial_dims=2, in_channels=1, arch_kwargs=kwargs, head=head,
                       class_values=list(range(1, len(names) + 1)), class_names=list(names), preprocessing=pre,
                       manifest={"config": config, "data": {"val_cases": list(holdout or [])}, "summary": f"run {seed}"},
                       state_dict=net.state_dict())


def _probabilities(bundle: ModelBundle, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        logits = bundle.build_network()(x)
    return activate(logits, bundle.head, bundle.members)


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


def test_activate_averages_each_members_own_probabilities():
    # two members, two classes: logits chosen so that the mean of the members' softmax differs from the
    # softmax of the mean logits and from either member's softmax
    logits = np.array([[4.0, 0.0, -2.0, 3.0]], np.float32).reshape(1, 4, 1, 1)  # member 1: (4, 0), member 2: (-2, 3)
    first = np.exp([4.0, 0.0]) / np.exp([4.0, 0.0]).sum()
    second = np.exp([-2.0, 3.0]) / np.exp([-2.0, 3.0]).sum()
    expected = (first + second) / 2
    for values in (logits, torch.from_numpy(logits)):
        got = np.asarray(activate(values, "multiclass", 2)).reshape(2)
        np.testing.assert_allclose(got, expected, rtol=1e-6)
    sigmoid = np.asarray(activate(logits, "multilabel", 2)).reshape(2)
    np.testing.assert_allclose(sigmoid, (1 / (1 + np.exp(-np.array([4.0, 0.0]))) + 1 / (1 + np.exp(-np.array([-2.0, 3.0])))) / 2,
                               rtol=1e-6)
    with pytest.raises(ValueError, match="do not split into 3"):
        activate(logits, "multiclass", 3)


@pytest.mark.parametrize("name, pre", [("ensemble", PRE), ("ensemble.zip", TILED)])
def test_ensemble_is_the_mean_of_its_members_whole_or_tiled_with_tta(tmp_path, name, pre):
    members = [member(seed, pre=pre) for seed in range(2)]
    path = combine_bundles(members).save(tmp_path / name)
    loaded = load_bundle(path)
    assert loaded.members == 2 and loaded.class_names == ["fracture"]
    with zipfile.ZipFile(path) if path.suffix == ".zip" else contextlib.nullcontext() as archive:
        config = json.loads(archive.read("model.json") if archive else (path / "model.json").read_text())
    assert config["format_version"] == 2 and config["architecture"]["members"] == 2
    image = Image(np.random.default_rng(0).integers(0, 255, (48, 40)).astype(np.float32), spacing=(0.5, 0.5))
    mean = np.mean([Predictor(m, device="cpu", tta=True).probabilities(image)[0].numpy() for m in members], axis=0)
    got = Predictor.load(path, device="cpu", tta=True).probabilities(image)[0].numpy()
    np.testing.assert_allclose(got, mean, atol=1e-5)
    # a single network is still written as format 1, which older radseg reads
    single = members[0].save(tmp_path / "single")
    assert json.loads((single / "model.json").read_text())["format_version"] == 1


def test_members_of_other_widths_keep_their_own_options_through_saving_and_nesting(tmp_path):
    wide = {**KWARGS, "channels": [8, 16, 32]}
    a, b, c = member(0), member(1, kwargs=wide), member(2)
    x = torch.randn(1, 1, 32, 32)
    mixed = combine_bundles([a, b])
    assert mixed.member_kwargs == [KWARGS, wide]
    by_hand = torch.stack([_probabilities(m, x) for m in (a, b)]).mean(0)
    torch.testing.assert_close(_probabilities(mixed, x), by_hand, rtol=0, atol=1e-6)
    path = mixed.save(tmp_path / "mixed.zip")
    stored = json.loads(zipfile.ZipFile(path).read("model.json"))
    assert stored["format_version"] == 3 and stored["architecture"]["member_kwargs"] == [KWARGS, wide]
    loaded = load_bundle(path)
    assert loaded.member_kwargs == [KWARGS, wide]
    torch.testing.assert_close(_probabilities(loaded, x), by_hand, rtol=0, atol=1e-6)
    nested = combine_bundles([loaded, c])  # an ensemble inside another keeps each member's width
    assert nested.member_kwargs == [KWARGS, wide, KWARGS]
    torch.testing.assert_close(_probabilities(nested, x),
                               torch.stack([_probabilities(m, x) for m in (a, b, c)]).mean(0), rtol=0, atol=1e-6)
    same = combine_bundles([a, c])  # one width: written as before (format 2), which older radseg reads
    assert same.member_kwargs is None
    assert json.loads((same.save(tmp_path / "same") / "model.json").read_text())["format_version"] == 2


def test_nested_ensemble_weights_every_network_equally():
    a, b, c = (member(seed) for seed in range(3))
    x = torch.randn(1, 1, 32, 32)
    nested = combine_bundles([combine_bundles([a, b]), c])
    flat = torch.stack([_probabilities(m, x) for m in (a, b, c)]).mean(0)
    assert nested.members == 3
    torch.testing.assert_close(_probabilities(nested, x), flat, rtol=0, atol=1e-6)
    assert [m["summary"] for m in nested.manifest["ensemble"]["members"]] == ["run 0", "run 1", "run 2"]
    with pytest.raises(RadsegError, match="the same network twice"):
        combine_bundles([nested, a])


def test_the_hardware_each_member_trained_on_is_kept_through_nesting():
    gpu, cpu_build, unknown = member(0), member(1), member(2)
    gpu.manifest["hardware"] = [{"device": "cpu (2 cores)", "epochs": [1, 9]},
                                {"device": "cuda (NVIDIA H100)", "epochs": [10, 40]}]
    cpu_build.manifest["environment"] = {"torch": "2.13.0+cpu", "cpu_count": 16}  # before radseg kept the device
    unknown.manifest["environment"] = {"torch": "2.13.0", "cpu_count": 16}  # a CUDA build: could have been either
    nested = combine_bundles([combine_bundles([gpu, cpu_build]), unknown])
    assert [m["trained_on"] for m in nested.manifest["ensemble"]["members"]] == [
        ["cpu (2 cores)", "cuda (NVIDIA H100)"], ["cpu (16 cores)"], ["not recorded"]]
    assert trained_on(nested.manifest) == ["cpu (2 cores)", "cuda (NVIDIA H100)", "cpu (16 cores)", "not recorded"]
    assert trained_on(gpu.manifest) == ["cpu (2 cores)", "cuda (NVIDIA H100)"]


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
    first, second = member(0), member(1)
    first.manifest["data"]["train_cases"], second.manifest["data"]["train_cases"] = ["c", "d"], ["d", "e"]
    assert combine_bundles([first, second]).manifest["data"]["train_cases"] == ["c", "d", "e"]
    second.manifest["data"]["val_cases"] = ["a", "z"]  # another holdout: none is kept, the trained-on cases still are
    assert combine_bundles([first, second]).manifest["data"]["train_cases"] == ["c", "d", "e"]
    assert "lr" not in same.manifest["config"]  # differs between the members: not the ensemble's
    other = combine_bundles([member(0), member(1, holdout=("a", "c"))])
    assert "val_cases" not in other.manifest["data"] and "holdout" not in other.manifest["config"]
    no_flip = combine_bundles([member(0), member(1, flip_lr=False)])
    assert no_flip.manifest["config"]["flip_lr"] is False
    with pytest.raises(RadsegError, match="without left-right flips"):
        Predictor(no_flip, device="cpu", tta=True).probabilities(Image(np.zeros((32, 32), np.float32)))


def test_holdout_scoring_is_refused_when_members_held_out_different_cases(tmp_path):
    from radseg.workflows.detection import holdout_cases

    bundle = combine_bundles([member(0), member(1, holdout=("a", "c"))])
    predictor = Predictor(bundle, device="cpu")
    with pytest.raises(RadsegError, match="no held-out cases .*did not all hold out the same"):
        holdout_cases(predictor, None, tmp_path)


@pytest.mark.parametrize("head", ["multiclass", "multilabel"])
def test_ensemble_onnx_matches_torch_and_stores_the_weights_once(head):
    pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    from radseg.infer.onnx import OnnxForward, export_onnx

    bundle = combine_bundles([member(0, head=head), member(1, head=head)])
    data = export_onnx(bundle, store=False)
    graph = onnx.load_from_string(data)
    big = [t for t in graph.graph.initializer if int(np.prod(t.dims)) * 4 >= 256]
    assert big and all(t.data_location == onnx.TensorProto.EXTERNAL for t in big)
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        expected = activate(bundle.build_network()(x), head, 2)
    got = activate(OnnxForward(data, weights=bundle.weights_payload())(x), head, 2)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


def test_manifest_fields_downstream_reads_are_carried_or_refused():
    a, b = member(0), member(1)
    for m in (a, b):
        m.manifest.update(quality_check="chest-pa", license="CC BY 4.0", data_credit="Trained on X.")
    both = combine_bundles([a, b]).manifest
    assert (both["quality_check"], both["license"], both["data_credit"]) == ("chest-pa", "CC BY 4.0", "Trained on X.")
    del b.manifest["license"]  # a run not given its licence yet: the other member's applies
    assert combine_bundles([a, b]).manifest["license"] == "CC BY 4.0"
    b.manifest["quality_check"] = "knee"
    with pytest.raises(RadsegError, match="quality check differ"):
        combine_bundles([a, b])


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
    again = runner.invoke(app, ["models", "ensemble", str(tmp_path / "run0"), str(tmp_path / "run1"), "-o", str(out)])
    assert again.exit_code != 0 and "exists" in again.output and load_bundle(out).members == 2
    twice = runner.invoke(app, ["models", "ensemble", str(tmp_path / "run0"), str(tmp_path / "run0"), "-o",
                                str(tmp_path / "twice.zip"), "--no-onnx"])
    assert twice.exit_code != 0 and "twice" in twice.output
    one = runner.invoke(app, ["models", "ensemble", str(tmp_path / "run0"), "-o", str(tmp_path / "one.zip")])
    assert one.exit_code != 0 and "two or more" in one.output
    missing = runner.invoke(app, ["models", "ensemble", str(tmp_path / "run0"), str(tmp_path / "nope"), "-o",
                                  str(tmp_path / "m.zip")])
    assert missing.exit_code != 0 and "nope" in missing.output
