"""Identical pictures under several ids (`radseg datasets duplicates`), on made-up folders and real FracAtlas files."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

import radseg.io as rio
from radseg.case import Case
from radseg.datasets.duplicates import duplicate_groups, pixel_digest
from radseg.image import Image


def _case(case_id, array, split):
    return Case(case_id, images={"image": Image(np.asarray(array))}, split=split)


def test_groups_are_sets_of_identical_pixels_and_nothing_else():
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 255, (20, 30)).astype(np.uint8), rng.integers(0, 255, (20, 30)).astype(np.uint8)
    one_pixel_off = a.copy()
    one_pixel_off[3, 4] ^= 1
    cases = [_case("a", a, "train"), _case("b", b, "train"), _case("a-again", a.copy(), "val"),
             _case("a-off", one_pixel_off, "val"), _case("a-as-float", a.astype(np.float32), "val"),
             _case("b-again", b.copy(), "train")]
    groups, problems = duplicate_groups(cases)
    assert problems == []
    assert [g.cases for g in groups] == [[("a", "train"), ("a-again", "val")], [("b", "train"), ("b-again", "train")]]
    assert [g.across_splits for g in groups] == [True, False]
    # the digest covers shape and type, not the bytes alone
    assert pixel_digest(a) != pixel_digest(a.reshape(30, 20)) and pixel_digest(a) != pixel_digest(a.astype(np.int8))


def test_the_command_lists_groups_writes_csv_and_fails_on_a_picture_in_two_splits(tmp_path):
    from radseg.cli import app

    root = tmp_path / "prepared"
    rng = np.random.default_rng(1)
    for i in range(4):
        image = Image(rng.integers(0, 255, (16, 16)).astype(np.uint8))
        rio.write(image, root / "images" / f"c{i}.png")
        rio.write(Image(np.zeros((16, 16), np.uint8)), root / "labels" / f"c{i}.png")
    (root / "dataset.json").write_text(json.dumps({"name": "d", "labels": {"background": 0, "thing": 1},
                                                   "splits": {"train": ["c0", "c1", "c3"], "val": ["c2"]}}))
    shutil.copy(root / "images" / "c0.png", root / "images" / "c3.png")  # one train picture twice
    clean = CliRunner().invoke(app, ["datasets", "duplicates", str(root), "-q"])
    assert clean.exit_code == 0, clean.output
    assert "2 ids, one split: c0 (train), c3 (train)" in clean.output and "1 picture(s) under more than one id, 0" in clean.output
    shutil.copy(root / "images" / "c0.png", root / "images" / "c2.png")  # and now in val too
    leak = CliRunner().invoke(app, ["datasets", "duplicates", str(root), "-o", str(tmp_path / "d.csv"), "-q"])
    assert leak.exit_code == 1 and "in 2 splits: c0 (train), c3 (train), c2 (val)" in leak.output
    assert (tmp_path / "d.csv").read_text().splitlines() == ["group,case,split", "1,c0,train", "1,c3,train", "1,c2,val"]


def test_a_case_without_a_split_counts_as_training_data():
    a = np.zeros((4, 4), np.uint8)
    groups, _ = duplicate_groups([_case("x", a, None), _case("y", a.copy(), "train")])
    assert not groups[0].across_splits
    groups, _ = duplicate_groups([_case("x", a, None), _case("y", a.copy(), "test")])
    assert groups[0].across_splits


@pytest.mark.realdata
def test_fracatlas_valid_images_that_are_train_images_read_by_pillow():
    """The copies radseg finds in the real FracAtlas folder are the same picture read by Pillow too,
    and a neighbouring id is not (so the match is not something every image shares)."""
    from PIL import Image as PILImage

    from tests.conftest import SHARED_DATA

    folder = SHARED_DATA / "fracatlas" / "images"
    if not folder.is_dir():
        pytest.skip(f"real FracAtlas folder {folder} not present")
    path = {p.stem: p for p in folder.glob("*/*.jpg")}

    def pixels(name):
        return np.asarray(PILImage.open(path[name]).convert("L"))

    for train, valid in (("IMG0002745", "IMG0004116"), ("IMG0002750", "IMG0004114"), ("IMG0002790", "IMG0004151"),
                         ("IMG0004042", "IMG0004375")):
        assert np.array_equal(pixels(train), pixels(valid))
        assert pixel_digest(rio.read(path[train]).array) == pixel_digest(rio.read(path[valid]).array)
    neighbour = next(n for n in ("IMG0002746", "IMG0002744", "IMG0002747") if n in path)
    groups, _ = duplicate_groups([Case(n, images={"image": rio.read(path[n])}, split=s) for n, s in
                                  (("IMG0002745", "train"), (neighbour, "train"), ("IMG0004116", "val"))])
    assert [g.cases for g in groups] == [[("IMG0002745", "train"), ("IMG0004116", "val")]]
