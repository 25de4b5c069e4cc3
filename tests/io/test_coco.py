"""COCO JSON: bbox/area against hand computations, instances, unique ids, pycocotools reading our files."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pycocotools.coco import COCO

from radseg.errors import ReadError, WriteError
from radseg.image import Image
from radseg.io.coco import CocoWriter, read_coco, write_coco
from radseg.labels import is_multilabel, label_names, make_label_map, make_multilabel

SHAPE = (20, 30)


def _labels(array, names) -> Image:
    return make_label_map(Image(np.asarray(array), spacing=(0.5, 0.5)), names)


@pytest.fixture
def fracture() -> Image:
    """A 3x4 rectangle of class 2: rows 5-7, columns 10-13."""
    array = np.zeros(SHAPE, np.uint8)
    array[5:8, 10:14] = 2
    return _labels(array, {2: "fracture"})


def test_bbox_and_area_match_hand_computation(tmp_path, fracture):
    path = write_coco(fracture, tmp_path / "coco.json", file_name="img1.png")
    data = json.loads(path.read_text())
    assert data["images"] == [{"id": 1, "file_name": "img1.png", "width": 30, "height": 20}]
    assert data["categories"] == [{"id": 2, "name": "fracture", "supercategory": ""}]
    [ann] = data["annotations"]
    assert ann["bbox"] == [10, 5, 4, 3]  # x (column), y (row), width, height
    assert ann["area"] == 12
    assert ann["category_id"] == 2 and ann["iscrowd"] == 0 and ann["image_id"] == 1
    assert isinstance(ann["segmentation"]["counts"], str)
    assert ann["segmentation"]["size"] == [20, 30]


def test_one_annotation_per_8_connected_instance(tmp_path):
    array = np.zeros(SHAPE, np.uint8)
    array[1:4, 1:4] = 1  # blob A
    array[4, 4] = 1  # touches A only at a corner: same instance with 8-connectivity
    array[10:15, 20:25] = 1  # blob B, separate
    path = write_coco(_labels(array, {1: "nodule"}), tmp_path / "c.json", file_name="x.png")
    anns = sorted(json.loads(path.read_text())["annotations"], key=lambda a: a["area"])
    assert [a["area"] for a in anns] == [10, 25]
    assert anns[0]["bbox"] == [1, 1, 4, 4] and anns[1]["bbox"] == [20, 10, 5, 5]


def test_ids_unique_across_images_and_categories_are_the_union(tmp_path):
    first = np.zeros(SHAPE, np.uint8)
    first[0:3, 0:3], first[10:12, 10:12] = 1, 1
    second = np.zeros(SHAPE, np.uint8)
    second[5:9, 5:9], second[15:18, 20:28] = 1, 3
    writer = CocoWriter()
    ids_a = writer.add(_labels(first, {1: "lung"}), "a.png")
    ids_b = writer.add(_labels(second, {1: "lung", 3: "clavicle"}), "b.png")
    assert len(ids_a) == 2 and len(ids_b) == 2
    assert len(set(ids_a) | set(ids_b)) == 4
    data = json.loads(writer.write(tmp_path / "all.json").read_text())
    assert sorted(a["id"] for a in data["annotations"]) == sorted(ids_a + ids_b)
    assert [(c["id"], c["name"]) for c in data["categories"]] == [(1, "lung"), (3, "clavicle")]
    assert [(i["id"], i["file_name"]) for i in data["images"]] == [(1, "a.png"), (2, "b.png")]


def test_pycocotools_reads_our_file_and_masks_match(tmp_path):
    array = np.zeros(SHAPE, np.uint8)
    array[2:9, 3:12] = 1
    rows, cols = np.indices(SHAPE)
    disc = (rows - 13) ** 2 + (cols - 22) ** 2 <= 16
    array[disc] = 5
    writer = CocoWriter()
    writer.add(_labels(array, {1: "lung", 5: "heart"}), "p.png", image_id=42)
    coco = COCO(str(writer.write(tmp_path / "p.json")))
    assert coco.getImgIds() == [42]
    anns = coco.loadAnns(coco.getAnnIds(imgIds=[42]))
    by_category = {a["category_id"]: a for a in anns}
    assert set(by_category) == {1, 5}
    np.testing.assert_array_equal(coco.annToMask(by_category[1]).astype(bool), array == 1)
    np.testing.assert_array_equal(coco.annToMask(by_category[5]).astype(bool), disc)
    assert by_category[5]["area"] == int(disc.sum())
    assert coco.loadCats([5])[0]["name"] == "heart"


def test_label_map_round_trip(tmp_path):
    array = np.zeros(SHAPE, np.uint8)
    array[1:5, 1:5], array[1:5, 8:12], array[10:18, 3:25] = 1, 1, 7
    labels = _labels(array, {1: "rib", 7: "spine"})
    back = read_coco(write_coco(labels, tmp_path / "r.json", file_name="r.png"))
    assert not is_multilabel(back)
    assert back.array.dtype == np.uint8
    np.testing.assert_array_equal(back.array, array)
    assert label_names(back) == {1: "rib", 7: "spine"}
    assert back.metadata["spacing_known"] is False
    np.testing.assert_allclose(back.spacing, [1.0, 1.0])


def test_16bit_category_ids_round_trip(tmp_path):
    array = np.zeros(SHAPE, np.uint16)
    array[0:4, 0:4], array[10:14, 10:20] = 300, 1000
    back = read_coco(write_coco(_labels(array, {300: "T1", 1000: "L5"}), tmp_path / "v.json", file_name="v.png"))
    assert back.array.dtype == np.uint16
    np.testing.assert_array_equal(back.array, array)
    assert label_names(back) == {300: "T1", 1000: "L5"}


def test_overlapping_multilabel_round_trip(tmp_path):
    stack = np.zeros((2, *SHAPE), bool)
    stack[0, 2:12, 2:20] = True
    stack[1, 8:18, 10:28] = True
    mask = make_multilabel(stack, ["lung", "heart"], like=Image(np.zeros(SHAPE)))
    path = write_coco(mask, tmp_path / "m.json", file_name="m.png")
    assert [(c["id"], c["name"]) for c in json.loads(path.read_text())["categories"]] == [(1, "lung"), (2, "heart")]
    back = read_coco(path)
    assert is_multilabel(back) and back.metadata["class_names"] == ["lung", "heart"]
    np.testing.assert_array_equal(back.array, np.moveaxis(stack, 0, -1))


def _fracatlas(path, category_id):
    """A FracAtlas-style file: polygon segmentation, category id as that copy numbers it."""
    data = {
        "images": [{"id": 7, "file_name": "IMG0001.jpg", "width": 16, "height": 12}],
        "categories": [{"id": category_id, "name": "fractured"}],
        "annotations": [{"id": 1, "image_id": 7, "category_id": category_id, "iscrowd": 0,
                         "segmentation": [[2.0, 3.0, 10.0, 3.0, 10.0, 8.0, 2.0, 8.0]],
                         "bbox": [2.0, 3.0, 8.0, 5.0], "area": 40.0}],
    }
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("category_id", [0, 1])
def test_polygons_and_any_category_id(tmp_path, category_id):
    back = read_coco(_fracatlas(tmp_path / "fa.json", category_id), file_name="IMG0001.jpg")
    assert back.shape == (12, 16)
    if category_id == 0:  # 0 is background in a label map: keep it as a class of a multi-label mask
        assert is_multilabel(back) and back.metadata["category_ids"] == [0]
        region = back.array[..., 0]
    else:
        assert label_names(back) == {1: "fractured"}
        region = back.array == 1
    assert region[5, 6] and not region[0, 0] and not region[11, 15]
    # the 8x5 polygon has integer corners (x 2..10, y 3..8), so its edges lie on pixel edges and it covers
    # exactly columns 2..9 and rows 3..7 whatever the boundary rule: 40 pixels
    assert region.sum() == 40 and region[3:8, 2:10].all()


def test_refusals(tmp_path, fracture):
    with pytest.raises(WriteError, match="COCO is 2D; write one image per slice"):
        CocoWriter().add(Image(np.zeros((2, 4, 4), np.uint8)), "vol.png")
    writer = CocoWriter()
    writer.add(fracture, "a.png")
    with pytest.raises(WriteError):  # same id 2, another name
        writer.add(_labels(fracture.array, {2: "tumour"}), "b.png")
    with pytest.raises(WriteError):
        writer.add(fracture, "a.png")
    assert len(writer.images) == 1 and len(writer.annotations) == 1  # unchanged by the refusals
    assert writer.add(fracture, "c.png") == [2]


def test_unwritable_target_names_the_path_and_leaves_nothing(tmp_path, fracture):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(WriteError) as info:
        write_coco(fracture, blocker / "c.json", file_name="a.png")
    assert info.value.path == blocker / "c.json"
    assert [p.name for p in tmp_path.iterdir()] == ["file"]


def test_reader_picks_image_by_file_name(tmp_path, fracture):
    other = np.zeros(SHAPE, np.uint8)
    other[0:2, 0:2] = 2
    writer = CocoWriter()
    writer.add(fracture, "dir/a.png")
    writer.add(_labels(other, {2: "fracture"}), "dir/b.png")
    path = writer.write(tmp_path / "two.json")
    np.testing.assert_array_equal(read_coco(path, file_name="dir/b.png").array, other)
    np.testing.assert_array_equal(read_coco(path, file_name="a.png").array, fracture.array)
    with pytest.raises(ReadError):
        read_coco(path)
    with pytest.raises(ReadError):
        read_coco(path, file_name="missing.png")
