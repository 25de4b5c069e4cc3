"""The command line as a whole: -h/--version, registry-driven choices, shared options, progress off a terminal."""

from __future__ import annotations

import io

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from radseg.cli import app
from radseg.commands.common import Progress

runner = CliRunner()


def _walk(command, path=()):
    """(path, click command) of every leaf command."""
    children = getattr(command, "commands", None)
    if not children:
        yield path, command
        return
    for name, child in children.items():
        yield from _walk(child, (*path, name))


COMMANDS = dict(_walk(get_command(app)))


def _param(path: tuple, name: str):
    return next(p for p in COMMANDS[path].params if p.name == name)


def test_short_help_and_version():
    short = runner.invoke(app, ["-h"])
    assert short.exit_code == 0 and "Usage: radseg" in short.output and "segment" in short.output
    assert runner.invoke(app, ["segment", "-h"]).exit_code == 0
    from radseg import __version__

    by_option = runner.invoke(app, ["--version"])
    by_command = runner.invoke(app, ["version"])
    assert by_option.exit_code == by_command.exit_code == 0
    assert by_option.output == by_command.output == f"{__version__}\n"


def test_an_unknown_output_type_lists_the_registry(tmp_path):
    from radseg.infer.segment import OUTPUT_TYPES

    result = runner.invoke(app, ["segment", "-i", str(tmp_path), "-o", str(tmp_path / "out"), "-m", str(tmp_path / "m"),
                                 "-ot", "gif"])
    assert result.exit_code == 1
    assert "error: unknown output type 'gif'." in result.output
    assert f"Valid: {', '.join(OUTPUT_TYPES.names())}" in result.output
    assert len(result.output.strip().splitlines()) == 1  # one clear line, no traceback


def test_every_registry_name_is_in_the_help_of_its_option():
    from radseg.datasets import DATASETS, EXPORTERS
    from radseg.features import FEATURE_SETS
    from radseg.infer.segment import OUTPUT_TYPES
    from radseg.io import IMAGE_WRITERS
    from radseg.models.bundle import shipped_models
    from radseg.models.presets import PRESETS
    from radseg.models.registry import ARCHITECTURES
    from radseg.synth import PHANTOMS

    cases = [(("segment",), "output_type", OUTPUT_TYPES), (("train",), "arch", ARCHITECTURES),
             (("train",), "preset", PRESETS), (("datasets", "prepare"), "name", DATASETS),
             (("datasets", "export"), "to", EXPORTERS), (("features",), "feature_set", FEATURE_SETS),
             (("synth",), "kind", PHANTOMS), (("convert",), "output_format", IMAGE_WRITERS)]
    cases += [((command,), "model", shipped_models()) for command in ("segment", "serve", "evaluate-detection")]
    for path, name, registry in cases:
        text = _param(path, name).help
        missing = [n for n in registry if n not in text]
        assert len(registry) and not missing, (path, name, missing)
    shown = runner.invoke(app, ["segment", "-h"], env={"COLUMNS": "300", "TERMINAL_WIDTH": "300"}).output
    assert f"Output type: {', '.join(OUTPUT_TYPES)}." in " ".join(shown.split())  # CliRunner wraps plain help at 80


def test_the_old_train_model_flag_is_a_hidden_deprecated_alias_of_arch(tmp_path):
    args = ["train", "--data", str(tmp_path), "-o", str(tmp_path / "run")]
    old = runner.invoke(app, [*args, "--model", "unte"])
    assert old.exit_code == 1 and "--model is deprecated" in old.output and "use --arch" in old.output
    assert "unknown model architecture 'unte'. Did you mean 'unet'" in old.output
    new = runner.invoke(app, [*args, "--arch", "unte"])
    assert new.exit_code == 1 and "deprecated" not in new.output and "Did you mean 'unet'" in new.output
    assert _param(("train",), "old_model").hidden and not _param(("train",), "arch").hidden


