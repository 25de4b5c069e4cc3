"""A tiny trained model (discs and squares, seconds to train) and sample uploads for the serve tests."""

from __future__ import annotations

import numpy as np
import pytest

from radseg.image import Image


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """A 2D model bundle that finds a bright disc (1) and a dimmer square (2); trained once per session."""
    pytest.importorskip("torch")
    pytest.importorskip("monai")
    from radseg.train.config import TrainConfig
    from radseg.train.data import from_pairs
    from radseg.train.loop import train
    from tests.train.shapes import disc_case

    rng = np.random.default_rng(0)
    data = from_pairs([disc_case(rng) for _ in range(12)])
    root = tmp_path_factory.mktemp("serve-model")
    config = TrainConfig(output=root / "discs", preprocessing={"size": (64, 64)},
                         arch_kwargs={"channels": [8, 16, 32], "strides": [2, 2], "num_res_units": 1},
                         epochs=6, iters_per_epoch=10, batch_size=4, val_every=3, lr=1e-2, threads=2)
    result = train(config, data)
    assert result.best_dice is not None and result.best_dice > 0.7, result.best_dice
    return result.model_path


@pytest.fixture(scope="session")
def disc_image():
    """``(image, truth labels)``: a disc on the left and a square on the right, 0.5 mm pixels."""
    from tests.train.shapes import disc_case

    return disc_case(np.random.default_rng(99))


def grey_png(image: Image, path):
    """``image`` as an 8-bit grey PNG, the kind of file a user drags into the page."""
    from PIL import Image as PILImage

    array = image.array.astype(np.float64)
    array = np.clip((array - array.min()) / (np.ptp(array) or 1.0) * 255, 0, 255).astype(np.uint8)
    PILImage.fromarray(array).save(path)
    return path
