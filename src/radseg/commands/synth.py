"""``radseg synth KIND -n N -o DIR``: phantoms with exact labels, in the seed datasets' layouts."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from radseg.commands.common import Progress, QuietOpt, WorkersOpt, choice, fail, finish, listing, problems

#: The kinds made on a 3D grid, whose spacing and shape the command line may fix.
VOLUMES = ("hip-ct", "brain-ct")


def register(app: typer.Typer) -> None:
    from radseg.synth import PHANTOMS

    @app.command()
    def synth(
        kind: str = typer.Argument(..., help=f"Phantom kind: {listing(PHANTOMS)}."),
        n: int = typer.Option(10, "-n", help="Number of cases."),
        output: Path = typer.Option(..., "-o", "--output", help="Folder to write (a rerun with the same settings resumes)."),
        seed: int = typer.Option(0, "--seed", help="Run seed: same seed, byte-identical output."),
        shift: Optional[str] = typer.Option(None, "--shift", help="Plant a difficulty for one group: ATTRIBUTE=VALUE[:contrast|noise|size|density|none], e.g. race=Black:contrast or sex=F:density (osteoporotic bone)."),
        preview: bool = typer.Option(False, "--preview", help="Also write overlay PNGs to OUTPUT/preview/."),
        spacing: Optional[str] = typer.Option(None, "--spacing", help="Volumes (hip-ct, brain-ct): voxel spacing in mm as SLICE,ROW,COL, e.g. 2,1.4,1.4 (default: drawn per case)."),
        shape: Optional[str] = typer.Option(None, "--shape", help="Volumes: grid size as SLICES,ROWS,COLS (default: the body's extent at the spacing)."),
        workers: Optional[int] = WorkersOpt,
        quiet: bool = QuietOpt,
    ) -> None:
        """Make N phantom cases of KIND with exact labels and a cohort metadata.csv."""
        from radseg.errors import RadsegError
        from radseg.synth.run import synthesize

        choice(PHANTOMS, kind)
        options = {}
        for name, text, cast in (("spacing", spacing, float), ("shape", shape, int)):
            if text is None:
                continue
            if kind not in VOLUMES:
                fail(f"--{name} is for the volume kinds ({', '.join(VOLUMES)}), not {kind}")
            try:
                values = tuple(cast(v) for v in text.split(","))
            except ValueError:
                values = ()
            if len(values) != 3 or min(values) <= 0:
                fail(f"--{name} {text!r}: expected three positive numbers SLICE,ROW,COL")
            options[name] = values
        with Progress(f"synth {kind}", n, quiet=quiet) as progress:
            try:
                result = synthesize(kind, n, output, seed=seed, shift=shift, preview=preview, workers=workers,
                                    on_progress=progress.advance, options=options)
            except (RadsegError, ValueError) as exc:
                fail(str(exc))
        problems(result.failed)
        typer.echo(f"{kind}: made {len(result.made)}, kept {len(result.skipped)} finished case(s) in {output}"
                   + (f"; previews in {output / 'preview'}" if preview else ""))
        finish(result.failed)
