"""Identical pictures under several ids (`radseg datasets duplicates`), on made-up folders and real FracAtlas files."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

import radseg.io as rio
from radseg.case import Case
from radseg.datasets.duplicates import duplicate_groups, picture_digest, pixel_digest, place_copies
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
    a = np.arange(16, dtype=np.uint8).reshape(4, 4)
    groups, _ = duplicate_groups([_case("x", a, None), _case("y", a.copy(), "train")])
    assert not groups[0].across_splits
    groups, _ = duplicate_groups([_case("x", a, None), _case("y", a.copy(), "test")])
    assert groups[0].across_splits


def _folder(root, pictures, rows, *, suffix=".png"):
    """A folder dataset: ``pictures`` case -> array; ``rows`` the metadata CSV lines after the header."""
    for case, array in pictures.items():
        image = Image(array, spacing=(1.0,) * array.ndim) if suffix == ".nii.gz" else Image(array)
        rio.write(image, root / "images" / f"{case}{suffix}")
        rio.write(Image((array > 100).astype(np.uint8)), root / "masks" / f"{case}.png" if array.ndim == 2
                  else root / "masks" / f"{case}.nii.gz", kind=None if array.ndim == 2 else "nifti")
    (root / "metadata.csv").write_text(rows[0] + "\n" + "\n".join(rows[1:]) + "\n")
    return root


def _pictures(n, seed=0, shape=(12, 12)):
    rng = np.random.default_rng(seed)
    return {f"c{i:02d}": rng.integers(0, 255, shape).astype(np.uint8) for i in range(n)}


def test_place_copies_moves_whole_groups_to_the_published_split_and_leaves_the_datasets_own_leakage():
    from radseg.datasets.base import CaseRecord

    def record(case, patient, split):
        return CaseRecord(case_id=case, patient=case if patient is None else patient, load=lambda: None, split=split)

    # a (blank) and b are one patient (radseg's splits); b's picture is also c, whose split the dataset
    # published (val): a and b go to val. d/e: radseg's copies in two splits: both join d's split. f/g: the
    # dataset's own copies in train and test stay (reported); k, radseg's third copy of them, joins f (the
    # first published). h/i: one picture twice in one split. j, m, n: nothing to do, and two blank images
    # (m, n) in two splits are not one picture.
    records = [record("a", "P", "train"), record("b", "P", "train"), record("c", None, "val"),
               record("d", None, "test"), record("e", None, "train"), record("f", None, "train"),
               record("g", None, "test"), record("k", None, "val"), record("h", None, "val"),
               record("i", None, "val"), record("j", None, "train"), record("m", None, "train"),
               record("n", None, "test")]
    digests = {"a": None, "b": "2", "c": "2", "d": "3", "e": "3", "f": "4", "g": "4", "k": "4", "h": "5", "i": "5",
               "j": "6", "m": None, "n": None}
    moved, conflicts, repeats = place_copies(records, digests, given={"c", "f", "g"})  # patients
    assert {r.case_id: r.split for r in records} == {
        "a": "val", "b": "val", "c": "val", "d": "test", "e": "test", "f": "train", "g": "test", "k": "train",
        "h": "val", "i": "val", "j": "train", "m": "train", "n": "test"}
    assert moved == ["a, b moved from train to val, to stay with the identical pictures and patients they share (3 cases in all)",
                     "e moved from train to test, to stay with the identical pictures and patients they share (2 cases in all)",
                     "k moved from val to train, to stay with the identical pictures and patients they share (3 cases in all)"]
    assert conflicts == ["one picture in 2 splits (identical pixels): f (train), g (test), k (train)"]
    assert repeats == ["one picture under 2 ids in val (identical pixels): b (val), c (val)",
                       "one picture under 2 ids in test (identical pixels): d (test), e (test)",
                       "one picture under 2 ids in val (identical pixels): h (val), i (val)"]


def test_a_blank_image_is_no_picture_and_long_groups_are_listed_briefly():
    from radseg.datasets.base import CaseRecord

    blank = np.zeros((8, 8), np.uint8)
    assert picture_digest(blank) is None and picture_digest(np.full((3, 3), 7.5)) is None
    assert picture_digest(np.eye(3)) == pixel_digest(np.eye(3))
    groups, _ = duplicate_groups([_case("x", blank, "train"), _case("y", blank.copy(), "val")])
    assert groups == []  # empty slices in two splits are not a leak
    records = [CaseRecord(case_id=f"c{i}", patient=f"p{i}", load=lambda: None, split="val" if i else "train")
               for i in range(9)]
    moved, _, _ = place_copies(records, {f"c{i}": "same" for i in range(9)}, given=set())
    assert moved == ["c1, c2, c3, c4, c5, c6 and 2 more moved from val to train, to stay with the identical pictures and "
                     "patients they share (9 cases in all)"]


def test_prepare_keeps_copies_in_one_generated_split_and_moves_nothing_else(tmp_path):
    from radseg.datasets.preparation import prepare

    pictures = _pictures(20)
    rows = ["case"] + sorted(pictures)
    clean = prepare("folder", _folder(tmp_path / "clean", pictures, rows), tmp_path / "p-clean", seed=3)
    splits = json.loads((tmp_path / "p-clean" / "dataset.json").read_text())["splits"]
    where = {case: split for split, cases in splits.items() for case in cases}
    # copy a picture over one of another split: the copy joins the first-listed case's split
    first, second = next((a, b) for a in sorted(where) for b in sorted(where) if a < b and where[a] != where[b])
    copied = dict(pictures, **{second: pictures[first].copy()})
    report = prepare("folder", _folder(tmp_path / "copied", copied, rows), tmp_path / "p-copied", seed=3)
    after = json.loads((tmp_path / "p-copied" / "dataset.json").read_text())["splits"]
    moved = {case: split for split, cases in after.items() for case in cases}
    assert moved == {**where, second: where[first]}  # only the copy moved
    assert any(w.startswith(f"kept with a copy: {second} moved from {where[second]} to {where[first]}") for w in report.warnings)
    assert report.split_source.endswith("copies of one picture kept in one split (warnings)")
    assert clean.warnings == []
    result = CliRunner().invoke(_app(), ["datasets", "duplicates", str(tmp_path / "p-copied"), "-q"])
    assert result.exit_code == 0 and "1 picture(s) under more than one id, 0 of them in more than one split" in result.output


def _app():
    from radseg.cli import app

    return app


@pytest.mark.parametrize("suffix", [".png", ".nii.gz"])
def test_prepare_refuses_the_datasets_own_copies_across_splits_and_a_rerun_finds_them_from_the_files(tmp_path, suffix):
    """Written images (NIfTI) and copied ones (PNG): the resumed run digests the prepared files and must
    find what the first run found in memory."""
    from radseg.datasets.base import LeakageError
    from radseg.datasets.preparation import prepare

    shape = (12, 12) if suffix == ".png" else (4, 10, 12)
    pictures = _pictures(4, shape=shape)
    pictures["c03"] = pictures["c00"].copy()
    root = _folder(tmp_path / "src", pictures, ["case,split", "c00,train", "c01,train", "c02,val", "c03,val"],
                   suffix=suffix)
    with pytest.raises(LeakageError, match=r"in 2 splits \(identical pixels\): c00 \(train\), c03 \(val\)"):
        prepare("folder", root, tmp_path / "out")
    report = prepare("folder", root, tmp_path / "out", allow_leakage=True)
    assert report.kept == 4 and report.written == 0  # resumed: every digest came from the prepared files
    assert ("leakage kept on request (--allow-leakage): one picture in 2 splits (identical pixels): "
            "c00 (train), c03 (val)") in report.warnings
    assert json.loads((tmp_path / "out" / "dataset.json").read_text())["splits"]["val"] == ["c02", "c03"]
    refused = CliRunner().invoke(_app(), ["datasets", "prepare", "folder", "--root", str(root), "-o",
                                          str(tmp_path / "again"), "-q"])
    assert refused.exit_code == 1 and "leakage: one picture in 2 splits" in refused.output


def test_a_case_written_now_and_one_resumed_are_compared_by_their_stored_pixels(tmp_path):
    """An int64 MHA source is stored as 8-bit NIfTI: a rerun that writes one copy and resumes the other
    must still see one picture (an in-memory digest of the source would not)."""
    import SimpleITK as sitk

    from radseg.datasets.base import LeakageError
    from radseg.datasets.preparation import prepare

    root = tmp_path / "src"
    pictures = {k: v.astype(np.int64)[None].repeat(3, 0) for k, v in _pictures(3).items()}
    pictures["c03"] = pictures["c00"].copy()
    for case, array in pictures.items():
        (root / "images").mkdir(parents=True, exist_ok=True)
        sitk.WriteImage(sitk.GetImageFromArray(array), str(root / "images" / f"{case}.mha"))
        rio.write(Image((array > 100).astype(np.uint8)), root / "masks" / f"{case}.nii.gz", kind="nifti")
    (root / "metadata.csv").write_text("case,split\nc00,train\nc01,train\nc02,val\nc03,val\n")
    report = prepare("folder", root, tmp_path / "out", allow_leakage=True)
    assert report.written == 4 and any("c00 (train), c03 (val)" in w for w in report.warnings)
    assert rio.read(tmp_path / "out" / "images" / "c03.nii.gz").array.dtype != np.int64  # stored otherwise
    (tmp_path / "out" / "labels" / "c03.nii.gz").unlink()  # c03 is written again, c00 resumed
    with pytest.raises(LeakageError, match=r"c00 \(train\), c03 \(val\)"):
        prepare("folder", root, tmp_path / "out")
    assert not (tmp_path / "out" / "dataset.json").exists()  # the refused rerun leaves no stale tables


def test_a_resumed_case_whose_stored_image_no_longer_reads_is_written_again(tmp_path):
    from radseg.datasets.preparation import prepare

    root = _folder(tmp_path / "src", _pictures(3), ["case", "c00", "c01", "c02"])
    prepare("folder", root, tmp_path / "out")
    (tmp_path / "out" / "images" / "c01.png").write_bytes(b"\x89PNG\r\n\x1a\n damaged")
    report = prepare("folder", root, tmp_path / "out")
    assert (report.kept, report.written, report.failed) == (2, 1, [])
    assert np.array_equal(rio.read(tmp_path / "out" / "images" / "c01.png").array, rio.read(root / "images" / "c01.png").array)


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
