"""``radseg demo``: the whole radseg loop on phantoms it makes itself, one report.html."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from radseg.commands.common import WorkersOpt, fail


def register(app: typer.Typer) -> None:
    @app.command()
    def demo(
        output: Path = typer.Option(Path("runs/demo"), "-o", "--output", help="Run folder (phantoms, model, predictions, report.html)."),
        quick: bool = typer.Option(False, "--quick", help="A small smoke run (under 2 minutes)."),
        seed: int = typer.Option(0, "--seed", help="Seed of every stage: same seed, same phantoms and numbers."),
        workers: Optional[int] = WorkersOpt,
    ) -> None:
        """Run the whole radseg loop on phantoms it makes itself and write one report.html."""
        from radseg.demo.pipeline import run_demo

        try:
            report = run_demo(output, quick=quick, seed=seed, workers=workers, echo=lambda line: typer.echo(line, err=True))
        except RuntimeError as exc:
            fail(str(exc))
        typer.echo(f"report: {report.resolve()}")
