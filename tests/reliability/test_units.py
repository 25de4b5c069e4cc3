"""Promises on units: without a physical pixel size every output says px (and which file lacks one).

Scenarios: evaluate on PNGs, a known/unknown pair (the unknown wins), features on a PNG, a
prepared dataset that stores such an image as NIfTI, and the web page's legend and table.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from typer.testing import CliRunner

import radseg.io as rio
from radseg.cli import app
from radseg.image import Image
from radseg.labels import make_label_map

runner = CliRunner()


def box(shift: int = 0, size=(40, 40)) -> np.ndarray:
    array = np.zeros(size, np.uint8)
    array[10 + shift:20 + shift, 10:20] = 1
    return array


def png(array, path, names=None):
    """A label PNG without a pixel size (what a user exports from an annotation tool)."""
    from PIL import Image as PILImage

    path.parent.mkdir(parents=True, exist_ok=True)
    PILImage.fromarray(array.astype(np.uint8)).save(path)
    return path


def nifti(array, path, spacing=(0.5, 0.5)):
    path.parent.mkdir(parents=True, exist_ok=True)
    return rio.write(make_label_map(Image(array, spacing=spacing), {1: "lesion"}), path)


def test_evaluate_on_pngs_reports_px_everywhere(tmp_path):
    png(box(0), tmp_path / "truth" / "c1.png")
    png(box(3), tmp_path / "pred" / "c1.png")
    out = tmp_path / "out"
    result = runner.invoke(app, ["evaluate", "--pred", str(tmp_path / "pred"), "--truth", str(tmp_path / "truth"),
                                 "-o", str(out), "--bootstrap", "50", "--workers", "1", "-q"])
    assert result.exit_code == 0, result.output
    assert "hd95: 3.0000 px" in result.output and " mm" not in result.output.split("hd95:")[1].splitlines()[0]
    assert "no physical pixel size in" in result.output and "c1.png" in result.output
    per_case = pd.read_csv(out / "per_case.csv")
    assert per_case["unit"].tolist() == ["px"] and per_case["hd"].item() == 3.0
    summary = pd.read_csv(out / "summary.csv")
    distances = summary["metric"].isin(["hd", "hd95", "assd", "volume_difference"])
    assert set(summary.loc[distances, "unit"]) == {"px"}
    assert summary.loc[~distances, "unit"].isna().all()  # ratios (Dice, IoU, ...) carry no unit


def test_evaluate_unknown_spacing_wins_over_known(tmp_path):
    nifti(box(0), tmp_path / "truth" / "c1.nii.gz")  # 0.5 mm pixels
    png(box(2), tmp_path / "pred" / "c1.png")  # no pixel size
    out = tmp_path / "out"
    result = runner.invoke(app, ["evaluate", "--pred", str(tmp_path / "pred"), "--truth", str(tmp_path / "truth"),
                                 "-o", str(out), "--bootstrap", "50", "--workers", "1", "-q"])
    assert result.exit_code == 0, result.output
    assert "px" in result.output and str(tmp_path / "pred" / "c1.png") in result.output.replace("\n", "")
    assert pd.read_csv(out / "per_case.csv")["unit"].tolist() == ["px"]
    assert (out / "summary.json").exists() and (out / "report.html").exists()


def test_features_on_png_name_px_and_the_file(tmp_path):
    labels = png(box(0), tmp_path / "fracture.png")
    out = tmp_path / "features.csv"
    result = runner.invoke(app, ["features", str(labels), "--set", "shape", "-o", str(out), "-q"])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out)
    assert not table["unit"].isin(["mm", "mm2", "mL"]).any()
    assert not table["measurement"].str.endswith("_mm").any()
    size = table[table["measurement"] == "bbox_row_size_px"]
    assert size["value"].item() == 10 and size["unit"].item() == "px"
    assert size["note"].str.contains(f"no physical pixel size in {labels}", regex=False).item()


def test_prepared_dataset_keeps_the_missing_pixel_size(tmp_path):
    from radseg.datasets.base import CaseRecord, DatasetReport, DatasetScan, Loaded
    from radseg.datasets.prepared import open_prepared
    from radseg.datasets.preparation import write_prepared

    def record(case: str, known: bool) -> CaseRecord:
        image = Image(np.random.default_rng(0).random((40, 40)).astype(np.float32),
                      spacing=(0.2, 0.2) if known else None)
        assert image.metadata.get("spacing_known", True) is known
        labels = Image(box(0), affine=image.affine, metadata={"spacing_known": known})
        return CaseRecord(case, case, lambda: Loaded(image, labels), split="train")

    scan = DatasetScan("test", [record("nosize", False), record("sized", True)], {1: "lesion"},
                       DatasetReport("test", str(tmp_path)), "XR", 2)
    report = write_prepared(scan, tmp_path / "prepared")
    assert report.written == 2 and not report.failed
    spec = json.loads((tmp_path / "prepared" / "dataset.json").read_text())
    assert spec["no_pixel_size"] == ["nosize"] and spec["cases"]["nosize"]["image"].endswith(".nii.gz")
    cases = {c.case_id: c for c in open_prepared(tmp_path / "prepared").cases}
    assert cases["nosize"].image.metadata["spacing_known"] is False
    assert cases["nosize"].label.metadata["spacing_known"] is False
    assert cases["sized"].image.metadata.get("spacing_known", True) is True


def test_web_page_legend_and_table_in_px(tmp_path):
    from radseg.serve.models import LABELS_CHOICE, ModelCache
    from radseg.serve.service import Service

    service = Service(ModelCache({}), max_upload_mb=5, work_dir=tmp_path / "work")
    upload = png(box(0, (60, 60)) * 1, tmp_path / "fracture box.png")
    result = service.analyse(upload, LABELS_CHOICE, feature_set="shape")
    assert result.ok, result.status
    assert "no physical pixel size in fracture box.png" in result.status
    assert result.legend[0]["unit"] == "px" and result.legend[0]["area_px2"] == 100
    assert "px²" in result.legend_html and "mm²" not in result.legend_html
    table = result.table
    assert not table["unit"].isin(["mm", "mm2", "mL"]).any()
    assert table[table["measurement"] == "bbox_col_size_px"]["value"].item() == 10
