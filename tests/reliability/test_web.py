"""Promises of the web page (``radseg serve``) on hostile uploads and bad bundles, tested without a
browser through :class:`radseg.serve.service.Service`: every refusal names the upload, the server
keeps serving, nothing is decoded beyond limits, nothing is left behind."""

from __future__ import annotations

import os
import signal
import struct
import zipfile
import zlib

import numpy as np
import pytest

from radseg.errors import RadsegError
from radseg.image import Image
from radseg.serve.models import LABELS_CHOICE, ModelCache, ModelCard, find_models, model_card
from radseg.serve.service import Service, clean_on_signals
from radseg.serve.uploads import PixelLimits


@pytest.fixture
def service(tmp_path):
    return Service(ModelCache({}), max_upload_mb=5, work_dir=tmp_path / "work")


def huge_png(path, width=9000, height=9000):
    """A valid, blank greyscale PNG whose header says width x height (about 80 KB on disk)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = zlib.compress(b"\x00" * (width + 1) * height, 9)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", rows) + chunk(b"IEND", b""))
    return path


def refused(result, name):
    assert not result.ok and name in result.status, result.status
    assert "internal error" not in result.status and "Traceback" not in result.status


def test_huge_pixel_png_refused_from_its_header(service, tmp_path):
    import time

    upload = huge_png(tmp_path / "blank.png")
    assert upload.stat().st_size < 200_000
    start = time.perf_counter()
    result = service.analyse(upload, LABELS_CHOICE)
    refused(result, "blank.png")
    assert "81.0 million pixels" in result.status and "--max-megapixels" in result.status
    assert time.perf_counter() - start < 2  # refused before decoding


def test_pixel_limit_is_configurable(tmp_path):
    from PIL import Image as PILImage

    upload = tmp_path / "small.png"
    PILImage.fromarray(np.zeros((100, 100), np.uint8)).save(upload)
    strict = Service(ModelCache({}), max_upload_mb=5, work_dir=tmp_path / "w",
                     pixel_limits=PixelLimits(max_pixels=5000))
    refused(strict.analyse(upload, LABELS_CHOICE), "small.png")


def test_zip_bomb_refused_and_nothing_unpacked(service, tmp_path):
    upload = tmp_path / "series.zip"
    with zipfile.ZipFile(upload, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("slice1.dcm", b"\x00" * (50 * 1024 * 1024))
    assert upload.stat().st_size < 200_000
    result = service.analyse(upload, "any")
    refused(result, "series.zip")
    assert "zip bomb" in result.status
    assert not [p for p in service.work_dir.rglob("*") if p.is_file()]  # nothing unpacked


def test_non_image_file_refused(service, tmp_path):
    upload = tmp_path / "notes.txt"
    upload.write_text("not an image")
    refused(service.analyse(upload, LABELS_CHOICE), "notes.txt")
    disguised = tmp_path / "scan.png"
    disguised.write_bytes(b"%PDF-1.4 this is a pdf")
    refused(service.analyse(disguised, LABELS_CHOICE), "scan.png")


def test_sigterm_runs_the_ctrl_c_cleanup(tmp_path):
    service = Service(ModelCache({}), max_upload_mb=5)  # its own temp folder, as `radseg serve` makes
    (service.work_dir / "request" / "upload" / "unzipped").mkdir(parents=True)
    (service.work_dir / "request" / "upload" / "unzipped" / "slice.dcm").write_bytes(b"x")
    restore = clean_on_signals(service.cleanup)
    try:
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)  # the handler runs as soon as the call returns
    finally:
        restore()
    assert not service.work_dir.exists()


def test_bad_bundle_given_to_serve_is_named(tmp_path):
    folder = tmp_path / "not-a-model"
    folder.mkdir()
    (folder / "weights.pt").write_bytes(b"junk")
    with pytest.raises(RadsegError, match="not-a-model"):
        find_models(folder)


def test_model_card_from_manifest():
    class Bundle:
        label_names = {1: "fractured"}
        head = "softmax"

    card = model_card({"summary": "A research baseline, not a diagnostic device.",
                       "valid_scores": {"auc": 0.7356, "mask_AP50": 0.115}}, Bundle())
    assert card.detection and card.finding == "fractured" and card.threshold == 0.5
    assert "research model, not a diagnostic device" in card.intended_use
    assert "auc 0.736" in card.validation and "mask_AP50 0.115" in card.validation
    point = {"threshold": 0.8125, "target_sensitivity": 0.85, "sensitivity": 0.86, "specificity": 0.41,
             "chosen_on": "holdout split of prepared (86 images with the finding, 42 without)"}
    chosen = model_card({"operating_point": point, "detection_threshold": 0.3}, Bundle())
    assert chosen.threshold == 0.8125  # the operating point chosen on data wins over a bare threshold
    line = chosen.lines()[-1]
    assert line.startswith("Image-score threshold 0.812: chosen for sensitivity 0.85 on holdout split")
    assert "sensitivity 0.86 and specificity 0.41" in line


class FakeDetector:
    """A ModelCache stand-in: a detection-like model that paints five faint blobs."""

    names = ["fracatlas"]

    def predict_scored(self, name, image, *, tta=False):
        from radseg.labels import make_label_map

        labels = np.zeros(image.shape, np.uint8)
        for k in range(5):
            labels[5 + 10 * k:8 + 10 * k, 5:8] = 1
        return make_label_map(Image(labels, affine=image.affine, metadata=dict(image.metadata)), {1: "fractured"}), 0.12

    def card(self, name):
        return ModelCard("research model, not a diagnostic device", "validation split: auc 0.736",
                         detection=True, threshold=0.5, finding="fractured")

    def get(self, name):
        class Bundle:
            manifest = {}

        class Predictor:
            bundle = Bundle()

        return Predictor()


def test_detection_model_shows_image_score_not_labels_found(tmp_path):
    from PIL import Image as PILImage

    upload = tmp_path / "hand.png"
    PILImage.fromarray((np.random.default_rng(0).random((60, 60)) * 255).astype(np.uint8)).save(upload)
    service = Service(FakeDetector(), max_upload_mb=5, work_dir=tmp_path / "work")
    result = service.analyse(upload, "fracatlas", feature_set="shape")
    assert result.ok, result.status
    assert "Labels found: fractured" not in result.status
    assert "Image score 0.120 for fractured (not flagged: below the model's threshold 0.500)" in result.status
    assert "Image-score threshold 0.500: not chosen on data (the default 0.5)" in result.status
    assert "Intended use: research model, not a diagnostic device" in result.status
    assert "Validation: validation split: auc 0.736" in result.status
    from PIL import Image as PILImage2

    with PILImage2.open(result.overlay) as picture:  # the caption band is part of the overlay
        assert picture.height > 60 * 8
