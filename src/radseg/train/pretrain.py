"""Self-supervised pretraining: the network learns to restore corrupted training images, labels unused.

``radseg pretrain`` trains the run's own network (same architecture and options, one output
channel) to undo the corruptions of :mod:`radseg.train.pretext` (Models Genesis), with a mean
squared error on the preprocessed grey levels. ``radseg train --init RUN`` then starts from these
weights (:mod:`radseg.train.init`): every layer but the output ones.

Which images: the training cases of the split the later ``radseg train`` will use (same
``--holdout`` and ``--holdout-order``): the held-out cases a model is selected on, the dataset's
``val`` split and ``test`` are never seen, so pretraining cannot flatter the selection or the score.

The run folder holds ``checkpoints/last.pt`` (each epoch, written whole), ``metrics.csv`` and
``learning_curve.png`` (restoration loss), ``config.json`` and ``pretrained.pt``
(:mod:`radseg.models.pretrained`). ``--resume`` continues from the last whole epoch: after Ctrl-C or
SIGTERM with the same patches, corruptions and weights as an uninterrupted run. ``--time-limit`` only
stops (the learning-rate schedule follows the planned iterations); as in ``radseg train``, the epoch
it stops in counts as done, so a run resumed after it makes fewer steps than one that never stopped.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from radseg.errors import RadsegError
from radseg.io.atomic import atomic_path, write_text_atomic
from radseg.models.hardware import describe_device, hardware_spans
from radseg.models.mirror import LR_AXIS
from radseg.models.preprocess import Preprocessing, prepare
from radseg.models.pretrained import FILE, write_pretrained
from radseg.models.registry import build, check_patch_size, count_parameters, resolve_kwargs
from radseg.train import records
from radseg.train.config import TrainConfig
from radseg.train.data import TrainData, fitted_preprocessing, load_prepared, split_cases
from radseg.train.pretext import corrupt
from radseg.train.sampler import GridCase, PatchSampler

__all__ = ["pretrain", "PretrainResult"]

GRID_CACHE = "grid-cache"  # the --images archive on the network grid while a run lasts (removed at its end)
_KEYS = ("task", "model", "optimizer", "epoch", "iteration", "history", "elapsed", "numpy_rng", "torch_gen",
         "torch_rng", "preprocessing", "cases")


def _on_disk(array: np.ndarray, path: Path) -> np.ndarray:
    """``array`` written to ``path`` and memory-mapped read-only (pages are read as patches need them)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.ascontiguousarray(array))
    return np.load(path, mmap_mode="r")


def _check_same_pixels(stored: dict[str, str] | None, now: dict[str, str], checkpoint: Path) -> None:
    """Refuse to resume on ``--images`` whose pixels changed under the same names (ids are file stems, so a
    replaced file would pass the id check). A checkpoint from before digests were kept (None) is not checked."""
    changed = sorted(c for c in set(stored or {}) & set(now) if stored[c] != now[c]) if stored is not None else []
    if changed:
        raise RadsegError(f"{checkpoint}: {len(changed)} of this run's --images changed since it started (e.g. "
                          f"{changed[0].removeprefix('unlabelled:')!r} has other pixels): resume it with the "
                          "images it was pretrained on, or start a new run")


@dataclass
class PretrainResult:
    run_dir: Path
    weights: Path
    epochs_done: int
    stopped: str
    final_loss: float | None
    problems: list = field(default_factory=list)  # (file, why) of images under --images left out


