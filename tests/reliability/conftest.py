"""Shared fixtures for the scenario tests of "What radseg promises on bad input".

Each scenario runs the real command (``info`` or ``convert``) and checks three things: the
exit code, that the offending file is named, and that nothing was lost or half-written.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from typer.testing import CliRunner

from radseg.cli import app
from radseg.image import Image
from radseg.io.dicom_write import write_dicom_series
from tests.conftest import phantom_volume

runner = CliRunner()
SHAPE = (6, 16, 20)


def cli(*args: str | Path):
    """Run ``radseg ARGS`` in-process; the result has ``exit_code`` and ``output`` (stdout + stderr)."""
    result = runner.invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output, result.output
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"raw exception {result.exception!r}:\n{result.output}")
    return result


def cli_subprocess(*args: str | Path, timeout: float = 60):
    """Run ``radseg ARGS`` in a child process (a hang fails the test instead of blocking it)."""
    code = "import sys; from radseg.cli import app; sys.argv = ['radseg'] + sys.argv[1:]; app()"
    done = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)
    assert "Traceback" not in done.stderr, done.stderr
    return done


def partials(folder: Path) -> list[Path]:
    """Temporary files of interrupted writes left anywhere under ``folder``."""
    return [p for p in Path(folder).rglob("*") if ".partial-" in p.name]


def outputs(folder: Path, pattern: str = "*.nii.gz") -> list[Path]:
    return sorted(Path(folder).rglob(pattern)) if Path(folder).exists() else []


def edit(path: Path, **changes) -> None:
    """Change (value) or delete (None) DICOM elements of ``path`` in place."""
    ds = pydicom.dcmread(path)
    for keyword, value in changes.items():
        if value is None:
            if keyword in ds:
                delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    ds.save_as(path)


@pytest.fixture
def small_ct() -> Image:
    """A small axial CT phantom (6 slices of 16 x 20), so each scenario runs in well under a second."""
    return Image(phantom_volume(SHAPE), spacing=(2.5, 0.7, 0.8), origin=(-30.0, -20.0, 100.0))


@pytest.fixture
def series(tmp_path, small_ct) -> list[Path]:
    """One CT series in ``tmp_path/ct``: files IM00001.dcm ... IM00006.dcm in slice order."""
    return write_dicom_series(small_ct, tmp_path / "ct", description="Axial", series_number=2)


@pytest.fixture
def batch(tmp_path, small_ct) -> Path:
    """A folder of two good series (``good1``, ``good2``) to which a scenario adds one bad thing."""
    root = tmp_path / "batch"
    write_dicom_series(small_ct, root / "good1", description="First", series_number=3)
    write_dicom_series(Image(small_ct.array[::-1].copy(), affine=small_ct.affine), root / "good2",
                       description="Second", series_number=4)
    return root


def assert_batch_rest_done(out: Path, expected: int = 2) -> None:
    """The good items of a batch were written (each with its sidecar) and nothing is half-written."""
    written = outputs(out)
    assert len(written) == expected, written
    for image in written:
        assert image.with_name(image.name.replace(".nii.gz", ".json")).exists()
    assert not partials(out)


@pytest.fixture
def testdata():
    """A pydicom test file by name (skips when the pydicom-data package lacks it)."""
    from tests.conftest import pydicom_data

    return pydicom_data


__all__ = ["cli", "cli_subprocess", "partials", "outputs", "edit", "assert_batch_rest_done", "SHAPE", "np"]
