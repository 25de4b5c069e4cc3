"""knee-xray: exact labels vs recorded geometry, the HexAI layout read back, sides, difficulty."""

from __future__ import annotations

import dataclasses
import filecmp

import nibabel as nib
import numpy as np
import pandas as pd
import pydicom
import pytest

import radseg.io as rio
from radseg.synth import knee_xray as kx
from radseg.synth.cohort import make_subject
from radseg.synth.run import synthesize

SHAPE = (320, 400)  # small and fast; the geometry is the same in mm


def _subject(index=0, seed=11, **difficulty):
    subject = make_subject(index, seed=seed, prefix=kx.PREFIX)
    if difficulty:
        subject = dataclasses.replace(subject, difficulty={**subject.difficulty, **difficulty})
    return subject


@pytest.fixture(scope="module")
def case():
    return kx.make_case(_subject(), shape=SHAPE)


def _files(root):
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())


def test_same_subject_gives_byte_identical_files_and_another_seed_differs(tmp_path, case):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    kx.write_case(case, a)
    kx.write_case(kx.make_case(_subject(), shape=SHAPE), b)
    kx.write_case(kx.make_case(_subject(seed=12), shape=SHAPE), c)
    names = _files(a)
    assert names == _files(b) and len(names) == 5
    _, mismatch, errors = filecmp.cmpfiles(a, b, [str(n) for n in names], shallow=False)
    assert mismatch == [] and errors == []
    other = filecmp.cmpfiles(a, c, [str(n) for n in names if "KNEE0001" in str(n)], shallow=False)[1]
    assert other  # the other seed changed the files


def _measured_jsw(case, side, compartment):
    """Minimum vertical femur-tibia gap (mm) read from the label map, columns of the compartment."""
    labels = case.labels.array
    femur, tibia = kx.VALUES[(side, "femur")], kx.VALUES[(side, "tibia")]
    c0, c1 = sorted(case.extras["compartment_cols"][(side, compartment)])
    gaps = []
    for col in range(int(np.ceil(c0)), int(np.floor(c1)) + 1):
        f, t = np.flatnonzero(labels[:, col] == femur), np.flatnonzero(labels[:, col] == tibia)
        if f.size and t.size:
            # true gap lies between (t - f - 2) and (t - f) pixels: the midpoint errs < 1 pixel
            gaps.append((t.min() - f.max() - 1) * case.params["pixel_spacing_mm"])
    return min(gaps)


@pytest.mark.parametrize("index", [0, 1, 2])
def test_joint_space_width_from_labels_equals_recorded_within_a_pixel(index):
    case = kx.make_case(_subject(index), shape=(512, 640))
    spacing = case.params["pixel_spacing_mm"]
    for side in ("right", "left"):
        for compartment in ("medial", "lateral"):
            recorded = case.params[f"{side}_{compartment}_jsw_mm"]
            assert 1.0 < recorded < 10.0
            assert abs(_measured_jsw(case, side, compartment) - recorded) < spacing


def test_medial_compartment_faces_the_midline_and_right_is_on_image_left(case):
    p = case.params
    assert p["right_knee_col"] < SHAPE[1] / 2 < p["left_knee_col"]
    assert p["right_medial_jsw_col"] > p["right_knee_col"] > p["right_lateral_jsw_col"]
    assert p["left_medial_jsw_col"] < p["left_knee_col"] < p["left_lateral_jsw_col"]
    labels = case.labels
    meta = case.image.metadata
    rowcos, colcos = np.array(meta["image_orientation_patient"][:3]), np.array(meta["image_orientation_patient"][3:])
    position = np.array(meta["image_position_patient"])
    for value, name in kx.LABELS.items():
        if value == 0:
            continue
        rows, cols = np.nonzero(labels.array == value)
        assert rows.size > 50, name
        x, y = labels.index_to_world(np.stack([rows, cols], 1)).mean(axis=0)  # plane mm: x along columns
        patient = position + x * rowcos + y * colcos  # LPS: patient's right has x < 0
        assert (patient[0] < 0) == name.startswith("right"), name
        assert (cols.mean() < SHAPE[1] / 2) == name.startswith("right"), name
    # fibula lateral to the tibia: further from the midline
    for side, sign in (("right", -1), ("left", 1)):
        fib = np.nonzero(labels.array == kx.VALUES[(side, "fibula")])[1].mean()
        tib = np.nonzero(labels.array == kx.VALUES[(side, "tibia")])[1].mean()
        assert sign * (fib - tib) > 0


