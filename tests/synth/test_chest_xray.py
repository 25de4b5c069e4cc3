"""chest-xray phantom: CXAS labels against the recorded geometry, files, determinism, difficulty."""

from __future__ import annotations

import dataclasses
import filecmp
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest

import radseg.io
from radseg.synth import chest_xray as kind
from radseg.synth.cohort import make_subject
from radseg.synth.run import synthesize

NAMES = kind.CLASS_NAMES


def subject(index: int = 0, seed: int = 1, **difficulty):
    base = make_subject(index, seed=seed, prefix=kind.PREFIX)
    return dataclasses.replace(base, difficulty={**base.difficulty, **difficulty}) if difficulty else base


def mask(case, name: str) -> np.ndarray:
    return case.labels.array[..., NAMES.index(name)]


def cxas_ctr(case) -> tuple[int, int, int]:
    """MRD, MLD, ID in pixels, exactly as CXAS's feature extractor measures them on masks."""
    midline = int(np.nonzero(mask(case, "right hemidiaphragm"))[1].max())
    heart, lung = mask(case, "heart"), mask(case, "lung")
    heart_rows = [np.nonzero(row)[0] for row in heart if row.any()]
    mrd = max(midline - cols.min() for cols in heart_rows)
    mld = max(cols.max() - midline for cols in heart_rows)
    inner = max(int(np.ptp(np.nonzero(row)[0])) for row in lung if row.any())
    return int(mrd), int(mld), inner


@pytest.fixture(scope="module")
def cases():
    return [kind.make_case(subject(k)) for k in range(3)] + [kind.make_case(subject(3), cardiomegaly_rate=1.0)]


def test_ctr_recorded_matches_cxas_measurement_on_the_masks(cases):
    for case in cases:
        p, spacing = case.params, case.params["pixel_spacing_mm"]
        mrd, mld, inner = cxas_ctr(case)
        # Each distance is between pixel centres inside a continuous border: at most ~1 pixel short
        # of the geometric length at each end (2 px), never longer than it plus rounding.
        assert p["ctr_mrd_mm"] / spacing - 2.0 <= mrd <= p["ctr_mrd_mm"] / spacing + 1.0
        assert p["ctr_mld_mm"] / spacing - 2.0 <= mld <= p["ctr_mld_mm"] / spacing + 1.0
        assert p["ctr_id_mm"] / spacing - 2.0 <= inner <= p["ctr_id_mm"] / spacing + 1.0
        assert abs((mrd + mld) / inner - p["ctr"]) < 4.0 / inner
        assert p["heart_width_mm"] == pytest.approx(p["ctr_mrd_mm"] + p["ctr_mld_mm"])
        assert p["cardiomegaly"] == int(p["ctr"] > 0.5)
    assert cases[-1].params["cardiomegaly_drawn"] == 1


def test_cardiomegaly_option_enlarges_the_heart():
    normal = [kind.make_case(subject(k, seed=7), cardiomegaly_rate=0.0).params["ctr"] for k in range(3)]
    large = [kind.make_case(subject(k, seed=7), cardiomegaly_rate=1.0).params["ctr"] for k in range(3)]
    assert all(0.38 < c < 0.53 for c in normal)
    assert all(b > a + 0.08 for a, b in zip(normal, large))


def test_lung_areas_match_the_closed_form_areas(cases):
    for case in cases:
        pixel = case.params["pixel_spacing_mm"] ** 2
        for side in ("right", "left"):
            measured = mask(case, f"{side} lung").sum() * pixel
            # The rasterisation error along a ~1 m border of 0.7 mm pixels averages out; 1% is
            # several times the errors seen and far below any geometry mistake.
            assert measured == pytest.approx(case.params[f"{side}_lung_area_mm2"], rel=0.01)
        assert mask(case, "lung").sum() == (mask(case, "right lung") | mask(case, "left lung")).sum()


def test_left_stays_left_in_image_and_patient_coordinates(cases):
    case = cases[0]
    affine_x = {}
    for name in ("right lung", "left lung", "clavicle right", "clavicle left", "right hemidiaphragm", "left hemidiaphragm"):
        rows, cols = np.nonzero(mask(case, name))
        centroid = np.array([rows.mean(), cols.mean()])
        affine_x[name] = case.labels.index_to_world(centroid)[0]
        # patient (LPS) coordinates from the plane's position and orientation: +x is the patient's left
        meta = case.image.metadata
        row_dir, col_dir = np.array(meta["image_orientation_patient"][:3]), np.array(meta["image_orientation_patient"][3:])
        spacing = case.image.spacing
        lps = np.array(meta["image_position_patient"]) + centroid[1] * spacing[1] * row_dir + centroid[0] * spacing[0] * col_dir
        assert (lps[0] < 0) == ("right" in name.split()), name
    for organ in ("lung", "hemidiaphragm"):
        assert affine_x[f"right {organ}"] < 0 < affine_x[f"left {organ}"]
    assert affine_x["clavicle right"] < 0 < affine_x["clavicle left"]
    # image left = patient right: the right lung's pixels sit in the left half of the picture
    assert np.nonzero(mask(case, "right lung"))[1].mean() < case.image.shape[1] / 2 < np.nonzero(mask(case, "left lung"))[1].mean()


