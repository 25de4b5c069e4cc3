"""``radseg index``: the catalog of a folder tree (studies, a corrupt file, non-DICOM files), its facts
against ``radseg info``'s, resume, parts, engines, no identifiers, ``--where`` and the CLI."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from typer.testing import CliRunner

import radseg.io as rio
from radseg.cli import app
from radseg.errors import RadsegError
from radseg.image import Image
from radseg.info import describe
from radseg.io.dicom_write import write_dicom_radiograph, write_dicom_series
from radseg.scale.catalog import build_catalog
from radseg.scale.catalog_read import catalog_entries, read_catalog
from radseg.scale.engine import EngineOptions
from tests.conftest import phantom_volume

pytest.importorskip("pyarrow")
runner = CliRunner()

#: Identifying values written into every DICOM header of the tree: none may reach the catalog.
IDENTIFIERS = {"PatientName": "DOE^JANE", "PatientID": "PID778899", "PatientBirthDate": "19650412",
               "AccessionNumber": "ACC44556", "InstitutionName": "Saint Nowhere Hospital",
               "ReferringPhysicianName": "HOUSE^GREGORY", "OtherPatientIDs": "OPID3141", "PatientAddress": "Elmwood Lane"}
SERIAL = EngineOptions(workers=1)


def _tag(paths, **values) -> None:
    """Add identifiers (and other tags) to written DICOM files."""
    for path in paths:
        ds = pydicom.dcmread(path)
        for keyword, value in {**IDENTIFIERS, **values}.items():
            setattr(ds, keyword, value)
        ds.save_as(path)


def make_tree(root: Path) -> Path:
    """Three studies: a CT series, a folder with two series, a radiograph, a PNG beside a note, a NIfTI,
    a truncated DICOM, and a hidden folder."""
    ct = Image(phantom_volume((5, 16, 20)), spacing=(2.5, 0.7, 0.8), origin=(-30.0, -20.0, 100.0))
    _tag(write_dicom_series(ct, root / "study1" / "ct", description="Thorax 1mm", patient={"id": "PID778899"}),
         BodyPartExamined="CHEST")
    _tag(write_dicom_series(ct, root / "study1" / "mixed", description="Axial soft", series_number=2,
                            file_pattern="a{index:03d}.dcm"), BodyPartExamined="ABDOMEN")
    sagittal = Image(phantom_volume((4, 12, 12), seed=1), spacing=(3.0, 0.9, 0.9), direction=np.eye(3))
    _tag(write_dicom_series(sagittal, root / "study1" / "mixed", modality="MR", description="Sag T1", series_number=3,
                            file_pattern="b{index:03d}.dcm"))
    (root / "study2" / "xr").mkdir(parents=True)
    xray = Image(np.arange(30 * 24, dtype=np.uint16).reshape(30, 24), spacing=(0.2, 0.2))
    _tag([write_dicom_radiograph(xray, root / "study2" / "xr" / "chest.dcm")], BodyPartExamined="CHEST")
    (root / "study2" / "notes").mkdir(parents=True)
    rio.write(Image(np.zeros((8, 10), np.uint8)), root / "study2" / "notes" / "thumb.png")
    (root / "study2" / "notes" / "readme.txt").write_text("seen by Dr House for DOE^JANE")
    rio.write(Image(phantom_volume((6, 10, 12)), spacing=(2.0, 1.0, 1.5), origin=(5.0, 6.0, 7.0)),
              root / "study3" / "vol.nii.gz")
    (root / "corrupt").mkdir()
    whole = (root / "study1" / "ct" / "IM00001.dcm").read_bytes()
    (root / "corrupt" / "bad.dcm").write_bytes(whole[:300])  # cut inside the header
    (root / ".cache").mkdir()
    (root / ".cache" / "x.png").write_bytes(b"not looked at")
    return root


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return make_tree(tmp_path_factory.mktemp("archive") / "archive")


@pytest.fixture(scope="module")
def catalog(tree, tmp_path_factory):
    out = tmp_path_factory.mktemp("catalog") / "catalog.parquet"
    report = build_catalog(tree, out, engine=SERIAL)
    return out, report, read_catalog(out)


def _by_key(frame) -> dict:
    return {row["key"]: row for row in frame.to_dict("records")}


def test_one_row_per_series_image_and_unreadable_file(catalog, tree):
    _, report, frame = catalog
    rows = _by_key(frame)
    assert sorted(rows) == ["corrupt_bad.dcm", "study1_ct", "study1_mixed_2", "study1_mixed_3", "study2_notes_thumb",
                            "study2_xr_chest", "study3_vol"]
    assert {k: rows[k]["kind"] for k in rows} == {
        "corrupt_bad.dcm": "unreadable", "study1_ct": "series", "study1_mixed_2": "series", "study1_mixed_3": "series",
        "study2_notes_thumb": "image", "study2_xr_chest": "radiograph", "study3_vol": "image"}
    assert report.kinds == {"series": 3, "radiograph": 1, "image": 2, "unreadable": 1}
    assert report.folders == 6 and report.folders_scanned == 6 and report.ignored_files == 1  # readme.txt
    assert "truncated" in rows["corrupt_bad.dcm"]["problems"] or "not a readable" in rows["corrupt_bad.dcm"]["problems"]
    ct = rows["study1_ct"]
    assert ct["modality"] == "CT" and ct["body_part"] == "CHEST" and ct["series_description"] == "Thorax 1mm"
    assert ct["n_files"] == 5 and [Path(f).name for f in ct["files"]] == [f"IM{i:05d}.dcm" for i in range(1, 6)]
    assert ct["path"] == str(tree / "study1" / "ct") and ct["root"] == str(tree)
    assert rows["study2_xr_chest"]["body_part"] == "CHEST" and rows["study1_mixed_3"]["modality"] == "MR"
    assert len(ct["series_uid"]) > 10 and len(ct["study_uid"]) > 10


def test_row_facts_are_what_info_reports(catalog, tree):
    _, _, frame = catalog
    for row in frame.to_dict("records"):
        if row["kind"] == "unreadable":
            continue
        info = describe(row["path"])
        entries = info["images"] if len(info["images"]) == 1 else [e for e in info["images"]
                                                                    if e.get("series") == row["series_uid"]]
        assert len(entries) == 1, row["key"]
        entry = entries[0]
        assert row["modality"] == entry["modality"] and row["series_description"] == entry["description"]
        assert list(row["shape"]) == entry["shape"], row["key"]
        assert np.allclose(row["spacing_mm"], entry["spacing_mm"]) and row["spacing_known"] == entry["spacing_known"]
        assert row["orientation"] == entry.get("orientation", ""), row["key"]
        assert row["problems"] == "; ".join(entry["problems"])
    assert list(_by_key(frame)["study3_vol"]["shape"]) == [6, 10, 12]  # the NIfTI, from its header only


def test_the_catalog_holds_no_patient_identifier(catalog):
    out, _, frame = catalog
    text = " ".join(str(value) for row in frame.to_dict("records") for value in row.values())
    text += " ".join(p.read_text() for p in Path(f"{out}.parts").iterdir())  # the resume cache too
    for keyword, value in IDENTIFIERS.items():
        for word in value.replace("^", " ").split():  # each word of each value
            assert word not in text, f"{keyword} ({word}) leaked into the catalog"


def test_rerun_reuses_every_folder_and_rescans_only_a_changed_one(tree, tmp_path):
    out = tmp_path / "catalog.parquet"
    first = build_catalog(tree, out, engine=SERIAL)
    before = read_catalog(out)
    again = build_catalog(tree, out, engine=SERIAL)
    assert (again.folders_scanned, again.folders_reused) == (0, first.folders)
    assert read_catalog(out).equals(before)
    changed = tree / "study2" / "xr" / "chest.dcm"
    stat = changed.stat()
    try:
        os.utime(changed, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
        touched = build_catalog(tree, out, engine=SERIAL)
    finally:
        os.utime(changed, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert (touched.folders_scanned, touched.folders_reused) == (1, first.folders - 1)
    assert read_catalog(out).drop(columns="folder_signature").equals(before.drop(columns="folder_signature"))


def test_a_catalog_inside_root_is_not_indexed(tmp_path):
    write_dicom_radiograph(Image(np.ones((6, 5), np.uint16), spacing=(0.2, 0.2)), tmp_path / "xr.dcm")
    first = build_catalog(tmp_path, tmp_path / "catalog.parquet", engine=SERIAL)
    again = build_catalog(tmp_path, tmp_path / "catalog.parquet", engine=SERIAL)
    assert (first.rows, first.folders, first.ignored_files) == (1, 1, 0)
    assert (again.rows, again.folders_reused, again.ignored_files) == (1, 1, 0)


def test_parts_together_are_the_whole_catalog(tree, catalog, tmp_path):
    whole = catalog[2]
    for k in (1, 2):
        build_catalog(tree, tmp_path / f"catalog-{k}.parquet", engine=SERIAL, part=(k, 2))
    one, two = (read_catalog(tmp_path / f"catalog-{k}.parquet") for k in (1, 2))
    assert len(one) and len(two) and not set(one["key"]) & set(two["key"])
    together = read_catalog(str(tmp_path / "catalog-*.parquet")).sort_values("key").reset_index(drop=True)
    assert together.equals(whole.sort_values("key").reset_index(drop=True))


def test_where_selects_rows_and_a_bad_one_is_a_clean_error(catalog):
    out = catalog[0]
    ct = read_catalog(out, where="modality == 'CT'")
    assert sorted(ct["key"]) == ["study1_ct", "study1_mixed_2"]
    assert list(read_catalog(out, where="kind == 'image' and n_files == 1")["key"]) == ["study2_notes_thumb", "study3_vol"]
    with pytest.raises(RadsegError, match="catalog.parquet: --where .*modality ==") as err:
        read_catalog(out, where="modality ==")
    assert "Traceback" not in str(err.value)
    with pytest.raises(RadsegError, match="colour.*the columns are key, kind"):
        read_catalog(out, where="colour == 'red'")
    with pytest.raises(RadsegError, match="no catalog matches"):
        read_catalog(str(out.parent / "nothing-*.parquet"))


def test_catalog_entries_give_absolute_files_in_slice_order(catalog, tree):
    entries = {e.key: e for e in catalog_entries(read_catalog(catalog[0]))}
    ct = entries["study1_ct"]
    assert ct.kind == "series" and ct.format == "dicom" and ct.path.is_dir()
    assert all(f.is_file() and f.is_absolute() for f in ct.files) and len(ct.files) == 5
    assert np.array_equal(rio.read(ct.path).array, rio.read(ct.files[0].parent).array)
    assert entries["study3_vol"].files == [entries["study3_vol"].path] and entries["study3_vol"].format == "nifti"


def test_a_series_spread_over_two_folders_is_one_row(tmp_path):
    paths = write_dicom_series(Image(phantom_volume((6, 12, 12)), spacing=(2.0, 1.0, 1.0)), tmp_path / "tree" / "s" / "a")
    (tmp_path / "tree" / "s" / "b").mkdir()
    for path in paths[3:]:
        shutil.move(path, tmp_path / "tree" / "s" / "b" / path.name)
    report = build_catalog(tmp_path / "tree", tmp_path / "c.parquet", engine=SERIAL)
    frame = read_catalog(tmp_path / "c.parquet")
    assert report.merged_series == 1 and len(frame) == 1
    row = frame.iloc[0]
    assert row["key"] == "s" and row["n_files"] == 6 and list(row["shape"]) == [6, 12, 12]
    assert "in 2 folders: s/a, s/b" in row["problems"]


def test_cli_index_exit_codes_and_summary(tree, tmp_path):
    out = tmp_path / "cli.parquet"
    done = runner.invoke(app, ["index", str(tree), "-o", str(out), "--workers", "2", "-q"])
    assert done.exit_code == 0, done.output
    assert "7 row(s): 3 series, 1 radiograph(s), 2 image(s), 1 unreadable" in done.output
    assert "6 scanned, 0 reused" in done.output and "warning: " in done.output and "bad.dcm" in done.output
    assert len(read_catalog(out)) == 7
    again = runner.invoke(app, ["index", str(tree), "-o", str(out), "-q"])
    assert again.exit_code == 0 and "0 scanned, 6 reused" in again.output
    missing = runner.invoke(app, ["index", str(tmp_path / "nowhere"), "-o", str(out)])
    assert missing.exit_code == 1 and "no such folder" in missing.output
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.dcm").write_bytes(b"\0" * 50)
    (tmp_path / "junk" / "note.txt").write_text("x")
    nothing = runner.invoke(app, ["index", str(tmp_path / "junk"), "-o", str(tmp_path / "junk.parquet"), "-q"])
    assert nothing.exit_code == 1 and "no readable image or series found" in nothing.output
    assert len(read_catalog(tmp_path / "junk.parquet")) == 1  # the unreadable file is still listed
    bad_part = runner.invoke(app, ["index", str(tree), "-o", str(out), "--part", "3/2"])
    assert bad_part.exit_code == 1 and "--part" in bad_part.output
    assert runner.invoke(app, ["index", "-h"]).exit_code == 0


def test_ray_engine_gives_the_same_rows(tree, catalog, tmp_path):
    pytest.importorskip("ray")
    out = tmp_path / "ray.parquet"
    report = build_catalog(tree, out, engine=EngineOptions(engine="ray", workers=2))
    assert report.folders_scanned == report.folders
    assert read_catalog(out).equals(catalog[2])


def test_real_files_match_info(shared_data, tmp_path):
    sources = [shared_data / "ct" / "totalsegmentator-example", shared_data / "xray" / "wg04"]
    if not all(s.is_dir() for s in sources):
        pytest.skip("the real CT and radiograph folders are not in the data folder")
    for k, source in enumerate(sources):  # two catalogs of two roots, read as one
        build_catalog(source, tmp_path / f"real-{k}.parquet", engine=EngineOptions(workers=2))
    rows = _by_key(read_catalog([tmp_path / "real-0.parquet", tmp_path / "real-1.parquet"]))
    assert {"dicom", "example_ct", "RG2_JPLL", "RG1_JLSN"} <= set(rows)
    ct, hip = rows["dicom"], rows["RG2_JPLL"]
    assert ct["kind"] == "series" and ct["n_files"] == 20 and list(ct["shape"])[0] == 20 and ct["modality"] == "CT"
    assert hip["kind"] == "radiograph" and list(hip["shape"]) == [2140, 1760] and hip["spacing_known"]
    assert not rows["RG1_JLSN"]["spacing_known"]  # PixelSpacing "0.000"
    for row in rows.values():
        entry = describe(row["path"])["images"][0]
        assert list(row["shape"]) == entry["shape"] and row["orientation"] == entry.get("orientation", "")
