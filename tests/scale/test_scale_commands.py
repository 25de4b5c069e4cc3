"""segment / convert / evaluate with --engine ray and --part: the same files and rows as the local engine
on real radiographs (FracAtlas, the shipped model) and on CT series; parts together equal the whole run."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from radseg.cli import app
from radseg.convert import convert
from radseg.evaluate.run import evaluate_folders
from radseg.image import Image
from radseg.io import write
from radseg.io.dicom_write import write_dicom_series
from radseg.scale.engine import EngineOptions
from tests.conftest import phantom_volume

ray = pytest.importorskip("ray", reason="Ray (radseg[scale]) not installed")
runner = CliRunner()


def _files(folder: Path) -> dict[str, bytes]:
    """Every output file under ``folder`` by relative path (state records excluded: they name the folder)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and ".radseg-segment" not in p.parts}


@pytest.fixture
def radiographs(shared_data, tmp_path) -> Path:
    """Six real FracAtlas radiographs (three fractured, three not) and one corrupt JPEG."""
    folder = tmp_path / "xr"
    folder.mkdir()
    for kind in ("Fractured", "Non_fractured"):
        for path in sorted((shared_data / "fracatlas" / "images" / kind).glob("*.jpg"))[:3]:
            shutil.copy(path, folder / path.name)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return folder


def test_segment_on_ray_writes_the_local_label_files_and_parts_add_up(radiographs, tmp_path):
    common = ["segment", "-i", str(radiographs), "-m", "fracatlas", "--threads", "1", "-q"]
    local = runner.invoke(app, [*common, "-o", str(tmp_path / "local")])
    remote = runner.invoke(app, [*common, "-o", str(tmp_path / "ray"), "--engine", "ray", "--workers", "2"])
    for result in (local, remote):  # the corrupt file is reported by both engines alike, the rest written
        assert result.exit_code == 1, result.output
        assert "broken.jpg" in result.output and "1 item(s) failed" in result.output
    assert not ray.is_initialized()  # the local Ray it started is shut down
    whole = _files(tmp_path / "local")
    assert len([name for name in whole if name.endswith(".png")]) == 6
    assert _files(tmp_path / "ray") == whole  # byte-identical label maps (and quality.csv)
    (tmp_path / "ray" / sorted(whole)[0]).unlink()  # a lost output: the rerun redoes that case only
    again = runner.invoke(app, [*common, "-o", str(tmp_path / "ray"), "--engine", "ray", "--workers", "1"])
    assert "wrote 1 file(s)" in again.output and "kept 5 finished case(s)" in again.output, again.output
    assert _files(tmp_path / "ray") == whole
    for k in (1, 2):
        runner.invoke(app, [*common, "-o", str(tmp_path / "parts"), "--part", f"{k}/2"])
    parts = _files(tmp_path / "parts")
    assert {n: b for n, b in parts.items() if n.endswith(".png")} == {n: b for n, b in whole.items() if n.endswith(".png")}


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=3, include_dashboard=False, log_to_driver=False, object_store_memory=256 * 1024**2)
    yield EngineOptions("ray", workers=2)
    ray.shutdown()


@pytest.fixture
def ct_archive(tmp_path, ct_image, oblique_image) -> Path:
    """Three CT series in two studies (one oblique), one with a truncated slice."""
    root = tmp_path / "archive"
    write_dicom_series(ct_image, root / "P1" / "S1", description="Axial", series_number=2)
    write_dicom_series(oblique_image, root / "P2" / "S1", description="Oblique", series_number=3)
    broken = write_dicom_series(Image(phantom_volume(seed=4), spacing=(2.0, 0.8, 0.8)), root / "P2" / "S2",
                                description="Broken", series_number=4)
    broken[3].write_bytes(broken[3].read_bytes()[:-400])
    return root


