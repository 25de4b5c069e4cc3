"""Label PNGs, per-class PNGs (CXAS layout) and overlay previews: round trips and on-disk checks with Pillow."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image as PILImage

import radseg.io.label_png as label_png
from radseg.errors import ReadError, WriteError
from radseg.image import Image
from radseg.io.label_png import (
    label_colour, read_class_pngs, read_label_png, write_class_pngs, write_label_png, write_overlay,
)
from radseg.labels import is_multilabel, label_names, make_label_map, make_multilabel

SHAPE = (40, 50)


def _disc(shape, centre, radius):
    rows, cols = np.indices(shape)
    return (rows - centre[0]) ** 2 + (cols - centre[1]) ** 2 <= radius ** 2


@pytest.fixture
def chest() -> Image:
    """A 2D 'radiograph' with known, non-square pixels and a non-zero origin."""
    ramp = np.linspace(1000, 40000, SHAPE[0] * SHAPE[1]).reshape(SHAPE)
    return Image(ramp.astype(np.uint16), spacing=(0.5, 0.7), origin=(10.0, -5.0))


@pytest.fixture
def labels(chest) -> Image:
    array = np.zeros(SHAPE, np.uint8)
    array[5:15, 5:20] = 1
    array[_disc(SHAPE, (25, 35), 8)] = 2
    return make_label_map(chest.with_array(array), {1: "left lung", 2: "heart"})


def _overlapping(chest) -> Image:
    stack = np.zeros((3, *SHAPE), bool)
    stack[0, 5:20, 5:25] = True
    stack[1, 10:30, 15:40] = True  # overlaps class 0
    stack[2, 32:38, 2:8] = True
    return make_multilabel(stack, ["lung", "heart", "clavicle"], like=chest)


# --- one label PNG -----------------------------------------------------------------------------

def test_label_png_round_trip(tmp_path, labels):
    path = write_label_png(labels, tmp_path / "labels.png")
    back = read_label_png(path)
    assert back.array.dtype == np.uint8
    np.testing.assert_array_equal(back.array, labels.array)
    assert label_names(back) == {1: "left lung", 2: "heart"}
    assert back.metadata["spacing_known"] is True
    np.testing.assert_allclose(back.spacing, [0.5, 0.7])
    np.testing.assert_allclose(back.affine, labels.affine)


def test_label_png_on_disk_is_plain_8bit_png_with_text_chunks(tmp_path, labels):
    path = write_label_png(labels, tmp_path / "labels.png")
    with PILImage.open(path) as pil:
        assert pil.format == "PNG" and pil.mode == "L"
        np.testing.assert_array_equal(np.array(pil), labels.array)
        text = dict(pil.text)
    assert json.loads(text["radseg:label_names"]) == {"1": "left lung", "2": "heart"}
    assert json.loads(text["radseg:spacing"]) == [0.5, 0.7]


def test_label_png_16bit_round_trip(tmp_path, chest):
    array = np.zeros(SHAPE, np.uint16)
    array[2:10, 2:10] = 300
    array[20:30, 20:45] = 1000
    labels = make_label_map(chest.with_array(array), {300: "T1 vertebra", 1000: "sacrum"})
    path = write_label_png(labels, tmp_path / "spine.png")
    with PILImage.open(path) as pil:
        assert pil.mode in ("I;16", "I")  # 16-bit greyscale, not clipped to 8 bits
        assert int(np.array(pil).max()) == 1000
    back = read_label_png(path)
    assert back.array.dtype == np.uint16
    np.testing.assert_array_equal(back.array, array)
    assert label_names(back) == {300: "T1 vertebra", 1000: "sacrum"}


def test_unknown_spacing_is_not_invented(tmp_path):
    labels = make_label_map(np.eye(6, dtype=np.uint8) * 3, {3: "wire"})
    assert labels.metadata["spacing_known"] is False
    back = read_label_png(write_label_png(labels, tmp_path / "wire.png"))
    assert back.metadata["spacing_known"] is False
    np.testing.assert_array_equal(back.array, labels.array)
    assert label_names(back) == {3: "wire"}


def test_plain_png_without_chunks_reads_as_label_map(tmp_path):
    array = np.zeros((8, 9), np.uint8)
    array[2:4, 3:7] = 5
    PILImage.fromarray(array).save(tmp_path / "other_tool.png")
    back = read_label_png(tmp_path / "other_tool.png")
    np.testing.assert_array_equal(back.array, array)
    assert back.metadata["spacing_known"] is False
    assert label_names(back) == {5: "label_5"}


def test_non_overlapping_multilabel_becomes_one_png(tmp_path, chest):
    stack = np.zeros((2, *SHAPE), bool)
    stack[0, :10] = True
    stack[1, 20:] = True
    back = read_label_png(write_label_png(make_multilabel(stack, ["a", "b"], like=chest), tmp_path / "ab.png"))
    np.testing.assert_array_equal(back.array, stack[0] * 1 + stack[1] * 2)
    assert label_names(back) == {1: "a", 2: "b"}


@pytest.mark.parametrize("case", ["jpeg", "3d", "negative", "too_big", "overlap"])
def test_label_png_refusals_name_the_path_and_write_nothing(tmp_path, labels, chest, case):
    path = tmp_path / ("labels.jpg" if case == "jpeg" else "labels.png")
    bad = {
        "jpeg": labels,
        "3d": Image(np.zeros((3, 4, 5), np.uint8)),
        "negative": labels.with_array(labels.array.astype(np.int32) - 1),
        "too_big": labels.with_array(labels.array.astype(np.int32) * 70000),
        "overlap": _overlapping(chest),
    }[case]
    with pytest.raises(WriteError) as info:
        write_label_png(bad, path)
    assert info.value.path == path and str(path) in str(info.value)
    if case == "jpeg":
        assert "lossy" in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_unwritable_target_gives_write_error_and_no_partial_file(tmp_path, labels):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("x")
    path = blocker / "labels.png"
    with pytest.raises(WriteError) as info:
        write_label_png(labels, path)
    assert info.value.path == path
    assert [p.name for p in tmp_path.iterdir()] == ["not_a_folder"]


def test_failed_png_encode_leaves_no_partial_file(tmp_path, labels, monkeypatch):
    def boom(self, fp, *args, **kwargs):
        with open(fp, "wb") as handle:
            handle.write(b"\x89PNG half")
        raise OSError("disk full")

    monkeypatch.setattr(PILImage.Image, "save", boom)
    with pytest.raises(WriteError):
        write_label_png(labels, tmp_path / "labels.png")
    assert list(tmp_path.iterdir()) == []


# --- one PNG per class ------------------------------------------------------------------------------

def test_class_pngs_cxas_layout(tmp_path, labels):
    paths = write_class_pngs(labels, tmp_path, "case1")
    folder = tmp_path / "case1"
    assert [p.name for p in paths] == ["left lung.png", "heart.png", "classes.json"]
    assert sorted(p.name for p in folder.iterdir()) == ["classes.json", "heart.png", "left lung.png"]
    for name, value in (("left lung", 1), ("heart", 2)):
        with PILImage.open(folder / f"{name}.png") as pil:
            assert pil.mode == "L" and pil.size == (SHAPE[1], SHAPE[0])
            array = np.array(pil)
        assert set(np.unique(array)) == {0, 255}
        np.testing.assert_array_equal(array == 255, labels.array == value)
    manifest = json.loads((folder / "classes.json").read_text())
    assert [(c["name"], c["value"], c["file"]) for c in manifest["classes"]] == [
        ("left lung", 1, "left lung.png"), ("heart", 2, "heart.png")]


def test_class_pngs_round_trip_overlapping_multilabel(tmp_path, chest):
    mask = _overlapping(chest)
    write_class_pngs(mask, tmp_path, "case2")
    back = read_class_pngs(tmp_path / "case2")
    assert is_multilabel(back)
    assert back.metadata["class_names"] == ["lung", "heart", "clavicle"]
    assert back.metadata["class_values"] == [1, 2, 3]
    np.testing.assert_array_equal(back.array, mask.array)
    np.testing.assert_allclose(back.affine, chest.affine)
    assert back.metadata["spacing_known"] is True


def test_class_pngs_keep_label_values_and_order(tmp_path, labels):
    write_class_pngs(labels, tmp_path, "c")
    back = read_class_pngs(tmp_path / "c")
    assert back.metadata["class_names"] == ["left lung", "heart"]
    np.testing.assert_array_equal(back.array[..., 0], labels.array == 1)
    np.testing.assert_array_equal(back.array[..., 1], labels.array == 2)


def test_class_file_names_are_sanitised_and_unique(tmp_path, chest):
    stack = np.zeros((4, *SHAPE), bool)
    for index in range(4):
        stack[index, index * 5:(index + 1) * 5] = True
    names = ["Lung/left", "Lung:left", "lung_left", "../escape"]
    paths = write_class_pngs(make_multilabel(stack, names, like=chest), tmp_path, "case")
    files = [p.name for p in paths[:-1]]
    assert files[0] == "Lung_left.png" and files[3] == "_escape.png"
    assert len({f.lower() for f in files}) == 4  # distinct even on case-insensitive file systems
    assert all(p.parent == tmp_path / "case" for p in paths)
    back = read_class_pngs(tmp_path / "case")
    assert back.metadata["class_names"] == names
    np.testing.assert_array_equal(back.array, np.moveaxis(stack, 0, -1))


def test_class_pngs_geometry_from_like_and_shape_check(tmp_path, labels):
    write_class_pngs(labels, tmp_path, "c")
    other = Image(np.zeros(SHAPE, np.int16), spacing=(0.2, 0.3), origin=(1.0, 2.0))
    back = read_class_pngs(tmp_path / "c", like=other)
    np.testing.assert_allclose(back.affine, other.affine)
    with pytest.raises(ReadError):
        read_class_pngs(tmp_path / "c", like=Image(np.zeros((5, 5))))


def test_plain_cxas_folder_without_manifest(tmp_path):
    folder = tmp_path / "cxas_case"
    folder.mkdir()
    a, b = np.zeros((6, 7), np.uint8), np.zeros((6, 7), np.uint8)
    a[1:3, 1:4], b[2:5, 2:6] = 255, 255
    PILImage.fromarray(b).save(folder / "right lung.png")
    PILImage.fromarray(a).save(folder / "heart.png")
    back = read_class_pngs(folder)
    assert back.metadata["class_names"] == ["heart", "right lung"]
    np.testing.assert_array_equal(back.array[..., 0], a > 0)
    np.testing.assert_array_equal(back.array[..., 1], b > 0)
    assert back.metadata["spacing_known"] is False


def test_class_pngs_rewrite_replaces_case(tmp_path, labels):
    write_class_pngs(labels, tmp_path, "c")
    changed = labels.with_array(np.where(labels.array == 1, 2, labels.array).astype(np.uint8))
    write_class_pngs(changed, tmp_path, "c")
    back = read_class_pngs(tmp_path / "c")
    assert back.metadata["class_names"] == ["left lung", "heart"]  # names from the table, class 1 now empty
    assert not back.array[..., 0].any()
    np.testing.assert_array_equal(back.array[..., 1], changed.array == 2)


def test_class_pngs_failure_leaves_no_case_folder(tmp_path, labels, monkeypatch):
    calls = []

    def fail_second(image, path):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real(image, path)

    real = label_png.write_raster
    monkeypatch.setattr(label_png, "write_raster", fail_second)
    with pytest.raises(WriteError) as info:
        write_class_pngs(labels, tmp_path, "c")
    assert info.value.path == tmp_path / "c"
    assert list(tmp_path.iterdir()) == []  # neither the case nor the staging folder


def test_class_pngs_refuse_bad_targets(tmp_path, labels):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(WriteError) as info:
        write_class_pngs(labels, blocker, "c")
    assert info.value.path == blocker / "c"
    with pytest.raises(WriteError):
        write_class_pngs(labels, tmp_path, "../up")
    with pytest.raises(WriteError):
        write_class_pngs(Image(np.zeros((2, 3, 4), np.uint8)), tmp_path, "vol")
    assert [p.name for p in tmp_path.iterdir()] == ["file"]


# --- overlay preview --------------------------------------------------------------------------

def _rgb(path):
    with PILImage.open(path) as pil:
        return np.array(pil.convert("RGB")).astype(int)


def _grey(value, low, high):
    return np.clip((value - low) / (high - low), 0, 1) * 255


def test_overlay_colours_outline_and_legend(tmp_path, chest, labels):
    path = write_overlay(chest, labels, tmp_path / "overlay.png", alpha=0.4, window=(0, 40000))
    rgb = _rgb(path)
    assert rgb.shape[0] >= SHAPE[0] and rgb.shape[1] > SHAPE[1] + 20  # image plus a legend panel
    picture = rgb[: SHAPE[0], : SHAPE[1]]
    red = np.array(label_colour(1))
    # Inside class 1, away from its outline: 60 % grey + 40 % the class colour.
    grey = _grey(float(chest.array[10, 12]), 0, 40000)
    np.testing.assert_allclose(picture[10, 12], 0.6 * grey + 0.4 * red, atol=1.01)
    np.testing.assert_array_equal(picture[5, 12], red)  # outline pixel: full colour
    # Far from every label: untouched grey, windowed as asked (not washed out).
    for row, col in ((38, 2), (0, 45)):
        r, g, b = picture[row, col]
        assert r == g == b
        assert abs(r - _grey(float(chest.array[row, col]), 0, 40000)) <= 1
    legend = rgb[:, SHAPE[1]:]
    assert (legend[..., 0] != legend[..., 1]).any()  # coloured swatches
    for value in (1, 2):
        assert (legend == label_colour(value)).all(axis=-1).any()


def test_overlay_percentile_window_shows_16bit_contrast(tmp_path):
    ramp = np.tile(np.linspace(20000, 60000, 64), (48, 1)).astype(np.uint16)
    image = Image(ramp, spacing=(0.2, 0.2))
    labels = make_label_map(image.with_array(np.zeros(ramp.shape, np.uint8)), {})
    rgb = _rgb(write_overlay(image, labels, tmp_path / "o.png"))[:48, :64]
    assert (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()
    assert rgb[:, 0, 0].max() <= 5 and rgb[:, -1, 0].min() >= 250  # full grey range used
    assert 100 < rgb[20, 32, 0] < 155


def test_overlay_blends_overlapping_classes(tmp_path, chest):
    mask = _overlapping(chest)
    rgb = _rgb(write_overlay(chest, mask, tmp_path / "multi.png", alpha=0.5, window=(0, 40000)))
    grey = _grey(float(chest.array[15, 20]), 0, 40000)  # inside classes 1 and 2, off both outlines
    mixed = (np.array(label_colour(1)) + np.array(label_colour(2))) / 2
    np.testing.assert_allclose(rgb[15, 20], 0.5 * grey + 0.5 * mixed, atol=1.01)


def test_overlay_as_jpeg(tmp_path, chest, labels):
    path = write_overlay(chest, labels, tmp_path / "preview.jpg")
    with PILImage.open(path) as pil:
        assert pil.format == "JPEG" and pil.height >= SHAPE[0] and pil.width > SHAPE[1]


def test_overlay_refusals(tmp_path, chest, labels):
    with pytest.raises(WriteError):
        write_overlay(chest, labels, tmp_path / "o.tif")
    with pytest.raises(WriteError):
        write_overlay(chest, labels, tmp_path / "o.png", alpha=1.5)
    with pytest.raises(WriteError):
        write_overlay(Image(np.zeros((4, 5))), labels, tmp_path / "o.png")
    assert list(tmp_path.iterdir()) == []


def test_label_colours_are_fixed_distinct_and_not_grey():
    colours = [label_colour(v) for v in range(1, 19)] + [label_colour(300), label_colour(1000)]
    assert len(set(colours)) == len(colours)
    assert all(len(set(c)) > 1 for c in colours)
    assert label_colour(7) == label_colour(np.uint16(7))
