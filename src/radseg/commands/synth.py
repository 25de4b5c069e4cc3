"""``radseg synth KIND -n N -o DIR``: phantoms with exact labels, in the seed datasets' layouts."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    from radseg.synth import PHANTOMS

    kinds = ", ".join(PHANTOMS.names())

    @app.command()
    def synth(
        kind: str = typer.Argument(..., help=f"Phantom kind: {kinds}."),
        n: int = typer.Option(10, "-n", help="Number of cases."),
        output: Path = typer.Option(..., "-o", "--output", help="Folder to write (a rerun with the same settings resumes)."),
        seed: int = typer.Option(0, "--seed", help="Run seed: same seed, byte-identical output."),
        shift: Optional[str] = typer.Option(None, "--shift", help="Plant a difficulty for one group: ATTRIBUTE=VALUE[:contrast|noise|size|none], e.g. race=Black:contrast."),
        preview: bool = typer.Option(False, "--preview", help="Also write overlay PNGs to OUTPUT/preview/."),
        workers: Optional[int] = typer.Option(None, "--workers", help="Processes (default: all cores)."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    ) -> None:
        """Make N phantom cases of KIND with exact labels and a cohort metadata.csv."""
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        from radseg.errors import RadsegError
        from radseg.registry import UnknownNameError
        from radseg.synth.run import synthesize

        def fail(message: str) -> None:
            typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
            raise typer.Exit(1)

        if kind not in PHANTOMS:
            fail(str(UnknownNameError(PHANTOMS.unknown_message(kind))))
        console = Console(stderr=True)
        progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            console=console, disable=quiet or not console.is_terminal)
        with progress:
            task = progress.add_task(f"synth {kind}", total=n)
            try:
                result = synthesize(kind, n, output, seed=seed, shift=shift, preview=preview, workers=workers,
                                    on_progress=lambda case: progress.update(task, advance=1))
            except (RadsegError, ValueError) as exc:
                fail(str(exc))
        for case, problem in result.failed:
            typer.secho(f"failed: {case}: {problem}", fg=typer.colors.RED, err=True)
        typer.echo(f"{kind}: made {len(result.made)}, kept {len(result.skipped)} finished case(s) in {output}"
                   + (f"; previews in {output / 'preview'}" if preview else ""))
        if result.failed:
            fail(f"{len(result.failed)} case(s) failed")
