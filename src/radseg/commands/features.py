"""``radseg features LABELS --set SET -o OUT.csv``: clinical measurements from label maps."""

from __future__ import annotations

from pathlib import Path

import typer

from radseg.commands.common import Progress, QuietOpt, WorkersOpt, choice, fail, finish, problems


def _report(run, output: Path, overlay: Path | None) -> None:
    problems(run.failed, run.warnings)
    measured = sum(1 for row in run.rows if row["status"] == "ok")
    missing = sum(1 for row in run.rows if row["status"] == "not measured")
    typer.echo(f"wrote {output}: {measured} measurement(s), {missing} not measurable"
               + (f"; {len(run.overlays)} overlay(s) in {overlay}" if overlay else ""))
    finish(run.failed)


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
        workers: int | None = WorkersOpt,
        quiet: bool = QuietOpt,
    ) -> None:
        """Measure label maps in mm: shape, chest CTR/SCD, knee JSW, hip head/JSW/LCEA/NSA, CT volumes and HU."""
        from radseg.errors import RadsegError
        from radseg.features.run import extract_features

        choice(FEATURE_SETS, feature_set)
        if output.suffix.lower() != ".csv":
            fail(f"{output}: the output is a .csv file")
        with Progress(f"features {feature_set}", quiet=quiet) as progress:
            try:
                run = extract_features(labels, feature_set=feature_set, output=output, image=image,
                                       overlay_dir=overlay, workers=workers or None,
                                       on_total=progress.set_total, on_progress=progress.advance)
            except RadsegError as exc:
                fail(str(exc))
        _report(run, output, overlay)
