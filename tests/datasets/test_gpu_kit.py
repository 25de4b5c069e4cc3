"""benchmarks/fracatlas_gpu_kit.py: the packed layout keeps every case, id and split, and shrinks large
images with their labels on one grid."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from typer.testing import CliRunner

from radseg.cli import app
from radseg.datasets import open_prepared

from .trees import fracatlas_tree

pytest.importorskip("torch")  # radseg's resize
KIT = Path(__file__).resolve().parents[2] / "benchmarks" / "fracatlas_gpu_kit.py"


def _kit():
    spec = importlib.util.spec_from_file_location("fracatlas_gpu_kit", KIT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _prepared(tmp_path: Path) -> Path:
    fracatlas_tree(tmp_path / "fa")
    out = tmp_path / "prepared"
    result = CliRunner().invoke(app, ["datasets", "prepare", "fracatlas", "--root", str(tmp_path / "fa"), "-o", str(out),
                                      "-q", "--allow-missing", "--option", "negatives=true"])
    assert result.exit_code == 0, result.output
    return out


def test_large_images_shrink_with_their_labels_and_every_case_keeps_its_id_and_split(tmp_path):
    prepared = _prepared(tmp_path)
    assert _kit().pack_prepared(prepared, tmp_path / "kit", max_side=30) == 4  # every 60x40 image is larger
    full, kit = open_prepared(prepared), open_prepared(tmp_path / "kit")
    assert {c.case_id: c.split for c in kit.cases} == {c.case_id: c.split for c in full.cases}
    assert not (tmp_path / "kit" / "instances").exists()
    small = {c.case_id: c for c in kit.cases}["IMG0000005"]
    assert small.image.shape == (20, 30) and small.label.shape == (20, 30)
    assert small.image.same_geometry(small.label)
    # IMG0000005's fracture is the square x 30-40, y 20-30 of the 60x40 image (pixel centres 30.5-39.5):
    # halved by nearest-exact sampling (output pixel i reads input 2i + 1), exactly rows 10-14, columns 15-19
    expected = np.zeros((20, 30), bool)
    expected[10:15, 15:20] = True
    np.testing.assert_array_equal(np.asarray(small.label.array) > 0, expected)
    # the image is PIL's antialiased bilinear reduction of the original, to JPEG's rounding (on noise, its worst)
    original = {c.case_id: c for c in full.cases}["IMG0000005"].image.array
    reference = np.asarray(PILImage.fromarray(np.asarray(original)).resize((30, 20), PILImage.BILINEAR), float)
    assert np.abs(np.asarray(small.image.array, float) - reference).mean() < 2.5  # nearest sampling: 11


def test_small_images_are_copied_byte_for_byte(tmp_path):
    prepared = _prepared(tmp_path)
    assert _kit().pack_prepared(prepared, tmp_path / "kit", max_side=60) == 0
    for folder in ("images", "labels"):
        for path in (prepared / folder).iterdir():
            assert (tmp_path / "kit" / folder / path.name).read_bytes() == path.read_bytes()


@pytest.mark.parametrize("args, env, message", [
    (["-o", "somewhere"], {}, "do not give -o"),
    (["--output=somewhere"], {}, "do not give --output"),
    (["--epochs", "3"], {"TRAIN_SECONDS": "60"}, "--epochs with TRAIN_SECONDS"),
    (["--time-limit=60"], {"TRAIN_SECONDS": "60"}, "--time-limit=60 with TRAIN_SECONDS"),
])
def test_run_script_refuses_options_that_break_its_plan(tmp_path, args, env, message):
    import os
    import subprocess

    script = KIT.with_name("fracatlas_gpu_run.sh")
    done = subprocess.run(["bash", str(script), *args], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "OUT": str(tmp_path / "out"), **env}, timeout=60)
    assert done.returncode == 2
    assert message in done.stderr
    assert not (tmp_path / "out").exists()  # refused before anything was installed or copied


def test_run_script_allows_epochs_without_a_time_budget(tmp_path):
    import os
    import subprocess

    script = KIT.with_name("fracatlas_gpu_run.sh")
    env = {k: v for k, v in os.environ.items() if k != "TRAIN_SECONDS"}
    done = subprocess.run(["bash", str(script), "--epochs", "3"], cwd=tmp_path, capture_output=True, text=True,
                          env={**env, "OUT": str(tmp_path / "out")}, timeout=60)
    assert done.returncode == 2  # it got past the option check and stopped at the missing kit
    assert "kit.json missing" in done.stderr
