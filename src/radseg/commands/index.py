"""``radseg index``: one Parquet row per series or image under a folder tree (see :mod:`radseg.scale.catalog`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from radseg.commands.common import (EngineOpt, Progress, QuietOpt, RayAddressOpt, WorkersOpt, fail, scale_options,
                                    warn)

_SHOWN = 10  # unreadable files named one by one; the catalog lists all


def register(app: typer.Typer) -> None:
    @app.command()
    def index(
        root: Path = typer.Argument(..., help="The folder tree to index (DICOM studies, NIfTI, PNG/JPG ... at any depth)."),
        output: Path = typer.Option(..., "-o", "--output", help="The catalog to write (.parquet). Its resume cache is "
                                    "OUTPUT.parts/: a rerun rescans only folders that changed."),
        workers: Optional[int] = WorkersOpt,
        engine: str = EngineOpt,
        ray_address: Optional[str] = RayAddressOpt,
        part: Optional[str] = typer.Option(None, "--part", help="Only part K of N of the folders, e.g. 2/4 (folders sorted "
                                           "by relative path): give each part its own -o and read them together with "
                                           "--catalog 'catalog-*.parquet'."),
        include_derived: bool = typer.Option(False, "--include-derived", help="Also index localizers and derived "
                                             "secondary images."),
        quiet: bool = QuietOpt,
    ) -> None:
        """Catalog every series and image under ROOT (modality, shape, spacing, problems) in one Parquet file."""
        from radseg.errors import RadsegError
        from radseg.scale.catalog import build_catalog

        engine_options, shard = scale_options(engine, workers, ray_address, part)
        if not root.is_dir():
            fail(f"{root}: no such folder")
        with Progress("indexing", quiet=quiet) as progress:
            try:
                report = build_catalog(root, output, engine=engine_options, part=shard, include_derived=include_derived,
                                       jobs_total=progress.set_total, on_progress=progress.advance)
            except RadsegError as exc:
                fail(str(exc))
        kinds = report.kinds
        typer.echo(f"wrote {output}: {report.rows} row(s): {kinds.get('series', 0)} series, "
                   f"{kinds.get('radiograph', 0)} radiograph(s), {kinds.get('image', 0)} image(s), "
                   f"{kinds.get('unreadable', 0)} unreadable")
        typer.echo(f"folders: {report.folders} ({report.folders_scanned} scanned, {report.folders_reused} reused from "
                   f"the previous run); files without a row: {report.skipped_files} DICOM skipped (localizers, derived, "
                   f"non-image objects), {report.ignored_files} not images")
        if report.merged_series:
            typer.echo(f"{report.merged_series} series spread over several folders: one row each")
        for path, problem in report.unreadable[:_SHOWN]:
            warn(f"{path}: {problem}")
        if len(report.unreadable) > _SHOWN:
            warn(f"... and {len(report.unreadable) - _SHOWN} more unreadable file(s): --where \"kind == 'unreadable'\"")
        if report.rows == kinds.get("unreadable", 0):  # nothing readable
            if shard and not report.folders:
                typer.echo(f"part {part} holds no folder")
                return
            fail(f"{root}: no readable image or series found")
