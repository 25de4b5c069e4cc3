"""Export of prepared datasets to COCO, YOLO segmentation and nnU-Net v2 raw."""

from __future__ import annotations

import json

import numpy as np
import pytest

from radseg import datasets
from radseg.datasets.polygons import polygon_mask
from radseg.datasets.preparation import prepare
from radseg.errors import WriteError
from radseg.image import Image
from radseg.io import read, read_labels, write
from radseg.labels import make_label_map
from radseg.registry import UnknownNameError

from .trees import fracatlas_tree


@pytest.fixture
def fracatlas(tmp_path):
    root = tmp_path / "fa"
    expected = fracatlas_tree(root)
    prepare("fracatlas", root, tmp_path / "prepared", allow_missing=True, options={"negatives": True},
            fractions=(1.0, 0.0, 0.0))
    return tmp_path / "prepared", expected, root


@pytest.fixture
def folder3d(tmp_path):
    """Three CT-like volumes with labels 2 and 5 (not consecutive: nnU-Net needs renumbering)."""
    root = tmp_path / "ct"
    for k in range(3):
        volume = np.full((5, 12, 14), -500, np.int16)
        volume[1:4, 3:9, 2:7] = 300
        volume[0, 0, 0] += k  # three pictures, not one under three ids (prepare refuses that across splits)
        labels = np.zeros((5, 12, 14), np.uint8)
        labels[1:3, 3:6, 2:5] = 2
        labels[2:4, 7:10, 9:12] = 5
        image = Image(volume, spacing=(2.5, 0.7, 0.8), origin=(10.0 * k, -3.0, 5.0))
        write(image, root / "images" / f"ct{k}.nii.gz")
        write(make_label_map(image.with_array(labels)), root / "masks" / f"ct{k}.nii.gz", kind="nifti")
    (root / "metadata.csv").write_text("case,split\nct0,train\nct1,val\nct2,test\n")
    prepare("folder", root, tmp_path / "prepared3d", options={"labels": "2=liver,5=spleen", "modality": "CT"})
    return tmp_path / "prepared3d"


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pycocotools on numpy 2
def test_coco_rle_is_exact_and_loads_in_pycocotools(fracatlas, tmp_path):
    from pycocotools.coco import COCO

    prepared, expected, root = fracatlas
    result = datasets.export(prepared, tmp_path / "coco", to="coco")
    assert result.failed == [] and result.written == 4
    coco = COCO(str(tmp_path / "coco" / "annotations" / "instances_train.json"))
    assert {c["id"]: c["name"] for c in coco.loadCats(coco.getCatIds())} == {1: "fractured"}
    by_name = {img["file_name"]: img for img in coco.dataset["images"]}
    assert sorted(by_name) == ["IMG0000001.jpg", "IMG0000004.jpg", "IMG0000005.jpg"]
    first = by_name["IMG0000001.jpg"]
    anns = coco.loadAnns(coco.getAnnIds(imgIds=first["id"]))
    assert [a["bbox"] for a in anns] == [[2.0, 2.0, 8.0, 4.0], [30.0, 20.0, 10.0, 10.0]]
    assert [a["area"] for a in anns] == [32.0, 100.0]
    union = np.zeros((40, 60), bool)
    for ann in anns:
        union |= coco.annToMask(ann).astype(bool)
    assert np.array_equal(union, expected["IMG0000001"] > 0)
    assert coco.getAnnIds(imgIds=by_name["IMG0000004.jpg"]["id"]) == []  # a negative image, no objects
    # the JPEG is copied unchanged
    assert (tmp_path / "coco" / "images" / "train" / "IMG0000001.jpg").read_bytes() == \
        (root / "images" / "Fractured" / "IMG0000001.jpg").read_bytes()
    val = json.loads((tmp_path / "coco" / "annotations" / "instances_val.json").read_text())
    ids = [a["id"] for a in coco.dataset["annotations"]] + [a["id"] for a in val["annotations"]]
    assert len(ids) == len(set(ids))  # unique across splits


