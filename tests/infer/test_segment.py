"""radseg segment / export-onnx end to end: outputs, resume, bad files, ONNX parity, DICOM-SEG overlay."""

from __future__ import annotations

import json

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

torch = pytest.importorskip("torch")
pytest.importorskip("monai")

import radseg.io as rio  # noqa: E402
from radseg.commands import segment as segment_commands  # noqa: E402
from radseg.image import Image  # noqa: E402
from radseg.infer.predictor import Predictor  # noqa: E402
from radseg.infer.segment import segment  # noqa: E402
from radseg.io.dicom_write import write_dicom_series  # noqa: E402
from radseg.models.preprocess import Preprocessing  # noqa: E402
from radseg.train.config import TrainConfig  # noqa: E402
from radseg.train.data import from_pairs  # noqa: E402
from radseg.train.loop import train  # noqa: E402
from tests.conftest import oblique_direction  # noqa: E402
from tests.infer.test_predictor import bundle_for, threshold_oracle  # noqa: E402
from tests.train.shapes import ball_case, disc_case  # noqa: E402


@pytest.fixture(scope="module")
def disc_model(tmp_path_factory):
    rng = np.random.default_rng(0)
    config = TrainConfig(output=tmp_path_factory.mktemp("run") / "run", preprocessing={"size": (64, 64)},
                         arch_kwargs={"channels": [8, 16, 32], "strides": [2, 2], "num_res_units": 1},
                         epochs=4, iters_per_epoch=10, batch_size=4, val_every=2, lr=1e-2, threads=2)
    return train(config, from_pairs([disc_case(rng) for _ in range(10)])).model_path


@pytest.fixture
def cli():
    app = typer.Typer()
    app.callback()(lambda: None)
    segment_commands.register(app)
    runner = CliRunner()
    return lambda *args: runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def png_folder(tmp_path):
    folder = tmp_path / "in"
    rng = np.random.default_rng(5)
    for i in range(2):
        image, _ = disc_case(rng)
        rio.write(Image(np.clip(image.array, 0, 255).astype(np.uint8), spacing=(1, 1)), folder / f"img{i}.png")
    (folder / "broken.png").write_bytes(b"\x89PNG not really")
    return folder


def test_segment_folder_writes_every_type_reports_bad_files_and_resumes(cli, disc_model, png_folder, tmp_path):
    out = tmp_path / "out"
    for output_type, name in (("png", "img0.png"), ("json", "img0.json"), ("jpg", "img0.jpg"), ("npz", "img0.npz"),
                              ("png-classes", "img0/classes.json")):
        result = cli("segment", "-i", png_folder, "-o", out, "-m", disc_model, "-ot", output_type)
        assert result.exit_code == 1, result.output  # the broken file
        assert "broken.png" in result.output and "wrote" in result.output
        assert (out / name).exists()
    labels = rio.read_labels(out / "img0.png")
    assert labels.metadata["label_names"] == {1: "disc", 2: "square"}
    assert set(np.unique(labels.array)) == {0, 1, 2}
    coco = json.loads((out / "img0.json").read_text())
    assert {c["id"] for c in coco["categories"]} == {1, 2}
    again = cli("segment", "-i", png_folder, "-o", out, "-m", disc_model, "-ot", "png")
    assert "kept 2 finished case(s)" in again.output


def test_segment_errors_are_clear(cli, disc_model, tmp_path):
    result = cli("segment", "-i", tmp_path / "absent.png", "-o", tmp_path / "o", "-m", disc_model)
    assert result.exit_code == 1 and "absent.png" in result.output
    result = cli("segment", "-i", tmp_path, "-o", tmp_path / "o", "-m", tmp_path / "nomodel")
    assert result.exit_code == 1 and "nomodel" in result.output
    result = cli("segment", "-i", tmp_path, "-o", tmp_path / "o", "-m", disc_model, "-ot", "gif")
    assert result.exit_code == 1 and "unknown output type" in result.output
    result = cli("segment", "-i", tmp_path, "-o", tmp_path / "o", "-m", disc_model, "--backend", "onnx")
    assert result.exit_code == 1 and "export-onnx" in result.output


def test_onnx_backend_matches_torch(cli, disc_model, tmp_path):
    pytest.importorskip("onnxruntime")
    import shutil

    model = tmp_path / "model"
    shutil.copytree(disc_model, model)
    result = cli("export-onnx", model)
    assert result.exit_code == 0, result.output
    assert "same argmax on 100.0000%" in result.output or "same argmax on 99.9" in result.output
    image, _ = disc_case(np.random.default_rng(7), shape=(150, 110))
    by_torch = Predictor.load(model, device="cpu").predict(image).array
    by_onnx = Predictor.load(model, device="cpu", backend="onnx").predict(image).array
    assert (by_torch == by_onnx).mean() >= 0.999


def test_dicom_ct_series_to_dicom_seg_overlays_in_place(tmp_path):
    """Round trip: DICOM series -> segment -> DICOM-SEG -> read back; centroids in mm must agree."""
    ball, truth = ball_case(np.random.default_rng(3), shape=(16, 36, 40), spacing=(2.5, 0.8, 0.9))
    image = Image(ball.array, spacing=ball.spacing, origin=(12.5, -40.0, 60.0), direction=oblique_direction())
    write_dicom_series(image, tmp_path / "ct")
    pre = Preprocessing(spatial_dims=3, mode="spacing", spacing=(2.0, 2.0, 2.0), patch_size=(16, 16, 16),
                        intensity="window", window=(-1000, 2000))
    predictor = Predictor(bundle_for(pre, [5], ["right femoral head"]), device="cpu")
    predictor.forward = threshold_oracle
    report = segment(tmp_path / "ct", tmp_path / "out", predictor=predictor, output_type="dicom-seg")
    assert not report.failed and [p.name for p in report.written] == ["ct.dcm"]
    seg = rio.read_labels(tmp_path / "out" / "ct.dcm")
    assert seg.metadata["label_names"] == {5: "right femoral head"}
    seg_centre = seg.index_to_world(np.argwhere(seg.array == 5)).mean(0)
    true_centre = image.index_to_world(np.argwhere(truth.array == 1)).mean(0)
    assert np.linalg.norm(seg_centre - true_centre) < 0.5  # mm