def test_convert_on_ray_writes_the_local_files_and_parts_add_up(ct_archive, tmp_path, local_ray):
    local = convert(ct_archive, tmp_path / "local")
    remote = convert(ct_archive, tmp_path / "ray", engine=local_ray)
    assert len(local.written) == 2 and len(local.failed) == 1  # the broken series is reported, the rest written
    assert sorted(local.failed) == sorted(remote.failed)
    assert _files(tmp_path / "ray") == _files(tmp_path / "local")
    for k in (1, 2, 3):
        convert(ct_archive, tmp_path / "parts", part=(k, 3))
    assert _files(tmp_path / "parts") == _files(tmp_path / "local")


def test_evaluate_on_ray_gives_the_local_rows_and_parts_add_up(tmp_path, local_ray):
    rng = np.random.default_rng(0)
    for case in range(7):
        truth = np.zeros((40, 48), np.uint8)
        truth[8 + case:30, 10:30 + case] = 1
        truth[2:6, 40:46] = 2
        pred = truth.copy()
        pred[rng.random(truth.shape) < 0.03] = 1
        write(Image(truth, spacing=(0.5, 0.5)), tmp_path / "truth" / f"c{case}.nii.gz")
        write(Image(pred, spacing=(0.5, 0.5)), tmp_path / "pred" / f"c{case}.nii.gz")
    options = dict(resamples=200, seed=1)
    local = evaluate_folders(tmp_path / "pred", tmp_path / "truth", workers=1, **options)
    remote = evaluate_folders(tmp_path / "pred", tmp_path / "truth", engine=local_ray, **options)
    pd.testing.assert_frame_equal(local.per_case, remote.per_case)
    pd.testing.assert_frame_equal(local.summary, remote.summary)
    parts = [evaluate_folders(tmp_path / "pred", tmp_path / "truth", part=(k, 2), workers=1, **options) for k in (1, 2)]
    assert all("statistics describe this part only" in " ".join(w for _, w in p.warnings) for p in parts)
    joined = pd.concat([p.per_case for p in parts]).sort_values(["case", "label"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(joined, local.per_case.sort_values(["case", "label"]).reset_index(drop=True))


def test_evaluate_parts_merge_into_the_whole_run_s_tables(tmp_path):
    rng = np.random.default_rng(5)
    rows = ["case,sex"]
    for case in range(9):
        truth = np.zeros((32, 32, 6), np.uint8)
        truth[4 + case % 3:24, 6:26 - case % 4, 1:5] = 1
        pred = np.roll(truth, rng.integers(-2, 3), axis=0)
        write(Image(truth, spacing=(0.8, 0.8, 2.0)), tmp_path / "truth" / f"c{case}.nii.gz")
        write(Image(pred, spacing=(0.8, 0.8, 2.0)), tmp_path / "pred" / f"c{case}.nii.gz")
        rows.append(f"c{case},{'FM'[case % 2]}")
    (tmp_path / "meta.csv").write_text("\n".join(rows) + "\n")
    common = ["evaluate", "--bootstrap", "300", "--metadata", str(tmp_path / "meta.csv"), "--by", "sex", "-q"]
    data = ["--pred", str(tmp_path / "pred"), "--truth", str(tmp_path / "truth"), "--workers", "1"]
    assert runner.invoke(app, [*common, *data, "-o", str(tmp_path / "whole")]).exit_code == 0
    for k in (1, 2, 3):
        assert runner.invoke(app, [*common, *data, "--part", f"{k}/3", "-o", str(tmp_path / f"p{k}")]).exit_code == 0
    merged = runner.invoke(app, [*common, "--merge", ",".join(str(tmp_path / f"p{k}") for k in (1, 2, 3)),
                                 "-o", str(tmp_path / "merged")])
    assert merged.exit_code == 0, merged.output
    for name in ("per_case.csv", "summary.csv", "fairness.csv"):
        whole = pd.read_csv(tmp_path / "whole" / name)
        pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "merged" / name), whole)
    twice = runner.invoke(app, [*common, "--merge", f"{tmp_path / 'p1'},{tmp_path / 'p1'}", "-o", str(tmp_path / "x")])
    assert twice.exit_code == 1 and "in more than one of the merged folders" in twice.output
    mixed = runner.invoke(app, [*common, *data, "--merge", str(tmp_path / "p1"), "-o", str(tmp_path / "y")])
    assert mixed.exit_code == 1 and "without --pred" in mixed.output


