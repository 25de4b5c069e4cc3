"""``radseg models list``, ``radseg train``, ``radseg segment``, ``radseg export-onnx``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer


def _fail(message: str, code: int = 1) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def _numbers(text: Optional[str], kind=float, what: str = "value") -> Optional[tuple]:
    if text is None:
        return None
    try:
        return tuple(kind(v) for v in text.replace("x", ",").split(",") if v.strip())
    except ValueError:
        _fail(f"{what}: expected comma-separated numbers, got {text!r}")


def _progress(quiet: bool):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    console = Console(stderr=True)
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), console=console, disable=quiet or not console.is_terminal)


def _shipped() -> dict[str, str]:
    """``{name: one-line summary}`` of the shipped trained models (from their manifests)."""
    from radseg.models.bundle import load_bundle, shipped_models

    out = {}
    for name, path in shipped_models().items():
        bundle = load_bundle(path, weights=False)
        labels = ", ".join(bundle.class_names)
        out[name] = f"{bundle.spatial_dims}D {bundle.architecture}, labels: {labels}. {bundle.manifest.get('summary', '')}".strip()
    return out


def register(app: typer.Typer) -> None:
    from radseg.models.registry import ARCHITECTURES
    from radseg.models.presets import PRESETS

    models_app = typer.Typer(help="Model architectures and task presets.", no_args_is_help=True)
    app.add_typer(models_app, name="models")

    @models_app.command("list")
    def models_list(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
        """List the architectures (MONAI networks) and the task presets."""
        if as_json:
            typer.echo(json.dumps({
                "architectures": {n: {"monai": s.monai_class, "divisor": s.divisor, "description": s.description}
                                  for n, s in ARCHITECTURES.items()},
                "presets": {n: {"dims": p.spatial_dims, "architecture": p.architecture, "description": p.description,
                                "preprocessing": p.preprocessing} for n, p in PRESETS.items()},
                "shipped": _shipped()}, indent=2, default=list))
            return
        typer.echo("architectures (--model):")
        for name, spec in ARCHITECTURES.items():
            typer.echo(f"  {name:<15} MONAI {spec.monai_class:<14} 2D/3D, sides multiple of {spec.divisor:<3} {spec.description}")
        typer.echo("task presets (--preset):")
        for name, preset in PRESETS.items():
            typer.echo(f"  {name:<15} {preset.spatial_dims}D {preset.architecture:<10} {preset.description}")
        typer.echo("trained models shipped with radseg (-m NAME):")
        for name, summary in _shipped().items():
            typer.echo(f"  {name:<15} {summary}")

    @app.command()
    def train(
        data: Path = typer.Option(..., "--data", help="Prepared dataset folder: images/, labels/, optional dataset.json."),
        output: Path = typer.Option(..., "-o", "--output", help="Run folder (checkpoints, metrics.csv, learning_curve.png, model/)."),
        model: Optional[str] = typer.Option(None, "--model", help=f"Architecture: {', '.join(ARCHITECTURES.names())} (default: the preset's)."),
        preset: Optional[str] = typer.Option(None, "--preset", help=f"Task preset: {', '.join(PRESETS.names())} (default: dataset.json's, else by 2D/3D)."),
        model_args: Optional[str] = typer.Option(None, "--model-args", help='Network options as JSON, e.g. \'{"channels": [8, 16, 32, 64], "strides": [2, 2, 2]}\'.'),
        epochs: Optional[int] = typer.Option(None, "--epochs", help="Epochs."),
        iters: Optional[int] = typer.Option(None, "--iters-per-epoch", help="Batches per epoch."),
        batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Patches per batch."),
        lr: Optional[float] = typer.Option(None, "--lr", help="Peak learning rate (AdamW, warm-up then cosine)."),
        size: Optional[str] = typer.Option(None, "--size", help="2D fit size rows,cols (e.g. 256,256)."),
        spacing: Optional[str] = typer.Option(None, "--spacing", help="Resample to this spacing in mm (per axis, comma-separated)."),
        patch_size: Optional[str] = typer.Option(None, "--patch-size", help="Training / sliding-window patch, e.g. 64,64,64."),
        window: Optional[str] = typer.Option(None, "--window", help="Intensity window low,high (e.g. HU -200,1500)."),
        val_every: Optional[int] = typer.Option(None, "--val-every", help="Validate every k epochs."),
        patience: Optional[int] = typer.Option(None, "--patience", help="Stop after this many validations without improvement."),
        time_limit: Optional[float] = typer.Option(None, "--time-limit", help="Stop after this many seconds (the schedule anneals within it)."),
        seed: int = typer.Option(0, "--seed", help="Seed: same seed and data, same model."),
        device: str = typer.Option("auto", "--device", help="cpu, cuda or auto."),
        threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads (default: all cores)."),
        no_augment: bool = typer.Option(False, "--no-augment", help="Turn augmentation off."),
        resume: bool = typer.Option(False, "--resume", help="Continue the run in OUTPUT from its last checkpoint."),
        init: Optional[str] = typer.Option(None, "--init", help="Start from this trained bundle's weights (fine-tuning; same network and classes)."),
        save_zip: bool = typer.Option(False, "--zip", help="Also write the model as OUTPUT/model.zip."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    ) -> None:
        """Train a segmentation model on a prepared dataset; writes a model bundle to OUTPUT/model."""
        from radseg.errors import RadsegError
        from radseg.registry import UnknownNameError
        from radseg.train.config import TrainConfig
        from radseg.train.loop import train as run_train

        pre = {}
        for key, value in (("size", _numbers(size, int, "--size")), ("spacing", _numbers(spacing, float, "--spacing")),
                           ("patch_size", _numbers(patch_size, int, "--patch-size")), ("window", _numbers(window, float, "--window"))):
            if value is not None:
                pre[key] = value
        if "spacing" in pre:
            pre["mode"] = "spacing"
        if "window" in pre:
            pre["intensity"] = "window"
        try:
            kwargs = json.loads(model_args) if model_args else {}
        except ValueError as exc:
            _fail(f"--model-args is not JSON ({exc})")
        if model and model not in ARCHITECTURES:
            _fail(str(UnknownNameError(ARCHITECTURES.unknown_message(model))))
        if preset and preset not in PRESETS:
            _fail(str(UnknownNameError(PRESETS.unknown_message(preset))))
        config = TrainConfig(output=output, preset=preset, architecture=model, arch_kwargs=kwargs, preprocessing=pre,
                             epochs=epochs, iters_per_epoch=iters, batch_size=batch_size, lr=lr, val_every=val_every,
                             patience=patience, time_limit=time_limit, seed=seed, device=device, threads=threads,
                             augment=not no_augment, resume=resume, save_zip=save_zip, init=init)
        progress = _progress(quiet)
        state = {"task": None, "best": None}

        def on_event(event: dict) -> None:
            kind = event["kind"]
            if kind == "start":
                total = event["epochs"] * event["iters_per_epoch"]
                state["task"] = progress.add_task("training", total=total, completed=event["epoch"] * event["iters_per_epoch"])
                typer.echo(f"training on {event['n_train']} case(s), validating on {event['n_val']}, "
                           f"{event['parameters']:,} parameters, device {event['device']}", err=True)
            elif kind == "iteration":
                best = f" best Dice {state['best']:.3f}" if state["best"] is not None else ""
                progress.update(state["task"], completed=event["iteration"],
                                description=f"epoch {event['epoch'] + 1} loss {event['loss']:.3f}{best}")
            elif kind == "epoch":
                state["best"] = event.get("best")
                if quiet or not progress.console.is_terminal:
                    dice = f" val Dice {event['val_dice']:.4f}" if event.get("val_dice") is not None else ""
                    typer.echo(f"epoch {event['epoch']}: loss {event['train_loss']:.4f}{dice}", err=True)

        with progress:
            try:
                result = run_train(config, data=data, on_event=on_event)
            except (RadsegError, ValueError) as exc:
                _fail(str(exc))
        best = f"{result.best_dice:.4f}" if result.best_dice is not None else "n/a"
        typer.echo(f"{result.stopped} after {result.epochs_done} epoch(s); best validation Dice {best}; model {result.model_path}")
        if result.stopped == "interrupted":
            raise typer.Exit(130)

    @app.command()
    def segment(
        input: Path = typer.Option(..., "-i", "--input", help="A file, a DICOM series folder, or a folder of images/series."),
        output: Path = typer.Option(..., "-o", "--output", help="Output folder."),
        model: Optional[Path] = typer.Option(None, "-m", "--model", envvar="RADSEG_MODEL", help="Model bundle folder or .zip (default: $RADSEG_MODEL)."),
        output_type: str = typer.Option("png", "-ot", "--output-type", help="png, png-classes, jpg (overlay), overlay, npy, npz, json (COCO), nifti, dicom-seg. A multi-label model (CXAS-like) writes png/jpg as one image per class: <out>/<case>/<class>.png."),
        device: str = typer.Option("auto", "--device", help="cpu, cuda or auto."),
        backend: str = typer.Option("torch", "--backend", help="torch or onnx (needs `radseg export-onnx MODEL` first)."),
        tta: bool = typer.Option(False, "--tta", help="Left-right flip test-time augmentation (right/left labels swapped back)."),
        overlap: float = typer.Option(0.5, "--overlap", help="Sliding-window overlap (3D / tiled images)."),
        postprocess: Optional[str] = typer.Option(None, "--postprocess", help="Clean-ups: 'lcc' (largest component per label), 'fill' (holes), both 'lcc,fill', or 'none' (default: the model's)."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Redo finished cases (default: a rerun resumes)."),
        threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads (default: all cores)."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    ) -> None:
        """Segment a file or every image/series of a folder with a trained model (CXAS-style -i/-o/-ot)."""
        from radseg.errors import RadsegError
        from radseg.infer.predictor import Predictor
        from radseg.infer.segment import OUTPUT_TYPES, segment as run_segment

        if model is None:
            _fail("no model: pass -m MODEL (a bundle folder or .zip from `radseg train`) or set RADSEG_MODEL")
        if output_type not in OUTPUT_TYPES:
            _fail(f"unknown output type {output_type!r}; valid: {', '.join(OUTPUT_TYPES)}")
        clean = None
        if postprocess is not None:
            words = {w.strip() for w in postprocess.split(",") if w.strip()}
            if not words <= {"lcc", "fill", "none"}:
                _fail(f"--postprocess takes lcc, fill or none, got {postprocess!r}")
            clean = {"largest_component": "lcc" in words, "fill_holes": "fill" in words}
        try:
            predictor = Predictor.load(model, device=device, backend=backend, tta=tta, overlap=overlap,
                                       postprocess=clean, threads=threads)
        except RadsegError as exc:
            _fail(str(exc))
        progress = _progress(quiet)
        with progress:
            task = progress.add_task("segmenting", total=None)
            try:
                report = run_segment(input, output, predictor=predictor, output_type=output_type, overwrite=overwrite,
                                     jobs_total=lambda n: progress.update(task, total=n),
                                     on_progress=lambda case: progress.update(task, advance=1, description=f"segmenting {case[:30]}"))
            except RadsegError as exc:
                _fail(str(exc))
        typer.echo(f"wrote {len(report.written)} file(s) to {output}"
                   + (f"; kept {len(report.kept)} finished case(s) (use --overwrite to redo)" if report.kept else ""))
        for case, why in report.flagged:
            typer.secho(f"not plausible: {case}: {why} (see {output}/quality.csv; do not trust these masks)",
                        fg=typer.colors.YELLOW, err=True)
        for item, problem in report.failed:
            typer.secho(f"failed: {item}: {problem}", fg=typer.colors.RED, err=True)
        if report.failed:
            _fail(f"{len(report.failed)} item(s) failed")
        if not report.written and not report.kept:
            _fail(f"{input}: no readable image found")

    @app.command("export-onnx")
    def export_onnx_cmd(
        model: Path = typer.Argument(..., help="Model bundle folder or .zip; model.onnx is added to it."),
    ) -> None:
        """Export a model's network to ONNX (stored in the bundle) and check it against torch."""
        import numpy as np
        import torch

        from radseg.errors import RadsegError
        from radseg.infer.onnx import OnnxForward, export_onnx
        from radseg.models.bundle import load_bundle

        try:
            bundle = load_bundle(model)
            export_onnx(bundle)
            x = torch.from_numpy(np.random.default_rng(0).normal(size=(2, bundle.in_channels, *bundle.preprocessing.patch_size)).astype(np.float32))
            with torch.inference_mode():
                expected = bundle.build_network()(x)
            got = OnnxForward(bundle.onnx_bytes)(x)
        except RadsegError as exc:
            _fail(str(exc))
        diff = float((expected - got).abs().max())
        agree = float((expected.argmax(1) == got.argmax(1)).float().mean())
        typer.echo(f"wrote {bundle.path} (model.onnx); max logit difference vs torch {diff:.2e}, same argmax on {agree:.4%} of pixels")
