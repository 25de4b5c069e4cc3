"""Case, the one carrier: lazy roles, unload, and the prepared-dataset reader that yields Cases."""

from __future__ import annotations

import json

import numpy as np
import pytest

from radseg.case import Case
from radseg.datasets.base import labels_on_grid
from radseg.datasets.prepared import open_prepared
from radseg.errors import ReadError
from radseg.image import Image
from radseg.io import write
from radseg.labels import make_label_map


def test_loader_runs_once_until_unload():
    calls = []

    def load():
        calls.append(1)
        return Image(np.full((3, 4), len(calls), np.int16))

    case = Case("c1", images={"image": load})
    assert calls == [] and not case.images.is_loaded("image")
    assert case.image.array[0, 0] == 1 and case.image.array[0, 0] == 1 and calls == [1]
    case.unload()
    assert not case.images.is_loaded("image")
    assert case.image.array[0, 0] == 2 and calls == [1, 1]


def test_in_memory_images_survive_unload_and_single_role_is_enforced():
    image = Image(np.zeros((2, 2)))
    case = Case("c2", images={"ct": image, "pet": image}, labels={"bone": image})
    case.unload()
    assert case.images["ct"] is image and case.label is image
    with pytest.raises(ValueError, match="case 'c2' has 2 images \\(ct, pet\\); pick one by key"):
        case.image
    with pytest.raises(TypeError, match="'x': expected an Image or a loader"):
        case.images["x"] = np.zeros(3)


def test_raster_mask_takes_its_image_grid_even_when_the_image_is_flipped():
    affine = np.array([[-0.5, 0, 100], [0, 0.5, -20], [0, 0, 1]], float)  # rows run backwards
    image = Image(np.arange(12.0).reshape(3, 4), affine=affine)
    mask = Image(np.eye(3, 4, dtype=np.uint8), metadata={"spacing_known": False})
    placed = labels_on_grid(mask, image, name="m.png")
    assert np.array_equal(placed.array, mask.array)  # pixels as drawn: never flipped
    assert np.allclose(placed.affine, affine)


def _folder(root, names, *, spec=None, orphan_label=None):
    for name in names:
        image = Image(np.random.default_rng(len(name)).normal(size=(6, 5)).astype(np.float32), spacing=(0.7, 0.7))
        write(image, root / "images" / f"{name}.nii.gz")
        write(make_label_map(image.with_array((image.array > 0).astype(np.uint8)), {1: "bone"}),
              root / "labels" / f"{name}.nii.gz", kind="nifti")
    if orphan_label:
        (root / "labels" / orphan_label).write_bytes(b"x")
    if spec is not None:
        (root / "dataset.json").write_text(json.dumps(spec))


def test_hand_made_folder_pairs_by_name_and_reports_orphans(tmp_path):
    _folder(tmp_path, ["b", "a"], orphan_label="z.nii.gz",
            spec={"labels": {"background": 0, "bone": 1}, "splits": {"train": ["b"]}})
    data = open_prepared(tmp_path)
    assert [c.case_id for c in data.cases] == ["b", "a"]  # listed split first, then the rest by name
    assert [c.split for c in data.cases] == ["train", None]
    assert data.label_names == {1: "bone"}  # nnU-Net v2 orientation read too
    assert data.problems == [(str(tmp_path / "labels" / "z.nii.gz"), "no image with the same name in images/")]
    case = data.cases[1]
    assert not case.images.is_loaded("image") and not case.labels.is_loaded("labels")
    assert case.label.same_geometry(case.image) and set(np.unique(case.label.array)) <= {0, 1}
    assert case.sources["image"] == tmp_path / "images" / "a.nii.gz"


def test_label_names_are_authoritative_over_labels(tmp_path):
    _folder(tmp_path, ["a"], spec={"label_names": {"1": "femur"}, "labels": {"bone": 1}})
    assert open_prepared(tmp_path).label_names == {1: "femur"}


def test_not_a_dataset_is_named(tmp_path):
    with pytest.raises(ReadError, match="not a prepared dataset \\(no dataset.json\\)"):
        open_prepared(tmp_path)
    with pytest.raises(ReadError, match="no such dataset folder"):
        open_prepared(tmp_path / "missing")


def _shift_label(root, name, mm):
    from radseg.io import read_labels

    labels = read_labels(root / "labels" / f"{name}.nii.gz")
    affine = labels.affine.copy()
    affine[0, -1] += mm
    write(Image(labels.array, affine=affine, metadata=labels.metadata), root / "labels" / f"{name}.nii.gz",
          kind="nifti")


def test_training_refuses_a_shifted_label_map_that_other_readers_take_with_a_warning(tmp_path):
    from radseg.train.data import load_prepared

    _folder(tmp_path, ["a", "b", "c"])
    _shift_label(tmp_path, "b", 5.0)
    shifted = next(c for c in open_prepared(tmp_path).cases if c.case_id == "b")
    assert "affines up to 5 mm apart" in shifted.label.metadata["grid_warning"]
    with pytest.raises(ReadError, match="labels are not on the image's grid"):
        next(c for c in open_prepared(tmp_path, strict_grid=True).cases if c.case_id == "b").label
    data = load_prepared(tmp_path)
    assert [c.case_id for c in data.cases] == ["a", "c"]
    assert len(data.problems) == 1 and "labels are not on the image's grid" in data.problems[0][1]


def test_unsplit_cases_export_as_train(tmp_path):
    from radseg.datasets import export

    _folder(tmp_path / "hand", ["a", "b"])
    result = export(tmp_path / "hand", tmp_path / "coco", to="coco")
    assert result.failed == [] and result.written == 2
    annotations = json.loads((tmp_path / "coco" / "annotations" / "instances_train.json").read_text())
    assert sorted(e["radseg_case"] for e in annotations["images"]) == ["a", "b"]
