"""Fixtures shared by the training tests."""

from __future__ import annotations

import json

import numpy as np
import pytest


@pytest.fixture
def prepared(tmp_path):
    """A prepared folder of six disc phantoms (train case0-3, val case4, test case5) with an orphan image, a
    broken label and a broken image beside them."""
    import radseg.io as rio
    from tests.train.shapes import disc_case

    root = tmp_path / "prepared"
    rng = np.random.default_rng(0)
    for i in range(6):
        image, labels = disc_case(rng)
        rio.write(image, root / "images" / f"case{i}.nii.gz")
        rio.write(labels, root / "labels" / f"case{i}.png", kind="png")  # another format, same grid
    (root / "images" / "orphan.nii.gz").write_bytes((root / "images" / "case0.nii.gz").read_bytes())
    (root / "labels" / "broken.png").write_bytes(b"nope")
    rio.write(image, root / "images" / "broken.nii.gz")
    info = {"name": "discs", "labels": {"background": 0, "disc": 1, "square": 2},
            "splits": {"train": ["case0", "case1", "case2", "case3"], "val": ["case4"], "test": ["case5"]}}
    (root / "dataset.json").write_text(json.dumps(info))
    return root
