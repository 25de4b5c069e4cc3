"""One training run's state (network, optimiser, RNGs, history) and its epochs.

See :mod:`radseg.train.loop` for the run folder and the guarantees (seeding, resume, Ctrl-C).
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from radseg.errors import RadsegError, ReadError
from radseg.io.atomic import atomic_path, write_text_atomic
from radseg.models.bundle import ModelBundle
from radseg.models.hardware import describe_device, run_hardware
from radseg.models.mirror import LR_AXIS, mirror_pairs, mirror_permutation
from radseg.models.preprocess import Preprocessing, prepare, prepare_labels
from radseg.models.registry import build, check_patch_size, count_parameters, resolve_kwargs
from radseg.train import records
from radseg.train.config import TrainConfig
from radseg.case import Case
from radseg.train.data import TrainData, balance_weights, fitted_preprocessing, split_cases
from radseg.train.distributed import LOCAL, Local
from radseg.train.sampler import GridCase, PatchSampler


_CHECKPOINT_KEYS = ("model", "optimizer", "epoch", "iteration", "stale", "history", "best", "best_epoch", "elapsed",
                    "numpy_rng", "torch_gen", "torch_rng", "preprocessing")


def load_checkpoint(path: Path, required: tuple[str, ...] = _CHECKPOINT_KEYS) -> dict[str, Any]:
    """A checkpoint written by :meth:`Session._checkpoint` (``last.pt``) or best weights (``best.pt``).

    Both are written to a temporary file and renamed, so a kill never leaves half of one; a file
    damaged afterwards (a truncated copy, a full disk elsewhere) is refused naming it.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds for a damaged file
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
        raise ReadError(path, f"damaged checkpoint, cannot be loaded ({first}); delete it to start over, "
                              "or restore it from a copy") from None
    missing = [] if path.name != "last.pt" else [k for k in required if k not in (state or {})]
    if not isinstance(state, dict) or missing:
        raise ReadError(path, f"not a radseg training checkpoint (missing {', '.join(missing) or 'everything'})")
    return state


