"""``radseg features LABELS --set SET -o OUT.csv``: clinical measurements from label maps."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    from radseg.features import FEATURE_SETS

    sets = "; ".join(f"{name}: {fs.description}" for name, fs in FEATURE_SETS.items())

    @app.command()
    def features(
        labels: Path = typer.Argument(..., help="A label file (NIfTI, PNG, NPY/NPZ, COCO, DICOM-SEG, MHA/NRRD, CXAS folder) or a folder of them."),
        feature_set: str = typer.Option(..., "--set", help=f"Measurements to make. {sets}."),
        output: Path = typer.Option(..., "-o", "--output", help="CSV to write: one row per case, structure and measurement."),
        image: Path | None = typer.Option(None, "--image", help="The image (file or DICOM folder), or a folder of images named like the labels: HU statistics, pixel size when the labels lack one, overlay background."),
        overlay: Path | None = typer.Option(None, "--overlay", help="Folder for one PNG per case showing where each measurement was taken."),
        workers: int | None = typer.Option(1, "--workers", help="Processes (0: all cores)."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    ) -> None:
        """Measure label maps in mm: shape, chest CTR/SCD, knee JSW, hip head/JSW/LCEA/NSA, CT volumes and HU."""
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        from radseg.errors import RadsegError
        from radseg.features.run import extract_features
        from radseg.registry import UnknownNameError

        def fail(message: str) -> None:
            typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
            raise typer.Exit(1)

        if feature_set not in FEATURE_SETS:
            fail(str(UnknownNameError(FEATURE_SETS.unknown_message(feature_set))))
        if output.suffix.lower() != ".csv":
            fail(f"{output}: the output is a .csv file")
        console = Console(stderr=True)
        progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            console=console, disable=quiet or not console.is_terminal)
        with progress:
            task = progress.add_task(f"features {feature_set}", total=None)
            try:
                run = extract_features(labels, feature_set=feature_set, output=output, image=image,
                                       overlay_dir=overlay, workers=workers or None,
                                       on_total=lambda n: progress.update(task, total=n),
                                       on_progress=lambda case: progress.update(task, advance=1))
            except RadsegError as exc:
                fail(str(exc))
        for case, problem in run.warnings:
            typer.secho(f"warning: {case}: {problem}", fg=typer.colors.YELLOW, err=True)
        for case, problem in run.failed:
            typer.secho(f"failed: {case}: {problem}", fg=typer.colors.RED, err=True)
        measured = sum(1 for row in run.rows if row["status"] == "ok")
        missing = sum(1 for row in run.rows if row["status"] == "not measured")
        typer.echo(f"wrote {output}: {measured} measurement(s), {missing} not measurable"
                   + (f"; {len(run.overlays)} overlay(s) in {overlay}" if overlay else ""))
        if run.failed:
            fail(f"{len(run.failed)} case(s) failed")
