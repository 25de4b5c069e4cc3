"""``radseg benchmark``: train several architectures under one protocol and compare them with paired statistics."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from radseg.commands.common import QuietOpt, choice, csv_words, fail, listing


def _bundles(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name.strip() or not path.strip():
            fail(f"--model {item!r}: expected NAME=BUNDLE, e.g. mine=runs/unet/model")
        out[name.strip()] = path.strip()
    return out


def register(app: typer.Typer) -> None:
    from radseg.models.presets import PRESETS
    from radseg.models.registry import ARCHITECTURES

    @app.command()
    def benchmark(
        data: Path = typer.Option(..., "--data", help="Prepared dataset folder (radseg datasets prepare, or nnU-Net style)."),
        output: Path = typer.Option(..., "-o", "--output", help="Benchmark folder: runs/, tables, benchmark.md, report.html "
                                                                 "(a rerun resumes: finished model x fold pairs are skipped)."),
        arch: Optional[str] = typer.Option(None, "--arch", help=f"Architectures to train, comma-separated: {listing(ARCHITECTURES)}."),
        models: list[str] = typer.Option([], "--model", help="An existing bundle (or `radseg train` run folder) to compare, as NAME=PATH (repeatable; with --split)."),
        folds: int = typer.Option(5, "--folds", help="K for patient-grouped K-fold cross-validation."),
        split: bool = typer.Option(False, "--split", help="Use the dataset's own split instead (train/val -> test, else val)."),
        preset: Optional[str] = typer.Option(None, "--preset", help=f"Task preset for every model: {listing(PRESETS)}."),
        patch_size: Optional[str] = typer.Option(None, "--patch-size", help="Patch for every model, e.g. 32,96,96 (a multiple of every network's divisor)."),
        size: Optional[str] = typer.Option(None, "--size", help="2D fit size rows,cols for every model."),
        spacing: Optional[str] = typer.Option(None, "--spacing", help="Resample every case to this spacing in mm (per axis)."),
        epochs: Optional[int] = typer.Option(None, "--epochs", help="Epochs per training run (budget knob)."),
        iters: Optional[int] = typer.Option(None, "--iters-per-epoch", help="Batches per epoch (budget knob)."),
        batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Patches per batch."),
        lr: Optional[float] = typer.Option(None, "--lr", help="Peak learning rate."),
        time_limit: Optional[float] = typer.Option(None, "--time-limit", help="Seconds per training run (each model and fold)."),
        by: Optional[str] = typer.Option(None, "--by", help="Subgroup columns of the cases (e.g. sex,source): Dice per group."),
        ci: str = typer.Option("percentile", "--ci", help="Bootstrap CI of model means: percentile, bca or hemseg (HemSeg-200's 5,000 resamples, positions 125/4875)."),
        resamples: int = typer.Option(10000, "--bootstrap", help="Bootstrap resamples."),
        seed: int = typer.Option(0, "--seed", help="Seed of folds, training and statistics."),
        device: str = typer.Option("auto", "--device", help="cpu, cuda or auto."),
        threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads (default: the cores this process may use)."),
        quiet: bool = QuietOpt,
    ) -> None:
        """Train several architectures under one protocol; paired CIs and tests say which is better."""
        from radseg.commands.train import _preprocessing, _sigterm_as_interrupt
        from radseg.evaluate.benchmark_table import CI_METHODS
        from radseg.errors import RadsegError
        from radseg.workflows.benchmark import BenchmarkPlan, check_by, run_benchmark
        from radseg.workflows.benchmark_output import caveats, make_tables, write_benchmark

        for name in csv_words(arch):
            choice(ARCHITECTURES, name)
        choice(PRESETS, preset)
        choice(CI_METHODS, ci, "CI method")
        pre = _preprocessing(size, spacing, patch_size, None)
        training = {"epochs": epochs, "iters_per_epoch": iters, "batch_size": batch_size, "lr": lr,
                    "time_limit": time_limit}
        plan = BenchmarkPlan(data=data, output=output, architectures=csv_words(arch), bundles=_bundles(models),
                             folds=None if split else folds, seed=seed, preset=preset, preprocessing=pre,
                             training={k: v for k, v in training.items() if v is not None}, device=device,
                             threads=threads)
        say = (lambda message: None) if quiet else (lambda message: typer.echo(message, err=True))
        with _sigterm_as_interrupt():
            try:
                check_by(data, csv_words(by))
                per_case, runs = run_benchmark(plan, on_event=say)
                tables = make_tables(per_case, runs, by=csv_words(by), ci=ci, resamples=resamples,
                                     seed=seed, settings={"folds": plan.folds, "data": str(data)})
                write_benchmark(tables, output)
            except KeyboardInterrupt:
                fail("interrupted; rerun the same command to resume", code=130)
            except (RadsegError, ValueError) as exc:
                fail(str(exc))
        for note in caveats(tables):
            typer.secho(f"note: {note}", fg=typer.colors.YELLOW, err=True)
        typer.echo((output / "benchmark.md").read_text())
