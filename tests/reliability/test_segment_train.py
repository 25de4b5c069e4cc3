"""What radseg promises on bad input: ``radseg segment`` and ``radseg train`` scenarios.

Each scenario: the exit code, the offending file named in the message, and nothing lost or
half-written (no partial files, earlier outputs and checkpoints intact, the rest of a batch done).
One tiny model is trained once for the module (a few iterations on 64x64 discs).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import zipfile

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

torch = pytest.importorskip("torch")
pytest.importorskip("monai")

import radseg.io as rio  # noqa: E402
from radseg.commands import segment as segment_commands  # noqa: E402
from radseg.commands import train as train_commands  # noqa: E402
from radseg.image import Image  # noqa: E402
from radseg.infer.predictor import Predictor  # noqa: E402
from radseg.io.dicom_write import write_dicom_radiograph  # noqa: E402
from tests.train.shapes import disc_case  # noqa: E402

TINY = '{"channels": [4, 8], "strides": [2], "num_res_units": 0}'
TRAIN = ["--epochs", "3", "--iters-per-epoch", "2", "--batch-size", "2", "--size", "32,32", "--val-every", "1",
         "--threads", "1", "--device", "cpu", "--model-args", TINY, "-q"]


def partials(folder) -> list:
    return [p for p in folder.rglob("*") if ".partial-" in p.name]


@pytest.fixture(scope="module")
def cli():
    app = typer.Typer()
    app.callback()(lambda: None)
    segment_commands.register(app)
    train_commands.register(app)
    runner = CliRunner()
    return lambda *args: runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("prepared")
    rng = np.random.default_rng(0)
    for i in range(4):
        image, labels = disc_case(rng, shape=(40, 48))
        rio.write(image, root / "images" / f"case{i}.nii.gz")
        rio.write(labels, root / "labels" / f"case{i}.png", kind="png")
    (root / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "disc": 1, "square": 2}}))
    return root


@pytest.fixture(scope="module")
def model(cli, prepared, tmp_path_factory):
    run = tmp_path_factory.mktemp("trained") / "run"
    result = cli("train", "--data", prepared, "-o", run, *TRAIN)
    assert result.exit_code == 0, result.output
    return run / "model"


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "in"
    rng = np.random.default_rng(5)
    for i in range(2):
        image, _ = disc_case(rng, shape=(40, 48))
        rio.write(Image(np.clip(image.array, 0, 255).astype(np.uint8), spacing=(1, 1)), folder / f"img{i}.png")
    return folder


@pytest.fixture
def counted(monkeypatch):
    calls = []
    original = Predictor.predict

    def predict(self, image, prepared=None):
        calls.append(image.metadata.get("source_files"))
        return original(self, image, prepared)

    monkeypatch.setattr(Predictor, "predict", predict)
    return calls


# --- bad model bundles (segment -m) --------------------------------------------------------

def _no_weights(bundle):
    (bundle / "weights.pt").unlink()
    return bundle, "weights.pt is missing"


def _manifest_not_json(bundle):
    import hashlib

    (bundle / "manifest.json").write_text("{not json")
    config = json.loads((bundle / "model.json").read_text())
    config["files"]["manifest.json"] = hashlib.sha256(b"{not json").hexdigest()  # hashes agree: only the JSON is bad
    (bundle / "model.json").write_text(json.dumps(config))
    return bundle, "manifest.json is not valid JSON"


def _manifest_edited(bundle):
    (bundle / "manifest.json").write_text("{}")
    return bundle, "manifest.json does not match its recorded SHA-256"


def _model_json_not_json(bundle):
    (bundle / "model.json").write_text("[1, 2")
    return bundle, "model.json is not valid JSON"


def _zip_not_a_bundle(bundle):
    target = bundle.parent / "model.zip"
    target.write_bytes(b"PK\x03\x04 this is not really a zip")
    return target, "not a model folder or zip"


def _zip_without_model_json(bundle):
    target = bundle.parent / "other.zip"
    with zipfile.ZipFile(target, "w") as archive:
        archive.writestr("notes.txt", "a zip, but not a radseg model")
    return target, "not a radseg model"


def _unknown_architecture(bundle):
    config = json.loads((bundle / "model.json").read_text())
    config["architecture"]["name"] = "transformer-9000"
    (bundle / "model.json").write_text(json.dumps(config))
    return bundle, "unknown model architecture 'transformer-9000'"


def _weights_do_not_fit(bundle):
    config = json.loads((bundle / "model.json").read_text())
    config["architecture"]["kwargs"]["channels"] = [6, 12]
    (bundle / "model.json").write_text(json.dumps(config))
    return bundle, "the network cannot be built"


@pytest.mark.parametrize("damage", [_no_weights, _manifest_not_json, _manifest_edited, _model_json_not_json,
                                    _zip_not_a_bundle, _zip_without_model_json, _unknown_architecture,
                                    _weights_do_not_fit])
def test_bad_bundle_is_refused_naming_it(cli, model, images, tmp_path, damage):
    bundle = tmp_path / "model"
    shutil.copytree(model, bundle)
    path, problem = damage(bundle)
    result = cli("segment", "-i", images, "-o", tmp_path / "out", "-m", path)
    assert result.exit_code == 1
    assert f"error: {path}: " in result.output and problem in result.output, result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()  # nothing written, not even a state folder


# --- segment batches ---------------------------------------------------------------------

def test_dicom_seg_on_png_is_refused_before_the_model_runs_and_the_dicom_of_the_batch_is_done(
        cli, model, images, tmp_path, counted):
    image, _ = disc_case(np.random.default_rng(2), shape=(40, 48))
    write_dicom_radiograph(Image(np.clip(image.array * 10, 0, 4000).astype(np.uint16), spacing=(0.2, 0.2)),
                           images / "dx.dcm", modality="DX")
    result = cli("segment", "-i", images, "-o", tmp_path / "out", "-m", model, "-ot", "dicom-seg")
    assert result.exit_code == 1
    for name in ("img0.png", "img1.png"):
        assert f"{images / name}: dicom-seg needs DICOM input" in result.output
    assert "2 item(s) failed" in result.output
    assert len(counted) == 1 and counted[0][0].endswith("dx.dcm")  # the model ran on the DICOM only
    assert sorted(p.name for p in (tmp_path / "out").glob("*.dcm")) == ["dx.dcm"]
    assert rio.read_labels(tmp_path / "out" / "dx.dcm").shape == (40, 48)
    assert not partials(tmp_path / "out")


def test_rerun_with_other_settings_redoes_instead_of_keeping(cli, model, images, tmp_path):
    out = tmp_path / "out"
    assert cli("segment", "-i", images, "-o", out, "-m", model).exit_code == 0
    result = cli("segment", "-i", images, "-o", out, "-m", model, "--postprocess", "lcc,fill", "--tta")
    assert result.exit_code == 0
    assert "kept" not in result.output and "redid img0: changed since its last run: postprocessing, tta" in result.output
    assert (out / "img0.png").exists() and rio.read_labels(out / "img0.png").shape == rio.read(images / "img0.png").shape
    assert not partials(out)


def test_damaged_state_file_redoes_the_case(cli, model, images, tmp_path):
    out = tmp_path / "out"
    assert cli("segment", "-i", images, "-o", out, "-m", model).exit_code == 0
    state = out / ".radseg-segment" / "png" / "img1.json"
    state.write_text('{"model": ')  # a state file cut short by a full disk
    result = cli("segment", "-i", images, "-o", out, "-m", model)
    assert result.exit_code == 0 and "kept 1 finished case(s)" in result.output
    assert "redid img1: changed since its last run: unreadable state file" in result.output
    assert json.loads(state.read_text())["output_type"] == "png"


def test_unreadable_input_is_named_and_the_rest_are_done(cli, model, images, tmp_path):
    (images / "broken.png").write_bytes(b"\x89PNG cut short")
    result = cli("segment", "-i", images, "-o", tmp_path / "out", "-m", model, "-ot", "npz")
    assert result.exit_code == 1 and "broken.png" in result.output and "1 item(s) failed" in result.output
    assert sorted(p.name for p in (tmp_path / "out").glob("*.npz")) == ["img0.npz", "img1.npz"]
    assert not partials(tmp_path / "out")


# --- training killed and resumed ---------------------------------------------------------

def _interrupt_in_epoch_2(monkeypatch, how):
    def hook_factory(progress, quiet):
        def on_event(event):
            if event["kind"] == "iteration" and event["epoch"] == 1:
                if how == "sigterm":
                    os.kill(os.getpid(), signal.SIGTERM)
                else:
                    raise KeyboardInterrupt
        return on_event

    monkeypatch.setattr(train_commands, "_on_event", hook_factory)


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_training_killed_mid_epoch_keeps_the_last_checkpoint_and_resumes(cli, prepared, tmp_path, monkeypatch, how):
    run = tmp_path / "run"
    _interrupt_in_epoch_2(monkeypatch, how)
    result = cli("train", "--data", prepared, "-o", run, *TRAIN)
    assert result.exit_code == 130, result.output
    assert "interrupted after 1 epoch(s)" in result.output  # the whole epochs done
    last = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert last["epoch"] == 1 and last["iteration"] == 2  # the whole end-of-epoch-1 checkpoint, not half of epoch 2
    assert (run / "model" / "model.json").exists() and not partials(run)
    monkeypatch.undo()
    resumed = cli("train", "--data", prepared, "-o", run, "--resume", *TRAIN)
    assert resumed.exit_code == 0, resumed.output
    assert "completed after 3 epoch(s)" in resumed.output
    assert torch.load(run / "checkpoints" / "last.pt", weights_only=True)["epoch"] == 3


def test_kill_while_writing_a_checkpoint_leaves_the_previous_one(cli, prepared, tmp_path, monkeypatch):
    run = tmp_path / "run"
    assert cli("train", "--data", prepared, "-o", run, *TRAIN[:1], "1", *TRAIN[2:]).exit_code == 0
    before = (run / "checkpoints" / "last.pt").read_bytes()
    original = torch.save

    def killed_half_way(obj, target, *args, **kwargs):
        if "last" in str(target):
            with open(target, "wb") as handle:
                handle.write(b"PK\x03\x04 half of a checkpoint")
            raise KeyboardInterrupt
        return original(obj, target, *args, **kwargs)

    monkeypatch.setattr(torch, "save", killed_half_way)
    result = cli("train", "--data", prepared, "-o", run, "--resume", *TRAIN)  # epoch 2's checkpoint is killed
    assert result.exit_code == 130, result.output
    assert (run / "checkpoints" / "last.pt").read_bytes() == before and not partials(run)
    monkeypatch.undo()
    assert cli("train", "--data", prepared, "-o", run, "--resume", *TRAIN).exit_code == 0


def test_damaged_checkpoint_is_refused_naming_it(cli, prepared, tmp_path):
    run = tmp_path / "run"
    assert cli("train", "--data", prepared, "-o", run, *TRAIN[:1], "1", *TRAIN[2:]).exit_code == 0
    last = run / "checkpoints" / "last.pt"
    data = last.read_bytes()
    last.write_bytes(data[: len(data) // 2])  # a truncated copy
    result = cli("train", "--data", prepared, "-o", run, "--resume", *TRAIN)
    assert result.exit_code == 1
    assert f"error: {last}: damaged checkpoint" in result.output and "Traceback" not in result.output
    assert last.read_bytes() == data[: len(data) // 2]  # left for the user to inspect, not overwritten
    assert (run / "model" / "weights.pt").exists()  # the model of the first run is still there


def test_damaged_run_configuration_is_refused_naming_it(cli, prepared, tmp_path):
    run = tmp_path / "run"
    assert cli("train", "--data", prepared, "-o", run, *TRAIN[:1], "1", *TRAIN[2:]).exit_code == 0
    (run / "config.json").write_text('{"epochs": ')
    checkpoint = (run / "checkpoints" / "last.pt").read_bytes()
    result = cli("train", "--data", prepared, "-o", run, "--resume", *TRAIN)
    assert result.exit_code == 1 and f"error: {run / 'config.json'}: damaged run configuration" in result.output
    assert (run / "checkpoints" / "last.pt").read_bytes() == checkpoint


def test_resume_refuses_an_option_typed_with_another_value_even_the_default(cli, prepared, tmp_path):
    run = tmp_path / "run"
    assert cli("train", "--data", prepared, "-o", run, *TRAIN[:1], "1", *TRAIN[2:], "--seed", "3").exit_code == 0
    # --seed 0 is the default value, but typed: the run's seed is 3, so this is a change, not an omission
    refused = cli("train", "--data", prepared, "-o", run, "--resume", *TRAIN, "--seed", "0")
    assert refused.exit_code != 0 and "seed was given as 0 (run: 3)" in refused.output
    assert torch.load(run / "checkpoints" / "last.pt", weights_only=True)["epoch"] == 1  # nothing trained
    # the patch size the run used (its fit size: the preset stores none) is no change
    resumed = cli("train", "--data", prepared, "-o", run, "--resume", *TRAIN, "--patch-size", "32,32")
    assert resumed.exit_code == 0, resumed.output
    assert torch.load(run / "checkpoints" / "last.pt", weights_only=True)["epoch"] == 3
