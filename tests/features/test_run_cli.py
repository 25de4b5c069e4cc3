"""``radseg features`` end to end: folders, images, bad files, overlays, wrong set names."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import typer
from PIL import Image as PILImage
from typer.testing import CliRunner

import radseg.io as rio
from radseg.commands.features import register
from radseg.features import Measurement
from radseg.features.base import line
from radseg.features.overlay import write_feature_overlay
from radseg.image import Image
from radseg.labels import make_label_map
from tests.features.shapes import hip, knee

runner = CliRunner()


@pytest.fixture(scope="module")
def cli():
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """radseg (test)"""

    register(app)
    return app


def run(cli, *args):
    return runner.invoke(cli, ["features", *map(str, args)])


def test_folder_with_a_bad_file(cli, tmp_path):
    labels, truth = knee()
    rio.write(labels, tmp_path / "in" / "case1.png", kind="png")
    rio.write(labels.with_array(labels.array[:, ::-1].copy()), tmp_path / "in" / "case2.nii.gz", kind="nifti")
    (tmp_path / "in" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    result = run(cli, tmp_path / "in", "--set", "knee", "-o", tmp_path / "knee.csv", "--overlay", tmp_path / "ov")
    assert result.exit_code == 1
    assert "broken" in result.output and "1 case(s) failed" in result.output
    table = pd.read_csv(tmp_path / "knee.csv")
    assert list(table.columns) == ["case", "set", "structure", "measurement", "value", "unit", "status", "note"]
    assert set(table["case"]) == {"case1", "case2", "broken"}
    assert (table.loc[table["case"] == "broken", "status"] == "error").all()
    for case in ("case1", "case2"):  # the mirrored copy measures the same per side
        row = table[(table["case"] == case) & (table["structure"] == "right knee") & (table["measurement"] == "min_jsw_lateral")]
        assert abs(float(row["value"].iloc[0]) - truth["right"]["lateral"]) <= 0.4
    for case in ("case1", "case2"):
        with PILImage.open(tmp_path / "ov" / f"{case}.png") as picture:
            assert picture.format == "PNG" and picture.width >= 900


def test_wrong_set_and_wrong_output(cli, tmp_path):
    labels, _ = knee()
    rio.write(labels, tmp_path / "k.png", kind="png")
    result = run(cli, tmp_path / "k.png", "--set", "kne", "-o", tmp_path / "x.csv")
    assert result.exit_code == 1 and "Did you mean 'knee'" in result.output
    result = run(cli, tmp_path / "k.png", "--set", "knee", "-o", tmp_path / "x.txt")
    assert result.exit_code == 1 and ".csv" in result.output
    result = run(cli, tmp_path / "missing", "--set", "knee", "-o", tmp_path / "x.csv")
    assert result.exit_code == 1 and "no such file" in result.output


def test_images_pair_by_name_for_hu(cli, tmp_path):
    array = np.zeros((6, 20, 20), np.uint8)
    array[1:5, 5:15, 5:15] = 1
    labels = make_label_map(Image(array, spacing=(2.0, 0.5, 0.5)), {1: "liver"})
    rio.write(labels, tmp_path / "labels" / "a.nii.gz", kind="nifti")
    rio.write(labels, tmp_path / "labels" / "b.nii.gz", kind="nifti")
    rio.write(labels.with_array(np.where(array > 0, 60, -100).astype(np.int16)), tmp_path / "images" / "a.nii.gz")
    result = run(cli, tmp_path / "labels", "--set", "ct", "--image", tmp_path / "images", "-o", tmp_path / "ct.csv")
    assert result.exit_code == 0, result.output
    assert "b: no image" in result.output
    table = pd.read_csv(tmp_path / "ct.csv").set_index(["case", "measurement"])
    assert table.loc[("a", "hu_mean"), "value"] == pytest.approx(60.0)
    assert ("b", "hu_mean") not in table.index
    assert table.loc[("b", "volume"), "value"] == pytest.approx(400 * 0.5 / 1000)


def test_unknown_spacing_is_said(cli, tmp_path):
    labels, _ = hip()
    plain = tmp_path / "hip.npy"
    np.save(plain, labels.array)
    result = run(cli, plain, "--set", "hip", "-o", tmp_path / "hip.csv")
    table = pd.read_csv(tmp_path / "hip.csv")
    assert result.exit_code == 0, result.output
    diameter = table[(table["structure"] == "right hip") & (table["measurement"] == "femoral_head_diameter")]
    assert diameter["value"].iloc[0] == pytest.approx(96.0, rel=0.02)  # 1 mm pixels assumed: twice the 0.5 mm size
    assert "no physical pixel size in" in diameter["note"].iloc[0] and " mm" not in diameter["note"].iloc[0]
    assert diameter["unit"].iloc[0] == "px"  # no pixel size: the unit says pixels, not mm


def test_plain_cxas_folders_are_measured(cli, tmp_path):
    """CXAS's own output (<out>/<case>/<class>.png, no classes.json) is a case for `features --set chest`."""
    from radseg.io import write
    from tests.features.shapes import chest

    labels, truth = chest()
    write(labels, tmp_path / "out", kind="png-classes", case="cxr1")
    (tmp_path / "out" / "cxr1" / "classes.json").unlink()
    result = run(cli, tmp_path / "out", "--set", "chest", "-o", tmp_path / "chest.csv")
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "chest.csv")
    ctr = table[table["measurement"] == "ctr"]
    assert list(ctr["case"]) == ["cxr1"] and ctr["value"].iloc[0] == pytest.approx(truth["ctr"], abs=0.005)


@pytest.mark.parametrize("shape,spacing", [((100, 200), (0.5, 0.5)), ((50, 400), (1.0, 0.25))])
def test_overlay_draws_marks_where_they_are(tmp_path, shape, spacing):
    labels = make_label_map(Image(np.zeros(shape, np.uint8), spacing=spacing))
    mark = Measurement("thing", "length", 30.0, "mm", marks=[line((10.0, 10.0), (10.0, 40.0), colour=(255, 0, 0))])
    path = write_feature_overlay(labels, [mark], tmp_path / "o.png")
    picture = np.asarray(PILImage.open(path).convert("RGB"))
    # 50 x 100 mm shown 900 pixels wide: 9 pixels per mm, whatever the pixel spacing was
    red = np.argwhere((picture[..., 0] > 200) & (picture[..., 1] < 60) & (picture[..., 2] < 60))
    red = red[red[:, 1] < 900]
    assert 440 <= picture.shape[0] and 85 <= red[:, 0].min() and red[:, 0].max() <= 98
    assert abs(red[:, 1].min() - 92) <= 4 and abs(red[:, 1].max() - 362) <= 4
