"""The ``radseg`` command: :func:`main`, over the root group of :mod:`radseg.commands.root`.

``radseg version`` / ``radseg --version`` answer here before typer is imported; everything
else goes through the typer app, which loads a command module only when that command is used.
``radseg.cli.app`` (the typer app, for tests and ``CliRunner``) is imported on first access.
"""

from __future__ import annotations

import gc
import os
import sys

#: Commands whose numpy starts OpenBLAS with one thread (unless the user set OPENBLAS_NUM_THREADS).
#: OpenBLAS starts a pool of threads when numpy is imported: 40-60 ms of every start on a busy
#: 2-core machine, more than radseg's own imports (issue 25: info and convert against dcm2niix). These
#: commands read headers and copy voxels; the only linear algebra they do is on 3x3 to 300x2 matrices.
ONE_BLAS_THREAD = ("info", "convert")


def main() -> None:
    if sys.argv[1:] in (["version"], ["--version"]):  # the one line, without building the command line
        from radseg import __version__

        print(__version__)
        return
    if sys.argv[1:2] and sys.argv[1] in ONE_BLAS_THREAD:
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    # Loading typer, numpy and a command module makes ~100,000 objects that all live on, and the cyclic
    # garbage collector walks them ~50 times while they load (~7 ms of each start) and again at each
    # later full collection. It is paused here; the root group's callback, which runs once the command
    # is loaded, freezes what was loaded (never walked again) and resumes it.
    gc.disable()
    from radseg.commands import root

    root.RESUME_GC = True
    try:
        root.app()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    finally:
        gc.enable()  # also when the command line stopped before the callback (--help, a usage error)


def __getattr__(name: str):
    if name in ("app", "COMMANDS"):
        from radseg.commands import root

        return getattr(root, name)
    raise AttributeError(f"module 'radseg.cli' has no attribute {name!r}")


if __name__ == "__main__":
    main()
