"""The ``radseg`` command: :func:`main`, over the root group of :mod:`radseg.commands.root`.

``radseg version`` / ``radseg --version`` answer here before typer is imported; everything
else goes through the typer app, which loads a command module only when that command is used.
``radseg.cli.app`` (the typer app, for tests and ``CliRunner``) is imported on first access.
"""

from __future__ import annotations

import sys


def main() -> None:
    if sys.argv[1:] in (["version"], ["--version"]):  # the one line, without building the command line
        from radseg import __version__

        print(__version__)
        return
    from radseg.commands.root import app

    try:
        app()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)


def __getattr__(name: str):
    if name in ("app", "COMMANDS"):
        from radseg.commands import root

        return getattr(root, name)
    raise AttributeError(f"module 'radseg.cli' has no attribute {name!r}")


if __name__ == "__main__":
    main()