def test_a_catalog_feeds_convert_and_segment_with_the_folder_run_s_images(ct_archive, tmp_path):
    from radseg.io import read

    index = runner.invoke(app, ["index", str(ct_archive), "-o", str(tmp_path / "cat.parquet"), "--workers", "1", "-q"])
    assert index.exit_code == 0, index.output
    chosen = runner.invoke(app, ["convert", "--catalog", str(tmp_path / "cat.parquet"), "--where",
                                 "series_description == 'Oblique'", str(tmp_path / "from-cat"), "-q"])
    assert chosen.exit_code == 0, chosen.output
    (written,) = (tmp_path / "from-cat").glob("*.nii.gz")  # the one series the query selects
    convert(ct_archive / "P2" / "S1", tmp_path / "direct.nii.gz")
    a, b = read(written), read(tmp_path / "direct.nii.gz")
    assert np.array_equal(a.array, b.array) and np.allclose(a.affine, b.affine)
    everything = runner.invoke(app, ["convert", "--catalog", str(tmp_path / "cat.parquet"), str(tmp_path / "all"), "-q"])
    assert everything.exit_code == 1 and "1 item(s) failed" in everything.output
    assert len(list((tmp_path / "all").glob("*.nii.gz"))) == 2  # the broken series is reported, the others written
    bad = runner.invoke(app, ["convert", "--catalog", str(tmp_path / "cat.parquet"), "--where", "modality = 'CT'",
                              str(tmp_path / "x")])
    assert bad.exit_code == 1 and "cat.parquet" in bad.output and "--where" in bad.output
    both = runner.invoke(app, ["segment", "-i", str(ct_archive), "--catalog", str(tmp_path / "cat.parquet"),
                               "-o", str(tmp_path / "s"), "-m", "fracatlas"])
    assert both.exit_code == 1 and "not both" in both.output


def test_segment_from_a_catalog_writes_the_folder_run_s_labels(radiographs, tmp_path):
    runner.invoke(app, ["index", str(radiographs), "-o", str(tmp_path / "xr.parquet"), "--workers", "1", "-q"])
    common = ["-m", "fracatlas", "--threads", "1", "-q"]
    runner.invoke(app, ["segment", "-i", str(radiographs), "-o", str(tmp_path / "folder"), *common])
    result = runner.invoke(app, ["segment", "--catalog", str(tmp_path / "xr.parquet"), "--where", "kind == 'image'",
                                 "-o", str(tmp_path / "catalog"), *common])
    assert result.exit_code == 0, result.output  # the broken JPEG is not selected by the query
    folder = _files(tmp_path / "folder")  # six label maps and the image scores of the one-finding model
    assert sorted(folder) == sorted([*(p.with_suffix(".png").name for p in radiographs.glob("IMG*.jpg")),
                                     "image_scores.csv"])
    assert len(pd.read_csv(tmp_path / "folder" / "image_scores.csv")) == 6
    assert _files(tmp_path / "catalog") == _files(tmp_path / "folder")  # same case names, same label bytes


def test_a_series_sent_to_another_process_reads_the_same(ct_archive):
    """A DicomSeries travels as its files (its deferred-read headers do not survive pickling) and is re-read there."""
    import pickle

    from radseg.io.dicom import read_series
    from radseg.io.dicom_scan import scan

    for series in scan(ct_archive / "P1").series + scan(ct_archive / "P2" / "S1").series:
        copy = pickle.loads(pickle.dumps(series))
        assert copy.files == series.files and copy.key == series.key and copy.kind == series.kind
        a, b = read_series(series), read_series(copy)
        assert np.array_equal(a.array, b.array) and np.allclose(a.affine, b.affine)
