"""Label maps and multi-label masks as .npy (+ JSON sidecar) and .npz: round trips and on-disk layout."""

from __future__ import annotations

import json

import numpy as np
import pytest

from radseg.errors import ReadError, WriteError
from radseg.image import Image
from radseg.io.label_arrays import read_npy, read_npz, sidecar_path, write_npy, write_npz
from radseg.labels import is_multilabel, label_names, make_label_map, make_multilabel


@pytest.fixture
def volume_labels(ct_image) -> Image:
    """A 3D int16 label map on the CT fixture's grid (2.5 x 0.7 x 0.8 mm, non-zero origin)."""
    array = np.zeros(ct_image.shape, np.int16)
    array[2:6, 5:20, 5:25] = 1
    array[7:10, 20:35, 10:40] = 4
    return make_label_map(ct_image.with_array(array), {1: "liver", 4: "spleen"})


@pytest.fixture
def overlapping() -> Image:
    like = Image(np.zeros((20, 30), np.uint16), spacing=(0.4, 0.6), origin=(3.0, 4.0))
    stack = np.zeros((3, 20, 30), bool)
    stack[0, 2:12, 3:20] = True
    stack[1, 8:18, 10:28] = True  # overlaps class 0
    stack[2, 15:19, 0:5] = True
    return make_multilabel(stack, ["left lung", "heart", "aorta"], like=like)


def test_npy_label_map_round_trip(tmp_path, volume_labels):
    npy, side = write_npy(volume_labels, tmp_path / "seg.npy")
    assert (npy, side) == (tmp_path / "seg.npy", tmp_path / "seg.json")
    raw = np.load(npy)
    assert raw.dtype == np.int16
    np.testing.assert_array_equal(raw, volume_labels.array)
    back = read_npy(npy)
    assert not is_multilabel(back)
    assert back.array.dtype == np.int16
    np.testing.assert_array_equal(back.array, volume_labels.array)
    assert label_names(back) == {1: "liver", 4: "spleen"}
    np.testing.assert_allclose(back.affine, volume_labels.affine)
    assert back.metadata["spacing_known"] is True


def test_npy_multilabel_is_bool_classes_first_and_round_trips(tmp_path, overlapping):
    npy, side = write_npy(overlapping, tmp_path / "cxas.npy")
    raw = np.load(npy)
    assert raw.dtype == bool and raw.shape == (3, 20, 30)  # [C, H, W], as CXAS
    np.testing.assert_array_equal(raw, np.moveaxis(overlapping.array, -1, 0))
    sidecar = json.loads(side.read_text())
    assert sidecar["kind"] == "multilabel"
    assert sidecar["class_names"] == ["left lung", "heart", "aorta"]
    assert sidecar["class_values"] == [1, 2, 3]
    back = read_npy(npy)
    assert is_multilabel(back)
    assert back.metadata["class_names"] == ["left lung", "heart", "aorta"]
    np.testing.assert_array_equal(back.array, overlapping.array)
    assert (back.array.sum(axis=-1) > 1).any()  # the overlap survived
    np.testing.assert_allclose(back.affine, overlapping.affine)


def test_npy_without_sidecar_is_plain_array(tmp_path):
    array = np.arange(24, dtype=np.uint8).reshape(4, 6)
    np.save(tmp_path / "bare.npy", array)
    back = read_npy(tmp_path / "bare.npy")
    np.testing.assert_array_equal(back.array, array)
    assert back.metadata["spacing_known"] is False
    np.testing.assert_allclose(back.spacing, [1.0, 1.0])


def test_sidecar_path_sits_beside_the_array(tmp_path):
    assert sidecar_path(tmp_path / "a.b.npy") == tmp_path / "a.b.json"


@pytest.mark.parametrize("fixture", ["volume_labels", "overlapping"])
def test_npz_round_trip(tmp_path, request, fixture):
    labels = request.getfixturevalue(fixture)
    path = write_npz(labels, tmp_path / "seg.npz")
    with np.load(path) as data:
        key = "masks" if fixture == "overlapping" else "labels"
        assert set(data.files) >= {key, "class_names", "class_values", "affine"}
        np.testing.assert_allclose(data["affine"], labels.affine)
        stored = data[key]
    back = read_npz(path)
    np.testing.assert_allclose(back.affine, labels.affine)
    if fixture == "overlapping":
        assert stored.dtype == bool and stored.shape == (3, 20, 30)
        assert is_multilabel(back) and back.metadata["class_names"] == labels.metadata["class_names"]
    else:
        assert stored.dtype == np.int16
        assert label_names(back) == label_names(labels)
        assert back.array.dtype == labels.array.dtype
    np.testing.assert_array_equal(back.array, labels.array)


def test_16bit_label_values_round_trip(tmp_path):
    array = np.zeros((10, 12), np.uint16)
    array[1:4, 1:5], array[6:9, 6:11] = 300, 1000
    labels = make_label_map(Image(array, spacing=(0.3, 0.3)), {300: "T1", 1000: "L5"})
    for back in (read_npy(write_npy(labels, tmp_path / "a.npy")[0]), read_npz(write_npz(labels, tmp_path / "a.npz"))):
        assert back.array.dtype == np.uint16
        np.testing.assert_array_equal(back.array, array)
        assert label_names(back) == {300: "T1", 1000: "L5"}


def test_unknown_spacing_stays_unknown(tmp_path):
    labels = make_label_map(np.eye(5, dtype=np.uint8), {1: "line"})
    assert read_npy(write_npy(labels, tmp_path / "x.npy")[0]).metadata["spacing_known"] is False
    assert read_npz(write_npz(labels, tmp_path / "x.npz")).metadata["spacing_known"] is False


@pytest.mark.parametrize("writer,name", [(write_npy, "x.npy"), (write_npz, "x.npz")])
def test_unwritable_target_names_the_path_and_leaves_nothing(tmp_path, volume_labels, writer, name):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(WriteError) as info:
        writer(volume_labels, blocker / name)
    assert info.value.path == blocker / name
    assert [p.name for p in tmp_path.iterdir()] == ["file"]


def test_writers_refuse_wrong_suffix_and_float_labels(tmp_path, volume_labels):
    with pytest.raises(WriteError):
        write_npy(volume_labels, tmp_path / "x.npz")
    with pytest.raises(WriteError):
        write_npz(volume_labels, tmp_path / "x.npy")
    with pytest.raises(WriteError):
        write_npz(volume_labels.with_array(volume_labels.array + 0.5), tmp_path / "x.npz")
    assert list(tmp_path.iterdir()) == []


def test_sidecar_that_contradicts_the_array_is_an_error(tmp_path, overlapping):
    npy, side = write_npy(overlapping, tmp_path / "m.npy")
    sidecar = json.loads(side.read_text())
    sidecar["class_names"] = ["only one"]
    side.write_text(json.dumps(sidecar))
    with pytest.raises(ReadError):
        read_npy(npy)
