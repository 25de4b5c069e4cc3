"""The torch-free ONNX path: shipped graphs, same labels as torch, and ``--backend auto``.

Label agreement bound: ONNX Runtime's kernels round differently from torch's in the last
float32 bits (logits differ by about 1e-5), so a pixel whose two best classes tie to that
precision may flip. At most 1 pixel in 10,000 may differ per image (measured: 0 to a few
pixels per multi-megapixel radiograph).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from radseg.image import Image
from radseg.infer.predictor import Predictor, choose_backend
from radseg.io import read
from radseg.models.bundle import load_bundle, shipped_models

pytest.importorskip("onnxruntime")
pytest.importorskip("torch")

MAX_DIFFERENT = 1e-4  # share of pixels allowed to differ between the backends (ties, see above)
SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def _synthetic(seed: int, shape=(700, 560)) -> Image:
    """A radiograph-like picture: smooth background, a bright bar (bone), a dark gap and noise."""
    rng = np.random.default_rng(seed)
    rows, cols = np.indices(shape, dtype=np.float32)
    array = 800 + 300 * np.sin(rows / 90.0) * np.cos(cols / 70.0)
    bar = np.abs((cols - shape[1] * (0.4 + 0.2 * rng.random())) - 0.3 * (rows - shape[0] / 2)) < 45
    array[bar] += 1500
    array[bar & (np.abs(rows - shape[0] * 0.55) < 6)] -= 1200  # a 'fracture line'
    array += rng.normal(0, 40, shape)
    return Image(np.clip(array, 0, 4095).astype(np.uint16), spacing=(0.15, 0.15))


def _real(name: str) -> list[Path]:
    found = {"fracatlas": sorted((SHARED / "fracatlas" / "images" / "Fractured").glob("*.jpg"))[:2],
             "cxr-anatomy": sorted((SHARED / "cxr" / "jsrt-scr" / "images").glob("JPCLN00*.png"))[:1]
             + sorted((SHARED / "cxr" / "shenzhen-lung-512" / "test" / "images").glob("*.jpg"))[:1]}
    return found[name]


@pytest.mark.parametrize("name", ["fracatlas", "cxr-anatomy"])
def test_shipped_models_carry_a_small_graph_that_shares_the_weights(name):
    path = shipped_models()[name]
    bundle = load_bundle(name, weights=False)
    assert bundle.onnx_bytes is not None and bundle.state_dict is None
    # the weights live once, in weights.pt (an ensemble holds several networks: the limits are per network)
    assert len(bundle.onnx_bytes) < 400_000 * bundle.members
    assert path.stat().st_size < 5_000_000 * bundle.members


@pytest.mark.parametrize("name", ["fracatlas", "cxr-anatomy"])
def test_onnx_labels_equal_torch_labels_on_shipped_models(name):
    images = [_synthetic(seed) for seed in range(2)] + [read(p) for p in _real(name)]
    by_torch = Predictor.load(name, device="cpu", backend="torch", threads=2)
    by_onnx = Predictor.load(name, device="cpu", backend="onnx", threads=2)
    assert (by_torch.backend, by_onnx.backend) == ("torch", "onnx")
    for image in images:
        a, b = by_torch.predict(image), by_onnx.predict(image)
        assert a.shape == b.shape and a.metadata.get("model") == b.metadata.get("model")
        different = float((a.array != b.array).mean())
        assert different <= MAX_DIFFERENT, f"{name}: {different:.2e} of the pixels differ"
        if name == "cxr-anatomy":  # multi-label: the class confidences too
            for key, value in a.metadata["class_confidence"].items():
                assert abs(value - b.metadata["class_confidence"][key]) < 1e-3


def test_onnx_flip_tta_equals_torch_flip_tta():
    image = _synthetic(5)
    by_torch = Predictor.load("fracatlas", device="cpu", backend="torch", tta=True, threads=2).predict(image)
    by_onnx = Predictor.load("fracatlas", device="cpu", backend="onnx", tta=True, threads=2).predict(image)
    assert float((by_torch.array != by_onnx.array).mean()) <= MAX_DIFFERENT


def test_auto_picks_onnx_when_the_bundle_has_a_graph(monkeypatch):
    bundle = load_bundle("fracatlas", weights=False)
    assert choose_backend(bundle, "auto", "cpu") == "onnx"
    predictor = Predictor(bundle, device="cpu", backend="auto")
    assert predictor.backend == "onnx" and predictor.settings["backend"] == "onnx"
    assert bundle.state_dict is None  # the onnx path never loaded the weights with torch
    assert choose_backend(bundle, "auto", "cuda") == "torch"  # a GPU asked for: torch on CUDA
    assert choose_backend(bundle, "torch", "cpu") == "torch" and choose_backend(bundle, "onnx", "cpu") == "onnx"
    bundle.onnx_bytes = None
    assert choose_backend(bundle, "auto", "cpu") == "torch"  # no graph
    monkeypatch.setattr("radseg.infer.onnx.onnx_available", lambda: False)
    assert choose_backend(load_bundle("fracatlas", weights=False), "auto", "cpu") == "torch"  # no onnxruntime


def test_a_graph_over_other_weights_is_refused(tmp_path):
    from radseg.errors import RadsegError
    from radseg.infer.onnx import OnnxForward

    bundle = load_bundle("fracatlas", weights=False)
    other = load_bundle("cxr-anatomy", weights=False)
    with pytest.raises(RadsegError, match="export-onnx"):
        OnnxForward(bundle.onnx_bytes, weights=other.weights_bytes)
    with pytest.raises(RadsegError):
        OnnxForward(bundle.onnx_bytes)  # the weights it points into are not given


def test_a_resaved_bundle_keeps_its_weights_bytes_and_digest(tmp_path):
    bundle = load_bundle("cxr-anatomy", weights=False)
    saved = load_bundle(bundle.save(tmp_path / "copy.zip"), weights=False)
    assert saved.digest == bundle.digest and saved.onnx_bytes == bundle.onnx_bytes
    by_onnx = Predictor(saved, device="cpu", backend="onnx", threads=2)
    assert by_onnx.predict(_synthetic(3, shape=(300, 280))).shape == (300, 280)
