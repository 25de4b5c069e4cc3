"""``radseg info`` (what a file or folder holds) and ``radseg convert`` (any readable input to NIfTI or another format)."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from radseg.commands.common import (CatalogOpt, EngineOpt, JsonOpt, PartOpt, Progress, QuietOpt, RayAddressOpt,
                                   WhereOpt, WorkersOpt, catalog_rows, choice, fail, finish, input_or_catalog,
                                   listing, problems, scale_options)


class TiltChoice(str, Enum):
    resample = "resample"
    shear = "shear"


SeriesOpt = typer.Option(None, "--series", help="Series to read: its UID or part of its description.")
GapsOpt = typer.Option(False, "--allow-gaps", help="Interpolate missing slices / uneven spacing instead of failing.")
TiltOpt = typer.Option(TiltChoice.resample, "--tilt", help="Gantry tilt: resample onto an orthogonal grid, or keep voxels with a sheared affine.")
DerivedOpt = typer.Option(False, "--include-derived", help="Also read localizers and derived secondary images.")
InvertOpt = typer.Option(False, "--invert-monochrome1", help="Map MONOCHROME1 radiographs to MONOCHROME2 (bright bone).")


def _read_options(series, allow_gaps, tilt, include_derived, invert_monochrome1) -> dict:
    options = {
        "on_gap": "resample" if allow_gaps else "error",
        "tilt": tilt.value if isinstance(tilt, Enum) else tilt,
        "include_derived": include_derived,
        "invert_monochrome1": invert_monochrome1,
    }
    if series:
        options["series"] = series
    return options


def _report(report, source: Path) -> None:
    for path in report.written:
        typer.echo(f"wrote {path}")
    if report.kept:
        typer.echo(f"kept {len(report.kept)} existing output(s) (use --overwrite to redo)")
    problems(report.failed, report.warnings)
    finish(report.failed, noun="item(s)", note=f", {len(report.written)} written",
           done=bool(report.written or report.kept), nothing=f"{source}: nothing to convert")


def register(app: typer.Typer) -> None:
    from radseg.io import IMAGE_WRITERS

    @app.command()
    def info(
        path: Path = typer.Argument(..., help="A file or a folder (DICOM folders may hold many series)."),
        as_json: bool = JsonOpt,
        include_derived: bool = DerivedOpt,
    ) -> None:
        """Show modality, shape, spacing, orientation, the series found and any problems."""
        from radseg.errors import RadsegError
        from radseg.info import describe, format_text

        try:
            result = describe(path, include_derived=include_derived)
        except RadsegError as exc:
            fail(str(exc))
        except Exception as exc:  # noqa: BLE001 - name the input, never a traceback
            fail(f"{path}: {type(exc).__name__}: {exc}")
        typer.echo(json.dumps(result, indent=2) if as_json else format_text(result))
        if not result["images"]:
            fail(f"{path}: no readable image found")

    @app.command()
    def convert(
        source: Optional[Path] = typer.Argument(None, help="Input file or folder (DICOM series, NIfTI, PNG/JPG/TIFF, "
                                                "MHA/NRRD); with --catalog, give only TARGET."),
        target: Optional[Path] = typer.Argument(None, help="Output file (format from its suffix) or folder (one file per "
                                                "series; with --catalog: <key><suffix> per row)."),
        select: Optional[Path] = typer.Option(None, "--select", help="HemSeg-200 JSONL: convert only the listed slices of each scan."),
        output_format: str = typer.Option(".nii.gz", "--format", help=f"Suffix of outputs written into a folder: {listing(IMAGE_WRITERS)}."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Rewrite outputs that already exist (default: keep them, so a rerun resumes)."),
        series: Optional[str] = SeriesOpt,
        allow_gaps: bool = GapsOpt,
        tilt: TiltChoice = TiltOpt,
        include_derived: bool = DerivedOpt,
        invert_monochrome1: bool = InvertOpt,
        engine: str = EngineOpt,
        workers: Optional[int] = WorkersOpt,
        ray_address: Optional[str] = RayAddressOpt,
        part: Optional[str] = PartOpt,
        catalog: Optional[str] = CatalogOpt,
        where: Optional[str] = WhereOpt,
        quiet: bool = QuietOpt,
    ) -> None:
        """Convert images to NIfTI (or another format by suffix), with a JSON sidecar for DICOM.

        The local engine converts in this process (reading is mostly disk and decoding); --engine ray
        spreads the items over --workers Ray workers.
        """
        from radseg.convert import convert as run_convert
        from radseg.errors import RadsegError

        suffix = choice(IMAGE_WRITERS, output_format if output_format.startswith(".") else "." + output_format)
        if catalog and target is None:
            source, target = None, source  # `convert --catalog C.parquet OUT`: the one argument is the output
        if target is None:
            fail("no output: give SOURCE and TARGET (or --catalog CATALOG.parquet TARGET)")
        shown = input_or_catalog(source, catalog, where)
        if catalog and select:
            fail("--select and --catalog both choose the items: use one")
        options = _read_options(series, allow_gaps, tilt, include_derived, invert_monochrome1)
        engine_options, shard = scale_options(engine, workers, ray_address, part)
        entries = catalog_rows(catalog, where) if catalog else None
        with Progress("converting", quiet=quiet) as progress:
            try:
                report = run_convert(source or catalog, target, select=select, suffix=suffix, overwrite=overwrite,
                                     entries=entries,
                                     jobs_total=progress.set_total, part=shard, engine=engine_options,
                                     on_progress=lambda name: progress.advance(Path(name).name), **options)
            except RadsegError as exc:
                fail(str(exc))
        _report(report, Path(shown))
