"""The `radseg info` and `radseg convert` commands, batch behaviour and the HemSeg-200 selection."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from typer.testing import CliRunner

import radseg.io as rio
from radseg.cli import app
from radseg.image import Image
from radseg.io.dicom_write import write_dicom_series

runner = CliRunner()


@pytest.fixture
def archive(tmp_path, ct_image, oblique_image):
    """Two studies, one with a corrupt slice, plus a PNG and a text file."""
    root = tmp_path / "archive"
    write_dicom_series(ct_image, root / "PA1" / "ST1" / "SE1", description="Axial", series_number=2,
                       patient={"name": "DOE^JANE", "id": "MRN123"})
    bad = write_dicom_series(oblique_image, root / "PA2" / "ST1" / "SE1", description="Broken", series_number=5)
    bad[4].write_bytes(bad[4].read_bytes()[:-500])
    rio.write(Image(np.arange(20, dtype=np.uint8).reshape(4, 5)), root / "PA2" / "thumb.png")
    (root / "notes.txt").write_text("reading notes")
    return root


def test_convert_folder_reports_bad_series_and_converts_the_rest(tmp_path, archive, ct_image):
    out = tmp_path / "out"
    result = runner.invoke(app, ["convert", str(archive), str(out), "-q"])
    assert result.exit_code == 1
    assert "IM00005.dcm" in result.output and "1 item(s) failed" in result.output
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.nii.gz"))
    assert len(written) == 2 and written[0].startswith("PA1/ST1/SE1/002_Axial_") and written[1] == "PA2/thumb.nii.gz"
    image = rio.read(out / written[0])
    np.testing.assert_array_equal(image.array, ct_image.array)
    np.testing.assert_allclose(image.affine, ct_image.affine, atol=1e-5)
    sidecar = json.loads((out / written[0]).with_name(Path(written[0]).name.replace(".nii.gz", ".json")).read_text())
    text = json.dumps(sidecar)
    for identifier in ("DOE", "MRN123", "2020", ct_image.metadata.get("series_uid", "1.2.826")):
        assert identifier not in text
    assert sidecar["Modality"] == "CT" and sidecar["radseg"]["spacing_mm"] == pytest.approx([2.5, 0.7, 0.8])
    assert not [p for p in out.rglob("*") if ".partial-" in p.name]
    # A rerun keeps finished outputs (resume) and still reports the broken series.
    again = runner.invoke(app, ["convert", str(archive), str(out), "-q"])
    assert again.exit_code == 1 and "kept 2 existing output(s)" in again.output


def test_convert_single_series_to_other_formats(tmp_path, ct_image):
    write_dicom_series(ct_image, tmp_path / "ct")
    for suffix in (".mha", ".nrrd", ".nii"):
        result = runner.invoke(app, ["convert", str(tmp_path / "ct"), str(tmp_path / f"ct{suffix}")])
        assert result.exit_code == 0, result.output
        np.testing.assert_array_equal(rio.read(tmp_path / f"ct{suffix}").array, ct_image.array)


def test_convert_gap_needs_allow_gaps(tmp_path, ct_image):
    paths = write_dicom_series(ct_image, tmp_path / "ct")
    paths[3].unlink()
    failed = runner.invoke(app, ["convert", str(tmp_path / "ct"), str(tmp_path / "ct.nii.gz")])
    assert failed.exit_code == 1 and "missing slice" in failed.output
    assert not (tmp_path / "ct.nii.gz").exists()
    ok = runner.invoke(app, ["convert", str(tmp_path / "ct"), str(tmp_path / "ct.nii.gz"), "--allow-gaps"])
    assert ok.exit_code == 0 and "interpolated" in ok.output
    assert rio.read(tmp_path / "ct.nii.gz").shape == ct_image.shape


@pytest.mark.parametrize("variant", ["hemseg200", "hemseg500"])
def test_convert_select_jsonl(tmp_path, ct_image, variant):
    paths = write_dicom_series(ct_image, tmp_path / "rsna" / "stage_2_train", file_pattern="tmp{index:03d}.dcm")
    ids = []
    for path in paths:  # RSNA naming: ID_<hex>.dcm, no order in the names
        slice_id = pydicom.uid.generate_uid()[-10:].replace(".", "a")
        path.rename(path.with_name(f"ID_{slice_id}.dcm"))
        ids.append(slice_id)
    keep = ids[2:9]
    if variant == "hemseg200":
        line = {"patient": "ID_p1", "scan_": "ID_scan1", "slice_list": [f"ID_{i}" for i in keep]}
    else:
        line = {"patient_name": "ID_p1", "scan_name": "ID_scan1", "slice_list": {str(n): f"ID_{i}" for n, i in enumerate(keep)}}
    missing = {"patient": "ID_p2", "scan_": "ID_scan2", "slice_list": ["ID_ffff0000"]}
    select = tmp_path / "annotion_file_info.jsonl"
    select.write_text(json.dumps(line) + "\n" + json.dumps(missing) + "\n")
    result = runner.invoke(app, ["convert", str(tmp_path / "rsna"), str(tmp_path / "out"), "--select", str(select), "-q"])
    assert result.exit_code == 1  # scan2 names a slice that is not there
    assert "ID_ffff0000.dcm" in result.output and "1 of 1 listed slice file(s) not found" in result.output
    image = rio.read(tmp_path / "out" / "ID_scan1.nii.gz")
    np.testing.assert_array_equal(image.array, ct_image.array[2:9])
    np.testing.assert_allclose(image.origin, ct_image.index_to_world([2, 0, 0]), atol=1e-5)


def test_info_text_and_json(tmp_path, archive):
    result = runner.invoke(app, ["info", str(archive), "--json"])
    assert result.exit_code == 0
    info = json.loads(result.output)
    axial = [s for s in info["images"] if s["description"] == "Axial"][0]
    assert axial["shape"] == [12, 40, 48] and axial["orientation"] == "LPS"
    assert axial["spacing_mm"] == pytest.approx([2.5, 0.7, 0.8])
    assert len(info["non_dicom_files"]) == 2
    text = runner.invoke(app, ["info", str(archive)]).output
    assert "shape: 12 x 40 x 48" in text and "Broken" in text


def test_info_reports_gap_without_reading_pixels(tmp_path, ct_image):
    paths = write_dicom_series(ct_image, tmp_path / "ct")
    paths[6].unlink()
    info = json.loads(runner.invoke(app, ["info", str(tmp_path / "ct"), "--json"]).output)
    assert any("1 missing slice(s)" in p for p in info["images"][0]["problems"])


def test_bad_input_exits_nonzero_with_the_file_named(tmp_path):
    result = runner.invoke(app, ["info", str(tmp_path / "nope.nii.gz")])
    assert result.exit_code == 1 and "nope.nii.gz" in result.output
    (tmp_path / "junk.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\xff" * 50)
    result = runner.invoke(app, ["convert", str(tmp_path / "junk.dcm"), str(tmp_path / "j.nii.gz")])
    assert result.exit_code == 1 and "junk.dcm" in result.output


def test_help_is_light():
    code = "import sys, radseg.cli; print(','.join(m for m in ('torch', 'monai', 'pydicom', 'nibabel', 'SimpleITK', 'scipy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0 and "convert" in result.output and "info" in result.output
