"""Fixed costs: what each command imports. A command that starts importing torch, pandas & co. for
nothing fails here (the issue: `radseg --help` 0.29 s, `radseg version` 0.68 s, `info` 14x dcm2niix).

Each check runs the real entry point (``radseg.cli.main``) in a fresh interpreter and reads
``sys.modules`` at exit, so lazy imports inside functions count as they happen.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from radseg.image import Image
from radseg.io.dicom_write import write_dicom_series

#: Never needed by --help, version, info, convert.
HEAVY = ("torch", "monai", "pandas", "matplotlib", "highdicom", "skimage", "scipy.special", "onnxruntime", "gradio")

_PROBE = """
import json, sys
{preload}
sys.argv = ["radseg"] + sys.argv[1:]
from radseg.cli import main
try:
    main()
except SystemExit:
    pass
sys.stdout.flush()
print("\\nMODULES=" + json.dumps(sorted(sys.modules)))
"""


def imported(*args: str, preload: str = "") -> set[str]:
    """The modules loaded by ``radseg ARGS`` in a fresh interpreter."""
    done = subprocess.run([sys.executable, "-c", _PROBE.format(preload=preload), *args],
                          capture_output=True, text=True, timeout=120)
    line = next(line for line in done.stdout.splitlines() if line.startswith("MODULES="))
    return set(json.loads(line[len("MODULES="):]))


def loaded(modules: set[str], names) -> list[str]:
    return [name for name in names if name in modules]


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    folder = tmp_path_factory.mktemp("series")
    volume = np.arange(4 * 16 * 16, dtype=np.int16).reshape(4, 16, 16) - 500
    write_dicom_series(Image(volume, spacing=(2.0, 0.8, 0.8)), folder)
    return folder


def test_the_probe_sees_what_a_command_imports():
    """The check can fail: a module imported on the way is in the set."""
    assert "colorsys" in imported("--help", preload="import colorsys")
    assert "colorsys" not in imported("--help")


def test_help_imports_no_library_and_no_command():
    modules = imported("--help")
    assert loaded(modules, HEAVY + ("numpy", "pydicom", "nibabel", "rich", "pydantic", "scipy")) == []
    assert [m for m in modules if m.startswith("radseg.") and m not in (
        "radseg.cli", "radseg.commands", "radseg.commands.root", "radseg.commands.common",
        "radseg.commands.coerce", "radseg.commands.version")] == []


def test_version_imports_not_even_typer():
    modules = imported("version")
    assert loaded(modules, HEAVY + ("numpy", "typer", "click", "rich")) == []


def test_info_reads_headers_without_pydicom_pandas_or_torch(series):
    modules = imported("info", str(series))
    assert loaded(modules, HEAVY + ("pydicom", "pydantic", "rich", "nibabel", "scipy", "PIL", "numpy.ma")) == []


#: DICOM -> NIfTI is radseg's own header walker and NIfTI writer. nibabel (~0.2 s: it pulls in pydicom,
#: scipy and Pillow) is for reading NIfTI; pydicom only for files the walker cannot read; numpy.ma comes
#: with np.median (issue 25: convert 0.86 s against dcm2niix's 0.24 s, a third of it imports).
CONVERT_NEVER = HEAVY + ("pydantic", "rich", "nibabel", "pydicom", "scipy", "PIL", "numpy.ma")


@pytest.mark.parametrize("output", ["out.nii", "out.nii.gz", "folder"])
def test_convert_imports_only_the_readers_and_the_writer(series, tmp_path, output):
    modules = imported("convert", str(series), str(tmp_path / output), "-q")
    written = [tmp_path / output] if output != "folder" else sorted((tmp_path / output).rglob("*.nii.gz"))
    assert written and all(path.is_file() for path in written)
    assert "radseg.io.nifti_write" in modules  # the probe saw the write
    assert loaded(modules, CONVERT_NEVER) == []


def test_segment_with_the_onnx_backend_imports_neither_torch_nor_monai(tmp_path):
    """The shipped models carry an ONNX graph: ``--backend onnx`` (and auto, the default) runs on
    onnxruntime, numpy and scipy alone."""
    pytest.importorskip("onnxruntime")
    from PIL import Image as PILImage

    rows, cols = np.indices((300, 240))
    PILImage.fromarray((128 + 100 * np.sin(rows / 20.0) * np.cos(cols / 15.0)).astype(np.uint8)).save(tmp_path / "x.png")
    for backend in ("onnx", "auto"):
        out = tmp_path / backend
        modules = imported("segment", "-i", str(tmp_path / "x.png"), "-o", str(out), "-m", "fracatlas",
                           "--backend", backend, "--device", "cpu", "-q")
        assert (out / "x.png").exists()
        assert loaded(modules, ("torch", "monai", "pandas", "matplotlib", "gradio", "skimage")) == []
        assert "onnxruntime" in modules


def test_the_help_listing_is_each_commands_own_short_help():
    from radseg.commands.root import COMMANDS, load_commands

    real = {}
    for module in {module for module, _ in COMMANDS.values()}:
        real.update({name: command.get_short_help_str(1000) for name, command in load_commands(module).items()})
    assert set(real) == set(COMMANDS)
    assert {name: text for name, (_, text) in COMMANDS.items()} == real


def _blas_threads(*args: str, preset: str | None = None) -> str:
    """OPENBLAS_NUM_THREADS as ``radseg ARGS`` left it (the value numpy's OpenBLAS starts with)."""
    import os

    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    if preset is not None:
        env["OPENBLAS_NUM_THREADS"] = preset
    probe = _PROBE.format(preload="") + "import os\nprint('\\nBLAS=' + os.environ.get('OPENBLAS_NUM_THREADS', 'unset'))\n"
    done = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True, timeout=120, env=env)
    return next(line for line in done.stdout.splitlines() if line.startswith("BLAS="))[len("BLAS="):]


def test_info_and_convert_start_openblas_with_one_thread(series, tmp_path):
    """OpenBLAS's thread pool costs 40-60 ms of start-up; info and convert never use it. A value the
    user set stays, and other commands are left alone."""
    assert _blas_threads("info", str(series)) == "1"
    assert _blas_threads("convert", str(series), str(tmp_path / "out.nii"), "-q") == "1"
    assert _blas_threads("info", str(series), preset="3") == "3"
    assert _blas_threads("--help") == "unset"


def _gc_after(*args: str) -> str:
    probe = _PROBE.format(preload="") + "import gc\nprint('\\nGC=%s %s' % (gc.isenabled(), gc.get_freeze_count() > 0))\n"
    done = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True, timeout=120)
    return next(line for line in done.stdout.splitlines() if line.startswith("GC="))[len("GC="):]


def test_the_garbage_collector_is_paused_only_while_the_command_loads(series):
    """main() pauses the cyclic collector during start-up; once the command is loaded what start-up made
    is frozen out of later collections and the collector runs again, also when the command line stops
    early (help, a usage error)."""
    assert _gc_after("info", str(series)) == "True True"
    assert _gc_after("--help") == "True False"
    assert _gc_after("no-such-command") == "True False"


def test_info_and_convert_to_a_file_skip_openssl_and_logging(series, tmp_path):
    """hashlib (OpenSSL's start-up, 3-7 ms) names folder outputs and series without a UID; logging (~3 ms)
    quiets Ray. Neither is needed to describe a series or convert it to one file."""
    for args in (("info", str(series)), ("convert", str(series), str(tmp_path / "out.nii"), "-q")):
        assert loaded(imported(*args), ("hashlib", "_hashlib", "logging")) == [], args
