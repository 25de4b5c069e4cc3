"""The page's logic without a browser: model runs, overlay, legend, measurements, downloads, messages."""

from __future__ import annotations

import os
import sys
import zipfile

import numpy as np
import pytest

import radseg.io as rio
from radseg.errors import MissingExtraError, RadsegError
from radseg.image import Image
from radseg.io.label_png import label_colour
from radseg.labels import make_label_map
from radseg.serve import render
from radseg.serve.models import LABELS_CHOICE, ModelCache, find_models
from radseg.serve.service import Service
from tests.serve.conftest import grey_png
from tests.train.shapes import dice


@pytest.fixture
def service(tiny_model, tmp_path):
    return Service(ModelCache(find_models(tiny_model), device="cpu", threads=2), max_upload_mb=5,
                   work_dir=tmp_path / "work")


@pytest.fixture
def labels_only(tmp_path):
    return Service(ModelCache({}), max_upload_mb=5, work_dir=tmp_path / "work")


def test_segment_a_png_shows_overlay_legend_measurements_and_download(service, disc_image, tmp_path):
    image, truth = disc_image
    upload = grey_png(image, tmp_path / "disc.png")
    result = service.analyse(upload, "discs", output_type="nifti")
    assert result.ok, result.status
    assert "segmented by discs" in result.status and "Labels found: disc, square" in result.status
    assert "no physical pixel size in disc.png" in result.status  # a PNG has no pixel size: px, never mm
    assert "Intended use: research model, not a diagnostic device" in result.status
    assert dice(result.labels.array == 1, truth.array == 1) > 0.85
    # legend: names, fixed colours, sizes
    assert [(r["value"], r["name"]) for r in result.legend] == [(1, "disc"), (2, "square")]
    assert result.legend[0]["colour"] == "#{:02x}{:02x}{:02x}".format(*label_colour(1))
    assert 'class="name">disc<' in result.legend_html and result.legend[0]["colour"] in result.legend_html
    # overlay: a PNG, enlarged for display, with the disc outlined in its colour
    from PIL import Image as PILImage

    picture = np.asarray(PILImage.open(result.overlay).convert("RGB"))
    assert picture.shape[0] >= 560  # 70 rows x 8
    assert (picture == label_colour(1)).all(axis=-1).sum() > 100 and (picture == label_colour(2)).all(axis=-1).sum() > 100
    # measurements: the disc's area in pixels (no pixel size: 1 mm assumed) matches the truth
    table = result.table
    area = table[(table.structure == "disc") & (table.measurement == "area")]["value"].item()
    assert area == (result.labels.array == 1).sum() and area == pytest.approx((truth.array == 1).sum(), rel=0.3)
    assert result.feature_set == "shape" and set(table.status) == {"ok"}
    # download: the NIfTI reads back as the same labels
    back = rio.read_labels(result.download)
    assert np.array_equal(back.array, result.labels.array)


def test_every_download_format(service, disc_image, tmp_path):
    result = service.analyse(grey_png(disc_image[0], tmp_path / "d.png"), "discs")
    written = {}
    for output_type in render.DOWNLOAD_FORMATS:
        if output_type == "dicom-seg":
            with pytest.raises(RadsegError, match="DICOM uploads only"):
                service.download(result, output_type)
            continue
        written[output_type] = service.download(result, output_type)
    assert np.array_equal(rio.read_labels(written["png"]).array, result.labels.array)
    assert np.array_equal(rio.read_labels(written["npz"]).array, result.labels.array)
    assert written["jpg"].read_bytes()[:3] == b"\xff\xd8\xff"
    with zipfile.ZipFile(written["png-classes"]) as z:
        assert {"d/disc.png", "d/square.png", "d/classes.json"} <= set(z.namelist())
    with zipfile.ZipFile(written["npy"]) as z:
        assert {n.rsplit(".", 1)[-1] for n in z.namelist()} == {"npy", "json"}
    assert rio.read_labels(written["json"]).shape == (70, 90)


