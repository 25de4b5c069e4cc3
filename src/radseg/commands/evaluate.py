"""``radseg evaluate`` (predictions against ground truth) and ``radseg evaluate-detection`` (a model as detector)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from radseg.commands.common import (EngineOpt, PartOpt, Progress, QuietOpt, RayAddressOpt, WorkersOpt, choice, csv_words,
                                   fail, finish, follow_point_tta, model_help, problems, scale_options, warn)

CI_METHODS = ("percentile", "bca")


def _report_evaluation(result, output: Path, written) -> None:
    for path in result.unmatched_predictions:
        typer.secho(f"unmatched prediction (no ground truth): {path}", fg=typer.colors.YELLOW, err=True)
    for path in result.unmatched_truths:
        typer.secho(f"unmatched ground truth (no prediction): {path}", fg=typer.colors.YELLOW, err=True)
    problems(result.failed, result.warnings)
    if not result.summary.empty and "metric" in result.summary.columns:
        for row in result.summary[result.summary["metric"].isin(["dice", "hd95"])].itertuples():
            if getattr(row, "n", 0):
                unit = f" {row.unit}" if row.metric != "dice" else ""  # distances: mm, or px without a pixel size
                ci = f"[{row.ci_low:.4f}, {row.ci_high:.4f}]" if row.ci_low == row.ci_low else "(no CI: --bootstrap 0)"
                typer.echo(f"{row.label_name:>20} {row.metric:>5}: {row.mean:.4f}{unit} {ci} (n={row.n}"
                           + (f", {row.n_nan} NaN" if row.n_nan else "") + ")")
    typer.echo(f"wrote {', '.join(p.name for p in written)} to {output}")
    finish(result.failed)


def _report_detection(result, output: Path, written) -> None:
    s = result.summary
    for key in ("mask_AP50", "mask_AP50_95", "box_AP50", "box_AP50_95", "precision", "recall"):
        typer.echo(f"{key:>14}: {s[key]:.4f}")
    for key in ("dice", "auc"):
        if key in s:
            low, high = s[key + "_ci_low"], s[key + "_ci_high"]
            ci = f"[{low:.4f}, {high:.4f}]" if low == low else "(no CI: --bootstrap 0)"
            typer.echo(f"{key:>14}: {s[key]:.4f} {ci}")
    here = s.get("operating_point_here")
    if here:
        typer.echo(f"operating point for sensitivity >= {here['target_sensitivity']:.2f} on this split: image score "
                   f">= {here['threshold']:.4f}, specificity {here['specificity']:.3f}")
    if s.get("operating_point_note"):
        typer.secho(f"note: {s['operating_point_note']}", err=True, fg="yellow")
    shipped = s.get("at_model_operating_point")
    if shipped:
        typer.echo(f"at the model's operating point (score >= {shipped['threshold']:.4f}): sensitivity "
                   f"{shipped['sensitivity']:.3f} [{shipped['sensitivity_ci_low']:.3f}, {shipped['sensitivity_ci_high']:.3f}], "
                   f"specificity {shipped['specificity']:.3f} [{shipped['specificity_ci_low']:.3f}, "
                   f"{shipped['specificity_ci_high']:.3f}]")
    problems((failure["case"], failure["error"]) for failure in s["failed"])
    typer.echo(f"wrote {', '.join(p.name for p in written)} to {output}")
    finish(s["failed"])


def register(app: typer.Typer) -> None:
    @app.command()
    def evaluate(
        pred: Optional[Path] = typer.Option(None, "--pred", help="Folder of predicted label maps (any readable label format)."),
        truth: Optional[Path] = typer.Option(None, "--truth", help="Folder of ground-truth label maps; cases pair by file name."),
        output: Path = typer.Option(..., "-o", "--output", help="Folder for per_case.csv, summary.csv, fairness.csv, summary.json, report.html."),
        labels: Optional[str] = typer.Option(None, "--labels", help="Labels to evaluate, e.g. 1=femur,2=tibia (default: every label present)."),
        metadata: Optional[Path] = typer.Option(None, "--metadata", help="CSV/XLSX of subject metadata keyed by case name."),
        by: Optional[str] = typer.Option(None, "--by", help="Metadata columns for the fairness audit, e.g. sex,race,age_group."),
        reference: Optional[str] = typer.Option(None, "--reference", help="Reference group per --by attribute, e.g. sex=M,age_group=51-64 (default: each attribute's largest group)."),
        bootstrap: int = typer.Option(10000, "--bootstrap", help="Bootstrap resamples for the 95% confidence intervals (0: no CIs; --by needs 1 or more)."),
        ci_method: str = typer.Option("percentile", "--ci", help=f"Confidence interval: {' or '.join(CI_METHODS)}."),
        nsd_tolerance: Optional[float] = typer.Option(None, "--nsd-tolerance", help="Tolerance (mm) of the normalised surface Dice."),
        seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap and permutation tests."),
        workers: Optional[int] = WorkersOpt,
        engine: str = EngineOpt,
        ray_address: Optional[str] = RayAddressOpt,
        part: Optional[str] = PartOpt,
        merge: Optional[str] = typer.Option(None, "--merge", help="Instead of --pred/--truth: the output folders of "
                                            "--part runs, comma-separated; their cases together, statistics over all."),
        quiet: bool = QuietOpt,
    ) -> None:
        """Score predictions against ground truth: metrics per case, CIs, fairness by subgroup, an HTML report."""
        from radseg.errors import RadsegError
        from radseg.evaluate.report import write_outputs
        from radseg.evaluate.fairness import parse_reference
        from radseg.evaluate.run import check_options, evaluate_folders, parse_labels

        choice(CI_METHODS, ci_method, "confidence interval (--ci)")
        engine_options, shard = scale_options(engine, workers, ray_address, part)
        if merge and (pred or truth or part):
            fail("--merge combines finished part runs: give it without --pred, --truth or --part")
        if not merge and (pred is None or truth is None):
            fail("give --pred and --truth (or --merge with the output folders of --part runs)")
        if by and metadata is None:
            fail("--by needs --metadata (the table with those columns)")
        try:
            label_table = parse_labels(labels)
            references = parse_reference(reference)
            unknown = sorted(set(references) - set(csv_words(by)))
            if unknown:
                raise ValueError(f"--reference names {', '.join(unknown)}, which --by does not audit")
            check_options(resamples=bootstrap, by=csv_words(by), nsd_tolerance=nsd_tolerance)
        except ValueError as exc:
            fail(str(exc))
        with Progress("evaluating", quiet=quiet) as progress:
            try:
                if merge:
                    from radseg.evaluate.merge import merge_parts

                    result = merge_parts(csv_words(merge), metadata=metadata, by=csv_words(by), reference=references,
                                         resamples=bootstrap, ci_method=ci_method, seed=seed)
                else:
                    result = evaluate_folders(pred, truth, labels=label_table, metadata=metadata, by=csv_words(by),
                                              reference=references, resamples=bootstrap, ci_method=ci_method,
                                              nsd_tolerance=nsd_tolerance, seed=seed, workers=workers,
                                              jobs_total=progress.set_total, on_progress=progress.advance, part=shard,
                                              engine=engine_options)
                written = write_outputs(result, output)
            except RadsegError as exc:
                fail(str(exc))
        _report_evaluation(result, output, written)

    @app.command("evaluate-detection")
    def evaluate_detection_command(
        model: Path = typer.Option(..., "-m", "--model", help=model_help("A segmentation model bundle (folder or .zip)")),
        data: Path = typer.Option(..., "--data", help="Prepared dataset (radseg datasets prepare), e.g. FracAtlas with negatives."),
        output: Path = typer.Option(..., "-o", "--output", help="Folder for per_case.csv, groups.csv, summary.json."),
        split: str = typer.Option("val", "--split", help="Split to score: train, val, test, or holdout (the train cases "
                                  "the model held out to pick its checkpoint: radseg train --holdout)."),
        by: Optional[str] = typer.Option(None, "--by", help="Metadata columns for subgroups, e.g. body_part,hardware."),
        threshold: float = typer.Option(0.5, "--threshold", help="Probability that makes a pixel part of a detection."),
        min_pixels: int = typer.Option(10, "--min-pixels", help="Smallest detection kept (pixels of the input image)."),
        instance_score: Optional[str] = typer.Option(None, "--instance-score", help="A detection's confidence for AP: "
                                                     "'max' or 'mean' probability inside it (default: the model's "
                                                     "operating point's, else max)."),
        bootstrap: int = typer.Option(2000, "--bootstrap", help="Bootstrap resamples for the CIs of Dice and AUC (0: no CIs)."),
        tta: Optional[bool] = typer.Option(None, "--tta/--no-tta", help="Left-right flip test-time augmentation "
                                           "(default: as the model's operating point was chosen, else off)."),
        window: Optional[int] = typer.Option(None, "--window", help="Image score: the highest probability averaged "
                                             "over this square (pixels; default: the model's operating point's, else 5)."),
        sensitivity: float = typer.Option(0.85, "--sensitivity", help="Sensitivity the image-score operating point "
                                          "must reach on this split (a fraction)."),
        save_operating_point: bool = typer.Option(False, "--save-operating-point", help="Store the operating point "
                                                  "chosen on this split in the model (only --split holdout)."),
        without_copies: bool = typer.Option(False, "--without-copies", help="Set aside images whose pixels are those "
                                            "of an image the model trained on or held out, or of an earlier image of "
                                            "the split (public datasets hold such copies under other ids); listed."),
        device: str = typer.Option("auto", "--device", help="cpu, cuda or auto."),
        seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap."),
        quiet: bool = QuietOpt,
    ) -> None:
        """A segmentation model as detector and screener: mask/box AP, P/R, Dice, image ROC AUC with CIs, subgroups."""
        from radseg.errors import RadsegError
        from radseg.evaluate.detection_run import write_detection
        from radseg.infer.predictor import Predictor
        from radseg.workflows.detection import check_writable_model, evaluate_detection, save_operating_point as store_point

        if bootstrap < 0:
            fail(f"--bootstrap {bootstrap}: the number of resamples is 0 (no confidence intervals) or more")
        if not 0.0 < sensitivity <= 1.0:
            fail(f"--sensitivity {sensitivity}: a fraction in (0, 1]")
        if save_operating_point and split != "holdout":
            fail(f"--save-operating-point: choose the operating point on the held-out training cases (--split holdout), "
                 f"not on {split!r}: on trained-on images the scores run high, and on the split you report its "
                 "figures would look better than they are")
        if save_operating_point:
            try:
                check_writable_model(model)
            except RadsegError as exc:
                fail(str(exc))
        try:
            predictor = Predictor.load(model, device=device, tta=bool(tta))
            follow_point_tta(predictor, tta)  # so the stored point's rates are reported here
            with Progress("scoring", quiet=quiet) as progress:
                result = evaluate_detection(predictor, data, split=split, by=csv_words(by), threshold=threshold,
                                            min_pixels=min_pixels, instance_score=instance_score,
                                            resamples=bootstrap, seed=seed, sensitivity=sensitivity, window=window,
                                            without_copies=without_copies, on_case=progress.advance)
            for case, why in result.summary.get("copies_set_aside", []):
                warn(f"set aside {case}: {why}")
            if without_copies:
                typer.echo(f"--without-copies: {result.summary['copies_compared']}")
            written = write_detection(result, output)
            if save_operating_point:
                point = store_point(model, result, data=data)
                typer.echo(f"stored in {model}: operating point image score >= {point['threshold']:.4f} "
                           f"(sensitivity {point['sensitivity']:.3f}, specificity {point['specificity']:.3f} "
                           f"on the {split} split)")
        except RadsegError as exc:
            fail(str(exc))
        _report_detection(result, output, written)
