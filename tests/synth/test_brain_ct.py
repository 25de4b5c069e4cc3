"""The brain-ct phantom: exact labels, blood HU, RSNA/HemSeg-200 layout read back, difficulty factors."""

from __future__ import annotations

import dataclasses
import filecmp
import json
import re
import shutil
from functools import cache
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pydicom
import pytest
from scipy import ndimage

from radseg.errors import WriteError
from radseg.io import read, read_labels
from radseg.io.dicom import read_series
from radseg.io.dicom_scan import scan
from radseg.synth import brain_ct
from radseg.synth.brain_bleeds import Bleed, _ivh, draw_bleeds
from radseg.synth.brain_phantom import HeadPhantom
from radseg.synth.brain_render import render
from radseg.synth.brain_shapes import Grid, Pose, rotation
from radseg.synth.cohort import make_subject
from radseg.synth.geometry import Ellipsoid
from radseg.synth.run import synthesize

# Whole head on coarse pixels: 96 x 2.6 mm = 250 mm field of view, 36 x 5 mm = 180 mm.
SMALL = {"shape": (36, 96, 96), "spacing": (5.0, 2.6, 2.6)}


def subject(index: int, seed: int = 11, **difficulty):
    base = make_subject(index, seed=seed, prefix=brain_ct.PREFIX)
    return dataclasses.replace(base, difficulty={**base.difficulty, **difficulty}) if difficulty else base


@cache
def case(index: int, seed: int = 11):
    return brain_ct.make_case(subject(index, seed), **SMALL)


def find(predicate, seed: int = 11):
    for index in range(40):
        if predicate(case(index, seed)):
            return case(index, seed)
    raise AssertionError("no case of that kind in the first 40 subjects")


def voxel_ml(c) -> float:
    return float(np.prod(c.image.spacing)) / 1000.0


def ring(mask: np.ndarray, image: np.ndarray) -> np.ndarray:
    """Brain-range voxels within two pixels of a mask, in-plane."""
    near = ndimage.binary_dilation(mask, structure=np.ones((1, 5, 5), bool)) & ~mask
    return near & (image > -10) & (image < 60)


def test_label_volumes_match_params():
    seen = set()
    for index in range(8):
        c = case(index)
        p, label = c.params, c.labels.array
        assert label.dtype == np.int16 and set(np.unique(label)) <= {0, 1}
        assert c.labels.same_geometry(c.image)
        total = float(label.sum()) * voxel_ml(c)
        assert p["hemorrhage_volume_ml"] == pytest.approx(total, abs=1e-3)
        assert p["iph_volume_ml"] + p["ivh_volume_ml"] == pytest.approx(total, abs=2e-3)
        parts = [p[f"bleed{i}_volume_ml"] for i in (1, 2, 3)]
        assert sum(parts) == pytest.approx(total, abs=3e-3)
        assert p["hemorrhage_count"] == sum(v > 0 for v in parts) <= 3
        assert (p["hemorrhage_count"] == 0) == (not label.any())
        seen.add(p["hemorrhage_count"] > 0)
    assert seen == {True, False}  # both kinds exercised


def test_voxelised_lesion_is_the_analytic_ellipsoid():
    """A smooth one-lobe hemorrhage on a 1 mm grid: label volume = 4/3 pi abc, image = its HU inside."""
    phantom = HeadPhantom(np.random.default_rng(0), age=50, sex="F")
    pose = Pose(centre=np.zeros(3), rotation=np.eye(3), scale=1.0)  # world = model frame
    lobe = Ellipsoid((24.0, -4.0, 2.0), (12.0, 9.0, 7.0), rotation(20.0, 10.0, 5.0))
    bleed = Bleed("iph", "putamen", "left", 70.0, np.array(lobe.centre), lobe.extent(), lobes=[lobe])
    grid = Grid((36, 40, 40), (1.0, 1.0, 1.0), (4.5, -23.5, -15.5))
    volume, (mask,) = render(phantom, grid, pose, [bleed])
    assert mask.sum() == pytest.approx(4 / 3 * np.pi * 12 * 9 * 7, rel=0.02)
    core = ndimage.binary_erosion(mask, iterations=2)
    assert core.sum() > 1000 and np.allclose(volume[core], 70.0)
    assert np.all(volume[~ndimage.binary_dilation(mask, iterations=2)] < 60)  # brain around it