def test_coco_polygons(fracatlas, tmp_path):
    prepared, expected, _ = fracatlas
    datasets.export(prepared, tmp_path / "coco", to="coco", polygons=True)
    data = json.loads((tmp_path / "coco" / "annotations" / "instances_val.json").read_text())
    (image,) = data["images"]
    assert image["file_name"] == "IMG0000002.jpg"
    mask = np.zeros((40, 60), bool)
    for ann in data["annotations"]:
        assert isinstance(ann["segmentation"], list)
        for polygon in ann["segmentation"]:
            mask |= polygon_mask(polygon, (40, 60))
    assert np.array_equal(mask, expected["IMG0000002"] > 0)


def _yolo_masks(path, shape, classes):
    masks = {c: np.zeros(shape, bool) for c in classes}
    for line in path.read_text().splitlines():
        fields = line.split()
        cls, coords = int(fields[0]), np.array(fields[1:], float)
        assert len(coords) % 2 == 0 and len(coords) >= 6 and coords.min() >= 0 and coords.max() <= 1
        xy = coords.reshape(-1, 2) * [shape[1], shape[0]]
        masks[cls] |= polygon_mask(xy.ravel(), shape)
    return masks


def test_yolo_segmentation_lines_draw_the_masks_back(fracatlas, tmp_path):
    prepared, expected, _ = fracatlas
    result = datasets.export(prepared, tmp_path / "yolo", to="yolo")
    assert result.failed == [] and result.warnings == []
    yaml = (tmp_path / "yolo" / "dataset.yaml").read_text()
    assert "train: images/train\nval: images/val\n" in yaml and 'names:\n  0: "fractured"\n' in yaml
    assert "test:" not in yaml  # the test split is empty here
    for case, truth in expected.items():
        split = "val" if case == "IMG0000002" else "train"
        masks = _yolo_masks(tmp_path / "yolo" / "labels" / split / f"{case}.txt", (40, 60), [0])
        assert np.array_equal(masks[0], truth > 0), case
        assert (tmp_path / "yolo" / "images" / split / f"{case}.jpg").exists()
    assert (tmp_path / "yolo" / "labels" / "train" / "IMG0000004.txt").read_text() == ""


def test_3d_to_coco_and_yolo_exports_labelled_slices(folder3d, tmp_path):
    result = datasets.export(folder3d, tmp_path / "yolo", to="yolo")
    assert result.failed == []
    names = sorted(p.name for p in (tmp_path / "yolo" / "labels" / "train").iterdir())
    assert names == ["ct0_s0001.txt", "ct0_s0002.txt", "ct0_s0003.txt"]
    masks = _yolo_masks(tmp_path / "yolo" / "labels" / "train" / "ct0_s0002.txt", (12, 14), [0, 1])
    truth = read_labels(folder3d / "labels" / "ct0.nii.gz").array[2]
    assert np.array_equal(masks[0], truth == 2) and np.array_equal(masks[1], truth == 5)
    png = read(tmp_path / "yolo" / "images" / "train" / "ct0_s0002.png").array
    assert png.dtype == np.uint8 and png.min() == 0 and png.max() == 255  # windowed to 8 bits
    datasets.export(folder3d, tmp_path / "coco", to="coco", slices="all")
    data = json.loads((tmp_path / "coco" / "annotations" / "instances_train.json").read_text())
    assert len(data["images"]) == 5 and {a["category_id"] for a in data["annotations"]} == {2, 5}


