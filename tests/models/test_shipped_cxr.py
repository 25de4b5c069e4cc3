"""The chest anatomy model shipped with radseg (``cxr-anatomy``): named, credited, and right on real radiographs.

The Dice floors on real JSRT cases come from the model's validation figures (the 15 val cases it
was selected on, recorded in its manifest's training metrics) minus a margin, never from its
own output on these images; the images are its held-out test cases (named in the manifest).
"""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from radseg.cli import app
from radseg.evaluate import dice
from radseg.infer.predictor import Predictor
from radseg.infer.quality import assess
from radseg.io import read
from radseg.models.bundle import load_bundle, shipped_models

CLASSES = ["heart", "right lung", "left lung", "right clavicle", "left clavicle"]
MARGIN = 0.05


@pytest.fixture(scope="module")
def bundle():
    if "cxr-anatomy" not in shipped_models():
        pytest.fail("cxr-anatomy is not shipped in src/radseg/models/shipped/")
    return load_bundle("cxr-anatomy")


@pytest.fixture(scope="module")
def predictor():
    return Predictor.load("cxr-anatomy", device="cpu", threads=2)


def test_manifest_names_data_terms_use_and_quality_check(bundle):
    manifest = bundle.manifest
    assert bundle.head == "multilabel" and bundle.class_names == CLASSES
    assert "JSRT" in manifest["data_credit"] and "SCR" in manifest["data_credit"]
    assert "research" in manifest["license"] and "not a diagnostic device" in manifest["intended_use"]
    assert manifest["quality_check"] == "chest-pa"
    assert len(manifest["test_cases"]) == 30 and not set(manifest["test_cases"]) & set(manifest["val_cases"])
    assert bundle.onnx_bytes is not None and len(bundle.onnx_bytes) < 400_000  # the graph points into weights.pt
    assert bundle.path.stat().st_size < 5_000_000
    assert bundle.mirror_pairs == []  # trained without flips: a mirrored chest is not a chest


def _val_floor(bundle, name: str) -> float:
    return float(bundle.manifest["metrics"]["best_val_dice_per_class"][name]) - MARGIN


@pytest.mark.realdata
def test_real_held_out_radiographs_meet_the_validation_floor(bundle, predictor, shared_data):
    from radseg.datasets import scan_dataset

    scan = scan_dataset("jsrt-scr", shared_data / "cxr" / "jsrt-scr")
    records = {r.case_id: r for r in scan.records}
    cases = bundle.manifest["test_cases"][:4]
    scores = {n: [] for n in CLASSES}
    for case in cases:
        loaded = records[case].load()
        pred = predictor.predict(loaded.image)
        assert assess(pred, "chest-pa").ok
        for channel, name in enumerate(CLASSES):
            scores[name].append(dice(pred.array[..., channel], loaded.labels.array[..., channel]))
    for name in CLASSES:
        assert np.mean(scores[name]) >= _val_floor(bundle, name), (name, scores[name])


@pytest.mark.realdata
def test_real_dicom_crs_and_a_limb_radiograph(predictor, shared_data):
    from tests.conftest import pydicom_data

    uncompressed = predictor.predict(read(pydicom_data("RG1_UNCR.dcm")))
    j2k = predictor.predict(read(pydicom_data("RG1_J2KR.dcm")))
    assert np.array_equal(uncompressed.array, j2k.array)  # lossless J2K: the same pixels, the same masks
    zero = read(shared_data / "xray" / "wg04" / "RG1_JLSN.dcm")
    assert zero.metadata["spacing_known"] is False  # PixelSpacing "0.000": unknown, not zero
    for pred in (uncompressed, predictor.predict(zero)):
        # a computed radiograph, unlike JSRT's films: heart and lungs plausible; the clavicles are
        # its weak point and any doubt about them must be said, not hidden
        reasons = assess(pred, "chest-pa").reasons
        assert all("clavicle" in r for r in reasons), reasons
    limbs = sorted((shared_data / "fracatlas" / "images" / "Non_fractured").glob("*.jpg"))[:3]
    assert not any(assess(predictor.predict(read(f)), "chest-pa").ok for f in limbs)


@pytest.mark.realdata
def test_cli_cxas_layout_and_onnx_backend(shared_data, tmp_path):
    source = shared_data / "cxr" / "jsrt-scr" / "images" / "JPCLN002.png"
    runner = CliRunner()
    for backend in ("torch", "onnx"):
        result = runner.invoke(app, ["segment", "-m", "cxr-anatomy", "-i", str(source), "-o", str(tmp_path / backend),
                                     "-ot", "png", "--backend", backend])
        assert result.exit_code == 0, result.output
        for name in CLASSES:
            assert (tmp_path / backend / "JPCLN002" / f"{name}.png").is_file()
        assert (tmp_path / backend / "quality.csv").read_text().splitlines()[1].split(",")[2] == "True"
    a = read(tmp_path / "torch" / "JPCLN002" / "heart.png").array
    b = read(tmp_path / "onnx" / "JPCLN002" / "heart.png").array
    assert np.mean(a == b) > 0.999
