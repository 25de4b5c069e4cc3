"""``radseg version`` and ``radseg --version``: the same one line."""

from __future__ import annotations

import typer


def print_version() -> None:
    from radseg import __version__

    typer.echo(__version__)


def version_callback(value: bool) -> None:
    """The eager ``--version`` option of the root command."""
    if value:
        print_version()
        raise typer.Exit()


VersionOpt = typer.Option(False, "--version", callback=version_callback, is_eager=True,
                          help="Print the radseg version and exit.")


def register(app: typer.Typer) -> None:
    @app.command()
    def version() -> None:
        """Print the radseg version."""
        print_version()
