"""``radseg synth KIND -n N -o DIR``: phantoms with exact labels, in the seed datasets' layouts."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from radseg.commands.common import Progress, QuietOpt, WorkersOpt, choice, fail, finish, listing, problems


def register(app: typer.Typer) -> None:
    from radseg.synth import PHANTOMS

    @app.command()
    def synth(
        kind: str = typer.Argument(..., help=f"Phantom kind: {listing(PHANTOMS)}."),
        n: int = typer.Option(10, "-n", help="Number of cases."),
        output: Path = typer.Option(..., "-o", "--output", help="Folder to write (a rerun with the same settings resumes)."),
        seed: int = typer.Option(0, "--seed", help="Run seed: same seed, byte-identical output."),
        shift: Optional[str] = typer.Option(None, "--shift", help="Plant a difficulty for one group: ATTRIBUTE=VALUE[:contrast|noise|size|none], e.g. race=Black:contrast."),
        preview: bool = typer.Option(False, "--preview", help="Also write overlay PNGs to OUTPUT/preview/."),
        workers: Optional[int] = WorkersOpt,
        quiet: bool = QuietOpt,
    ) -> None:
        """Make N phantom cases of KIND with exact labels and a cohort metadata.csv."""
        from radseg.errors import RadsegError
        from radseg.synth.run import synthesize

        choice(PHANTOMS, kind)
        with Progress(f"synth {kind}", n, quiet=quiet) as progress:
            try:
                result = synthesize(kind, n, output, seed=seed, shift=shift, preview=preview, workers=workers,
                                    on_progress=progress.advance)
            except (RadsegError, ValueError) as exc:
                fail(str(exc))
        problems(result.failed)
        typer.echo(f"{kind}: made {len(result.made)}, kept {len(result.skipped)} finished case(s) in {output}"
                   + (f"; previews in {output / 'preview'}" if preview else ""))
        finish(result.failed)
