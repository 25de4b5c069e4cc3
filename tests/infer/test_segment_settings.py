"""A rerun of ``radseg segment`` resumes only cases made with the same model and every setting that
changes the output; a changed one redoes the case, naming what changed (never "kept" stale files)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("monai")

from radseg.infer.predictor import Predictor  # noqa: E402
from radseg.infer.segment import STATE_DIR, segment  # noqa: E402
from radseg.models.bundle import load_bundle  # noqa: E402
from tests.infer.test_segment import cli, disc_model, png_folder  # noqa: E402,F401 - fixtures


def _first_run(cli, model, png_folder, out):
    result = cli("segment", "-i", png_folder, "-o", out, "-m", model)
    assert result.exit_code == 1 and "broken.png" in result.output  # the broken file; the two images are written
    again = cli("segment", "-i", png_folder, "-o", out, "-m", model)
    assert "kept 2 finished case(s)" in again.output
    return (out / "img0.png").stat().st_mtime_ns


@pytest.mark.parametrize("options, changed", [
    (["--tta"], "tta"),
    (["--postprocess", "lcc"], "postprocessing"),
    (["--overlap", "0.25"], "overlap"),
])
def test_a_changed_setting_redoes_the_case(cli, disc_model, png_folder, tmp_path, options, changed):
    out = tmp_path / "out"
    before = _first_run(cli, disc_model, png_folder, out)
    result = cli("segment", "-i", png_folder, "-o", out, "-m", disc_model, *options)
    assert "kept" not in result.output and f"redid img0: changed since its last run: {changed}" in result.output
    assert (out / "img0.png").stat().st_mtime_ns != before
    record = json.loads((out / STATE_DIR / "png" / "img0.json").read_text())
    assert record["settings"][changed] != {"tta": False, "overlap": 0.5}.get(changed, "not-a-value")
    assert "kept 2 finished case(s)" in cli("segment", "-i", png_folder, "-o", out, "-m", disc_model, *options).output


def test_another_model_redoes_the_case(cli, disc_model, png_folder, tmp_path):
    out = tmp_path / "out"
    _first_run(cli, disc_model, png_folder, out)
    bundle = load_bundle(disc_model)
    bundle.state_dict = {k: v + 0.01 if v.is_floating_point() else v for k, v in bundle.state_dict.items()}
    other = bundle.save(tmp_path / "other-model")
    result = cli("segment", "-i", png_folder, "-o", out, "-m", other)
    assert "kept" not in result.output and "changed since its last run: model" in result.output


def test_another_output_type_is_its_own_output(cli, disc_model, png_folder, tmp_path):
    out = tmp_path / "out"
    _first_run(cli, disc_model, png_folder, out)
    result = cli("segment", "-i", png_folder, "-o", out, "-m", disc_model, "-ot", "npz")
    assert "kept" not in result.output and (out / "img0.npz").exists()


def test_backend_and_threshold_are_settings(disc_model):
    predictor = Predictor.load(disc_model, device="cpu")
    assert predictor.settings["backend"] == "torch" and predictor.settings["threshold"] == 0.5
    assert Predictor.load(disc_model, device="cpu", threshold=0.3).settings["threshold"] == 0.3


def test_threshold_and_backend_changes_redo(disc_model, png_folder, tmp_path):
    out = tmp_path / "out"
    segment(png_folder, out, predictor=Predictor.load(disc_model, device="cpu"))
    report = segment(png_folder, out, predictor=Predictor.load(disc_model, device="cpu", threshold=0.3))
    assert not report.kept and {case for case, _ in report.redone} == {"img0", "img1"}
    assert all(what == "threshold" for _, what in report.redone)
    pytest.importorskip("onnxruntime")
    model = tmp_path / "model"
    shutil.copytree(disc_model, model)
    from radseg.infer.onnx import export_onnx

    export_onnx(load_bundle(model))
    report = segment(png_folder, out, predictor=Predictor.load(model, device="cpu", backend="onnx", threshold=0.3))
    assert not report.kept and all("backend" in what for _, what in report.redone)


def test_state_files_without_settings_are_redone(disc_model, png_folder, tmp_path):
    out = tmp_path / "out"
    predictor = Predictor.load(disc_model, device="cpu")
    segment(png_folder, out, predictor=predictor)
    state = out / STATE_DIR / "png" / "img0.json"
    record = json.loads(state.read_text())
    del record["settings"]  # as an older radseg wrote it
    state.write_text(json.dumps(record))
    report = segment(png_folder, out, predictor=predictor)
    assert report.kept == ["img1"]
    assert report.redone == [("img0", "settings not recorded (older radseg)")]
    assert json.loads(state.read_text())["settings"] == json.loads(json.dumps(
        {**predictor.settings, "read_options": {}}))


def test_read_options_are_settings_and_stale_files_of_another_layout_go(disc_model, png_folder, tmp_path):
    out = tmp_path / "out"
    predictor = Predictor.load(disc_model, device="cpu")
    segment(png_folder, out, predictor=predictor)
    state = out / STATE_DIR / "png" / "img0.json"
    record = json.loads(state.read_text())
    stale = out / "img0-old-layout.png"
    stale.write_bytes((out / "img0.png").read_bytes())
    record["files"].append(str(stale))
    state.write_text(json.dumps(record))
    report = segment(png_folder, out, predictor=predictor, read_options={"on_gap": "error"})
    assert not report.kept and all(what == "read_options" for _, what in report.redone)
    assert not stale.exists() and (out / "img0.png").exists()
    assert np.asarray(json.loads(state.read_text())["files"]).size == 1