def test_patella_drawn_over_femur_and_exact_masks_keep_the_overlap(tmp_path, case):
    kx.write_case(case, tmp_path)
    multi = rio.read_labels(tmp_path / "multilabel" / f"{case.subject.case_id}.npz")
    names = multi.metadata["class_names"]
    assert names == [kx.LABELS[v] for v in range(1, 9)]
    for side in ("right", "left"):
        patella = multi.array[..., names.index(f"{side} patella")]
        femur = multi.array[..., names.index(f"{side} femur")]
        overlap = patella & femur
        assert overlap.sum() > 0.9 * patella.sum()  # the patella lies over the distal femur
        assert np.all(case.labels.array[overlap] == kx.VALUES[(side, "patella")])
        assert np.all(case.labels.array[femur & ~patella & ~multi.array[..., names.index(f"{side} tibia")]]
                      == kx.VALUES[(side, "femur")])
        # shadow area of the patella vs the ellipse recorded (pixel-centre sampling error ~ perimeter/4)
        area = patella.sum() * case.params["pixel_spacing_mm"] ** 2
        recorded = case.params[f"{side}_patella_area_mm2"]
        perimeter = np.pi * (case.params[f"{side}_patella_width_mm"] + case.params[f"{side}_patella_height_mm"]) / 2
        assert abs(area - recorded) < perimeter * case.params["pixel_spacing_mm"] / 2


def test_written_layout_reads_back_with_spacing_and_transposed_raw_nifti(tmp_path, case):
    columns = kx.write_case(case, tmp_path)
    image = rio.read(tmp_path / columns["image_path"])
    spacing = case.params["pixel_spacing_mm"]
    np.testing.assert_allclose(image.spacing, [spacing, spacing], rtol=1e-6)
    assert image.shape == SHAPE
    mask = rio.read(tmp_path / columns["mask_path"])
    np.testing.assert_array_equal(mask.array.reshape(SHAPE), case.labels.array)
    np.testing.assert_allclose(mask.spacing[-2:], [spacing, spacing], rtol=1e-6)
    raw = np.asarray(nib.load(tmp_path / columns["mask_path"]).dataobj).squeeze()
    np.testing.assert_array_equal(raw, case.labels.array.T)  # what a plain nibabel user sees: HexAI's look
    png = rio.read_labels(tmp_path / columns["png_mask_path"])
    np.testing.assert_array_equal(png.array, case.labels.array)
    grey = rio.read(tmp_path / columns["png_image_path"])
    assert grey.array.dtype == np.uint8 and grey.shape == SHAPE


@pytest.mark.parametrize("tags, magnification", [("ImagerPixelSpacing", 1.1), ("PixelSpacing+ImagerPixelSpacing", 1.08),
                                                 ("ImagerPixelSpacing", 1.0)])
def test_dicom_spacing_read_back_equals_the_generators(tmp_path, case, tags, magnification):
    case = dataclasses.replace(case, params={**case.params, "pixel_spacing_tag": tags, "magnification": magnification})
    columns = kx.write_case(case, tmp_path)
    path = tmp_path / columns["image_path"]
    image = rio.read(path)
    spacing = case.params["pixel_spacing_mm"]
    np.testing.assert_allclose(image.spacing, [spacing, spacing], rtol=1e-5)
    ds = pydicom.dcmread(path)
    assert float(ds.ImagerPixelSpacing[0]) == pytest.approx(spacing * magnification, rel=1e-5)
    assert ("PixelSpacing" in ds) == tags.startswith("PixelSpacing")
    assert ds.PatientOrientation == ["L", "F"] and ds.ViewPosition == "PA" and ds.ImageLaterality == "B"
    assert ds.BitsStored == case.params["bits_stored"] and ds.Modality == case.params["modality"]