def test_shared_options_are_the_same_everywhere():
    seen = {}
    for path, command in COMMANDS.items():
        for param in command.params:
            if param.name in ("quiet", "as_json", "workers"):
                seen.setdefault(param.name, set()).add((tuple(param.opts), param.help, param.default))
    assert set(seen) == {"quiet", "as_json", "workers"}
    for name, variants in seen.items():
        assert len(variants) == 1, (name, variants)
    (quiet_opts, _, quiet_default), = seen["quiet"]
    (workers_opts, _, workers_default), = seen["workers"]
    assert set(quiet_opts) == {"--quiet", "-q"} and quiet_default is False
    assert workers_opts == ("--workers",) and workers_default is None  # all cores everywhere, features included


@pytest.mark.parametrize("path", [("convert",), ("annotate", "bone"), ("models", "list"), ()])
def test_flags_show_no_value_type(path):
    result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    flag_lines = [line for line in result.output.splitlines() if "--help" in line or "--quiet" in line or "--json" in line]
    assert flag_lines and not any("<bool>" in line for line in flag_lines), flag_lines
    assert "<bool>" not in result.output


class _Pipe(io.StringIO):
    def isatty(self) -> bool:
        return False


def test_progress_off_a_terminal_prints_a_line_per_item():
    stream = _Pipe()
    with Progress("converting", quiet=False, stream=stream) as progress:
        progress.set_total(3)
        for name in ("a.dcm", "b.dcm", "c.dcm"):
            progress.advance(name)
    assert stream.getvalue().splitlines() == ["converting 1/3 a.dcm", "converting 2/3 b.dcm", "converting 3/3 c.dcm"]
    unknown = _Pipe()
    with Progress("scoring", stream=unknown) as progress:
        progress.advance("case1")
    assert unknown.getvalue() == "scoring 1 case1\n"


def test_progress_of_a_long_run_prints_a_line_per_percent_and_quiet_prints_nothing():
    stream = _Pipe()
    with Progress("training", 1000, stream=stream) as progress:
        for _ in range(1000):
            progress.advance()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 101 and lines[0] == "training 0% (1/1000)" and lines[-1] == "training 100% (1000/1000)"
    assert lines[50] == "training 50% (500/1000)"
    quiet = _Pipe()
    with Progress("training", 1000, quiet=True, stream=quiet) as progress:
        progress.advance("x")
    assert quiet.getvalue() == ""


def test_synth_spacing_and_shape_reproduce_the_demo_grid(tmp_path):
    """`synth hip-ct --spacing --shape` is the command the demo prints: it makes the same volume."""
    import numpy as np

    from radseg.io import read
    from radseg.synth import hip_ct
    from radseg.synth.cohort import Shift, make_subject

    result = runner.invoke(app, ["synth", "hip-ct", "-n", "1", "-o", str(tmp_path / "ct"), "--seed", "3",
                                 "--shift", "sex=F:density", "--spacing", "3,2.2,2.2", "--shape", "40,96,128", "-q"])
    assert result.exit_code == 0, result.output
    made = read(tmp_path / "ct" / "nifti" / "images" / "HIPCT0001.nii.gz")
    case = hip_ct.make_case(make_subject(0, seed=3, prefix=hip_ct.PREFIX, shift=Shift.parse("sex=F:density")),
                            shape=(40, 96, 128), spacing=(3.0, 2.2, 2.2))
    assert made.shape == (40, 96, 128) and np.allclose(made.spacing, (3.0, 2.2, 2.2))
    assert np.array_equal(made.array, case.image.array)
    again = runner.invoke(app, ["synth", "hip-ct", "-n", "1", "-o", str(tmp_path / "ct"), "--seed", "3",
                                "--shift", "sex=F:density", "--spacing", "3,2.2,2.2", "--shape", "40,96,128"])
    assert again.exit_code == 0 and "kept 1 finished" in again.output  # the same command resumes
    bad = runner.invoke(app, ["synth", "hip-xray", "-n", "1", "-o", str(tmp_path / "x"), "--spacing", "1,1,1"])
    assert bad.exit_code != 0 and "volume kinds" in bad.output
    bad = runner.invoke(app, ["synth", "hip-ct", "-n", "1", "-o", str(tmp_path / "y"), "--shape", "10,0,5"])
    assert bad.exit_code != 0 and "three positive numbers" in bad.output
