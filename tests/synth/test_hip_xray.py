"""hip-xray: AP projection of the 3D hip phantom, exact labels, head geometry, layout, difficulty."""

from __future__ import annotations

import dataclasses
import filecmp

import numpy as np
import pandas as pd
import pydicom
import pytest

import radseg.io as rio
from radseg.synth import hip_xray as hx
from radseg.synth.cohort import make_subject
from radseg.synth.run import synthesize

SHAPE = (192, 224)  # ~1.9 mm pixels: fast; the geometry is the same in mm


def _subject(index=0, seed=5, **difficulty):
    subject = make_subject(index, seed=seed, prefix=hx.PREFIX)
    if difficulty:
        subject = dataclasses.replace(subject, difficulty={**subject.difficulty, **difficulty})
    return subject


@pytest.fixture(scope="module")
def case():
    return hx.make_case(_subject(), shape=SHAPE, pathology=0)


def _files(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_same_subject_gives_byte_identical_files_and_another_seed_differs(tmp_path, case):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    hx.write_case(case, a)
    hx.write_case(hx.make_case(_subject(), shape=SHAPE, pathology=0), b)
    hx.write_case(hx.make_case(_subject(seed=6), shape=SHAPE, pathology=0), c)
    names = _files(a)
    assert names == _files(b) and len(names) == 5
    _, mismatch, errors = filecmp.cmpfiles(a, b, names, shallow=False)
    assert mismatch == [] and errors == []
    assert filecmp.cmpfiles(a, c, names, shallow=False)[1]


def test_culled_sampling_gives_the_brute_force_labels_and_image():
    subject = _subject(1)
    d = hx.sample_case(subject, shape=SHAPE, pathology=2)
    detector = hx._field(d["phantom"], SHAPE, d["spacing"], d["centre_shift"])
    line, _, bits = hx.project(d["phantom"], detector)
    full_line, _, full_bits = hx.project(d["phantom"], detector, cull=False)
    np.testing.assert_array_equal(bits, full_bits)
    bone = bits > 1
    # same fine samples on bone rays; only the soft tissue of the cells outside the fine range
    # comes from the interpolated coarse pass: small against totals of 2-7
    assert np.median(np.abs(line - full_line)[bone]) < 0.01
    assert np.percentile(np.abs(line - full_line)[bone], 95) < 0.06


def test_femoral_head_shadow_is_the_recorded_circle(case):
    spacing = case.params["pixel_spacing_mm"]
    for side, value in (("right", 5), ("left", 6)):
        femur = case.extras["masks"][value]
        row, col = case.params[f"{side}_head_row"], case.params[f"{side}_head_col"]
        radius = case.params[f"{side}_head_radius_mm"] / spacing
        assert case.params[f"{side}_head_radius_px"] == pytest.approx(radius)
        rr, cc = np.mgrid[: SHAPE[0], : SHAPE[1]]
        inside = (rr - row) ** 2 + (cc - col) ** 2 <= (radius - 0.5) ** 2
        assert inside.sum() > 50 and femur[inside].all()  # the whole disc is femur (head)
        column = round(col)
        top = np.flatnonzero(femur[:, column]).min()  # the head's highest point (pathology 0: a sphere)
        assert abs((row - radius) - top) <= 1.0
        medial = +1 if side == "right" else -1  # the right head's medial side is towards the image centre
        line = femur[round(row)]
        edge = np.flatnonzero(line).max() if side == "right" else np.flatnonzero(line).min()
        assert abs(edge - (col + medial * radius)) <= 1.0
        # the head drawn over the socket: femur wins in the label map
        assert np.all(case.labels.array[inside] == value)


def test_right_structures_are_on_the_image_left_and_patient_right(case):
    labels = case.labels
    meta = case.image.metadata
    rowcos, colcos = np.array(meta["image_orientation_patient"][:3]), np.array(meta["image_orientation_patient"][3:])
    position = np.array(meta["image_position_patient"])
    midline = np.mean([case.params["right_head_centre_x_mm"], case.params["left_head_centre_x_mm"]])
    for value, name in hx.LABELS.items():
        if value == 0:
            continue
        rows, cols = np.nonzero(labels.array == value)
        assert rows.size > 20, name
        x, y = labels.index_to_world(np.stack([rows, cols], 1)).mean(axis=0)
        patient = position + x * rowcos + y * colcos
        assert (patient[0] < midline) == name.startswith("right"), name
        assert (cols.mean() < case.params["cols"] / 2) == name.startswith("right"), name
    # the recorded head centres sit where the phantom's 3D centres project (LPS x, -z)
    for side in ("right", "left"):
        x, z = case.params[f"{side}_head_centre_x_mm"], case.params[f"{side}_head_centre_z_mm"]
        px = position + case.params[f"{side}_head_col"] * case.params["pixel_spacing_mm"] * rowcos \
            + case.params[f"{side}_head_row"] * case.params["pixel_spacing_mm"] * colcos
        assert px[0] == pytest.approx(x) and px[2] == pytest.approx(z)


def test_written_layout_reads_back(tmp_path, case):
    columns = hx.write_case(case, tmp_path)
    image = rio.read(tmp_path / columns["image_path"])
    spacing = case.params["pixel_spacing_mm"]
    np.testing.assert_allclose(image.spacing, [spacing, spacing], rtol=1e-6)
    np.testing.assert_array_equal(image.array, case.image.array)
    ds = pydicom.dcmread(tmp_path / columns["image_path"])
    assert ds.ViewPosition == "AP" and ds.PhotometricInterpretation == case.params["photometric"]
    mask = rio.read(tmp_path / columns["mask_path"])
    np.testing.assert_array_equal(mask.array.reshape(SHAPE), case.labels.array)
    multi = rio.read_labels(tmp_path / columns["multilabel_path"])
    assert multi.metadata["class_names"] == [hx.LABELS[v] for v in range(1, 7)]
    assert (multi.array[..., 4] & multi.array[..., 0]).any()  # right femur over right acetabulum
    np.testing.assert_array_equal(rio.read_labels(tmp_path / columns["png_mask_path"]).array, case.labels.array)


def test_monochrome1_is_the_inverse_of_monochrome2(tmp_path):
    subject = _subject(2)
    mono1 = hx.make_case(subject, shape=SHAPE, photometric="MONOCHROME1", bits_stored=14)
    mono2 = hx.make_case(subject, shape=SHAPE, photometric="MONOCHROME2", bits_stored=14)
    hx.write_case(mono1, tmp_path)
    image = rio.read(tmp_path / "images" / f"{subject.case_id}.dcm")
    assert image.metadata["photometric"] == "MONOCHROME1"
    np.testing.assert_array_equal(image.array.astype(int), (1 << 14) - 1 - mono2.image.array.astype(int))


def test_difficulty_contrast_scales_bone_and_noise_doubles():
    base, low, none = (hx.make_case(_subject(3, contrast=c), shape=SHAPE, pathology=1) for c in (1.0, 0.6, 0.0))
    bone = base.extras["part_bits"] > 1
    excess = base.extras["line_integral"] - none.extras["line_integral"]
    excess_low = low.extras["line_integral"] - none.extras["line_integral"]
    # Bone HU are calibrated to real pelvic CT (thin cortex ~1000-1250 HU, cancellous ~235): ~0.19 here.
    assert excess[bone].mean() > 0.15
    np.testing.assert_allclose(excess_low[bone].mean(), 0.6 * excess[bone].mean(), rtol=0.01)
    from scipy import ndimage

    away = ~ndimage.binary_dilation(bone, np.ones((3, 3), bool))  # binomial smoothing: one pixel
    assert np.abs(excess[away]).max() < 1e-4  # soft tissue unchanged
    clean, single, double = (hx.make_case(_subject(3, noise=f), shape=SHAPE, pathology=1, bits_stored=16,
                                          photometric="MONOCHROME2") for f in (0.0, 1.0, 2.0))
    sd1 = np.std(single.image.array.astype(float) - clean.image.array)
    sd2 = np.std(double.image.array.astype(float) - clean.image.array)
    assert sd1 > 5 and sd2 / sd1 == pytest.approx(2.0, rel=0.1)


def test_difficulty_size_shrinks_the_hips():
    base, small = (hx.make_case(_subject(4, size=s), shape=SHAPE, pathology=0) for s in (1.0, 0.85))
    for side in ("right", "left"):
        assert small.params[f"{side}_head_radius_mm"] == pytest.approx(0.85 * base.params[f"{side}_head_radius_mm"])
    pelvis = [np.isin(c.labels.array, [1, 2, 3, 4]).sum() for c in (base, small)]
    assert pelvis[1] / pelvis[0] == pytest.approx(0.85 ** 2, rel=0.1)


def test_synthesize_writes_metadata_and_previews(tmp_path):
    result = synthesize(hx.NAME, 2, tmp_path, seed=1, preview=True, options={"shape": SHAPE})
    assert result.failed == [] and len(result.made) == 2
    table = pd.read_csv(tmp_path / "metadata.csv")
    for column in ("right_head_radius_mm", "left_head_col", "left_head_row", "right_jsw_min_mm",
                   "pixel_spacing_mm", "photometric", "image_path", "mask_path"):
        assert column in table.columns
    assert sorted(p.name for p in (tmp_path / "preview").glob("*.png")) == ["HIPXR0001.png", "HIPXR0002.png"]
    assert list(pd.read_csv(tmp_path / "hexai_metadata.csv")["ID"]) == ["HIPXR0001", "HIPXR0002"]