def test_monochrome1_file_is_the_inverse_of_the_monochrome2_rendering(tmp_path):
    subject = _subject(3)
    mono1 = kx.make_case(subject, shape=SHAPE, photometric="MONOCHROME1", bits_stored=12)
    mono2 = kx.make_case(subject, shape=SHAPE, photometric="MONOCHROME2", bits_stored=12)
    kx.write_case(mono1, tmp_path)
    image = rio.read(tmp_path / "images" / f"{subject.case_id}.dcm")
    assert image.metadata["photometric"] == "MONOCHROME1"
    np.testing.assert_array_equal(image.array.astype(int), 4095 - mono2.image.array.astype(int))
    # bone is dark in the stored MONOCHROME1 values, bright in MONOCHROME2
    femur = mono2.labels.array == kx.VALUES[("right", "femur")]
    air = mono2.extras["line_integral"] < 0.01
    assert mono2.image.array[femur].mean() > mono2.image.array[air].mean()
    assert image.array[femur].mean() < image.array[air].mean()
    np.testing.assert_array_equal(kx.display_png(mono1), kx.display_png(mono2))


def _soft_beside_bone(case):
    line = case.extras["line_integral"]
    bone = case.labels.array > 0
    soft = (~bone) & (line > 0.7 * np.percentile(line[~bone], 99))
    return bone, soft


def test_difficulty_contrast_scales_bone_over_soft_tissue():
    base, low, none = (kx.make_case(_subject(contrast=c), shape=SHAPE) for c in (1.0, 0.6, 0.0))
    bone, soft = _soft_beside_bone(base)
    excess = base.extras["line_integral"] - none.extras["line_integral"]
    excess_low = low.extras["line_integral"] - none.extras["line_integral"]
    np.testing.assert_allclose(excess_low[bone], 0.6 * excess[bone], rtol=1e-5, atol=1e-6)
    assert np.all(excess[~bone] == 0)  # soft tissue untouched
    contrast = [c.image.array[bone].mean() - c.image.array[soft].mean() for c in (base, low)]
    assert contrast[1] < 0.8 * contrast[0]


def test_difficulty_noise_doubles_the_noise_sd():
    clean, single, double = (kx.make_case(_subject(noise=f), shape=SHAPE, photometric="MONOCHROME2", bits_stored=16)
                             for f in (0.0, 1.0, 2.0))
    _, soft = _soft_beside_bone(clean)
    sd1 = np.std(single.image.array[soft].astype(float) - clean.image.array[soft])
    sd2 = np.std(double.image.array[soft].astype(float) - clean.image.array[soft])
    assert sd1 > 5 and sd2 / sd1 == pytest.approx(2.0, rel=0.1)


def test_difficulty_size_shrinks_the_bones():
    base, small = (kx.make_case(_subject(size=s), shape=SHAPE) for s in (1.0, 0.85))
    for value in (1, 5):  # patellae: fully in the image
        ratio = (small.labels.array == value).sum() / (base.labels.array == value).sum()
        assert ratio == pytest.approx(0.85 ** 2, rel=0.05)
    assert small.params["bone_scale"] == pytest.approx(0.85 * base.params["bone_scale"])
    assert small.params["right_bicondylar_width_mm"] == pytest.approx(0.85 * base.params["right_bicondylar_width_mm"])


def test_synthesize_writes_metadata_previews_and_hexai_sheet(tmp_path):
    result = synthesize(kx.NAME, 2, tmp_path, seed=1, preview=True, options={"shape": SHAPE})
    assert result.failed == [] and len(result.made) == 2
    table = pd.read_csv(tmp_path / "metadata.csv")
    for column in ("right_medial_jsw_mm", "left_lateral_jsw_mm", "pixel_spacing_mm", "photometric", "image_path",
                   "mask_path", "right_medial_condyle_width_mm", "sex", "race"):
        assert column in table.columns
    assert sorted(p.name for p in (tmp_path / "preview").glob("*.png")) == ["KNEE0001.png", "KNEE0002.png"]
    sheet = pd.read_csv(tmp_path / "hexai_metadata.csv")
    assert list(sheet["ID"]) == ["KNEE0001", "KNEE0002"]
    assert set(sheet["P02SEX"]) <= {"1: Male", "2: Female"}
    for path in table["image_path"]:
        assert (tmp_path / path).is_file()
