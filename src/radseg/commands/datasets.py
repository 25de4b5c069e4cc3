"""``radseg datasets list | prepare | export``: public layouts -> prepared datasets -> nnU-Net, COCO, YOLO."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from radseg.commands.common import JsonOpt, Progress, QuietOpt, choice, fail, finish, group, listing, problems, warn

SLICES = ("labelled", "all")


def _options(pairs: list[str]) -> dict[str, str]:
    options = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            fail(f"--option {pair!r}: expected KEY=VALUE, e.g. anatomy=knee")
        options[key.strip().replace("-", "_")] = value.strip()
    return options


def _fractions(text: str) -> tuple[float, float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3:
        fail(f"--fractions {text!r}: expected three numbers, e.g. 0.7,0.15,0.15")
    return values  # type: ignore[return-value]


def register(app: typer.Typer) -> None:
    from radseg.datasets import DATASETS, EXPORTERS

    datasets_app = group("Public dataset layouts -> prepared datasets; export to nnU-Net, COCO, YOLO.")
    app.add_typer(datasets_app, name="datasets")

    @datasets_app.command("list")
    def list_adapters(as_json: bool = JsonOpt) -> None:
        """Show the dataset adapters, the layout each expects and its options."""
        if as_json:
            typer.echo(json.dumps({n: {"summary": a.summary, "expects": a.expects, "options": a.options}
                                   for n, a in DATASETS.items()}, indent=2))
            return
        for name, adapter in DATASETS.items():
            typer.secho(name, bold=True)
            typer.echo(f"  {adapter.summary}")
            typer.echo(f"  expects: {adapter.expects}")
            for option, text in adapter.options.items():
                typer.echo(f"  --option {option}=...  {text}")
        typer.echo(f"export formats: {listing(EXPORTERS)}")

    @datasets_app.command("prepare")
    def prepare_cmd(
        name: str = typer.Argument(..., help=f"Adapter: {listing(DATASETS)}."),
        root: Path = typer.Option(..., "--root", help="The dataset's root folder, in its published layout."),
        output: Path = typer.Option(..., "-o", "--output", help="Prepared dataset folder (a rerun resumes)."),
        allow_missing: bool = typer.Option(False, "--allow-missing", help="Go on without listed files that are absent (they are reported by name)."),
        split: str = typer.Option("auto", "--split", help="auto (the dataset's split where given, else generated per patient), given, or generate."),
        fractions: str = typer.Option("0.7,0.15,0.15", "--fractions", help="train,val,test fractions of generated splits."),
        seed: int = typer.Option(0, "--seed", help="Seed of generated splits."),
        allow_leakage: bool = typer.Option(False, "--allow-leakage", help="Keep a given split even when a patient, or one picture under two ids, is in two splits (reported)."),
        option: list[str] | None = typer.Option(None, "--option", help="Adapter option KEY=VALUE (repeatable; see `radseg datasets list`)."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Rewrite cases already prepared."),
        quiet: bool = QuietOpt,
    ) -> None:
        """Read dataset NAME at --root and write a prepared dataset (images, labels, dataset.json, metadata.csv)."""
        from radseg.datasets.base import LeakageError, MissingFilesError
        from radseg.datasets.preparation import prepare
        from radseg.errors import RadsegError

        choice(DATASETS, name)
        options = _options(option or [])
        with Progress(f"preparing {name}", quiet=quiet) as progress:
            try:
                report = prepare(name, root, output, allow_missing=allow_missing, split=split,
                                 fractions=_fractions(fractions), seed=seed, allow_leakage=allow_leakage,
                                 overwrite=overwrite, options=options,
                                 jobs_total=progress.set_total, on_progress=progress.advance)
            except MissingFilesError as exc:
                for file, why in exc.missing:
                    typer.secho(f"missing: {file} ({why})", fg=typer.colors.YELLOW, err=True)
                fail(str(exc))
            except LeakageError as exc:
                for problem in exc.problems:
                    typer.secho(f"leakage: {problem}", fg=typer.colors.RED, err=True)
                fail(f"{len(exc.problems)} leakage problem(s): use --split generate for a patient-level split (with "
                     "--overwrite over an earlier preparation), or --allow-leakage to keep the given one")
            except (RadsegError, ValueError) as exc:
                fail(str(exc))
        typer.echo(report.format_text())
        typer.echo(f"wrote {report.written}, kept {report.kept} case(s) in {output}")
        finish(report.failed, note=f" (listed above and in {output / 'report.json'})")

    @datasets_app.command("duplicates")
    def duplicates_cmd(
        prepared: Path = typer.Argument(..., help="A prepared dataset folder (from `radseg datasets prepare`)."),
        output: Path | None = typer.Option(None, "-o", "--output", help="Also write every duplicate as CSV "
                                                                          "(group, case, split)."),
        quiet: bool = QuietOpt,
    ) -> None:
        """Find cases whose images have identical pixels; exit 1 when a picture is in two splits."""
        from radseg.datasets.duplicates import duplicate_groups
        from radseg.datasets.prepared import open_prepared
        from radseg.errors import RadsegError

        try:
            dataset = open_prepared(prepared)
        except (RadsegError, ValueError) as exc:
            fail(str(exc))
        with Progress("reading images", total=len(dataset.cases), quiet=quiet) as progress:
            groups, unread = duplicate_groups(dataset.cases, on_case=progress.advance)
        problems(unread)
        if output is not None:
            import csv
            import io

            from radseg.io.atomic import write_text_atomic

            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator="\n")
            writer.writerow(["group", "case", "split"])
            writer.writerows([n, case, split or ""] for n, group in enumerate(groups, 1) for case, split in group.cases)
            write_text_atomic(output, buffer.getvalue())
        for group in groups:
            listed = ", ".join(f"{case} ({split or 'no split'})" for case, split in group.cases)
            if group.across_splits:
                typer.secho(f"in {len(group.splits)} splits: {listed}", fg=typer.colors.RED, err=True)
            else:
                typer.echo(f"{len(group.cases)} ids, one split: {listed}")
        across = sum(g.across_splits for g in groups)
        typer.echo(f"{len(dataset.cases) - len(unread)} case(s) read: {len(groups)} picture(s) under more than one id, "
                   f"{across} of them in more than one split")
        if across:
            fail(f"{across} picture(s) are in more than one split: a model trained on one copy and scored on "
                 "the other is scored on an image it has seen")
        finish(unread, note=" to be read (listed above); they were not compared")

    @datasets_app.command("export")
    def export_cmd(
        prepared: Path = typer.Argument(..., help="A prepared dataset folder (from `radseg datasets prepare`)."),
        to: str = typer.Option(..., "--to", help=f"Target layout: {listing(EXPORTERS)}."),
        output: Path = typer.Option(..., "-o", "--output", help="Output folder."),
        dataset_id: int = typer.Option(501, "--dataset-id", help="nnU-Net dataset number (DatasetXXX_Name)."),
        dataset_name: str | None = typer.Option(None, "--name", help="nnU-Net dataset name (default: the prepared name)."),
        polygons: bool = typer.Option(False, "--polygons", help="COCO: polygons instead of RLE masks."),
        slices: str = typer.Option("labelled", "--slices", help=f"COCO/YOLO of 3D data: axial slices to export, {' or '.join(SLICES)}."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace files already exported."),
        quiet: bool = QuietOpt,
    ) -> None:
        """Write a prepared dataset in nnU-Net v2 raw, COCO or YOLO-segmentation layout."""
        from radseg.datasets import export
        from radseg.errors import RadsegError

        choice(EXPORTERS, to)
        choice(SLICES, slices, "slice selection (--slices)")
        options = {"nnunet": {"dataset_id": dataset_id, "name": dataset_name},
                   "coco": {"polygons": polygons, "slices": slices},
                   "yolo": {"slices": slices}}[to]
        with Progress(f"export {to}", quiet=quiet) as progress:
            try:
                result = export(prepared, output, to=to, overwrite=overwrite,
                                jobs_total=progress.set_total, on_progress=progress.advance, **options)
            except (RadsegError, ValueError) as exc:
                fail(str(exc))
        problems(result.failed)
        for warning in result.warnings:
            warn(warning)
        typer.echo(f"{to}: wrote {result.written} case(s) to {result.root}")
        finish(result.failed)