def pretrain(config: TrainConfig, data: "str | Path | TrainData | None" = None, *, images: str | Path | None = None,
             on_event: Callable[[dict], None] | None = None, given: set[str] | None = None) -> PretrainResult:
    """Pretrain ``config``'s network on the training images of ``data`` (a prepared dataset folder or a
    :class:`~radseg.train.data.TrainData`), on every readable image under ``images``
    (:mod:`radseg.train.unlabelled`), or on both; ``given`` as in :func:`radseg.train.loop.train`."""
    from radseg.train.loop import check_run_folder, resolve_config
    from radseg.train.unlabelled import cases_to_keep_unseen, unlabelled_cases

    if data is None and images is None:
        raise ValueError("give the images to pretrain on: data=FOLDER (a prepared dataset), images=FOLDER, or both")
    clock = time.perf_counter()
    dataset = None if data is None else data if isinstance(data, TrainData) else load_prepared(data)
    check_run_folder(config, "pretraining")
    labelled: list = []
    if dataset is not None:
        cfg = resolve_config(config, dataset, given)
        labelled, _ = split_cases(dataset, val_fraction=cfg.val_fraction, seed=cfg.seed, holdout=cfg.holdout,
                                  holdout_order=cfg.holdout_order)
    extra, problems, digests = [], [], {}
    if images is not None:
        unseen = cases_to_keep_unseen(dataset, labelled) if dataset is not None else []
        extra, problems, digests = unlabelled_cases(images, unseen=unseen, allowed=labelled,
                                                    spatial_dims=dataset.spatial_dims if dataset is not None else None)
        del unseen
    if not labelled and not extra:
        detail = "; ".join(f"{Path(p).name}: {m}" for p, m in problems[:3])
        raise RadsegError(f"{images or data}: no image to pretrain on" + (f" ({detail})" if detail else ""))
    if dataset is None:
        # a resumed run reads its stored recipe (no dataset needed); a new one the preset's for these images
        cfg = resolve_config(config, dataset, given) if config.resume else config.resolved(extra[0].image.ndim)
    try:
        return _Pretraining(cfg, labelled, extra, problems, dataset, on_event or (lambda event: None), clock,
                            digests).run()
    finally:  # however the run ends (finished, an error, Ctrl-C while the cache is built), its grid cache goes
        _remove_cache(Path(cfg.output) / GRID_CACHE)


def _remove_cache(folder: Path) -> None:
    import warnings

    shutil.rmtree(folder, ignore_errors=True)
    if folder.exists():  # a mapping still open (Windows) or a permission: say so rather than leave it silently
        warnings.warn(f"{folder}: could not remove the pretraining grid cache; delete it by hand", stacklevel=2)


