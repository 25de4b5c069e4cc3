"""The fast header reader (radseg.io.dicom_header) against pydicom: same values, same pixels, and
pydicom for every file it does not walk."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest

from radseg.image import Image
from radseg.io import dicom_header
from radseg.io.dicom import read_dicom
from radseg.io.dicom_header import KEYWORDS, FastHeader, fast_headers, read_fast_header
from radseg.io.dicom_scan import scan
from radseg.io.dicom_tags import _jsonable, decode_pixels
from radseg.io.dicom_write import write_dicom_series

PYDICOM_FILES = sorted(p for p in (Path(pydicom.__file__).parent / "data" / "test_files").rglob("*") if p.is_file())


def _plain(value):
    value = getattr(value, "value", value)
    value = None if value is None else _jsonable(value)
    return None if value in ("", [], None) else value


def test_every_walked_file_gives_pydicoms_values_and_pixels():
    walked = 0
    for path in PYDICOM_FILES:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                full = pydicom.dcmread(path, defer_size="4 KB")
            except Exception:  # noqa: BLE001 - not DICOM: nothing to compare
                continue
            header = read_fast_header(path)
            if header is None:
                continue
            walked += 1
            for keyword, (_, vr) in KEYWORDS.items():
                if vr not in ("SQ", "OB", "OW", "OF", "OD"):
                    assert _plain(header.get(keyword)) == _plain(full.get(keyword)), (path.name, keyword)
            try:
                expected = decode_pixels(full)
            except Exception as exc:  # noqa: BLE001 - a decoder this machine lacks: the same error both ways
                with pytest.raises(type(exc)):
                    header.read_pixels()
                continue
            pixels = header.read_pixels()
            assert pixels.dtype == expected.dtype and np.array_equal(pixels, expected), path.name
    assert walked >= 20  # explicit and implicit VR, compressed and not, with sequences


def _series(folder: Path, slices: int = 5) -> Path:
    volume = (np.arange(slices * 20 * 24, dtype=np.int32).reshape(slices, 20, 24) % 3000 - 1000).astype(np.int16)
    affine = np.diag([2.5, 0.7, 0.6, 1.0])
    affine[:3, 3] = [-30.0, 12.0, 4.0]
    write_dicom_series(Image(volume, affine=affine), folder)
    return folder


def test_a_series_reads_the_same_with_and_without_the_fast_reader(tmp_path, monkeypatch):
    folder = _series(tmp_path / "s")
    found = scan(folder)
    assert all(isinstance(ds, FastHeader) for _, ds in found.series[0].headers)
    fast = read_dicom(folder)
    monkeypatch.setattr(dicom_header, "read_fast_header", lambda path: None)
    slow = read_dicom(folder)
    assert not any(isinstance(ds, FastHeader) for _, ds in scan(folder).series[0].headers)
    assert fast.array.dtype == slow.array.dtype and np.array_equal(fast.array, slow.array)
    assert np.allclose(fast.affine, slow.affine) and fast.metadata["dicom"] == slow.metadata["dicom"]


def test_files_it_does_not_walk_go_to_pydicom(tmp_path):
    folder = _series(tmp_path / "s", slices=2)
    path = sorted(folder.iterdir())[0]
    data = path.read_bytes()
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(data[:-100])  # pixel data shorter than its length: pydicom names it truncated
    bare = tmp_path / "bare.dcm"
    bare.write_bytes(data[128:])  # no preamble
    assert read_fast_header(path) is not None
    assert read_fast_header(cut) is None and read_fast_header(bare) is None
    assert read_fast_header(tmp_path / "missing.dcm") is None


def test_many_files_are_parsed_in_parallel_with_the_same_result(tmp_path, monkeypatch):
    folder = _series(tmp_path / "s", slices=12)
    files = sorted(folder.iterdir())
    alone = fast_headers(files)
    monkeypatch.setattr(dicom_header, "PARALLEL_FROM", 4)
    pooled = fast_headers(files, workers=2)
    assert list(pooled) == files
    for path in files:
        assert pooled[path].get("ImagePositionPatient") == alone[path].get("ImagePositionPatient")
        assert np.array_equal(pooled[path].read_pixels(), alone[path].read_pixels())