def test_nnunet_layout_and_renumbering(folder3d, tmp_path):
    import nibabel as nib

    result = datasets.export(folder3d, tmp_path / "nn", to="nnunet", dataset_id=42, name="Organs")
    folder = tmp_path / "nn" / "Dataset042_Organs"
    assert result.root == folder and result.failed == []
    assert "label values renumbered to 1..K for nnU-Net: 2->1, 5->2" in result.warnings
    spec = json.loads((folder / "dataset.json").read_text())
    assert spec["labels"] == {"background": 0, "liver": 1, "spleen": 2}
    assert spec["channel_names"] == {"0": "CT"} and spec["numTraining"] == 2 and spec["file_ending"] == ".nii.gz"
    assert spec["radseg_label_values"] == {"1": 2, "2": 5}
    assert sorted(p.name for p in (folder / "imagesTr").iterdir()) == ["ct0_0000.nii.gz", "ct1_0000.nii.gz"]
    assert sorted(p.name for p in (folder / "imagesTs").iterdir()) == ["ct2_0000.nii.gz"]
    assert json.loads((folder / "splits_final.json").read_text()) == [{"train": ["ct0"], "val": ["ct1"]}]
    labels = nib.load(str(folder / "labelsTr" / "ct0.nii.gz"))
    image = nib.load(str(folder / "imagesTr" / "ct0_0000.nii.gz"))
    assert np.allclose(labels.affine, image.affine) and labels.shape == image.shape == (14, 12, 5)
    original = read_labels(folder3d / "labels" / "ct0.nii.gz").array
    assert np.array_equal(np.asarray(labels.dataobj).T, np.select([original == 2, original == 5], [1, 2], 0))


def _verify(folder):
    nnunet = pytest.importorskip("nnunetv2.experiment_planning.verify_dataset_integrity",
                                 reason="nnunetv2 not installed (it would pull another torch into the venv)")
    nnunet.verify_dataset_integrity(str(folder), num_processes=1)


def test_nnunet_integrity_check_passes_2d_and_3d(fracatlas, folder3d, tmp_path, capfd):
    pytest.importorskip("nnunetv2", reason="nnunetv2 not installed (it would pull another torch into the venv)")
    prepared, _, _ = fracatlas
    for source, target in ((prepared, tmp_path / "nn2d"), (folder3d, tmp_path / "nn3d")):
        result = datasets.export(source, target, to="nnunet")
        _verify(result.root)
    out = capfd.readouterr().out
    assert "Error" not in out and "Warning" not in out and out.count("verify_dataset_integrity Done") == 2


def test_nnunet_integrity_check_catches_a_broken_export(folder3d, tmp_path):
    pytest.importorskip("nnunetv2", reason="nnunetv2 not installed (it would pull another torch into the venv)")
    result = datasets.export(folder3d, tmp_path / "nn", to="nnunet")
    path = result.root / "labelsTr" / "ct0.nii.gz"
    labels = read_labels(path)
    labels.array[0, 0, 0] = 7  # a value the dataset.json does not list
    write(labels, path, kind="nifti")
    with pytest.raises(RuntimeError, match="unexpected labels"):
        _verify(result.root)


def test_export_refuses_foreign_folders_and_replaces_only_on_request(fracatlas, tmp_path):
    prepared, _, _ = fracatlas
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(WriteError, match="busy: folder is not empty"):
        datasets.export(prepared, tmp_path / "busy", to="yolo")
    datasets.export(prepared, tmp_path / "yolo", to="yolo")
    with pytest.raises(WriteError, match="yolo: holds an earlier export; use --overwrite"):
        datasets.export(prepared, tmp_path / "yolo", to="yolo")
    stale = tmp_path / "yolo" / "images" / "train" / "old.png"
    stale.write_bytes(b"x")
    datasets.export(prepared, tmp_path / "yolo", to="yolo", overwrite=True)
    assert not stale.exists() and (tmp_path / "yolo" / "images" / "train" / "IMG0000001.jpg").exists()
    with pytest.raises(UnknownNameError, match="unknown export format 'yolov8'.*Did you mean 'yolo'"):
        datasets.export(prepared, tmp_path / "x", to="yolov8")
