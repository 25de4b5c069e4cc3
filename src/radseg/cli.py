"""The ``radseg`` command. Each sub-command parses its options and calls one public function.

Heavy libraries are imported inside the commands so ``radseg --help`` answers at once.
"""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(
    name="radseg",
    help="Segmentation of radiographs and CT: read clinical files right, build datasets, train, "
    "benchmark honestly and write clinical outputs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class GapChoice(str, Enum):
    error = "error"
    resample = "resample"


class TiltChoice(str, Enum):
    resample = "resample"
    shear = "shear"


def _fail(message: str, code: int = 1) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


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


SeriesOpt = typer.Option(None, "--series", help="Series to read: its UID or part of its description.")
GapsOpt = typer.Option(False, "--allow-gaps", help="Interpolate missing slices / uneven spacing instead of failing.")
TiltOpt = typer.Option(TiltChoice.resample, "--tilt", help="Gantry tilt: resample onto an orthogonal grid, or keep voxels with a sheared affine.")
DerivedOpt = typer.Option(False, "--include-derived", help="Also read localizers and derived secondary images.")
InvertOpt = typer.Option(False, "--invert-monochrome1", help="Map MONOCHROME1 radiographs to MONOCHROME2 (bright bone).")


@app.command()
def info(
    path: Path = typer.Argument(..., help="A file or a folder (DICOM folders may hold many series)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of text."),
    include_derived: bool = DerivedOpt,
) -> None:
    """Show modality, shape, spacing, orientation, the series found and any problems."""
    from radseg.errors import RadsegError
    from radseg.info import describe, format_text

    try:
        result = describe(path, include_derived=include_derived)
    except RadsegError as exc:
        _fail(str(exc))
    typer.echo(json.dumps(result, indent=2) if as_json else format_text(result))
    if not result["images"]:
        _fail(f"{path}: no readable image found")


@app.command()
def convert(
    source: Path = typer.Argument(..., help="Input file or folder (DICOM series, NIfTI, PNG/JPG/TIFF, MHA/NRRD)."),
    target: Path = typer.Argument(..., help="Output file (format from its suffix) or folder (one file per series)."),
    select: Optional[Path] = typer.Option(None, "--select", help="HemSeg-200 JSONL: convert only the listed slices of each scan."),
    output_format: str = typer.Option(".nii.gz", "--format", help="Suffix of outputs written into a folder."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Rewrite outputs that already exist (default: keep them, so a rerun resumes)."),
    series: Optional[str] = SeriesOpt,
    allow_gaps: bool = GapsOpt,
    tilt: TiltChoice = TiltOpt,
    include_derived: bool = DerivedOpt,
    invert_monochrome1: bool = InvertOpt,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Convert images to NIfTI (or another format by suffix), with a JSON sidecar for DICOM."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from radseg.convert import convert as run_convert
    from radseg.errors import RadsegError

    suffix = output_format if output_format.startswith(".") else "." + output_format
    options = _read_options(series, allow_gaps, tilt, include_derived, invert_monochrome1)
    console = Console(stderr=True)
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=console, disable=quiet or not console.is_terminal)
    with progress:
        task = progress.add_task("converting", total=None)
        try:
            report = run_convert(
                source, target, select=select, suffix=suffix, overwrite=overwrite,
                jobs_total=lambda n: progress.update(task, total=n),
                on_progress=lambda name: progress.update(task, advance=1, description=f"converting {Path(name).name[:40]}"),
                **options,
            )
        except RadsegError as exc:
            _fail(str(exc))
    for path in report.written:
        typer.echo(f"wrote {path}")
    if report.kept:
        typer.echo(f"kept {len(report.kept)} existing output(s) (use --overwrite to redo)")
    for item, problem in report.warnings:
        typer.secho(f"warning: {item}: {problem}", fg=typer.colors.YELLOW, err=True)
    for item, problem in report.failed:
        typer.secho(f"failed: {item}: {problem}", fg=typer.colors.RED, err=True)
    if report.failed:
        _fail(f"{len(report.failed)} item(s) failed, {len(report.written)} written")
    if not report.written and not report.kept:
        _fail(f"{source}: nothing to convert")


@app.command()
def evaluate(
    pred: Path = typer.Option(..., "--pred", help="Folder of predicted label maps (any readable label format)."),
    truth: Path = typer.Option(..., "--truth", help="Folder of ground-truth label maps; cases pair by file name."),
    output: Path = typer.Option(..., "-o", "--output", help="Folder for per_case.csv, summary.csv, fairness.csv, summary.json, report.html."),
    labels: Optional[str] = typer.Option(None, "--labels", help="Labels to evaluate, e.g. 1=femur,2=tibia (default: every label present)."),
    metadata: Optional[Path] = typer.Option(None, "--metadata", help="CSV/XLSX of subject metadata keyed by case name."),
    by: Optional[str] = typer.Option(None, "--by", help="Metadata columns for the fairness audit, e.g. sex,race,age_group."),
    bootstrap: int = typer.Option(10000, "--bootstrap", help="Bootstrap resamples for the 95% confidence intervals."),
    ci_method: str = typer.Option("percentile", "--ci", help="Confidence interval: percentile or bca."),
    nsd_tolerance: Optional[float] = typer.Option(None, "--nsd-tolerance", help="Tolerance (mm) of the normalised surface Dice."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap and permutation tests."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Processes (default: all cores)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Score predictions against ground truth: metrics per case, CIs, fairness by subgroup, an HTML report."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from radseg.errors import RadsegError
    from radseg.evaluate.report import write_outputs
    from radseg.evaluate.run import evaluate_folders, parse_labels

    if ci_method not in ("percentile", "bca"):
        _fail(f"--ci must be percentile or bca, not {ci_method!r}")
    if by and metadata is None:
        _fail("--by needs --metadata (the table with those columns)")
    try:
        label_table = parse_labels(labels)
    except ValueError as exc:
        _fail(str(exc))
    console = Console(stderr=True)
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=console, disable=quiet or not console.is_terminal)
    with progress:
        task = progress.add_task("evaluating", total=None)
        try:
            result = evaluate_folders(
                pred, truth, labels=label_table, metadata=metadata,
                by=[b.strip() for b in (by or "").split(",") if b.strip()], resamples=bootstrap,
                ci_method=ci_method, nsd_tolerance=nsd_tolerance, seed=seed, workers=workers,
                jobs_total=lambda n: progress.update(task, total=n),
                on_progress=lambda case: progress.update(task, advance=1, description=f"evaluating {case[:30]}"),
            )
            written = write_outputs(result, output)
        except RadsegError as exc:
            _fail(str(exc))
    for path in result.unmatched_predictions:
        typer.secho(f"unmatched prediction (no ground truth): {path}", fg=typer.colors.YELLOW, err=True)
    for path in result.unmatched_truths:
        typer.secho(f"unmatched ground truth (no prediction): {path}", fg=typer.colors.YELLOW, err=True)
    for case, problem in result.warnings:
        typer.secho(f"warning: {case}: {problem}", fg=typer.colors.YELLOW, err=True)
    for case, problem in result.failed:
        typer.secho(f"failed: {case}: {problem}", fg=typer.colors.RED, err=True)
    if not result.summary.empty and "metric" in result.summary.columns:
        for row in result.summary[result.summary["metric"].isin(["dice", "hd95"])].itertuples():
            if getattr(row, "n", 0):
                typer.echo(f"{row.label_name:>20} {row.metric:>5}: {row.mean:.4f} [{row.ci_low:.4f}, {row.ci_high:.4f}] (n={row.n})")
    typer.echo(f"wrote {', '.join(p.name for p in written)} to {output}")
    if result.failed:
        _fail(f"{len(result.failed)} case(s) failed")


@app.command("evaluate-detection")
def evaluate_detection_command(
    model: Path = typer.Option(..., "-m", "--model", help="Model bundle folder or .zip (a segmentation model)."),
    data: Path = typer.Option(..., "--data", help="Prepared dataset (radseg datasets prepare), e.g. FracAtlas with negatives."),
    output: Path = typer.Option(..., "-o", "--output", help="Folder for per_case.csv, groups.csv, summary.json."),
    split: str = typer.Option("val", "--split", help="Split to score: train, val or test."),
    by: Optional[str] = typer.Option(None, "--by", help="Metadata columns for subgroups, e.g. body_part,hardware."),
    threshold: float = typer.Option(0.5, "--threshold", help="Probability that makes a pixel part of a detection."),
    min_pixels: int = typer.Option(10, "--min-pixels", help="Smallest detection kept (pixels of the input image)."),
    bootstrap: int = typer.Option(2000, "--bootstrap", help="Bootstrap resamples for the CIs of Dice and AUC."),
    tta: bool = typer.Option(False, "--tta", help="Left-right flip test-time augmentation."),
    device: str = typer.Option("auto", "--device", help="cpu, cuda or auto."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """A segmentation model as detector and screener: mask/box AP, P/R, Dice, image ROC AUC with CIs, subgroups."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from radseg.errors import RadsegError
    from radseg.evaluate.detection_run import evaluate_detection, write_detection
    from radseg.infer.predictor import Predictor

    console = Console(stderr=True)
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=console, disable=quiet or not console.is_terminal)
    try:
        predictor = Predictor.load(model, device=device, tta=tta)
        with progress:
            task = progress.add_task("scoring", total=None)
            result = evaluate_detection(predictor, data, split=split, by=[b.strip() for b in (by or "").split(",") if b.strip()],
                                        threshold=threshold, min_pixels=min_pixels, resamples=bootstrap, seed=seed,
                                        on_case=lambda case: progress.update(task, advance=1, description=f"scoring {case}"))
        written = write_detection(result, output)
    except RadsegError as exc:
        _fail(str(exc))
    s = result.summary
    for key in ("mask_AP50", "mask_AP50_95", "box_AP50", "box_AP50_95", "precision", "recall"):
        typer.echo(f"{key:>14}: {s[key]:.4f}")
    for key in ("dice", "auc"):
        if key in s:
            typer.echo(f"{key:>14}: {s[key]:.4f} [{s[key + '_ci_low']:.4f}, {s[key + '_ci_high']:.4f}]")
    for failure in s["failed"]:
        typer.secho(f"failed: {failure['case']}: {failure['error']}", fg=typer.colors.RED, err=True)
    typer.echo(f"wrote {', '.join(p.name for p in written)} to {output}")
    if s["failed"]:
        _fail(f"{len(s['failed'])} case(s) failed")


def _register_command_groups() -> None:
    from radseg.commands import annotate, datasets, features, models, serve, synth

    for module in (synth, datasets, annotate, models, features, serve):
        module.register(app)


_register_command_groups()


@app.command()
def demo(
    output: Path = typer.Option(Path("runs/demo"), "-o", "--output", help="Run folder (phantoms, model, predictions, report.html)."),
    quick: bool = typer.Option(False, "--quick", help="A small smoke run (under 2 minutes)."),
    seed: int = typer.Option(0, "--seed", help="Seed of every stage: same seed, same phantoms and numbers."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Processes for synthesis and evaluation (default: all cores)."),
) -> None:
    """Run the whole radseg loop on phantoms it makes itself and write one report.html."""
    from radseg.demo.pipeline import run_demo

    try:
        report = run_demo(output, quick=quick, seed=seed, workers=workers, echo=lambda line: typer.echo(line, err=True))
    except RuntimeError as exc:
        _fail(str(exc))
    typer.echo(f"report: {report.resolve()}")


@app.command()
def version() -> None:
    """Print the radseg version."""
    from radseg import __version__

    typer.echo(__version__)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
