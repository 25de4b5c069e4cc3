"""Every label writer in the registry, through `radseg.io.write(..., kind=)` and `read_labels`: identical labels back."""

from __future__ import annotations

import numpy as np
import pytest

import radseg.io as rio
from radseg.errors import WriteError
from radseg.image import Image
from radseg.io.label_formats import LABEL_WRITERS
from radseg.labels import make_label_map, to_label_map
from radseg.registry import UnknownNameError


@pytest.fixture
def xray_labels() -> Image:
    array = np.zeros((48, 64), np.uint8)
    array[4:20, 6:30] = 1
    array[25:44, 35:60] = 3
    array[30:34, 2:8] = 3  # a second instance of class 3
    return make_label_map(Image(array, spacing=(0.3, 0.25)), {1: "right lung", 3: "heart"})


@pytest.mark.parametrize("kind, name", [("nifti", "l.nii.gz"), ("png", "l.png"), ("npy", "l.npy"),
                                        ("npz", "l.npz"), ("coco", "l.json")])
def test_2d_label_round_trip_by_kind(tmp_path, xray_labels, kind, name):
    written = rio.write(xray_labels, tmp_path / name, kind=kind)
    first = written[0] if isinstance(written, list) else written
    back = to_label_map(rio.read_labels(first))
    np.testing.assert_array_equal(back.array, xray_labels.array)
    assert back.metadata["label_names"] == {1: "right lung", 3: "heart"}
    if kind != "coco":  # COCO has no pixel size
        np.testing.assert_allclose(back.spacing, xray_labels.spacing)


def test_class_png_layout_round_trip(tmp_path, xray_labels):
    paths = rio.write(xray_labels, tmp_path / "out", kind="png-classes", case="patient7")
    assert [p.name for p in paths] == ["right lung.png", "heart.png", "classes.json"]
    assert all(p.parent == tmp_path / "out" / "patient7" for p in paths)
    back = to_label_map(rio.read_labels(tmp_path / "out" / "patient7", like=xray_labels))
    np.testing.assert_array_equal(back.array, xray_labels.array)


def test_overlay_needs_image_and_refuses_jpeg_labels(tmp_path, xray_labels):
    with pytest.raises(WriteError, match="image"):
        rio.write(xray_labels, tmp_path / "o.png", kind="overlay")
    image = Image((np.arange(48 * 64).reshape(48, 64) * 20 % 4096).astype(np.uint16), spacing=(0.3, 0.25))
    path = rio.write(xray_labels, tmp_path / "o.jpg", kind="jpg", image=image)
    assert path.exists()
    with pytest.raises(WriteError, match="overlay"):
        rio.write(xray_labels, tmp_path / "labels.png", kind="jpg", image=image)
    with pytest.raises(WriteError, match="labels.jpg: JPEG is lossy"):
        rio.write(xray_labels, tmp_path / "labels.jpg", kind="png")


def test_unknown_kind_lists_valid_ones(tmp_path, xray_labels):
    with pytest.raises(UnknownNameError, match="did you mean 'dicom-seg'|Did you mean 'dicom-seg'"):
        rio.write(xray_labels, tmp_path / "x", kind="dicomseg")
    assert {"nifti", "png", "png-classes", "npy", "npz", "coco", "dicom-seg", "overlay"} <= set(LABEL_WRITERS.names())