def test_dicom_upload_gets_spacing_tta_and_dicom_seg(service, disc_image, tmp_path):
    from radseg.io.dicom_write import write_dicom_radiograph

    path = write_dicom_radiograph(disc_image[0], tmp_path / "xray.dcm", uid_seed="serve")
    result = service.analyse(path, "discs", tta=True, output_type="dicom-seg")
    assert result.ok and "with flip TTA" in result.status and "pixels assumed" not in result.status
    area = result.table[(result.table.structure == "disc") & (result.table.measurement == "area")]["value"].item()
    assert area == pytest.approx((result.labels.array == 1).sum() * 0.25)  # 0.5 mm pixels
    assert result.download.suffix == ".dcm"
    seg = rio.read_labels(result.download)
    assert np.array_equal(seg.array.reshape(result.labels.shape), result.labels.array)


def test_bad_uploads_become_messages_and_the_service_goes_on(service, disc_image, tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("hello")
    result = service.analyse(bad, "discs")
    assert not result.ok and "not a supported image type" in result.status and result.table.empty
    big = tmp_path / "big.png"
    big.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(6 * 1024 * 1024))
    assert "above this server's upload limit of 5.0 MB" in service.analyse(big, "discs").status
    assert service.analyse(None, "discs").status == "Upload a file first."
    assert "unknown model 'nope'" in service.analyse(grey_png(disc_image[0], tmp_path / "a.png"), "nope").status
    volume = rio.write(Image(np.zeros((4, 20, 20), np.int16), spacing=(2, 1, 1)), tmp_path / "v.nii.gz")
    assert "segments 2D images; the upload is a volume (3D)" in service.analyse(volume, "discs").status
    assert service.analyse(grey_png(disc_image[0], tmp_path / "b.png"), "discs").ok


def test_labels_mode_measures_a_label_volume_and_shows_any_slice(labels_only, tmp_path):
    array = np.zeros((10, 30, 40), np.uint8)
    array[2:8, 5:20, 5:20] = 1
    array[4:6, 10:25, 25:35] = 2
    labels = make_label_map(array, {1: "liver", 2: "kidney"}, like=Image(array, spacing=(2.0, 1.0, 1.0)))
    path = rio.write(labels, tmp_path / "seg.nii.gz", kind="nifti")
    assert labels_only.choices == [LABELS_CHOICE]
    result = labels_only.analyse(path, LABELS_CHOICE, output_type="png")
    assert result.ok, result.status
    assert result.feature_set == "ct" and result.slices == 10 and result.slice_index in (4, 5)
    volume = result.table[(result.table.structure == "liver") & (result.table.measurement == "volume")]
    assert volume["value"].item() == pytest.approx(6 * 15 * 15 * 2.0 / 1000, rel=1e-3)
    assert "download: " in result.status and "2D" in result.status  # a PNG cannot hold a volume: said, not crashed
    assert {r["name"]: r["volume_ml"] for r in result.legend}["liver"] == pytest.approx(2.7)
    first = result.overlay
    labels_only.render(result, slice_index=0)
    assert result.slice_index == 0 and result.overlay != first and result.overlay.exists()


def test_labels_mode_with_another_measurement_set(labels_only, disc_image, tmp_path):
    path = rio.write(disc_image[1], tmp_path / "hip.png", kind="png")
    result = labels_only.analyse(path, LABELS_CHOICE, feature_set="hip")
    assert result.ok and result.feature_set == "hip"
    assert not result.table.empty and set(result.table.status) == {"not measured"}  # no femur labels here
    assert labels_only.analyse(path, LABELS_CHOICE, feature_set="ct").status.count("no measurements") == 1


def test_find_models(tiny_model, tmp_path):
    assert find_models(None) == {}
    assert find_models(tiny_model) == {"discs": tiny_model}
    assert find_models(tiny_model.parent.parent) == {"discs": tiny_model}  # a folder of training runs
    with pytest.raises(RadsegError, match="not a model bundle"):
        find_models(tmp_path)
    with pytest.raises(RadsegError, match="no such model"):
        find_models(tmp_path / "missing")


