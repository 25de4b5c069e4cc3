"""``radseg datasets list | prepare | export`` through typer's CliRunner."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from radseg.commands.datasets import register

from .trees import fracatlas_tree


@pytest.fixture
def app():
    app = typer.Typer()

    @app.callback()
    def main() -> None:  # a group, so "datasets" is a sub-command as in the real app
        pass

    register(app)
    return app


runner = CliRunner()


def test_list_shows_every_adapter_and_what_it_expects(app):
    result = runner.invoke(app, ["datasets", "list"])
    assert result.exit_code == 0, result.output
    for name in ("fracatlas", "hexai-kneehip", "hemseg", "tha", "folder"):
        assert f"{name}\n" in result.output
    assert "Annotations/COCO JSON/COCO_fracture_masks.json" in result.output
    assert "--option anatomy=...  knee or hip (the label tables differ" in result.output
    assert "export formats: nnunet, coco, yolo" in result.output
    listed = json.loads(runner.invoke(app, ["datasets", "list", "--json"]).output)
    assert listed["hemseg"]["options"]["selection"].startswith("the JSONL selection file")


def test_prepare_missing_files_then_allow_missing_then_export(app, tmp_path):
    root = tmp_path / "fa"
    fracatlas_tree(root)
    out = tmp_path / "prepared"
    refused = runner.invoke(app, ["datasets", "prepare", "fracatlas", "--root", str(root), "-o", str(out), "-q"])
    assert refused.exit_code == 1
    assert "missing: IMG0000003.jpg (listed in the test split)" in refused.output
    assert "--allow-missing" in refused.output
    done = runner.invoke(app, ["datasets", "prepare", "fracatlas", "--root", str(root), "-o", str(out), "-q",
                               "--allow-missing"])
    assert done.exit_code == 0, done.output
    assert "wrote 3, kept 0 case(s)" in done.output and "IMG0000003.jpg (listed in the test split)" in done.output
    exported = runner.invoke(app, ["datasets", "export", str(out), "--to", "yolo", "-o", str(tmp_path / "yolo"), "-q"])
    assert exported.exit_code == 0, exported.output
    assert "yolo: wrote 3 case(s)" in exported.output
    assert (tmp_path / "yolo" / "dataset.yaml").exists()


def test_prepare_with_adapter_options_and_split_options(app, tmp_path):
    root = tmp_path / "fa"
    fracatlas_tree(root)
    result = runner.invoke(app, ["datasets", "prepare", "fracatlas", "--root", str(root), "-o", str(tmp_path / "o"),
                                 "--allow-missing", "--option", "negatives=true", "--split", "generate",
                                 "--fractions", "1,0,0", "-q"])
    assert result.exit_code == 0, result.output
    spec = json.loads((tmp_path / "o" / "dataset.json").read_text())
    assert sorted(spec["splits"]["train"]) == ["IMG0000001", "IMG0000002", "IMG0000004", "IMG0000005"]


@pytest.mark.parametrize("args, message", [
    (["datasets", "prepare", "fracatlass", "--root", ".", "-o", "x"], "Did you mean 'fracatlas'"),
    (["datasets", "prepare", "fracatlas", "--root", "ROOT", "-o", "x", "--option", "negatives"], "expected KEY=VALUE"),
    (["datasets", "prepare", "fracatlas", "--root", "ROOT", "-o", "x", "--fractions", "0.5,0.5"], "expected three numbers"),
    (["datasets", "prepare", "hexai-kneehip", "--root", "ROOT", "-o", "x"], "give --option anatomy=knee"),
    (["datasets", "export", "PREP", "--to", "coco", "-o", "x"], "not a prepared dataset (no dataset.json)"),
    (["datasets", "export", "PREP", "--to", "voc", "-o", "x"], "unknown export format 'voc'"),
])
def test_errors_are_one_clear_line(app, tmp_path, args, message):
    args = [a.replace("ROOT", str(tmp_path)).replace("PREP", str(tmp_path)) for a in args]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output


def test_leakage_is_refused_with_the_patients_named(app, tmp_path):
    import numpy as np
    from PIL import Image as PILImage

    root = tmp_path / "data"
    for name in ("a", "b"):
        for folder in ("images", "masks"):
            (root / folder).mkdir(parents=True, exist_ok=True)
            PILImage.fromarray(np.zeros((4, 4), np.uint8)).save(root / folder / f"{name}.png")
    (root / "meta.csv").write_text("case,patient,split\na,p1,train\nb,p1,test\n")
    result = runner.invoke(app, ["datasets", "prepare", "folder", "--root", str(root), "-o", str(tmp_path / "o"), "-q"])
    assert result.exit_code == 1
    assert "leakage: patient p1 is in test and train" in result.output and "--split generate" in result.output
