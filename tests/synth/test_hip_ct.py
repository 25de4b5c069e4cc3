"""hip-ct phantom: labels against the generating geometry, files read back, determinism, difficulty."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from PIL import Image as PILImage
from scipy import ndimage

import radseg.io as rio
from radseg.synth import hip_ct
from radseg.synth.cohort import make_subject
from radseg.synth.hip_phantom import (
    PART_VALUES,
    hip_phantom_at,
    hip_phantom_on_grid,
    sample_hip_params,
)
from radseg.synth.run import synthesize

# A fixed grid that holds both hips (~270 x 180 x 165 mm): fast, and the same for every case.
SHAPE, SPACING = (110, 200, 300), (1.5, 0.9, 0.9)
PLAIN = {"implant_rate": 0.0, "fov_rate": 0.0}  # geometry tests: no implant, full field of view
SIDES = {"right": 4, "left": 5}  # head label values
ACETABULUM = {"right": 2, "left": 3}


def subject(index=0, seed=3, **difficulty):
    base = make_subject(index, seed=seed, prefix=hip_ct.PREFIX)
    return dataclasses.replace(base, difficulty={**base.difficulty, **difficulty}) if difficulty else base


@pytest.fixture(scope="module")
def case():
    return hip_ct.make_case(subject(), shape=SHAPE, spacing=SPACING, **PLAIN)


@pytest.fixture(scope="module")
def healthy():
    return hip_ct.make_case(subject(1), shape=SHAPE, spacing=SPACING, pathology=0, **PLAIN)


def _cap(R, h):
    return np.pi * h * h * (3 * R - h) / 3


def test_head_labels_match_recorded_sphere(case):
    p, image = case.params, case.image
    voxel = float(np.prod(image.spacing))
    for side, value in SIDES.items():
        R = p[f"{side}_head_radius_mm"]
        # Hand-derived: the head sphere minus the cap beyond the head-neck plane and the flattened cap.
        sphere = 4 / 3 * np.pi * R ** 3
        expected = sphere - _cap(R, R - p[f"{side}_head_neck_cut_mm"]) - _cap(R, R * p[f"{side}_head_flattening"])
        assert 0.8 * sphere < expected < sphere
        voxels = np.argwhere(case.labels.array == value)
        # Counting voxels on a ~22 mm sphere with 0.9 x 0.9 x 1.5 mm voxels: boundary errors average out
        # to well under 2 % (measured ~0.3 %).
        assert voxels.shape[0] * voxel == pytest.approx(expected, rel=0.02)
        # Centroid in world mm via the image affine: within 1.5 mm of the sphere centre (the removed caps
        # shift it by about 1 mm) and within half a voxel of the exact part centroid.
        centroid = image.index_to_world(voxels.mean(axis=0))
        centre = np.array([p[f"{side}_head_centre_{a}_mm"] for a in "xyz"])
        assert np.linalg.norm(centroid - centre) < 1.5
        from radseg.synth.hip_phantom import head_part_moments

        _, exact = head_part_moments(case.extras["hip_params"], side)
        assert np.linalg.norm(centroid - exact) < 0.5


def test_left_is_patient_left(case):
    image, labels = case.image, case.labels.array
    midline = case.params["pelvis_origin_x_mm"]
    for side in ("right", "left"):
        for value in (SIDES[side], ACETABULUM[side]):
            cols = np.argwhere(labels == value)[:, 2]
            x = image.index_to_world(np.argwhere(labels == value).mean(axis=0))[0]
            # LPS: +x is patient left; columns run right -> left, so the right hip is in the image's left half.
            if side == "right":
                assert (cols < SHAPE[2] // 2).all() and x < midline - 40
            else:
                assert (cols >= SHAPE[2] // 2).all() and x > midline + 40
    assert case.params["right_head_centre_x_mm"] < midline < case.params["left_head_centre_x_mm"]
    assert case.labels.metadata["label_names"][4] == "right_femoral_head"


def _gap(case, side, target_parts):
    """Smallest distance (mm) from the head label to voxels of ``target_parts`` of that side."""
    head = case.labels.array == SIDES[side]
    lo, hi = np.argwhere(head).min(axis=0), np.argwhere(head).max(axis=0)
    box = tuple(slice(max(a - 8, 0), b + 9) for a, b in zip(lo, hi))  # >= 12 mm around the head
    target = np.isin(case.extras["parts"][box], [PART_VALUES[f"{side}_{t}"] for t in target_parts])
    distance = ndimage.distance_transform_edt(~target, sampling=case.image.spacing)
    return float(distance[head[box]].min())


def test_joint_space_is_the_recorded_width(case, healthy):
    for c in (case, healthy):
        diagonal = float(np.linalg.norm(c.image.spacing))
        for side in SIDES:
            jsw = c.params[f"{side}_jsw_min_mm"]
            gap = _gap(c, side, ("acetabulum", "pelvis"))
            assert jsw <= gap <= jsw + diagonal, (side, jsw, gap)  # voxel centres lie inside the bones
    for side, value in SIDES.items():  # healthy joint space (>= 3.5 mm): head and acetabulum never touch
        assert healthy.params[f"{side}_jsw_min_mm"] >= 3.5
        head = healthy.labels.array == value
        ace = healthy.labels.array == ACETABULUM[side]
        assert head.any() and ace.any()
        assert not (ndimage.binary_dilation(head, np.ones((3, 3, 3), bool)) & ace).any()


def test_pathology_changes_only_the_joint():
    """The anatomy streams do not depend on the level: pathology 0 vs 2 differ only in the joint."""
    healthy, severe = (sample_hip_params(subject(4), pathology=level) for level in (0, 2))
    for a, b in zip(healthy.sides(), severe.sides()):
        assert a.head_radius == b.head_radius and a.neck_shaft_angle == b.neck_shaft_angle
        assert a.cavity_centre == b.cavity_centre and a.head_centre != b.head_centre  # migrated head
        assert a.level == 0 and not a.osteophytes_femur and a.flattening == 0
    assert max(s.level for s in severe.sides()) == 2
    worse = max(severe.sides(), key=lambda s: s.level)
    assert worse.jsw_min <= 1.2 and len(worse.osteophytes_femur) >= 6 and worse.flattening >= 0.06
    assert healthy.hu == severe.hu and healthy.translation == severe.translation


def test_points_api_matches_grid():
    params = sample_hip_params(subject(2))
    c = np.array(params.right.head_centre)
    zs, ys, xs = c[2] + np.arange(-30, 30, 1.7), c[1] + np.arange(-40, 40, 1.3), c[0] + np.arange(-40, 60, 0.9)
    hu, parts = hip_phantom_on_grid(zs, ys, xs, params)
    Z, Y, X = np.meshgrid(zs, ys, xs, indexing="ij")
    hu_p, parts_p = hip_phantom_at(X, Y, Z, params)
    assert parts_p.shape == parts.shape and np.array_equal(parts_p, parts)
    bone = parts > 0
    assert bone.sum() > 1000 and np.array_equal(hu_p[bone], hu[bone])
    assert {PART_VALUES["right_femoral_head"], PART_VALUES["right_acetabulum"]} <= set(np.unique(parts).tolist())
    # Arbitrary (here: a ray bundle) shapes broadcast.
    rays = (c[0], c[1] + np.linspace(-300, 300, 11)[:, None], c[2] + np.zeros((1, 4)))
    ray_hu, ray_parts = hip_phantom_at(*rays, params)
    assert ray_hu.shape == ray_parts.shape == (11, 4)
    assert ray_parts[5, 0] == PART_VALUES["right_femoral_head"] and ray_hu[0, 0] == -1000.0


def test_files_read_back(case, tmp_path):
    columns = hip_ct.write_case(case, tmp_path)
    series = tmp_path / columns["dicom_dir"]
    assert columns["dicom_dir"] == "dicom/PA1/ST0/SE0"
    image = rio.read(series)
    assert np.array_equal(image.array, case.image.array)  # integer HU: rescale is exact
    assert image.same_geometry(case.image)
    files = sorted(series.glob("IM*.dcm"))
    assert len(files) == SHAPE[0] and files[0].name == "IM00001.dcm"
    first, last = (pydicom.dcmread(f) for f in (files[0], files[-1]))
    assert first.Modality == "CT" and float(first.ImagePositionPatient[2]) > float(last.ImagePositionPatient[2])
    assert [float(v) for v in first.PixelSpacing] == pytest.approx(SPACING[1:])
    nifti = rio.read(tmp_path / columns["image"])
    assert np.array_equal(nifti.array, case.image.array) and nifti.same_geometry(case.image)
    labels = rio.read_labels(tmp_path / columns["labels"])
    assert np.array_equal(labels.array, case.labels.array)
    assert labels.metadata["label_names"] == hip_ct.LABELS
    # THA masks: image halves, H x W/2, 0/255, index = head-first slice index = IM file number - 1.
    parts, nz, half = case.extras["parts"], SHAPE[0], SHAPE[2] // 2
    fem = sorted((tmp_path / columns["masks_dir"] / "left" / "masks" / "fem").glob("*.png"))
    assert fem and len(fem) == len(list((tmp_path / columns["masks_dir"] / "left" / "masks" / "ace").glob("*.png")))
    index = int(fem[len(fem) // 2].stem)
    mask = np.asarray(PILImage.open(fem[len(fem) // 2]))
    assert mask.shape == (SHAPE[1], half) and set(np.unique(mask)) <= {0, 255}
    expected = np.isin(parts[nz - 1 - index, :, :half], [PART_VALUES["right_femoral_head"], PART_VALUES["right_femur"]])
    assert np.array_equal(mask == 255, expected) and expected.any()
    right = sorted((tmp_path / columns["masks_dir"] / "right" / "masks" / "ace").glob("*.png"))
    right_ace = np.asarray(PILImage.open(right[len(right) // 2]))
    expected = parts[nz - 1 - int(right[len(right) // 2].stem), :, half:] == PART_VALUES["left_acetabulum"]
    assert right_ace.shape == (SHAPE[1], SHAPE[2] - half) and np.array_equal(right_ace == 255, expected)


def test_deterministic_files(tmp_path):
    small = {"shape": (24, 96, 160), "spacing": (5.0, 1.8, 1.8)}
    for folder, seed in (("a", 3), ("b", 3), ("c", 4)):
        hip_ct.write_case(hip_ct.make_case(subject(seed=seed), **small), tmp_path / folder)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert len(files) > 24
    for rel in files:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    dicom = Path("dicom/PA1/ST0/SE0/IM00010.dcm")
    assert (tmp_path / "a" / dicom).read_bytes() != (tmp_path / "c" / dicom).read_bytes()


def test_difficulty_factors():
    # Beam hardening is quadratic in bone density: off here, so bone over muscle scales exactly.
    grid = {"shape": (30, 120, 200), "spacing": (2.0, 1.5, 1.5), "beam_hardening": False, **PLAIN}
    base = hip_ct.make_case(subject(), **grid)
    low = hip_ct.make_case(subject(contrast=0.6), **grid)
    noisy = hip_ct.make_case(subject(noise=2.0), **grid)
    small = hip_ct.make_case(subject(size=0.85), **grid)
    p = base.params
    for tissue in ("cortical", "cancellous"):
        contrast = low.params[f"hu_{tissue}"] - low.params["hu_muscle"]
        assert contrast == pytest.approx(0.6 * (p[f"hu_{tissue}"] - p["hu_muscle"]))
    # Same geometry and noise: bone over muscle in the image (eroded heads, away from partial volume) x 0.6.
    for value in SIDES.values():
        core = ndimage.binary_erosion(base.labels.array == value, iterations=2)
        assert core.sum() > 100
        excess = [c.image.array[core].mean() - p["hu_muscle"] for c in (base, low)]
        assert excess[1] / excess[0] == pytest.approx(0.6, abs=0.02)
    # Noise: the same draws scaled x2, so noisy - base is the base noise itself.
    assert noisy.params["noise_sd_hu"] == pytest.approx(2 * p["noise_sd_hu"], abs=2e-3)
    difference = noisy.image.array.astype(float) - base.image.array
    assert difference.std() == pytest.approx(p["noise_sd_hu"], rel=0.05)
    for side in SIDES:
        assert small.params[f"{side}_head_radius_mm"] == pytest.approx(0.85 * p[f"{side}_head_radius_mm"])
        assert small.params[f"{side}_jsw_min_mm"] == pytest.approx(0.85 * p[f"{side}_jsw_min_mm"])


def test_default_grid_spacing_ranges():
    for index in (0,):
        c = hip_ct.make_case(subject(index, seed=11), **PLAIN)
        dz, dy, dx = c.image.spacing
        assert 0.5 <= dx <= 2.0 and dy == pytest.approx(dx) and dz in hip_ct.SLICE_SPACINGS
        assert c.image.array.size <= hip_ct.MAX_VOXELS
        # Both hips inside, the body with air around it, the pelvic midline between the two middle columns.
        assert all((c.labels.array == v).any() for v in (2, 3, 4, 5))
        array = c.image.array
        for border in (array[:, :, 0], array[:, :, -1], array[:, 0, :], array[:, -1, :]):
            assert np.median(border) < -900
        centre = c.image.index_to_world([0, 0, (c.image.shape[2] - 1) / 2])[0]
        assert centre == pytest.approx(c.params["pelvis_origin_x_mm"], abs=1e-6)


def test_synthesize_with_preview(tmp_path):
    options = {"shape": [40, 110, 180], "spacing": [4.0, 1.6, 1.6]}
    result = synthesize(hip_ct.NAME, 2, tmp_path, seed=1, preview=True, options=options)
    assert not result.failed and len(result.made) == 2
    table = pd.read_csv(tmp_path / "metadata.csv")
    for column in ("right_head_radius_mm", "left_jsw_min_mm", "right_neck_shaft_angle_deg", "pathology_level",
                   "left_head_centre_x_mm", "dicom_dir", "labels", "masks_dir", "noise_sd_hu"):
        assert column in table.columns
    assert table["right_head_centre_x_mm"].lt(table["left_head_centre_x_mm"]).all()
    for case_id, dicom_dir in zip(table["case_id"], table["dicom_dir"]):
        assert (tmp_path / "preview" / f"{case_id}.png").stat().st_size > 1000
        assert (tmp_path / dicom_dir / "IM00001.dcm").exists()
    lines = (tmp_path / "initial_plane_left.txt").read_text().splitlines()
    assert lines == [f"PA{k}_ST0_SE0: {v}" for k, v in zip((1, 2), table["tha_initial_plane_left"])]
    assert json.loads((tmp_path / ".radseg-synth" / "run.json").read_text())["kind"] == "hip-ct"
