"""The brain-ct-slices adapter (BHSD + CT-ICH head-CT slices with colour masks).

Synthetic folders are drawn here with rectangles of known size in each table colour, so the
expected pixel counts per class are known without the adapter; the real files in
../shared/data/brain-ct are checked against their mask colours counted directly with numpy
(skipped when the folder is absent).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from radseg.datasets import open_prepared, prepare, scan_dataset
from radseg.errors import ReadError

NAME = "brain-ct-slices"
# Colours as the data's README states them (independent of the adapter's table).
EDH, IPH, IVH, SAH, SDH = (255, 0, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255), (0, 255, 0)
TYPES = {EDH: 1, IPH: 2, IVH: 3, SAH: 4, SDH: 5}
CTICH = (210, 80, 0)


# --- synthetic folders ---------------------------------------------------------------------------

def _grey_png(path: Path, shape=(48, 56), seed=0) -> np.ndarray:
    pixels = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    PILImage.fromarray(pixels).save(path)
    return pixels


def _colour_mask(path: Path, boxes: list[tuple[tuple[int, int, int], int, int, int, int]], shape=(48, 56),
                 fmt: str = "PNG") -> dict[tuple[int, int, int], int]:
    """Rectangles (colour, row, col, height, width) on black; returns the pixels drawn per colour."""
    rgb = np.zeros((*shape, 3), np.uint8)
    for colour, r, c, h, w in boxes:
        rgb[r:r + h, c:c + w] = colour
    path.parent.mkdir(parents=True, exist_ok=True)
    PILImage.fromarray(rgb).save(path, format=fmt)
    counts: dict[tuple[int, int, int], int] = defaultdict(int)
    for colour, _, _, h, w in boxes:  # the boxes do not overlap
        counts[colour] += h * w
    return dict(counts)


def _ctich_jpeg(path: Path, shape=(64, 64), seed=0) -> None:
    """A grey slice saved the CT-ICH way: an RGB JPEG of equal channels."""
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    grey = (60 + 100 * ((yy - shape[0] / 2) ** 2 + (xx - shape[1] / 2) ** 2 < (shape[0] / 3) ** 2)
            + np.random.default_rng(seed).integers(0, 20, shape)).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    PILImage.fromarray(np.stack([grey] * 3, -1)).save(path, format="JPEG", quality=90)


BHSD_BOXES = {
    "101001": [(EDH, 2, 2, 3, 4), (IPH, 10, 10, 5, 5), (IVH, 20, 3, 2, 7), (SAH, 30, 30, 1, 9), (SDH, 40, 40, 6, 3)],
    "101002": [(IPH, 5, 5, 4, 4), (SDH, 20, 20, 2, 10)],
    "102005": [],  # an empty mask: a slice without haemorrhage
}
CTICH_BOXES = {"10185": [(CTICH, 8, 8, 6, 5)], "10210": [(CTICH, 30, 40, 3, 3), (CTICH, 50, 10, 2, 8)]}


def _tree(root: Path) -> dict[str, dict[tuple[int, int, int], int]]:
    """Both subsets; returns the drawn pixel counts per case id and colour."""
    truth = {}
    for seed, (stem, boxes) in enumerate(BHSD_BOXES.items()):
        _grey_png(root / "bhsd-mini" / "images" / f"{stem}.png", seed=seed)
        truth[f"bhsd-{stem}"] = _colour_mask(root / "bhsd-mini" / "masks" / f"{stem}.png", boxes)
    for seed, (stem, boxes) in enumerate(CTICH_BOXES.items()):
        _ctich_jpeg(root / "ctich-mini" / "images" / f"{stem}.jpg", seed=seed)
        # as in the source: a PNG named .jpg
        truth[f"ctich-{stem}"] = _colour_mask(root / "ctich-mini" / "masks" / f"{stem}.jpg", boxes, shape=(64, 64))
    return truth


def test_any_labels_count_every_colour_as_hemorrhage(tmp_path):
    truth = _tree(tmp_path / "brain")
    scan = scan_dataset(NAME, tmp_path / "brain")
    assert scan.label_names == {1: "hemorrhage"} and scan.dims == 2 and scan.preset == "brain-ct-2d"
    assert sorted(r.case_id for r in scan.records) == sorted(truth)
    assert not scan.report.skipped and not scan.report.missing
    for record in scan.records:
        loaded = record.load()
        values, counts = np.unique(loaded.labels.array, return_counts=True)
        found = dict(zip(values.tolist(), counts.tolist()))
        drawn = sum(truth[record.case_id].values())
        assert found.get(1, 0) == drawn and set(found) <= {0, 1}, record.case_id
        assert loaded.image.ndim == 2 and loaded.image.channels is None
        assert loaded.image.metadata["spacing_known"] is False
    subjects = {r.case_id: (r.patient, r.metadata["source"]) for r in scan.records}
    assert subjects == {"bhsd-101001": ("bhsd-101", "bhsd"), "bhsd-101002": ("bhsd-101", "bhsd"),
                        "bhsd-102005": ("bhsd-102", "bhsd"), "ctich-10185": ("ctich-A", "ctich"),
                        "ctich-10210": ("ctich-E", "ctich")}


def test_types_labels_give_bhsd_classes_and_leave_ctich_out(tmp_path):
    truth = _tree(tmp_path / "brain")
    scan = scan_dataset(NAME, tmp_path / "brain", labels="types")
    assert scan.label_names == {1: "EDH", 2: "IPH", 3: "IVH", 4: "SAH", 5: "SDH"}
    assert sorted(r.case_id for r in scan.records) == ["bhsd-101001", "bhsd-101002", "bhsd-102005"]
    left_out = sorted(item for item, reason in scan.report.skipped if "CT-ICH" in reason and "types" in reason)
    assert left_out == ["ctich-mini/images/10185.jpg", "ctich-mini/images/10210.jpg"]
    for record in scan.records:
        array = record.load().labels.array
        expected = {TYPES[colour]: n for colour, n in truth[record.case_id].items()}
        found = {v: int((array == v).sum()) for v in range(1, 6) if (array == v).any()}
        assert found == expected, record.case_id
    with pytest.raises(ReadError, match="no usable case"):  # CT-ICH alone has no types
        prepare(NAME, tmp_path / "brain" / "ctich-mini", tmp_path / "out", options={"labels": "types"})


def test_ctich_jpeg_becomes_the_mean_of_its_channels(tmp_path):
    _tree(tmp_path / "brain")
    path = tmp_path / "brain" / "ctich-mini" / "images" / "10185.jpg"
    decoded = np.asarray(PILImage.open(path).convert("RGB")).astype(float)
    scan = scan_dataset(NAME, tmp_path / "brain" / "ctich-mini")  # one subset folder as the root
    image = next(r for r in scan.records if r.case_id == "ctich-10185").load().image
    assert image.shape == (64, 64)
    assert np.abs(image.array.astype(float) - decoded.mean(axis=-1)).max() <= 0.5
    # a real colour picture is not a grey CT slice
    colour = np.zeros((64, 64, 3), np.uint8)
    colour[..., 0] = 200
    PILImage.fromarray(colour).save(path, format="JPEG")
    with pytest.raises(ReadError, match=r"10185\.jpg.*colour channels differ"):
        next(r for r in scan_dataset(NAME, tmp_path / "brain").records if r.case_id == "ctich-10185").load()


def test_unknown_colour_is_an_error_naming_the_file_and_the_colour(tmp_path):
    _tree(tmp_path / "brain")
    mask = tmp_path / "brain" / "bhsd-mini" / "masks" / "101002.png"
    rgb = np.asarray(PILImage.open(mask).convert("RGB")).copy()
    rgb[0, 0] = (10, 200, 30)
    PILImage.fromarray(rgb).save(mask)
    record = next(r for r in scan_dataset(NAME, tmp_path / "brain").records if r.case_id == "bhsd-101002")
    with pytest.raises(ReadError) as caught:
        record.load()
    assert "101002.png" in str(caught.value) and "(10, 200, 30) in 1 px" in str(caught.value)
    # the CT-ICH colour is not a BHSD colour
    rgb[0, 0] = CTICH
    PILImage.fromarray(rgb).save(mask)
    with pytest.raises(ReadError, match=r"\(210, 80, 0\)"):
        record.load()
    # prepare reports the case as failed and writes the others
    rgb[0, 0] = (10, 200, 30)
    PILImage.fromarray(rgb).save(mask)
    report = prepare(NAME, tmp_path / "brain", tmp_path / "out")
    assert [c for c, _ in report.failed] == ["bhsd-101002"] and report.written == 4


def test_lossy_jpeg_mask_is_refused_as_such(tmp_path):
    _tree(tmp_path / "brain")
    mask = tmp_path / "brain" / "ctich-mini" / "masks" / "10210.jpg"
    rgb = np.zeros((64, 64, 3), np.uint8)
    rgb[20:40, 20:40] = CTICH
    PILImage.fromarray(rgb).save(mask, format="JPEG", quality=75)  # a real JPEG this time
    record = next(r for r in scan_dataset(NAME, tmp_path / "brain").records if r.case_id == "ctich-10210")
    with pytest.raises(ReadError, match=r"10210\.jpg.*lossy JPEG"):
        record.load()


def test_mask_size_mismatch_names_both_files(tmp_path):
    _tree(tmp_path / "brain")
    _colour_mask(tmp_path / "brain" / "bhsd-mini" / "masks" / "101001.png", [(IPH, 1, 1, 2, 2)], shape=(40, 56))
    record = next(r for r in scan_dataset(NAME, tmp_path / "brain").records if r.case_id == "bhsd-101001")
    with pytest.raises(ReadError) as caught:
        record.load()
    text = str(caught.value)
    assert "masks/101001.png" in text and "images/101001.png" in text and "56x40" in text and "56x48" in text


def test_orphan_images_and_masks_are_reported_and_the_rest_kept(tmp_path):
    truth = _tree(tmp_path / "brain")
    (tmp_path / "brain" / "bhsd-mini" / "masks" / "101002.png").unlink()
    (tmp_path / "brain" / "ctich-mini" / "images" / "10210.jpg").unlink()
    scan = scan_dataset(NAME, tmp_path / "brain")
    assert sorted(scan.report.skipped) == [
        ("bhsd-mini/images/101002.png", "image without a mask of the same name"),
        ("ctich-mini/masks/10210.jpg", "mask without an image of the same name")]
    assert sorted(r.case_id for r in scan.records) == sorted(set(truth) - {"bhsd-101002", "ctich-10210"})
    report = prepare(NAME, tmp_path / "brain", tmp_path / "out")
    assert report.written == 3 and not report.failed


def test_names_and_options_outside_the_known_ones(tmp_path):
    _tree(tmp_path / "brain")
    _grey_png(tmp_path / "brain" / "bhsd-mini" / "images" / "scanA.png")
    _colour_mask(tmp_path / "brain" / "bhsd-mini" / "masks" / "scanA.png", [])
    _ctich_jpeg(tmp_path / "brain" / "ctich-mini" / "images" / "20000.jpg")
    _colour_mask(tmp_path / "brain" / "ctich-mini" / "masks" / "20000.png", [], shape=(64, 64))
    scan = scan_dataset(NAME, tmp_path / "brain")
    patients = {r.case_id: r.patient for r in scan.records}
    # slices that cannot be placed share one patient each subset (too coarse is safe)
    assert patients["bhsd-scanA"] == "bhsd-unparsed" and patients["ctich-20000"] == "ctich-unassigned"
    assert any("bhsd-unparsed" in w for w in scan.report.warnings)
    assert any("ctich-unassigned" in w for w in scan.report.warnings)
    with pytest.raises(ValueError, match="labels must be any or types"):
        scan_dataset(NAME, tmp_path / "brain", labels="colours")
    with pytest.raises(ValueError, match="no option"):
        scan_dataset(NAME, tmp_path / "brain", types=True)
    (tmp_path / "plain" / "images").mkdir(parents=True)
    (tmp_path / "plain" / "masks").mkdir()
    with pytest.raises(ReadError, match="bhsd or ctich"):
        scan_dataset(NAME, tmp_path / "plain")


def test_brain_ct_2d_preset():
    from radseg.models.preprocess import Preprocessing
    from radseg.models.presets import PRESETS

    preset = PRESETS["brain-ct-2d"]
    pre = Preprocessing(spatial_dims=preset.spatial_dims, **preset.preprocessing)
    assert (preset.spatial_dims, pre.mode, pre.size, pre.patch_size) == (2, "fit", (256, 256), (256, 256))
    assert pre.intensity == PRESETS["xray-2d"].preprocessing["intensity"]
    assert preset.architecture == "unet" and not preset.postprocessing
    iterations = preset.training["epochs"] * preset.training["iters_per_epoch"]
    assert iterations * preset.training["batch_size"] <= 5000  # minutes on a CPU, not hours


# --- the real files ------------------------------------------------------------------------------

def _real(shared_data: Path) -> Path:
    root = shared_data / "brain-ct"
    if not (root / "bhsd-mini").is_dir() or not (root / "ctich-mini").is_dir():
        pytest.skip(f"{root} (bhsd-mini, ctich-mini) not present")
    return root


def _colour_counts(path: Path) -> dict[tuple[int, int, int], int]:
    rgb = np.asarray(PILImage.open(path).convert("RGB")).reshape(-1, 3)
    colours, counts = np.unique(rgb, axis=0, return_counts=True)
    return {tuple(int(v) for v in c): int(n) for c, n in zip(colours, counts)}


@pytest.mark.realdata
def test_real_case_counts_and_subjects(shared_data):
    root = _real(shared_data)
    scan = scan_dataset(NAME, root)
    assert len(scan.records) == 72 and not scan.report.skipped and not scan.report.missing
    assert sum(r.metadata["source"] == "bhsd" for r in scan.records) == 36
    for record in scan.records:
        stem = record.case_id.split("-", 1)[1]
        if record.metadata["source"] == "bhsd":  # name = 3-digit scan + 3-digit slice
            assert record.patient == f"bhsd-{stem[:3]}"
        else:
            assert record.patient.startswith("ctich-") and record.patient != "ctich-unassigned"
    assert len({r.patient for r in scan.records if r.metadata["source"] == "bhsd"}) == 25
    types = scan_dataset(NAME, root, labels="types")
    assert len(types.records) == 36 and {r.metadata["source"] for r in types.records} == {"bhsd"}
    assert len(types.report.skipped) == 36


@pytest.mark.realdata
@pytest.mark.parametrize("stem", ["136013", "163025"])  # IPH+IVH+SAH+SDH; EDH+IPH+SAH
def test_real_bhsd_slice_counts_equal_its_mask_colours(shared_data, stem):
    root = _real(shared_data)
    counts = _colour_counts(root / "bhsd-mini" / "masks" / f"{stem}.png")
    assert set(counts) <= {(0, 0, 0), *TYPES} and len(counts) >= 4
    record = next(r for r in scan_dataset(NAME, root, labels="types").records if r.case_id == f"bhsd-{stem}")
    loaded = record.load()
    array = loaded.labels.array
    assert {v: int((array == v).sum()) for v in range(1, 6)} == {TYPES[c]: counts.get(c, 0) for c in TYPES}
    grey = np.asarray(PILImage.open(root / "bhsd-mini" / "images" / f"{stem}.png"))
    assert np.array_equal(loaded.image.array, grey)
    union = next(r for r in scan_dataset(NAME, root).records if r.case_id == f"bhsd-{stem}").load().labels.array
    assert int((union == 1).sum()) == sum(counts.get(c, 0) for c in TYPES) and set(np.unique(union)) == {0, 1}


@pytest.mark.realdata
def test_real_ctich_groups_follow_the_images(shared_data):
    """The inferred CT-ICH heads, checked against the pixels rather than the adapter's table.

    Slices of one scan are nearly alike at neighbouring levels; a near-duplicate pair split
    over two patients would leak. Every slice's most similar slice must be in its own group
    (unless the group has one slice, which then must resemble nothing), and one group is one
    head position in the field (head centroid x within 25 px).
    """
    from scipy import ndimage

    root = _real(shared_data)
    records = sorted((r for r in scan_dataset(NAME, root).records if r.metadata["source"] == "ctich"),
                     key=lambda r: r.case_id)
    paths = [root / r.sources[0] for r in records]
    groups = [r.patient for r in records]
    small = np.stack([np.asarray(PILImage.open(p).convert("L").resize((128, 128), PILImage.BILINEAR), float).ravel()
                      for p in paths])
    similar = np.corrcoef(small)
    np.fill_diagonal(similar, -1)
    sizes = {g: groups.count(g) for g in groups}
    for i, group in enumerate(groups):
        j = int(np.argmax(similar[i]))
        if sizes[group] > 1:
            assert groups[j] == group, (records[i].case_id, records[j].case_id, similar[i, j])
        else:
            assert similar[i, j] < 0.7, (records[i].case_id, records[j].case_id, similar[i, j])
    split = similar[np.not_equal.outer(groups, groups)]
    assert split.max() < 0.8  # no near-identical slices in two groups
    centre: dict[str, list[float]] = defaultdict(list)
    for path, group in zip(paths, groups):
        grey = np.asarray(PILImage.open(path).convert("L")) > 40
        parts, n = ndimage.label(grey)
        head = parts == 1 + int(np.argmax(ndimage.sum(grey, parts, range(1, n + 1))))
        centre[group].append(float(np.nonzero(head)[1].mean()))
    assert len(centre) == 5
    for group, xs in centre.items():
        assert max(xs) - min(xs) <= 25, (group, xs)


@pytest.mark.realdata
def test_real_prepare_round_trip(shared_data, tmp_path):
    from typer.testing import CliRunner

    from radseg.cli import app

    root = _real(shared_data)
    out = tmp_path / "prepared"
    result = CliRunner().invoke(app, ["datasets", "prepare", NAME, "--root", str(root), "-o", str(out), "-q"])
    assert result.exit_code == 0, result.output
    dataset = open_prepared(out)
    info = json.loads((out / "dataset.json").read_text())
    assert info["preset"] == "brain-ct-2d" and info["dims"] == 2 and info["modality"] == "CT"
    assert dataset.label_names == {1: "hemorrhage"} and len(dataset.cases) == 72
    assert sorted(info["no_pixel_size"]) == sorted(c.case_id for c in dataset.cases)
    split_of: dict[str, set[str]] = defaultdict(set)
    for case in dataset.cases:
        split_of[case.patient].add(case.split)
        source, stem = case.case_id.split("-", 1)
        folder = root / f"{source}-mini"
        mask = next(p for p in (folder / "masks").iterdir() if p.stem == stem)
        rgb = np.asarray(PILImage.open(mask).convert("RGB"))
        expected = rgb.any(axis=-1)  # every non-black colour is haemorrhage
        labels = case.label
        assert labels.shape == expected.shape and np.array_equal(labels.array == 1, expected), case.case_id
        assert set(np.unique(labels.array)) <= {0, 1}
        assert case.image.metadata["spacing_known"] is False
    assert all(len(s) == 1 for s in split_of.values()), split_of
    assert {s for splits in split_of.values() for s in splits} == {"train", "val", "test"}
    bhsd = next(c for c in dataset.cases if c.case_id == "bhsd-145015")
    assert np.array_equal(bhsd.image.array, np.asarray(PILImage.open(root / "bhsd-mini" / "images" / "145015.png")))
    ctich = next(c for c in dataset.cases if c.case_id == "ctich-10210")
    decoded = np.asarray(PILImage.open(root / "ctich-mini" / "images" / "10210.jpg").convert("L"))
    assert ctich.image.shape == (650, 650) and np.abs(ctich.image.array.astype(int) - decoded).max() <= 1
    folds = pytest.importorskip("radseg.datasets.folds")
    fold_of: dict[str, set[int]] = defaultdict(set)
    for k, fold in enumerate(folds.patient_folds(dataset.cases, 5, seed=3)):
        for case_id in fold:
            fold_of[next(c.patient for c in dataset.cases if c.case_id == case_id)].add(k)
    assert all(len(f) == 1 for f in fold_of.values())