def test_classes_overlap_as_in_projection_and_names_follow_cxas(cases):
    case = cases[0]
    assert (mask(case, "heart") & mask(case, "left lung")).any()
    assert (mask(case, "heart") & mask(case, "thoracic spine")).any()
    assert (mask(case, "posterior 6th rib right") & mask(case, "right lung")).any()
    assert {"lung", "heart", "right hemidiaphragm", "vertebrae T1", "vertebrae T12", "clavicle left"} <= set(NAMES)
    assert list(kind.LABELS.values()) == NAMES and min(kind.LABELS) == 1
    for name in ("right lung", "left lung", "heart", "trachea", "vertebrae T6", "clavicle right", "anterior 3rd rib left"):
        assert mask(case, name).any(), name
    assert mask(case, "spine").sum() >= mask(case, "thoracic spine").sum() > mask(case, "vertebrae T6").sum()


def test_files_read_back_with_their_geometry(tmp_path, cases):
    case = cases[0]
    columns = kind.write_case(case, tmp_path)
    image = radseg.io.read(tmp_path / columns["dicom_path"])
    assert image.shape == case.image.shape
    assert image.spacing == pytest.approx([0.7, 0.7], abs=1e-6)
    assert np.array_equal(image.array, case.image.array)
    ds = pydicom.dcmread(tmp_path / columns["dicom_path"])
    assert (ds.Modality, int(ds.BitsStored), ds.ViewPosition) == ("DX", 12, "PA")
    assert [float(v) for v in ds.ImagerPixelSpacing] == pytest.approx([0.77, 0.77])
    assert list(ds.PatientOrientation) == ["L", "F"]
    labels = radseg.io.read_labels(tmp_path / columns["label_dir"])
    assert labels.metadata["class_names"] == NAMES
    assert np.array_equal(labels.array, case.labels.array)
    assert (tmp_path / "labels" / case.subject.case_id / "right lung.png").exists()
    packed = radseg.io.read_labels(tmp_path / columns["label_npz"])
    assert np.array_equal(packed.array, case.labels.array) and packed.spacing == pytest.approx([0.7, 0.7])
    png = radseg.io.read(tmp_path / columns["image_path"])
    assert png.array.dtype == np.uint8 and png.shape == case.image.shape


def _tree(folder: Path) -> list[Path]:
    return sorted(p.relative_to(folder) for p in folder.rglob("*") if p.is_file())


def test_deterministic_files(tmp_path):
    for name in ("a", "b"):
        kind.write_case(kind.make_case(subject(5)), tmp_path / name)
    assert _tree(tmp_path / "a") == _tree(tmp_path / "b")
    for rel in _tree(tmp_path / "a"):
        assert filecmp.cmp(tmp_path / "a" / rel, tmp_path / "b" / rel, shallow=False), rel
    other = kind.make_case(subject(5, seed=2))
    assert not np.array_equal(other.image.array, kind.make_case(subject(5)).image.array)


def test_difficulty_factors_have_their_documented_effect(cases):
    base = cases[0]
    lungs = mask(base, "lung") & ~mask(base, "heart")
    heart = mask(base, "heart") & ~mask(base, "lung")  # soft tissue: the part of the heart off the lungs
    low = kind.make_case(subject(0, contrast=0.6))
    gap = lambda case: float(case.image.array[heart].mean()) - float(case.image.array[lungs].mean())
    assert gap(low) < 0.8 * gap(base)
    abdomen = np.zeros(base.image.shape, bool)
    abdomen[-60:-10, 200:310] = True

    def noise(case):
        values = case.image.array.astype(float)
        return float(np.std((values - np.roll(values, 1, axis=1))[abdomen]))

    assert noise(kind.make_case(subject(0, noise=2.0))) > 1.5 * noise(base)
    small = kind.make_case(subject(0, size=0.85))
    assert small.params["body_scale"] == pytest.approx(0.85 * base.params["body_scale"])
    ratio = mask(small, "right lung").sum() / mask(base, "right lung").sum()
    assert ratio == pytest.approx(0.85 ** 2, rel=0.02)


def test_synthesize_writes_metadata_and_previews(tmp_path):
    result = synthesize(kind.NAME, 2, tmp_path, seed=1, preview=True)
    assert not result.failed and len(result.made) == 2
    table = pd.read_csv(tmp_path / "metadata.csv")
    assert {"case_id", "ctr", "heart_width_mm", "thoracic_width_mm", "cardiomegaly", "label_dir"} <= set(table.columns)
    assert list(table.case_id) == ["CXR0001", "CXR0002"]
    for case_id in table.case_id:
        assert (tmp_path / "preview" / f"{case_id}.png").stat().st_size > 10_000
        assert (tmp_path / "labels" / case_id / "classes.json").exists()
        assert (tmp_path / "dicom" / f"{case_id}.dcm").exists()