def test_hemorrhage_hu_is_blood_and_above_brain():
    checked = 0
    for index in range(8):
        c = case(index)
        mask = c.labels.array > 0
        if not mask.any():
            continue
        image = c.image.array.astype(float)
        inside = image[mask]
        assert 45 < np.median(inside) < 95
        assert inside.mean() > c.params["grey_matter_hu"] + 10
        assert inside.mean() - image[ring(mask, image)].mean() > 15
        assert 55 <= c.params["hemorrhage_hu"] <= 85
        checked += 1
    assert checked >= 4


def test_about_a_quarter_have_no_hemorrhage():
    phantom = HeadPhantom(np.random.default_rng(0), age=60, sex="M")
    pose = Pose(centre=np.zeros(3), rotation=np.eye(3), scale=1.0)
    draws = [draw_bleeds(np.random.default_rng(k), phantom, pose, contrast=1.0) for k in range(400)]
    none = sum(not d for d in draws) / len(draws)
    assert 0.19 < none < 0.31
    assert all(len(d) <= 3 and sum(b.kind == "ivh" for b in d) <= 1 for d in draws)
    assert {b.site for d in draws for b in d} >= {"putamen", "thalamus", "cerebellum", "ventricles"}


def test_anatomy_hu_is_plausible():
    c = case(0)
    image = c.image.array
    centre = c.image.world_to_index([c.params["head_centre_x_mm"], c.params["head_centre_y_mm"],
                                     c.params["head_centre_z_mm"]])
    k, j, i = (round(float(v)) for v in centre)
    plane = image[k + 3]  # above the ventricles: parenchyma in the middle, skull around it
    assert plane.max() > 1000  # cortical bone
    assert 15 < np.median(plane[j - 6:j + 6, i - 6:i + 6]) < 45  # white/grey matter
    assert np.all(plane[:, :3] <= -900) and plane[0, 48] < -900  # air around the head


def test_ivh_layers_in_the_dependent_ventricles():
    phantom = HeadPhantom(np.random.default_rng(1), age=70, sex="M")
    pose = Pose(centre=np.zeros(3), rotation=rotation(0.0, -10.0, 0.0), scale=1.0)
    bleed = dataclasses.replace(_ivh(np.random.default_rng(2), phantom, pose, 70.0), cast=[])
    grid = Grid((14, 60, 50), (2.0, 1.5, 1.5), (-37.0, -10.0, -12.0))
    volume, (mask,) = render(phantom, grid, pose, [bleed])
    world_y = grid.ys()[np.nonzero(mask)[1]]
    assert mask.sum() > 100 and np.all(world_y > bleed.level_y)  # posterior of a horizontal level (supine)
    csf = volume < 15  # the rest of the ventricles stays CSF, in front of the level
    assert np.any(csf & ~mask & (grid.ys()[None, :, None] < bleed.level_y))
    # Blood (70 HU); a thin layer, so partial volume with CSF (5 HU) and choroid calcification at its edges.
    assert np.isclose(volume[mask], 70.0, atol=0.01).mean() > 0.2 and 45 < np.median(volume[mask]) < 90


@pytest.mark.parametrize("side", ["left", "right"])
def test_left_is_left(side, tmp_path):
    c = find(lambda c: c.params["hemorrhage_count"] == 1 and c.params["bleed1_kind"] == "iph"
             and c.params["bleed1_side"] == side)
    columns = brain_ct.write_case(c, tmp_path)
    label = nib.load(tmp_path / columns["label_path"])
    ijk = np.argwhere(np.asarray(label.dataobj) > 0).mean(axis=0)
    x_ras = nib.affines.apply_affine(label.affine, ijk)[0]
    x_lps = -x_ras  # NIfTI is RAS: +x is the patient's right
    assert (x_lps > c.params["head_centre_x_mm"]) == (side == "left")
    assert abs(x_lps - c.params["bleed1_x_mm"]) < 15


