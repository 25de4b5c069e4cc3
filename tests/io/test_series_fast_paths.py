"""The fast paths of series reading (issue 25) against the plain code they stand for: the rescale of
each slice as it is read, the checks of all planes at once, and the slice-by-slice NIfTI writing of
``radseg convert DIR out.nii``. Each gives what the whole-volume code gives, byte for byte."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

from radseg.convert import convert
from radseg.errors import SeriesError
from radseg.image import Image
from radseg.io import read
from radseg.io.dicom import read_series
from radseg.io.dicom_scan import scan
from radseg.io.dicom_stack import Plane, _check_consistent, _load_rescaled
from radseg.io.dicom_tags import get_float, get_floats
from radseg.io.dicom_write import write_dicom_series
from radseg.io.nifti import NiftiSink, write_nifti


# -- the rescale of each slice as it is read ------------------------------------------------------

def _whole_volume_rescale(volume: np.ndarray, slopes: np.ndarray, intercepts: np.ndarray) -> np.ndarray:
    """The rescale as radseg did it before issue 25: over the whole stored volume, after reading it."""
    volume = volume.copy()
    if np.all(slopes == 1) and np.all(intercepts == 0):
        return volume
    if np.all(slopes == 1) and np.all(intercepts == np.round(intercepts)):
        stored_low, stored_high = int(volume.min()), int(volume.max())
        low, high = stored_low + intercepts.min(), stored_high + intercepts.max()
        dtype = np.int16 if -(2**15) <= low and high < 2**15 else np.int32
        if dtype == np.int16 and volume.dtype == np.uint16 and stored_high < 2**15:
            out = volume.view(np.int16)
        else:
            out = volume.astype(dtype)
        if np.all(intercepts == intercepts[0]):
            out += dtype(intercepts[0])
        else:
            out += intercepts.astype(dtype)[:, None, None]
        return out
    return (volume.astype(np.float32) * slopes[:, None, None].astype(np.float32)
            + intercepts[:, None, None].astype(np.float32))


def _planes(stored: np.ndarray, slopes, intercepts, *, into: bool) -> list[Plane]:
    def reader(k):
        def load_into(out):
            out[...] = stored[k]
            return out
        return load_into

    return [Plane(source=f"s{k}", position=np.array([0.0, 0.0, float(k)]), row_cosine=np.array([1.0, 0, 0]),
                  column_cosine=np.array([0, 1.0, 0]), pixel_spacing=(1.0, 1.0), shape=stored.shape[1:],
                  slope=float(slopes[k]), intercept=float(intercepts[k]), load=lambda k=k: stored[k].copy(),
                  load_into=reader(k) if into else None)
            for k in range(len(stored))]


def _stored(dtype, low, high, slices=6, seed=1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(low, high, size=(slices, 5, 7), endpoint=True).astype(dtype)


CASES = {
    # name: stored volume, slopes, intercepts
    "CT: uint16, one intercept, int16 out": (_stored(np.uint16, 0, 4000), 1, -1024),
    "CT: int16 stored": (_stored(np.int16, -2000, 3000), 1, -1024),
    "uint16 above 2**15 in one slice: wraps to int16 as before": (
        np.concatenate([_stored(np.uint16, 0, 4000, 3), _stored(np.uint16, 33000, 34000, 2)]), 1, -2000),
    "int16 pushed below -2**15: int32": (_stored(np.int16, -32768, -30000), 1, -1024),
    "uint16 pushed above 2**15 by a positive intercept: int32": (_stored(np.uint16, 30000, 32767), 1, 4000),
    "a negative intercept below -2**15": (_stored(np.uint16, 8000, 30000), 1, -40000),
    "the same, out of int16 in the last slice": (
        np.concatenate([_stored(np.uint16, 8000, 30000, 3), _stored(np.uint16, 0, 100, 1)]), 1, -40000),
    "intercepts that differ": (_stored(np.uint16, 0, 4000), 1, np.array([-1024, -1000, -1024, -1024, -1024, 0])),
    "slope 0.5: float32": (_stored(np.uint16, 0, 4000), 0.5, -1024),
    "no rescale": (_stored(np.uint16, 0, 65535), 1, 0),
    "uint8 with an intercept": (_stored(np.uint8, 0, 255), 1, -100),
}


@pytest.mark.parametrize("into", [True, False], ids=["read into the volume", "loaded"])
@pytest.mark.parametrize("case", list(CASES))
def test_rescale_as_read_gives_the_whole_volume_rescale(case, into):
    stored, slope, intercept = CASES[case]
    slopes = np.broadcast_to(np.asarray(slope, dtype=float), len(stored)).copy()
    intercepts = np.broadcast_to(np.asarray(intercept, dtype=float), len(stored)).copy()
    expected = _whole_volume_rescale(stored, slopes, intercepts)
    got = _load_rescaled(_planes(stored, slopes, intercepts, into=into), "series")
    assert got.dtype == expected.dtype and np.array_equal(got, expected), case


# -- the checks of all planes at once -------------------------------------------------------------

def _one_by_one(planes: list[Plane]) -> str | None:
    """The consistency check as it was: plane by plane, the first failing check of the first bad plane."""
    first = planes[0]
    for p in planes[1:]:
        if p.shape != first.shape:
            return f"mixed image sizes: {p.source} is {p.shape}, {first.source} is {first.shape}"
        if (np.abs(p.row_cosine - first.row_cosine).max() > 1e-3
                or np.abs(p.column_cosine - first.column_cosine).max() > 1e-3):
            return f"mixed orientations: {p.source} and {first.source} differ in ImageOrientationPatient"
        if not np.allclose(p.pixel_spacing, first.pixel_spacing, rtol=1e-3):
            return f"mixed pixel spacing: {p.source} {p.pixel_spacing} vs {first.source} {first.pixel_spacing}"
    return None


@pytest.mark.parametrize("changes", [
    {}, {3: {"shape": (5, 8)}}, {2: {"row_cosine": np.array([0.99, 0.141, 0])}},
    {4: {"pixel_spacing": (1.0, 1.01)}}, {4: {"pixel_spacing": (1.0, 1.0005)}},
    {5: {"shape": (5, 8)}, 2: {"pixel_spacing": (2.0, 1.0)}},
    {3: {"pixel_spacing": (1.0, 1.1), "column_cosine": np.array([0, 0, 1.0])}},
    {1: {"pixel_spacing": (float("nan"), 1.0)}},
])
def test_plane_checks_name_the_same_plane_and_problem(changes):
    stored = _stored(np.uint16, 0, 10)
    planes = _planes(stored, np.ones(6), np.zeros(6), into=False)
    for index, fields in changes.items():
        for field, value in fields.items():
            setattr(planes[index], field, value)
    expected = _one_by_one(planes)
    if expected is None:
        _check_consistent(planes, "series")
        return
    with pytest.raises(SeriesError) as error:
        _check_consistent(planes, "series")
    assert error.value.problem == expected


def test_get_float_of_one_number_is_the_first_of_get_floats():
    values = {"A": 1.5, "B": 3, "C": "2.25", "D": [4.0, 5.0], "E": ["x", 1.0], "F": "", "G": None, "H": True,
              "I": float("nan"), "J": b"7"}
    for keyword in values:
        many = get_floats(values, keyword)
        expected = float(many[0]) if many is not None and many.size else -1.0
        got = get_float(values, keyword, -1.0)
        assert got == expected or (np.isnan(got) and np.isnan(expected)), keyword


# -- slice-by-slice NIfTI writing -----------------------------------------------------------------

def _series(folder: Path, *, intercept=-1024.0, slope=1.0, tilt=0.0, values=None, drop=None) -> Path:
    shape = (7, 12, 10)
    volume = values if values is not None else (np.arange(np.prod(shape)).reshape(shape) % 1500 - 1000).astype(np.float64)
    affine = np.diag([2.5, 0.7, 0.6, 1.0])
    affine[:3, 3] = [-30.0, 12.0, 4.0]
    affine[1, 0] = tilt  # a sheared slice axis: gantry tilt
    paths = write_dicom_series(Image(volume, affine=affine), folder, intercept=intercept, slope=slope)
    if drop is not None:
        paths[drop].unlink()
    return folder


def _peak_in(k: int) -> np.ndarray:
    values = (np.arange(7 * 12 * 10).reshape(7, 12, 10) % 1500 - 1000).astype(np.float64)
    values[k, 3, 3] = 32000  # stored 33024 with the intercept -1024
    return values


#: name: (how to write the series, read options, how many slices the sink takes before it writes or gives up)
SERIES = {
    "CT, uint16 + intercept": ({}, {}, 7),
    "no rescale": ({"intercept": 0.0, "values": np.arange(7 * 12 * 10).reshape(7, 12, 10) % 4000}, {}, 7),
    "stored above 2**15: not int16 as read": ({"intercept": -40000.0}, {}, 0),
    "stored above 2**15 in the middle slice: the stream stops there": ({"values": _peak_in(3)}, {}, 3),
    "slope 0.5: float": ({"slope": 0.5}, {}, 0),
    "gantry tilt, sheared affine": ({"tilt": 0.3}, {"tilt": "shear"}, 7),
    "gantry tilt, resampled": ({"tilt": 0.3}, {}, 0),
    "a missing slice, resampled": ({"drop": 3}, {"on_gap": "resample"}, 0),
}


class _CountingSink(NiftiSink):
    taken = 0

    def __call__(self, shell, slices):
        def counted():
            for plane in slices:
                self.taken += 1
                yield plane
        return super().__call__(shell, counted())


@pytest.mark.parametrize("case", list(SERIES))
def test_a_series_written_slice_by_slice_is_the_file_write_nifti_writes(tmp_path, case):
    make, options, taken = SERIES[case]
    series = scan(_series(tmp_path / "s", **make)).series[0]
    whole = read_series(series, **options)
    write_nifti(whole, tmp_path / "whole.nii")
    sink = _CountingSink(tmp_path / "sliced.nii")
    image = read_series(series, sink=sink, **options)
    assert sink.taken == taken and sink.written == (taken == len(series.files)), case
    if not sink.written:
        write_nifti(image, tmp_path / "sliced.nii")
    assert (tmp_path / "sliced.nii").read_bytes() == (tmp_path / "whole.nii").read_bytes()
    assert image.array.dtype == whole.array.dtype and np.array_equal(image.array, whole.array)
    assert np.array_equal(image.affine, whole.affine) and image.metadata == whole.metadata
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s", "sliced.nii", "whole.nii"]  # no partial files


def test_a_slice_that_fails_mid_stream_leaves_the_old_output_and_no_partial_file(tmp_path):
    folder = _series(tmp_path / "s")
    series = scan(folder).series[0]
    victim = sorted(series.files, key=lambda p: float(pydicom.dcmread(p).ImagePositionPatient[2]))[4]
    victim.write_bytes(victim.read_bytes()[:-50])  # cut after the scan: found while streaming
    out = tmp_path / "out" / "ct.nii"
    out.parent.mkdir()
    out.write_bytes(b"old")
    with pytest.raises(SeriesError) as whole:
        read_series(series)
    sink = NiftiSink(out)
    with pytest.raises(SeriesError) as streamed:
        read_series(series, sink=sink)
    assert str(streamed.value) == str(whole.value) and "truncated" in str(streamed.value)
    assert not sink.written and out.read_bytes() == b"old"
    assert [p.name for p in out.parent.iterdir()] == ["ct.nii"]


@pytest.mark.parametrize("target", ["file", "folder"])
def test_convert_to_nii_writes_what_read_and_write_nifti_write(tmp_path, target):
    folder = _series(tmp_path / "s")
    reference = tmp_path / "reference.nii"
    write_nifti(read(folder), reference)
    if target == "file":
        report = convert(folder, tmp_path / "out" / "ct.nii")
    else:
        report = convert(folder, tmp_path / "out", suffix=".nii")
    assert report.ok and len(report.written) == 1
    written = report.written[0]
    assert written.read_bytes() == reference.read_bytes()
    assert written.with_suffix(".json").is_file()