class _Pretraining:
    def __init__(self, cfg: TrainConfig, labelled: list, unlabelled: list, problems: list, dataset, emit,
                 clock: float, digests: dict[str, str] | None = None) -> None:
        from radseg.models.cpu import resolve_device
        from radseg.system import usable_cores
        from radseg.train.augment import Augmenter
        from radseg.train.session import load_checkpoint

        self.cfg, self.labelled, self.dataset, self.emit, self.clock = cfg, labelled, dataset, emit, clock
        self.unlabelled, self.problems, self.digests = unlabelled, problems, dict(digests or {})
        cases = self.cases = labelled + unlabelled
        self.run_dir = Path(cfg.output)
        self.ckpt = self.run_dir / "checkpoints" / "last.pt"
        torch.set_num_threads(cfg.threads or usable_cores())
        self.device = resolve_device(cfg.device)
        state = load_checkpoint(self.ckpt, _KEYS) if cfg.resume else None
        if state:
            records.check_same_split(state["cases"], cases, [], self.ckpt)
            _check_same_pixels(state.get("unlabelled_digests"), self.digests, self.ckpt)
        self.pre = (Preprocessing.from_dict(state["preprocessing"]) if state else
                    fitted_preprocessing(cfg.preprocessing, labelled or unlabelled, multilabel=cfg.head == "multilabel",
                                         seed=cfg.seed, release=not labelled))
        check_patch_size(cfg.architecture, self.pre.patch_size)
        # labels are not used: an empty target (a broadcast zero, no memory) places patches uniformly
        self.grid = []
        archive = {case.case_id for case in unlabelled}
        self.grid_cache = self.run_dir / GRID_CACHE
        _remove_cache(self.grid_cache)  # a killed run's leftovers
        for case in cases:
            x, _ = prepare(case.image, self.pre)
            if case.case_id in archive:
                # an archive may be larger than memory: its network-grid copies are read from disk as sampled
                x = _on_disk(x, self.grid_cache / f"{len(self.grid)}.npy")
                case.unload()
            self.grid.append(GridCase(case.case_id, x, np.broadcast_to(np.uint8(0), x.shape[1:])))
        self.arch_kwargs = resolve_kwargs(cfg.architecture, spatial_dims=self.pre.spatial_dims,
                                          patch_size=self.pre.patch_size, overrides=cfg.arch_kwargs)
        torch.manual_seed(cfg.seed)
        self.net = build(cfg.architecture, spatial_dims=self.pre.spatial_dims, in_channels=1, out_channels=1,
                         patch_size=self.pre.patch_size, overrides=cfg.arch_kwargs).to(self.device)
        self.optimizer = torch.optim.AdamW(self.net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        # geometry and contrast augmentation as in training (no labels to swap when mirrored)
        self.augment = Augmenter(self.pre.spatial_dims, LR_AXIS[self.pre.spatial_dims], None, None,
                                 flip_lr=cfg.flip_lr, rotate_degrees=cfg.rotate_degrees,
                                 scale_range=tuple(cfg.scale_range))
        self.rng = np.random.default_rng(cfg.seed)
        self.gen = torch.Generator().manual_seed(cfg.seed + 1)
        self.sampler = PatchSampler(self.grid, self.pre.patch_size, foreground_fraction=0.0, rng=self.rng)
        self.epoch = self.iteration = 0
        self.history: list[dict[str, Any]] = []
        self.elapsed_before = 0.0
        if state:
            self.net.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.epoch, self.iteration, self.history = state["epoch"], state["iteration"], list(state["history"])
            self.elapsed_before = float(state["elapsed"])
            self.rng.bit_generator.state = json.loads(state["numpy_rng"])
            self.gen.set_state(state["torch_gen"])
            torch.set_rng_state(state["torch_rng"])
        else:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            write_text_atomic(self.run_dir / "config.json", json.dumps(cfg.to_dict(), indent=2))

    def _elapsed(self) -> float:
        return self.elapsed_before + records.seconds(self.clock)

    def _step(self) -> float:
        cfg = self.cfg
        progress = self.iteration / max(1, cfg.epochs * cfg.iters_per_epoch)
        for group in self.optimizer.param_groups:
            group["lr"] = records.cosine_lr(cfg.lr, progress, cfg.warmup_fraction)
        images, _ = self.sampler.batch(cfg.batch_size)
        clean = torch.from_numpy(images).to(self.device)
        if cfg.augment:
            clean, _ = self.augment(clean, torch.zeros_like(clean, dtype=torch.long), self.gen)
        damaged = np.stack([corrupt(patch, self.rng) for patch in clean.cpu().numpy()])
        self.net.train()
        self.optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.mse_loss(self.net(torch.from_numpy(damaged).to(self.device)), clean)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.net.parameters(), 12.0)
        self.optimizer.step()
        self.iteration += 1
        return float(loss.detach())

    def _checkpoint(self, row: dict[str, Any]) -> None:
        state = {"task": "pretrain", "model": self.net.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "epoch": self.epoch + 1, "iteration": self.iteration, "history": [*self.history, row],
                 "elapsed": self._elapsed(),
                 "numpy_rng": json.dumps(self.rng.bit_generator.state), "torch_gen": self.gen.get_state(),
                 "torch_rng": torch.get_rng_state(), "preprocessing": self.pre.to_dict(),
                 "cases": records.case_split(self.cases, []), "unlabelled_digests": self.digests}
        with atomic_path(self.ckpt) as tmp:
            torch.save(state, tmp)

    def run(self) -> PretrainResult:
        cfg = self.cfg
        if self.problems:  # before the first epoch, so a run that fails later has shown them
            self.emit({"kind": "left_out", "items": list(self.problems)})
        self.emit({"kind": "start", "task": "pretrain", "epochs": cfg.epochs, "iters_per_epoch": cfg.iters_per_epoch, "epoch": self.epoch,
                   "n_train": len(self.grid), "n_val": 0, "parameters": count_parameters(self.net),
                   "device": self.device, "processes": 1})
        stopped, device_name = "completed", describe_device(self.device)
        try:
            while self.epoch < cfg.epochs:
                losses = []
                for _ in range(cfg.iters_per_epoch):
                    losses.append(self._step())
                    self.emit({"kind": "iteration", "epoch": self.epoch, "iteration": self.iteration, "loss": losses[-1]})
                    if cfg.time_limit and self._elapsed() + 3.0 >= cfg.time_limit:
                        stopped = "time-limit"
                        break
                row = {"epoch": self.epoch + 1, "iteration": self.iteration, "time_s": round(self._elapsed(), 2),
                       "lr": self.optimizer.param_groups[0]["lr"], "train_loss": float(np.mean(losses)),
                       "device": device_name}
                # the epoch counts once its checkpoint is written: what Ctrl-C leaves is one whole state
                self._checkpoint(row)
                self.epoch += 1
                self.history.append(row)
                records.write_metrics(self.run_dir, self.history, loss_label="restoration loss (MSE)")
                self.emit({"kind": "epoch", **row, "best": None})
                if stopped != "completed":
                    break
        except KeyboardInterrupt:
            stopped = "interrupted"
        return self._finish(stopped)

    def _finish(self, stopped: str) -> PretrainResult:
        from radseg.train.session import load_checkpoint

        if not self.ckpt.exists():
            raise RadsegError(f"{self.run_dir}: stopped ({stopped}) before the first epoch ended; no weights written")
        # the last whole epoch's state, what --resume continues from (steps after it are not in the weights)
        state = load_checkpoint(self.ckpt, _KEYS)
        history = state["history"]
        manifest = {"created_by": "radseg pretrain", "task": "restoration of corrupted images (Models Genesis)",
                    "environment": records.environment(), "config": self.cfg.to_dict(),
                    "data": {**(records.dataset_summary(self.dataset, self.labelled, []) if self.dataset else
                                {"train_cases": []}),
                             "unlabelled": self._unlabelled_record()},
                    "metrics": {"epochs_done": state["epoch"], "iterations": state["iteration"],
                                "final_loss": history[-1]["train_loss"], "train_seconds": round(state["elapsed"], 1),
                                "stopped": stopped},
                    "hardware": hardware_spans(history)}
        path = write_pretrained(self.run_dir / FILE, architecture=self.cfg.architecture,
                                spatial_dims=self.pre.spatial_dims, arch_kwargs=self.arch_kwargs,
                                preprocessing=self.pre.to_dict(), state_dict=state["model"], manifest=manifest,
                                output_keys=self._output_keys())
        self.emit({"kind": "end", "stopped": stopped, "best": None, "model": str(path),
                   "seconds": round(self._elapsed(), 1)})
        return PretrainResult(self.run_dir, path, state["epoch"], stopped, history[-1]["train_loss"], list(self.problems))

    def _unlabelled_record(self) -> dict[str, Any]:
        # the digests let 'train --init' find a later run's held-out cases among these images (radseg.train.init)
        return {"n": len(self.unlabelled), "files": [str(c.sources.get("image", "")) for c in self.unlabelled],
                "pixel_digests": sorted(set(self.digests.values())),
                "left_out": [list(p) for p in self.problems]}

    def _output_keys(self) -> list[str]:
        """The weights that hold the output channels: those whose shape changes with them (built on the CPU)."""
        shapes = [{k: tuple(v.shape) for k, v in build(self.cfg.architecture, spatial_dims=self.pre.spatial_dims,
                                                       in_channels=1, out_channels=n, patch_size=self.pre.patch_size,
                                                       overrides=self.cfg.arch_kwargs).state_dict().items()}
                  for n in (1, 2)]
        return sorted(k for k in shapes[0] if shapes[0][k] != shapes[1].get(k))
