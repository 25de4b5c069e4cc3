"""``radseg train``: a prepared dataset -> a trained model bundle (``--arch`` names the network)."""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer

from radseg.commands.common import Progress, QuietOpt, choice, fail, listing, model_help


def _numbers(text: Optional[str], kind=float, what: str = "value") -> Optional[tuple]:
    if text is None:
        return None
    try:
        return tuple(kind(v) for v in text.replace("x", ",").split(",") if v.strip())
    except ValueError:
        fail(f"{what}: expected comma-separated numbers, got {text!r}")


def _preprocessing(size, spacing, patch_size, window) -> dict:
    pre = {}
    for key, value in (("size", _numbers(size, int, "--size")), ("spacing", _numbers(spacing, float, "--spacing")),
                       ("patch_size", _numbers(patch_size, int, "--patch-size")), ("window", _numbers(window, float, "--window"))):
        if value is not None:
            pre[key] = value
    if "spacing" in pre:
        pre["mode"] = "spacing"
    if "window" in pre:
        pre["intensity"] = "window"
    return pre


def _network_options(model_args: Optional[str]) -> dict:
    try:
        return json.loads(model_args) if model_args else {}
    except ValueError as exc:
        fail(f"--model-args is not JSON ({exc})")


def _check_holdout_order(order: str, holdout: Optional[float], resume: bool) -> None:
    if order != "random" and holdout is None and not resume:
        fail("--holdout-order chooses which train cases --holdout holds out: give --holdout too")


def _architecture(arch: Optional[str], old_model: Optional[str]) -> Optional[str]:
    """``--arch``, or the deprecated ``--model`` spelling (``-m/--model`` means a trained bundle elsewhere)."""
    if old_model is None:
        return arch
    typer.secho("note: --model is deprecated for the architecture; use --arch "
                "(-m/--model names a trained bundle in the other commands)", fg=typer.colors.YELLOW, err=True)
    if arch is not None and arch != old_model:
        fail(f"--arch {arch} and --model {old_model} disagree; give --arch only")
    return old_model


def _on_event(progress: Progress, quiet: bool):
    """The training loop's events -> the progress display, and one line per epoch off a terminal."""
    state = {"best": None}

    def on_event(event: dict) -> None:
        kind = event["kind"]
        if kind == "start":
            progress.set_total(event["epochs"] * event["iters_per_epoch"])
            progress.update(event["epoch"] * event["iters_per_epoch"])
            processes = f" x {event['processes']} processes" if event.get("processes", 1) > 1 else ""
            cases = (f"pretraining on {event['n_train']} case(s) (labels unused)" if event.get("task") == "pretrain"
                     else f"training on {event['n_train']} case(s), validating on {event['n_val']}")
            typer.echo(f"{cases}, {event['parameters']:,} parameters, device {event['device']}{processes}", err=True)
        elif kind == "iteration":
            best = f" best Dice {state['best']:.3f}" if state["best"] is not None else ""
            progress.update(event["iteration"], f"epoch {event['epoch'] + 1} loss {event['loss']:.3f}{best}")
        elif kind == "initialised" and event["from"] == "pretrained":
            fresh = f"; {len(event['fresh'])} tensor(s) start from random weights" if event["fresh"] else ""
            typer.echo(f"started from pretrained weights {event['source']}: {event['taken']} of {event['total']} "
                       f"weight tensors{fresh}", err=True)
        elif kind == "left_out":  # pretrain --images: files not pretrained on, before the first epoch
            for path, why in event["items"][:10]:
                typer.secho(f"left out {path}: {why}", fg=typer.colors.YELLOW, err=True)
            if len(event["items"]) > 10:
                typer.secho(f"... and {len(event['items']) - 10} more left out (all listed in pretrained.pt's "
                            "manifest)", fg=typer.colors.YELLOW, err=True)
        elif kind == "mined":
            typer.echo(f"epoch {event['epoch'] + 1}: hard negatives mined on {event['cases']} of {event['of']} "
                       f"training image(s), {event['voxels']:,} voxels, {event['seconds']} s", err=True)
        elif kind == "epoch":
            state["best"] = event.get("best")
            if quiet or not progress.live:
                dice = f" val Dice {event['val_dice']:.4f}" if event.get("val_dice") is not None else ""
                typer.echo(f"epoch {event['epoch']}: loss {event['train_loss']:.4f}{dice}", err=True)

    return on_event