def test_difficulty_contrast_noise_size():
    base = find(lambda c: c.params["iph_count"] >= 1 and c.params["hemorrhage_volume_ml"] > 8)
    index = base.subject.index
    low = brain_ct.make_case(subject(index, contrast=0.6), **SMALL)
    assert np.array_equal(low.labels.array, base.labels.array)  # same geometry, weaker blood
    assert low.params["hemorrhage_contrast_hu"] == pytest.approx(0.6 * base.params["hemorrhage_contrast_hu"], abs=0.02)
    mask = base.labels.array > 0

    def contrast(c):
        image = c.image.array.astype(float)
        return image[mask].mean() - image[ring(mask, image)].mean()

    assert contrast(low) < 0.8 * contrast(base)

    noisy = brain_ct.make_case(subject(index, noise=2.0), **SMALL)
    assert noisy.params["noise_sd_hu"] == pytest.approx(2 * base.params["noise_sd_hu"])
    a, b = base.image.array.astype(float), noisy.image.array.astype(float)
    brain = (a > 0) & (a < 100) & (b > -50) & (b < 150)
    # Same anatomy and noise field, twice the amplitude: the difference is the noise once.
    assert np.std((b - a)[brain]) == pytest.approx(base.params["noise_sd_hu"], rel=0.2)

    small = brain_ct.make_case(subject(index, size=0.85), **SMALL)
    assert small.params["cavity_width_mm"] == pytest.approx(0.85 * base.params["cavity_width_mm"], rel=1e-3)
    head = lambda c: float((c.image.array > -500).sum())
    assert head(small) / head(base) == pytest.approx(0.85 ** 3, rel=0.1)
    assert small.params["hemorrhage_volume_ml"] / base.params["hemorrhage_volume_ml"] == pytest.approx(0.85 ** 3, rel=0.3)


def test_preview_shows_the_slice_with_most_blood():
    bleeding = find(lambda c: c.params["hemorrhage_count"] > 0)
    image, labels = brain_ct.preview(bleeding)
    k = int(np.argmax((bleeding.labels.array > 0).sum(axis=(1, 2))))
    assert np.array_equal(labels.array, bleeding.labels.array[k]) and labels.array.any()
    assert image.array.min() >= 0 and image.array.max() <= 80  # brain window
    clean = find(lambda c: c.params["hemorrhage_count"] == 0)
    _, labels = brain_ct.preview(clean)
    assert labels.shape == clean.image.shape[1:] and not labels.array.any()


def test_write_is_deterministic(tmp_path):
    for name in ("a", "b"):
        brain_ct.write_case(brain_ct.make_case(subject(2), **SMALL), tmp_path / name)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    assert all(filecmp.cmp(tmp_path / "a" / f, tmp_path / "b" / f, shallow=False) for f in files)
    other = brain_ct.make_case(subject(2, seed=12), **SMALL)
    assert not np.array_equal(other.image.array, case(2).image.array)
    assert other.params["scan_id"] != case(2).params["scan_id"]


def test_ids_are_hex_and_never_read_as_numbers():
    ids = [brain_ct._hex(f"seed{k}", "x", 9) for k in range(3000)]
    assert all(re.fullmatch(r"[0-9a-f]{9}", i) for i in ids)
    assert not any(re.fullmatch(r"[0-9e]+", i) for i in ids)


def test_finish_refuses_shared_slice_ids(tmp_path):
    rows = [{"case_id": "BCT0001", "patient_id": "ID_1", "scan_id": "a1", "slice_ids": "abc def"},
            {"case_id": "BCT0002", "patient_id": "ID_2", "scan_id": "b2", "slice_ids": "fed abc"}]
    with pytest.raises(WriteError, match="abc"):
        brain_ct.finish(rows, tmp_path)


# --- the written dataset ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("brain-ct")
    result = synthesize(brain_ct.NAME, 3, out, seed=1, preview=True, options={"shape": [24, 96, 96]})
    assert not result.failed
    return out


def selection(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / brain_ct.SELECTION).read_text().splitlines()]


