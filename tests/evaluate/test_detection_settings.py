"""benchmarks/fracatlas_detection_settings.py: each true object's best overlap with any detection."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

from radseg.evaluate.instances import encode_mask

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def settings():
    sys.path.insert(0, str(BENCHMARKS))  # the script imports its sibling scripts by name
    try:
        yield importlib.import_module("fracatlas_detection_settings")
    finally:
        sys.path.remove(str(BENCHMARKS))


def _square(top: int, left: int, size: int, shape=(40, 40)) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[top:top + size, left:left + size] = True
    return mask


def test_best_overlap_is_the_highest_iou_per_truth(settings):
    first, second = _square(0, 0, 10), _square(20, 20, 10)
    # a detection shifted by 5 px along one axis: 50 shared pixels of 150 -> IoU 1/3;
    # a bigger one holding the first truth whole: 100 of 144 -> IoU 0.694
    shifted, larger = _square(0, 5, 10), _square(0, 0, 12)
    best = settings.best_overlaps([encode_mask(first), encode_mask(second)],
                                  [(encode_mask(shifted), 0.9), (encode_mask(larger), 0.4)])
    assert best[0] == pytest.approx(100 / 144)
    assert best[1] == 0.0  # nothing touches the second


def test_best_overlap_without_detections_or_truths(settings):
    truth = encode_mask(_square(5, 5, 4))
    assert settings.best_overlaps([truth], []).tolist() == [0.0]
    assert settings.best_overlaps([], [(truth, 1.0)]).size == 0