class Session:
    def __init__(self, config: TrainConfig, dataset: TrainData, *, on_event: Callable[[dict], None],
                 clock_start: float | None = None, dist: Local = LOCAL) -> None:
        self.cfg, self.dataset, self.emit, self.dist = config, dataset, on_event, dist
        self.clock_start = clock_start if clock_start is not None else time.perf_counter()
        self.run_dir, self.multilabel = Path(config.output), config.head == "multilabel"
        self.ckpt_dir = self.run_dir / "checkpoints"

    # --- setup ----------------------------------------------------------------------------
    def _label_table(self) -> tuple[list[int], list[str]]:
        names = dict(self.dataset.label_names)
        if not self.multilabel:
            for case in self.dataset.cases:
                for value in np.unique(case.label.array):
                    if value != 0 and int(value) not in names:
                        names[int(value)] = f"label_{int(value)}"
        values = sorted(names)
        if not values:
            raise RadsegError("the training labels are all background: nothing to learn")
        return values, [names[v] for v in values]

    def _grid_case(self, case: Case, pre: Preprocessing, lut: np.ndarray | None) -> GridCase:
        x, grid = prepare(case.image, pre)
        target = prepare_labels(case.label, grid)
        if lut is not None:
            target = lut[np.clip(target.astype(np.int64), 0, len(lut) - 1)].astype(np.uint8)
        else:
            target = target.astype(np.uint8)
        return GridCase(case.case_id, x, target)

    def _setup(self) -> None:
        cfg = self.cfg
        self.threads = self.dist.threads(cfg.threads)
        torch.set_num_threads(self.threads)
        from radseg.models.cpu import resolve_device

        self.device = self.dist.device(resolve_device(cfg.device))
        self.device_name = describe_device(self.device, self.dist.world)
        self.train_cases, self.val_cases = split_cases(self.dataset, val_fraction=cfg.val_fraction, seed=cfg.seed,
                                                          holdout=cfg.holdout, holdout_order=cfg.holdout_order)
        self.case_weights = balance_weights(self.train_cases, cfg.balance_by) if cfg.balance_by else None
        self.class_values, self.class_names = self._label_table()
        resuming = cfg.resume and (self.ckpt_dir / "last.pt").exists()
        state = load_checkpoint(self.ckpt_dir / "last.pt") if resuming else None
        if state:
            records.check_same_split(state.get("cases"), self.train_cases, self.val_cases, self.ckpt_dir / "last.pt")
        self.pre = (Preprocessing.from_dict(state["preprocessing"]) if state else
                    fitted_preprocessing(cfg.preprocessing, self.train_cases, multilabel=self.multilabel, seed=cfg.seed))
        check_patch_size(cfg.architecture, self.pre.patch_size)
        lut = None
        if not self.multilabel:
            lut = np.zeros(max(self.class_values) + 1, np.uint8)
            lut[self.class_values] = np.arange(1, len(self.class_values) + 1)
        self.grid_train = [self._grid_case(c, self.pre, lut) for c in self.train_cases]
        # with N processes each validates (and so prepares) its share of the validation cases
        self.val_index = self.dist.mine(len(self.val_cases))
        self.grid_val = [self._grid_case(self.val_cases[i], self.pre, lut) for i in self.val_index]
        self.out_channels = len(self.class_values) + (0 if self.multilabel else 1)
        # Left/right pairs only mean something to a model that saw mirrored images: without flips
        # (a PA chest) there are none, and flip TTA is refused for the model (see Predictor).
        self.pairs = mirror_pairs(dict(zip(self.class_values, self.class_names))) if cfg.flip_lr else []
        self.perm = mirror_permutation(self.pairs, self.class_values, background=not self.multilabel)

        torch.manual_seed(cfg.seed)
        self.net = build(cfg.architecture, spatial_dims=self.pre.spatial_dims, in_channels=1,
                         out_channels=self.out_channels, patch_size=self.pre.patch_size,
                         overrides=cfg.arch_kwargs).to(self.device)
        self.init_kind = None
        if cfg.init and not state:
            self._initialise(cfg.init)
        # N processes: the module (SyncBatchNorm with nccl) and its DistributedDataParallel wrapper
        self.net, self.train_net = self.dist.wrap(self.net)
        self.arch_kwargs = resolve_kwargs(cfg.architecture, spatial_dims=self.pre.spatial_dims,
                                          patch_size=self.pre.patch_size, overrides=cfg.arch_kwargs)
        self.optimizer = torch.optim.AdamW(self.net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        from radseg.train.augment import Augmenter

        self.loss_fn = self.dist.make_loss(cfg.head)
        lut_t = torch.arange(self.out_channels)[self.perm] if not self.multilabel else None
        self.augment = Augmenter(self.pre.spatial_dims, LR_AXIS[self.pre.spatial_dims], lut_t,
                                 self.perm if self.multilabel else None, flip_lr=cfg.flip_lr,
                                 rotate_degrees=cfg.rotate_degrees, scale_range=tuple(cfg.scale_range))
        self.rng = np.random.default_rng(cfg.seed)
        self.gen = torch.Generator().manual_seed(cfg.seed + 1)
        self.sampler = PatchSampler(self.grid_train, self.pre.patch_size,
                                    foreground_fraction=cfg.foreground_fraction, rng=self.rng,
                                    hard_fraction=cfg.hard_negatives, case_weights=self.case_weights)
        self.history: list[dict[str, Any]] = []
        self.epoch = self.iteration = self.stale = 0
        self.best, self.best_epoch, self.best_state, self.best_per_class = None, None, None, None
        self.elapsed_before = self.mine_seconds = 0.0
        if state:
            self._restore(state)
        elif self.dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            write_text_atomic(self.run_dir / "config.json", json.dumps(cfg.to_dict(), indent=2))

    def _initialise(self, source: str) -> None:
        """Start from a trained bundle's weights or pretrained ones (:mod:`radseg.train.init`)."""
        from radseg.train.init import initialise

        done = initialise(self.net, source, architecture=self.cfg.architecture, class_names=self.class_names,
                          arch_kwargs=resolve_kwargs(self.cfg.architecture, spatial_dims=self.pre.spatial_dims,
                                                     patch_size=self.pre.patch_size, overrides=self.cfg.arch_kwargs),
                          spatial_dims=self.pre.spatial_dims, preprocessing=self.pre.to_dict(),
                          held_out=self.val_cases)
        self.init_kind = done.kind
        self.emit({"kind": "initialised", "source": source, "from": done.kind, "taken": done.taken,
                   "total": done.total, "fresh": done.fresh})

    def _restore(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch, self.iteration, self.stale = state["epoch"], state["iteration"], state["stale"]
        self.history = list(state["history"])
        self.best, self.best_epoch = state["best"], state["best_epoch"]
        self.best_per_class = state.get("best_per_class")
        self.elapsed_before = float(state["elapsed"])
        self.rng.bit_generator.state = json.loads(state["numpy_rng"])
        self.gen.set_state(state["torch_gen"])
        torch.set_rng_state(state["torch_rng"])
        # the mined voxels the run was sampling from when it stopped, so a resumed run draws the same patches
        self.sampler.set_hard_negatives({int(k): v.numpy() for k, v in state.get("hard_negatives", {}).items()})
        best = self.ckpt_dir / "best.pt"
        if best.exists() and self.dist.is_main:
            self.best_state = load_checkpoint(best)

    # --- steps ----------------------------------------------------------------------------
    def _progress(self) -> float:
        """Share of the planned iterations (epochs x iterations per epoch) done: the schedule's clock.

        Never wall time: a time limit only stops the run, so the same seed and data give the same
        learning rates, and the same weights, whether or not (or how fast) a limit was running.
        """
        return self.iteration / max(1, self.cfg.epochs * self.cfg.iters_per_epoch)

    def _step(self) -> float:
        lr = records.cosine_lr(self.cfg.lr, self._progress(), self.cfg.warmup_fraction)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        # the global batch: with N processes all draw (and augment) the same one and each takes its slice
        images, targets = self.sampler.batch(self.cfg.batch_size)
        x = torch.from_numpy(images).to(self.device)
        y = torch.from_numpy(targets.astype(np.int64 if not self.multilabel else np.float32)).to(self.device)
        if self.cfg.augment:
            x, y = self.augment(x, y, self.gen)
        x, y = self.dist.shard(x), self.dist.shard(y)
        self.train_net.train()
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss_fn(self.train_net(x), y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.net.parameters(), 12.0)
        self.optimizer.step()
        self.iteration += 1
        return self.dist.loss_value(self.loss_fn, loss)

    def _probabilities(self, case: GridCase) -> torch.Tensor:
        """Class probabilities on the network grid, by the inference code ``radseg segment`` runs."""
        from radseg.models.grid import grid_probabilities

        x = torch.from_numpy(case.image)[None].to(self.device)
        return grid_probabilities(self.net, x, head=self.cfg.head, patch_size=self.pre.patch_size,
                                  whole=self.pre.mode == "fit", overlap=0.25,
                                  sw_batch_size=max(1, self.cfg.batch_size))[0].cpu()

    def _mining_due(self, elapsed: float, val_seconds: float) -> bool:
        cfg = self.cfg
        if not cfg.hard_negatives:
            return False
        every = cfg.mine_every or 5 * cfg.val_every
        # at epoch 0 only a trained bundle from --init knows anything worth mining (pretrained weights do not)
        due = self.epoch % every == 0 and (self.epoch > 0 or self.init_kind == "bundle")
        # a pass that would run past the time limit is skipped (the last mined voxels stay in use):
        # the limit stops the run within about one pass's time
        late = cfg.time_limit and elapsed + 1.2 * (self.mine_seconds + val_seconds) + 3.0 >= cfg.time_limit
        return due and not late

    def mine_hard_negatives(self) -> dict[int, np.ndarray]:
        """Background voxels the network calls foreground, per training case (:func:`radseg.train.mining.mine`)."""
        from radseg.train.mining import mine

        self.net.eval()
        rng = np.random.default_rng([self.cfg.seed, self.epoch])  # which voxels are kept: same on resume
        with torch.no_grad():
            return mine(self.grid_train, lambda case: self._probabilities(case).numpy(), multilabel=self.multilabel,
                        rng=rng)

    def _mine(self) -> dict[str, Any]:
        """Mine, sample from the result, and report it: the columns metrics.csv gets for this epoch."""
        t0 = time.perf_counter()
        mined = self.mine_hard_negatives()
        self.sampler.set_hard_negatives(mined)
        self.mine_seconds = time.perf_counter() - t0
        stats = {"mined_cases": len(mined), "mined_voxels": int(sum(len(p) for p in mined.values())),
                 "mining_s": round(self.mine_seconds, 1)}
        self.emit({"kind": "mined", "epoch": self.epoch, "cases": stats["mined_cases"], "of": len(self.grid_train),
                   "voxels": stats["mined_voxels"], "seconds": stats["mining_s"]})
        return stats

    def validate(self) -> tuple[float | None, list[float | None]]:
        self.net.eval()
        rows = {}
        for index, case in zip(self.val_index, self.grid_val):
            probs = self._probabilities(case)
            if self.multilabel:
                pred = (probs > 0.5).numpy()
                rows[index] = [records.class_dice(pred[c], case.target[c] > 0) for c in range(self.out_channels)]
            else:
                rows[index] = records.mean_dice(probs.argmax(0).numpy(), case.target, self.out_channels)
        width = self.out_channels - (0 if self.multilabel else 1)
        per_case = self.dist.gather_rows(rows, len(self.val_cases), width)  # every case, in order, on every rank
        per_class = []
        for values in zip(*per_case):
            finite = [v for v in values if v is not None]
            per_class.append(float(np.mean(finite)) if finite else None)
        finite = [v for v in per_class if v is not None]
        return (float(np.mean(finite)) if finite else None), per_class

    def _checkpoint(self, elapsed: float) -> None:
        if not self.dist.is_main:
            return
        state = {"model": self.net.state_dict(), "optimizer": self.optimizer.state_dict(), "epoch": self.epoch,
                 "iteration": self.iteration, "stale": self.stale, "history": self.history, "best": self.best,
                 "best_epoch": self.best_epoch, "best_per_class": self.best_per_class, "elapsed": elapsed,
                 "numpy_rng": json.dumps(self.rng.bit_generator.state), "torch_gen": self.gen.get_state(),
                 "torch_rng": torch.get_rng_state(), "preprocessing": self.pre.to_dict(),
                 "cases": records.case_split(self.train_cases, self.val_cases),
                 "hard_negatives": {str(i): torch.from_numpy(p) for i, p in self.sampler.hard_points.items()}}
        with atomic_path(self.ckpt_dir / "last.pt") as tmp:
            torch.save(state, tmp)

    # --- run -------------------------------------------------------------------------------
    def run(self) -> records.TrainResult:
        self._setup()
        cfg, start = self.cfg, self.clock_start
        self.emit({"kind": "start", "epochs": cfg.epochs, "iters_per_epoch": cfg.iters_per_epoch,
                   "epoch": self.epoch, "n_train": len(self.grid_train), "n_val": len(self.val_cases),
                   "parameters": count_parameters(self.net), "device": self.device, "processes": self.dist.world})
        stopped, val_seconds = "completed", 0.0
        try:
            while self.epoch < cfg.epochs:
                mined = self._mine() if self._mining_due(self.elapsed_before + records.seconds(start),
                                                         val_seconds) else {}
                losses = []
                for _ in range(cfg.iters_per_epoch):
                    if self.dist.should_stop():  # N processes: a stop asked of the launcher, at the same step on all
                        raise KeyboardInterrupt
                    losses.append(self._step())
                    self.emit({"kind": "iteration", "epoch": self.epoch, "iteration": self.iteration, "loss": losses[-1]})
                    # stop early enough for the last validation and writing the bundle (a few seconds)
                    if cfg.time_limit and self.dist.agree(
                            self.elapsed_before + records.seconds(start) + 1.2 * val_seconds + 3.0 >= cfg.time_limit):
                        stopped = "time-limit"
                        break
                self.epoch += 1
                row = {"epoch": self.epoch, "iteration": self.iteration,
                       "time_s": round(self.elapsed_before + records.seconds(start), 2),
                       "lr": self.optimizer.param_groups[0]["lr"], "train_loss": float(np.mean(losses)),
                       "val_dice": None, "device": self.device_name}
                last_epoch = self.epoch >= cfg.epochs or stopped != "completed"
                if self.val_cases and (self.epoch % cfg.val_every == 0 or last_epoch):
                    t0 = time.perf_counter()
                    dice, per_class = self.validate()
                    val_seconds = time.perf_counter() - t0
                    row["val_dice"] = dice
                    row.update({f"dice_{n}": d for n, d in zip(self.class_names, per_class)})
                    self._track_best(dice, per_class)
                row.update(mined)  # a mining pass before this epoch: how many false positives it found
                self.history.append(row)
                self._checkpoint(self.elapsed_before + records.seconds(start))
                if self.dist.is_main:
                    records.write_metrics(self.run_dir, self.history)
                self.emit({"kind": "epoch", **row, "best": self.best})
                if stopped != "completed":
                    break
                if cfg.patience is not None and self.stale >= cfg.patience:
                    stopped = "early-stopping"
                    break
        except KeyboardInterrupt:
            stopped = "interrupted"
        return self._finish(stopped, start)

    def _track_best(self, dice: float | None, per_class: list[float | None]) -> None:
        if dice is not None and (self.best is None or dice > self.best):
            self.best, self.best_epoch, self.best_per_class, self.stale = dice, self.epoch, per_class, 0
            if not self.dist.is_main:
                return
            self.best_state = copy.deepcopy({k: v.detach().cpu() for k, v in self.net.state_dict().items()})
            with atomic_path(self.ckpt_dir / "best.pt") as tmp:
                torch.save(self.best_state, tmp)
        else:
            self.stale += 1

    def _finish(self, stopped: str, start: float) -> records.TrainResult:
        if not self.dist.is_main:  # rank 0 writes the bundle
            return records.TrainResult(self.run_dir, self.run_dir / "model", self.best, self.epoch, stopped,
                                       list(self.history))
        weights = self.best_state
        if weights is None:
            last = self.ckpt_dir / "last.pt"
            if not last.exists():
                raise RadsegError(f"{self.run_dir}: stopped ({stopped}) before the first epoch ended; no model written")
            weights = load_checkpoint(last)["model"]
        elapsed = self.elapsed_before + records.seconds(start)
        manifest = {
            "created_by": "radseg train", "environment": records.environment(), "config": self.cfg.to_dict(),
            "data": records.dataset_summary(self.dataset, self.train_cases, self.val_cases),
            "metrics": {"best_val_dice": self.best, "best_epoch": self.best_epoch,
                        "best_val_dice_per_class": dict(zip(self.class_names, self.best_per_class or [])),
                        "epochs_done": self.epoch, "iterations": self.iteration, "train_seconds": round(elapsed, 1),
                        "stopped": stopped},
            # how it was trained: N processes train the one-process model up to float rounding (radseg.train.distributed)
            "processes": self.dist.describe(self.net, self.cfg.batch_size, self.threads),
            "hardware": run_hardware(self.history, self.cfg.init),
        }
        bundle = ModelBundle(
            architecture=self.cfg.architecture, spatial_dims=self.pre.spatial_dims, in_channels=1,
            arch_kwargs=self.arch_kwargs, head=self.cfg.head, class_values=self.class_values,
            class_names=self.class_names, preprocessing=self.pre, postprocessing=dict(self.cfg.postprocessing),
            mirror_pairs=self.pairs, manifest=manifest, state_dict=weights)
        model_path = bundle.save(self.run_dir / "model")
        if self.cfg.save_zip:
            bundle.save(self.run_dir / "model.zip")
        records.write_metrics(self.run_dir, self.history)
        result = records.TrainResult(self.run_dir, model_path, self.best, self.epoch, stopped, list(self.history))
        self.emit({"kind": "end", "stopped": stopped, "best": self.best, "model": str(model_path),
                   "seconds": round(elapsed, 1)})
        return result