def test_run_writes_metadata_previews_and_selection(run):
    meta = pd.read_csv(run / "metadata.csv", dtype={"scan_id": str})
    assert list(meta["case_id"]) == ["BCT0001", "BCT0002", "BCT0003"]
    for column in ("hemorrhage_volume_ml", "hemorrhage_count", "ivh_present", "split", "scan_id",
                   "patient_id", "slice_ids", "label_path", "noise_sd_hu", "age", "sex"):
        assert column in meta.columns
    assert list(meta["split"]) == ["train", "train", "train"]  # indices 0-2 of the 60/20/20 cycle
    assert all((run / "preview" / f"{c}.png").stat().st_size > 0 for c in meta["case_id"])
    lines = selection(run)
    assert [(line["patient"], line["scan_"]) for line in lines] == list(zip(meta["patient_id"], meta["scan_id"]))
    listed = [s for line in lines for s in line["slice_list"]]
    written = sorted(p.name for p in (run / brain_ct.DICOM_DIR).iterdir())
    assert sorted(f"ID_{s}.dcm" for s in listed) == written  # exactly the files written
    for line, (_, row) in zip(lines, meta.iterrows()):
        assert re.fullmatch(r"ID_[0-9a-f]{8}", line["patient"]) and re.fullmatch(r"[0-9a-f]{10}", line["scan_"])
        z = [float(pydicom.dcmread(run / brain_ct.DICOM_DIR / f"ID_{s}.dcm", stop_before_pixels=True)
                   .ImagePositionPatient[2]) for s in line["slice_list"]]
        assert z == sorted(z) and len(z) == 24  # in slice order, inferior to superior
        assert (run / "IPH_IVH" / row["split"] / "label" / f"{line['scan_']}.nii.gz").exists()


def test_dicom_round_trip_and_label_geometry(run, tmp_path):
    lines = selection(run)
    meta = pd.read_csv(run / "metadata.csv", dtype={"scan_id": str})
    studies = set()
    for line, (_, row) in zip(lines, meta.iterrows()):
        files = [run / brain_ct.DICOM_DIR / f"ID_{s}.dcm" for s in line["slice_list"]]
        image = read_series(scan(files).select(None, origin=line["scan_"]))
        # pydicom (12-bit stored, rescale -1024) and nibabel wrote the same HU array: equal when read back.
        assert image.array.dtype == np.int16 and np.array_equal(read(run / row["image_path"]).array, image.array)
        assert image.array.min() >= -1024 and image.array.max() > 1000  # air to cortical bone
        assert np.allclose(image.spacing, [row["slice_spacing_mm"], row["pixel_spacing_mm"], row["pixel_spacing_mm"]])
        assert image.axis_codes == "SPL" and 0.0 < row["pixel_spacing_mm"] < 5.0
        label = read_labels(run / row["label_path"])
        assert label.array.dtype == np.int16 and image.same_geometry(label, atol=1e-4)
        assert float(label.array.sum()) * np.prod(label.spacing) / 1000 == pytest.approx(row["hemorrhage_volume_ml"], abs=1e-3)
        headers = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
        assert {h.PatientID for h in headers} == {line["patient"]}
        assert len({(h.StudyInstanceUID, h.SeriesInstanceUID) for h in headers}) == 1
        studies.add(headers[0].StudyInstanceUID)
        first = headers[0]
        assert (first.WindowCenter, first.WindowWidth, first.RescaleIntercept, first.BitsStored) == (40, 80, -1024, 12)
    assert len(studies) == len(lines)


def test_simpleitk_sees_the_label_on_the_series_grid(run, tmp_path):
    """HemSeg-200's dcm2nii.py path: SimpleITK/GDCM series reader on one scan's slices."""
    sitk = pytest.importorskip("SimpleITK")
    line = selection(run)[0]
    for s in line["slice_list"]:
        shutil.copy(run / brain_ct.DICOM_DIR / f"ID_{s}.dcm", tmp_path)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(tmp_path)))
    image = reader.Execute()
    label = sitk.ReadImage(str(next(run.glob(f"IPH_IVH/*/label/{line['scan_']}.nii.gz"))))
    assert image.GetSize() == label.GetSize() == (96, 96, 24)
    for a, b in ((image.GetSpacing(), label.GetSpacing()), (image.GetOrigin(), label.GetOrigin()),
                 (image.GetDirection(), label.GetDirection())):
        assert np.allclose(a, b, atol=1e-4)


def test_radseg_convert_select_reads_the_dataset(run, tmp_path):
    from radseg.convert import convert

    report = convert(run / brain_ct.DICOM_DIR, tmp_path, select=run / brain_ct.SELECTION)
    assert report.ok and len(report.written) == 3
    for line in selection(run):
        converted = read(tmp_path / f"{line['scan_']}.nii.gz")
        assert np.array_equal(converted.array, read(run / "nifti" / f"{line['scan_']}.nii.gz").array)
        label = read_labels(next(run.glob(f"IPH_IVH/*/label/{line['scan_']}.nii.gz")))
        assert converted.same_geometry(label, atol=1e-4)