def test_missing_gradio_names_the_extra(monkeypatch):
    from radseg.serve.app import import_gradio

    monkeypatch.setitem(sys.modules, "gradio", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'radseg\[web\]'"):
        import_gradio()


def test_cli_help_and_bad_limit():
    from typer.testing import CliRunner

    from radseg.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["serve", "--help"])
    assert result.exit_code == 0 and "--max-upload-mb" in result.output and "127.0.0.1" in result.output
    result = runner.invoke(app, ["serve", "--max-upload-mb", "0"])
    assert result.exit_code == 1


def test_page_wiring_without_a_browser(labels_only, monkeypatch):
    pytest.importorskip("gradio")
    from radseg.serve.app import OFFLINE_ENV, build_app

    for key in OFFLINE_ENV:  # restored after the test
        monkeypatch.delenv(key, raising=False)
    demo = build_app(labels_only)
    assert demo.analytics_enabled is False
    assert os.environ["GRADIO_ANALYTICS_ENABLED"] == "False" and os.environ["HF_HUB_OFFLINE"] == "1"
    ids = {block.elem_id for block in demo.blocks.values()}
    assert {"upload", "model", "run", "status", "overlay", "legend", "measurements", "download"} <= ids
    config = demo.get_config_file()
    dropdown = next(c for c in config["components"] if c["props"].get("elem_id") == "model")
    assert [choice[0] for choice in dropdown["props"]["choices"]] == [LABELS_CHOICE]
    intro = next(c for c in config["components"] if c["props"].get("elem_id") == "intro")
    assert "No model loaded" in intro["props"]["value"]
    tta = next(c for c in config["components"] if c["props"].get("elem_id") == "tta")
    assert tta["props"]["value"] is False  # no model, so no operating point chosen with flip TTA


def test_cleanup_leaves_a_given_folder_alone(tmp_path):
    given = Service(ModelCache({}), work_dir=tmp_path / "mine")
    given.cleanup()
    assert (tmp_path / "mine").is_dir()
    own = Service(ModelCache({}))
    own.cleanup()
    assert not own.work_dir.exists()


def test_a_failed_quality_check_and_the_intended_use_are_warnings(tiny_model, disc_image, tmp_path):
    """A model that names a quality check (here chest-pa, as cxr-anatomy does) gets it run on every result: a
    disc-and-square picture is no chest, so the page says so as a warning instead of a success."""
    from radseg.models.bundle import load_bundle

    bundle = load_bundle(tiny_model)
    bundle.manifest.update(quality_check="chest-pa", intended_use="research only, not a diagnostic device")
    bundle.save(tmp_path / "checked")
    service = Service(ModelCache(find_models(tmp_path / "checked"), device="cpu", threads=2), max_upload_mb=5,
                      work_dir=tmp_path / "work")
    upload = grey_png(disc_image[0], tmp_path / "disc.png")
    result = service.analyse(upload, "checked", output_type="nifti")
    assert result.ok and result.warning
    assert "Warning: not plausible, do not trust these masks" in result.status
    assert "right lung covers 0.0%" in result.status and "research only, not a diagnostic device" in result.status


def test_a_passed_quality_check_is_no_warning(tiny_model, disc_image, tmp_path, monkeypatch):
    from radseg.infer import quality
    from radseg.models.bundle import load_bundle

    monkeypatch.setitem(quality.CHECKS, "has-a-disc", lambda labels: quality.Quality("has-a-disc", bool(
        (labels.array == 1).any())))
    bundle = load_bundle(tiny_model)
    bundle.manifest.update(quality_check="has-a-disc", intended_use="research only")
    bundle.save(tmp_path / "checked")
    service = Service(ModelCache(find_models(tmp_path / "checked"), device="cpu", threads=2), max_upload_mb=5,
                      work_dir=tmp_path / "work")
    result = service.analyse(grey_png(disc_image[0], tmp_path / "disc.png"), "checked", output_type="nifti")
    assert result.ok and not result.warning and "Warning" not in result.status
    assert "quality check has-a-disc: plausible" in result.status and "Intended use: " in result.status