#: ``radseg train`` options -> the TrainConfig fields they set (the rest share their name).
_FIELD_OF = {"arch": "architecture", "old_model": "architecture", "model_args": "arch_kwargs", "iters": "iters_per_epoch",
             "size": "preprocessing", "spacing": "preprocessing", "patch_size": "preprocessing",
             "window": "preprocessing", "no_augment": "augment"}


def _typed_fields(ctx: typer.Context) -> set[str]:
    """The TrainConfig fields the user set on the command line (a value equal to the default counts too)."""
    return {_FIELD_OF.get(name, name) for name in ctx.params
            if getattr(ctx.get_parameter_source(name), "name", "DEFAULT") not in ("DEFAULT", "DEFAULT_MAP")}


@contextmanager
def _sigterm_as_interrupt():
    """SIGTERM (a scheduler's kill, `timeout`) stops training like Ctrl-C: the bundle is written from the
    best checkpoint and checkpoints/last.pt stays the last whole one, so --resume continues."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def register(app: typer.Typer) -> None:
    from radseg.models.presets import PRESETS
    from radseg.models.registry import ARCHITECTURES

    # options both train and pretrain take (pretrain's must match the later train's)
    arch_opt = typer.Option(None, "--arch", help=f"Architecture: {listing(ARCHITECTURES)} (default: the preset's).")
    preset_opt = typer.Option(None, "--preset", help=f"Task preset: {listing(PRESETS)} (default: dataset.json's, else by 2D/3D).")
    epochs_opt = typer.Option(None, "--epochs", help="Epochs.")
    iters_opt = typer.Option(None, "--iters-per-epoch", help="Batches per epoch.")
    batch_opt = typer.Option(None, "--batch-size", help="Patches per batch.")
    lr_opt = typer.Option(None, "--lr", help="Peak learning rate (AdamW, warm-up then cosine).")
    size_opt = typer.Option(None, "--size", help="2D fit size rows,cols (e.g. 256,256).")
    spacing_opt = typer.Option(None, "--spacing", help="Resample to this spacing in mm (per axis, comma-separated).")
    patch_opt = typer.Option(None, "--patch-size", help="Training / sliding-window patch, e.g. 64,64,64.")
    window_opt = typer.Option(None, "--window", help="Intensity window low,high (e.g. HU -200,1500).")

    @app.command()
    def train(
        ctx: typer.Context,
        data: Path = typer.Option(..., "--data", help="Prepared dataset folder: images/, labels/, optional dataset.json."),
        output: Path = typer.Option(..., "-o", "--output", help="Run folder (checkpoints, metrics.csv, learning_curve.png, model/)."),
        arch: Optional[str] = arch_opt,
        old_model: Optional[str] = typer.Option(None, "--model", hidden=True, help="Deprecated spelling of --arch."),
        preset: Optional[str] = preset_opt,
        model_args: Optional[str] = typer.Option(None, "--model-args", help='Network options as JSON, e.g. \'{"channels": [8, 16, 32, 64], "strides": [2, 2, 2]}\'.'),
        epochs: Optional[int] = epochs_opt,
        iters: Optional[int] = iters_opt,
        batch_size: Optional[int] = batch_opt,
        lr: Optional[float] = lr_opt,
        size: Optional[str] = size_opt,
        spacing: Optional[str] = spacing_opt,
        patch_size: Optional[str] = patch_opt,
        window: Optional[str] = window_opt,
        val_every: Optional[int] = typer.Option(None, "--val-every", help="Validate every k epochs."),
        patience: Optional[int] = typer.Option(None, "--patience", help="Stop after this many validations without improvement."),
        time_limit: Optional[float] = typer.Option(None, "--time-limit", help="Stop after this many seconds (it only stops: the learning-rate schedule follows --epochs x --iters-per-epoch, so results stay reproducible)."),
        seed: int = typer.Option(0, "--seed", help="Seed: same seed and data, same model."),
        device: str = typer.Option("auto", "--device", help="cpu, cuda or auto."),
        threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads (default: the cores this process may use), shared out over --nproc."),
        nproc: int = typer.Option(1, "--nproc", help="Data-parallel training processes (torch.distributed); the batch size "
                                                     "stays the global batch and must be divisible by it. Same model as 1 "
                                                     "process up to float rounding."),
        backend: Optional[str] = typer.Option(None, "--backend", help="With --nproc > 1: gloo or nccl (default: nccl on CUDA, else gloo)."),
        no_augment: bool = typer.Option(False, "--no-augment", help="Turn augmentation off."),
        holdout: Optional[float] = typer.Option(None, "--holdout", help="Validate and pick the best checkpoint on this "
                                                "seeded share (0-1) of the train split; the dataset's val split stays unseen."),
        holdout_order: str = typer.Option("random", "--holdout-order", help="Which train cases --holdout takes: random "
                                          "(seeded) or last (the last in case-id order: a block, for datasets split by "
                                          "id ranges whose neighbouring ids share a patient, as FracAtlas)."),
        hard_negatives: float = typer.Option(0.0, "--hard-negatives", min=0.0, max=0.95,
                                             help="Share of patches centred on the network's own false positives in "
                                                  "the training images (hard-negative mining; 0: off)."),
        mine_every: Optional[int] = typer.Option(None, "--mine-every", min=1, help="Epochs between hard-negative "
                                                 "mining passes (default: every 5th validation)."),
        balance_by: Optional[str] = typer.Option(None, "--balance-by", help="A metadata column (e.g. body_part): within "
                                                 "each of its values, draw images with and without a finding equally often, "
                                                 "meant to keep a body part where most images are fractured from being "
                                                 "learned as a sign by itself."),
        resume: bool = typer.Option(False, "--resume", help="Continue the run in OUTPUT from its last checkpoint."),
        init: Optional[str] = typer.Option(None, "--init", help=model_help("Start from these weights: a trained bundle (fine-tuning; "
                                                                           "same network and classes; a folder or .zip), "
                                                                           "the pretrained.pt of 'radseg pretrain' or its "
                                                                           "run folder (same network)")),
        save_zip: bool = typer.Option(False, "--zip", help="Also write the model as OUTPUT/model.zip."),
        quiet: bool = QuietOpt,
    ) -> None:
        """Train a segmentation model on a prepared dataset; writes a model bundle to OUTPUT/model."""
        architecture = choice(ARCHITECTURES, _architecture(arch, old_model))
        choice(PRESETS, preset)
        pre = _preprocessing(size, spacing, patch_size, window)
        kwargs = _network_options(model_args)

        from radseg.errors import RadsegError
        from radseg.train.config import TrainConfig
        from radseg.train.data import HOLDOUT_ORDERS
        from radseg.train.loop import train as run_train

        _check_holdout_order(holdout_order, holdout, resume)

        config = TrainConfig(output=output, preset=preset, architecture=architecture, arch_kwargs=kwargs, preprocessing=pre,
                             epochs=epochs, iters_per_epoch=iters, batch_size=batch_size, lr=lr, val_every=val_every,
                             patience=patience, time_limit=time_limit, seed=seed, device=device, threads=threads,
                             augment=not no_augment, holdout=holdout, resume=resume, save_zip=save_zip, init=init, nproc=nproc,
                             backend=backend, hard_negatives=hard_negatives, mine_every=mine_every, balance_by=balance_by,
                             holdout_order=choice(HOLDOUT_ORDERS, holdout_order, "--holdout-order"))
        with Progress("training", quiet=quiet) as progress, _sigterm_as_interrupt():
            try:
                result = run_train(config, data=data, on_event=_on_event(progress, quiet), given=_typed_fields(ctx))
            except (RadsegError, ValueError) as exc:
                fail(str(exc), getattr(exc, "exit_code", 1))  # a failed training process: its exit status
        best = f"{result.best_dice:.4f}" if result.best_dice is not None else "n/a"
        typer.echo(f"{result.stopped} after {result.epochs_done} epoch(s); best validation Dice {best}; model {result.model_path}")
        if result.stopped == "interrupted":
            raise typer.Exit(130)

    @app.command()
    def pretrain(
        ctx: typer.Context,
        data: Optional[Path] = typer.Option(None, "--data", help="Prepared dataset folder: its training images are used "
                                                                 "(labels are not)."),
        images: Optional[Path] = typer.Option(None, "--images", help="A folder of unlabelled images or DICOM series "
                                                                     "(read recursively), beside or instead of --data; "
                                                                     "copies of the dataset's held-out, val or test "
                                                                     "images are left out."),
        output: Path = typer.Option(..., "-o", "--output", help="Run folder (checkpoints, metrics.csv, learning_curve.png, "
                                                                "pretrained.pt)."),
        arch: Optional[str] = arch_opt,
        preset: Optional[str] = preset_opt,
        model_args: Optional[str] = typer.Option(None, "--model-args", help="Network options as JSON; give the same to 'radseg train'."),
        epochs: Optional[int] = epochs_opt,
        iters: Optional[int] = iters_opt,
        batch_size: Optional[int] = batch_opt,
        lr: Optional[float] = lr_opt,
        size: Optional[str] = size_opt,
        spacing: Optional[str] = spacing_opt,
        patch_size: Optional[str] = patch_opt,
        window: Optional[str] = window_opt,
        no_augment: bool = typer.Option(False, "--no-augment", help="Turn augmentation off."),
        time_limit: Optional[float] = typer.Option(None, "--time-limit", help="Stop after this many seconds (it only stops)."),
        seed: int = typer.Option(0, "--seed", help="Seed: same seed and data, same weights."),
        device: str = typer.Option("auto", "--device", help="cpu, cuda or auto."),
        threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads (default: the cores this process may use)."),
        holdout: Optional[float] = typer.Option(None, "--holdout", help="The --holdout (and --seed) the later 'radseg train' "
                                                "will give: those held-out cases are not pretrained on."),
        holdout_order: str = typer.Option("random", "--holdout-order", help="The later run's --holdout-order: random or last."),
        resume: bool = typer.Option(False, "--resume", help="Continue the run in OUTPUT from its last checkpoint."),
        quiet: bool = QuietOpt,
    ) -> None:
        """Pretrain a network without labels by restoring corrupted training images; 'radseg train --init' starts from it."""
        from radseg.errors import RadsegError
        from radseg.train.config import TrainConfig
        from radseg.train.data import HOLDOUT_ORDERS
        from radseg.train.pretrain import pretrain as run_pretrain

        choice(PRESETS, preset)
        kwargs = _network_options(model_args)
        _check_holdout_order(holdout_order, holdout, resume)
        if data is None and images is None:
            fail("give the images to pretrain on: --data (a prepared dataset), --images (a folder), or both")
        config = TrainConfig(output=output, preset=preset, architecture=choice(ARCHITECTURES, arch), arch_kwargs=kwargs,
                             preprocessing=_preprocessing(size, spacing, patch_size, window), augment=not no_augment,
                             epochs=epochs, iters_per_epoch=iters, batch_size=batch_size, lr=lr, time_limit=time_limit,
                             seed=seed, device=device, threads=threads, holdout=holdout, resume=resume,
                             holdout_order=choice(HOLDOUT_ORDERS, holdout_order, "--holdout-order"))
        with Progress("pretraining", quiet=quiet) as progress, _sigterm_as_interrupt():
            try:
                result = run_pretrain(config, data, images=images, on_event=_on_event(progress, quiet),
                                      given=_typed_fields(ctx))
            except (RadsegError, ValueError) as exc:
                fail(str(exc))
        typer.echo(f"{result.stopped} after {result.epochs_done} epoch(s); restoration loss {result.final_loss:.4f}; "
                   f"weights {result.weights} (radseg train --init {result.run_dir})")
        if result.stopped == "interrupted":
            raise typer.Exit(130)
