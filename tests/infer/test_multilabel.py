"""Multi-label (CXAS-style) models end to end: prediction, CXAS output types, quality flags, evaluate, clean-ups."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from scipy import ndimage

torch = pytest.importorskip("torch")
pytest.importorskip("monai")

import radseg.io as rio  # noqa: E402
from radseg.image import Image  # noqa: E402
from radseg.infer.postprocess import fill_holes, largest_component  # noqa: E402
from radseg.infer.predictor import Predictor  # noqa: E402
from radseg.infer.quality import chest_pa  # noqa: E402
from radseg.infer.segment import segment  # noqa: E402
from radseg.labels import make_multilabel  # noqa: E402
from radseg.models.bundle import ModelBundle  # noqa: E402
from radseg.models.preprocess import Preprocessing  # noqa: E402
from radseg.models.registry import build  # noqa: E402

KWARGS = {"channels": [4, 8], "strides": [2], "num_res_units": 0}
NAMES = ["heart", "right lung", "left lung"]


def chest_like() -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """A 96x96 'radiograph': two bright lungs (value 200) and a mid-grey heart (120) between and below them."""
    image = np.zeros((96, 96), np.uint8)
    truth = {n: np.zeros((96, 96), bool) for n in NAMES}
    truth["right lung"][15:75, 10:40] = True
    truth["left lung"][15:75, 56:86] = True
    truth["heart"][50:80, 40:56] = True
    for name, value in (("right lung", 200), ("left lung", 200), ("heart", 120)):
        image[truth[name]] = value
    return image, truth


def oracle(x: torch.Tensor) -> torch.Tensor:
    """Bright = lung (image-left half: right lung), mid-grey = heart: logits for 3 sigmoid channels."""
    cols = torch.arange(x.shape[-1], device=x.device).view(1, 1, 1, -1).float()
    low = (cols < x.shape[-1] / 2).float()
    lung = (x - 0.65) * 60
    heart = (0.15 - (x - 0.47).abs()) * 60
    return torch.cat([heart, lung * low - 30 * (1 - low), lung * (1 - low) - 30 * low], dim=1)


@pytest.fixture
def predictor():
    pre = Preprocessing(spatial_dims=2, mode="fit", size=(96, 96), intensity="window", window=(0.0, 255.0))
    net = build("unet", spatial_dims=2, in_channels=1, out_channels=3, overrides=KWARGS)
    bundle = ModelBundle(architecture="unet", spatial_dims=2, in_channels=1, arch_kwargs=KWARGS, head="multilabel",
                         class_values=[1, 2, 3], class_names=NAMES, preprocessing=pre, state_dict=net.state_dict(),
                         manifest={"quality_check": "chest-pa"}, digest="oracle")
    predictor = Predictor(bundle, device="cpu")
    predictor.forward = oracle
    return predictor


def test_multilabel_prediction_has_classes_and_confidence(predictor):
    image, truth = chest_like()
    out = predictor.predict(Image(image, spacing=(0.5, 0.5)))
    assert out.metadata["class_names"] == NAMES and out.array.shape == (96, 96, 3)
    for channel, name in enumerate(NAMES):
        assert np.array_equal(out.array[..., channel], truth[name]), name
    assert all(v > 0.95 for v in out.metadata["class_confidence"].values())


def test_segment_writes_cxas_layouts_and_quality(predictor, tmp_path):
    folder = tmp_path / "in"
    image, truth = chest_like()
    rio.write(Image(image), folder / "chest.png")
    lateral = chest_like()[0]
    lateral[:, 48:] = 0  # one lung field only, as in a lateral view
    rio.write(Image(lateral), folder / "lateral.png")
    knee = np.zeros((96, 96), np.uint8)
    knee[20:80, 40:56] = 200  # one bright bone down the middle: no pair of lungs
    rio.write(Image(knee), folder / "knee.png")

    report = segment(folder, tmp_path / "png", predictor=predictor, output_type="png")
    for channel, name in enumerate(NAMES):  # CXAS's -ot png: <out>/<case>/<class name>.png, 0/255
        pixels = np.asarray(rio.read(tmp_path / "png" / "chest" / f"{name}.png").array)
        assert set(np.unique(pixels)) <= {0, 255} and np.array_equal(pixels > 0, truth[name]), name
    rows = {r["case"]: r for r in csv.DictReader(open(tmp_path / "png" / "quality.csv"))}
    assert rows["chest"]["plausible"] == "True"
    assert rows["lateral"]["plausible"] == "False" and "left lung covers 0.0%" in rows["lateral"]["reasons"]
    assert rows["knee"]["plausible"] == "False"
    assert sorted(c for c, _ in report.flagged) == ["knee", "lateral"]
    (tmp_path / "png" / "quality.csv").unlink()  # e.g. a run killed before the table was written
    resumed = segment(folder, tmp_path / "png", predictor=predictor, output_type="png")
    assert sorted(resumed.kept) == ["chest", "knee", "lateral"] and not resumed.written
    assert sorted(c for c, _ in resumed.flagged) == ["knee", "lateral"]  # flags survive a resume
    rows = {r["case"]: r for r in csv.DictReader(open(tmp_path / "png" / "quality.csv"))}
    assert {c: r["plausible"] for c, r in rows.items()} == {"chest": "True", "knee": "False", "lateral": "False"}

    segment(folder, tmp_path / "jpg", predictor=predictor, output_type="jpg")
    back = rio.read_labels(tmp_path / "jpg" / "chest")  # per-class JPEGs read back at > 127
    assert (tmp_path / "jpg" / "chest" / "heart.jpg").exists()
    for channel, name in enumerate(NAMES):
        assert np.array_equal(back.array[..., channel], truth[name]), name

    segment(folder, tmp_path / "npz", predictor=predictor, output_type="npz")
    stack = rio.read_labels(tmp_path / "npz" / "chest.npz")
    assert stack.metadata["class_names"] == NAMES and np.array_equal(stack.array[..., 1], truth["right lung"])
    segment(folder, tmp_path / "ov", predictor=predictor, output_type="overlay")
    assert rio.read(tmp_path / "ov" / "chest.jpg").channels == 3


def test_evaluate_scores_overlapping_classes_one_by_one(tmp_path):
    from radseg.evaluate.run import evaluate_folders

    base = Image(np.zeros((40, 40), np.uint8), spacing=(0.35, 0.35))
    truth = np.zeros((2, 40, 40), bool)
    truth[0, 10:30, 10:30] = True
    truth[1, 15:35, 15:35] = True  # overlaps class 0
    pred = truth.copy()
    pred[1, 15:35, 15:25] = False  # half of class 1
    rio.write(make_multilabel(truth, ["heart", "left lung"], like=base), tmp_path / "truth" / "a.npz", kind="npz")
    rio.write(make_multilabel(pred, ["heart", "left lung"], like=base), tmp_path / "pred", kind="png-classes", case="a")
    result = evaluate_folders(tmp_path / "pred", tmp_path / "truth", resamples=100, workers=1)
    rows = {r["label_name"]: r for r in result.per_case.to_dict("records")}
    assert rows["heart"]["dice"] == pytest.approx(1.0)
    assert rows["left lung"]["dice"] == pytest.approx(2 * 200 / (200 + 400))  # hand-derived
    assert rows["left lung"]["iou"] == pytest.approx(0.5)


@pytest.mark.realdata
def test_quality_check_on_real_scr_masks(shared_data):
    """The SCR manual masks of real radiographs pass; the same masks mirrored or without a heart do not."""
    from radseg.datasets import scan_dataset

    scan = scan_dataset("jsrt-scr", shared_data / "cxr" / "jsrt-scr")
    for record in scan.records[:10]:
        labels = record.load().labels
        assert chest_pa(labels).ok, (record.case_id, chest_pa(labels).reasons)
    mirrored = Image(labels.array[:, ::-1], affine=labels.affine, metadata=labels.metadata)
    assert any("patient's right" in r for r in chest_pa(mirrored).reasons)
    no_heart = labels.array.copy()
    no_heart[..., 0] = False
    assert not chest_pa(Image(no_heart, affine=labels.affine, metadata=labels.metadata)).ok


@pytest.mark.parametrize("seed", range(6))
def test_box_cropped_clean_ups_equal_scipy_on_the_whole_array(seed):
    rng = np.random.default_rng(seed)
    shape = (60, 70) if seed % 2 else (14, 18, 16)
    noise = ndimage.gaussian_filter(rng.random(shape), 1.0)
    labels = np.where(noise > 0.5, rng.integers(1, 4, shape), 0).astype(np.uint8)
    expected = labels.copy()
    for value in (1, 2, 3):
        mask = labels == value
        expected[ndimage.binary_fill_holes(mask) & ~mask & (expected == 0)] = value
    assert np.array_equal(fill_holes(labels), expected)
    expected = labels.copy()
    for value in (1, 2, 3):
        pieces, count = ndimage.label(labels == value, structure=np.ones((3,) * labels.ndim))
        if count > 1:
            sizes = np.bincount(pieces.ravel())
            sizes[0] = 0
            expected[(pieces != 0) & (pieces != np.argmax(sizes))] = 0
    assert np.array_equal(largest_component(labels), expected)


def test_dicom_seg_on_a_png_is_refused_before_the_network_runs(predictor, tmp_path):
    rio.write(Image(chest_like()[0]), tmp_path / "in" / "chest.png")
    calls = []
    predictor.forward = lambda x: calls.append(1) or oracle(x)
    report = segment(tmp_path / "in", tmp_path / "out", predictor=predictor, output_type="dicom-seg")
    assert calls == [] and not report.written
    (item, problem), = report.failed
    assert item.endswith("chest.png") and "dicom-seg needs DICOM input" in problem


def test_a_rerun_with_other_settings_redoes_the_case(predictor, tmp_path):
    rio.write(Image(chest_like()[0]), tmp_path / "in" / "chest.png")
    first = segment(tmp_path / "in", tmp_path / "out", predictor=predictor, output_type="npz")
    assert first.written and not first.kept
    same = segment(tmp_path / "in", tmp_path / "out", predictor=predictor, output_type="npz")
    assert same.kept == ["chest"] and not same.written  # nothing changed: resumed
    predictor.tta = True
    again = segment(tmp_path / "in", tmp_path / "out", predictor=predictor, output_type="npz")
    assert again.written and not again.kept  # TTA changes the output: the case is redone
    predictor.postprocessing = {"largest_component": True}
    assert segment(tmp_path / "in", tmp_path / "out", predictor=predictor, output_type="npz").written


def test_quality_check_reads_the_side_from_patient_orientation():
    _, truth = chest_like()
    stack = np.stack([truth[n] for n in NAMES])
    normal = make_multilabel(stack, NAMES, like=Image(np.zeros((96, 96), np.uint8)))
    assert chest_pa(normal).ok, chest_pa(normal).reasons
    mirrored = make_multilabel(stack[:, :, ::-1], NAMES, like=Image(np.zeros((96, 96), np.uint8)))
    assert any("patient's right" in r for r in chest_pa(mirrored).reasons)
    # the same mirrored pixels from a DICOM that says its columns run towards the patient's right
    tagged = make_multilabel(stack[:, :, ::-1], NAMES, like=Image(np.zeros((96, 96), np.uint8),
                                                                   metadata={"patient_orientation": ["R", "F"]}))
    assert chest_pa(tagged).ok, chest_pa(tagged).reasons


def test_quality_check_catches_a_largely_missed_clavicle():
    _, truth = chest_like()
    right, left = np.zeros((96, 96), bool), np.zeros((96, 96), bool)
    right[8:12, 10:40] = True  # 120 px = 1.3% of the image
    left[8:12, 56:86] = True
    names = NAMES + ["right clavicle", "left clavicle"]
    base = Image(np.zeros((96, 96), np.uint8))
    whole = make_multilabel(np.stack([truth[n] for n in NAMES] + [right, left]), names, like=base)
    assert chest_pa(whole).ok, chest_pa(whole).reasons
    left[8:12, 66:86] = False  # a third of it left: 40 px vs 120 px
    missed = make_multilabel(np.stack([truth[n] for n in NAMES] + [right, left]), names, like=base)
    assert any("clavicles differ in size 0.33x" in r for r in chest_pa(missed).reasons)
