"""Data-parallel training over N processes: ``radseg train --nproc N`` (torch.distributed).

The processes are started and watched by :mod:`radseg.train.launcher`.

Semantics, chosen so that 1 and N processes train the same model up to float rounding:

* the global batch stays ``batch_size`` (it must be divisible by N); every rank draws the same
  global batch and augmentation from the same seeded RNGs and computes on its slice;
* gradients are averaged by ``DistributedDataParallel``; the batch Dice of the loss is computed
  from intersection/sum statistics all-reduced over the ranks, so the loss and its gradient
  are those of the global batch (a per-rank batch Dice would not be);
* BatchNorm (attention-unet, vnet) becomes SyncBatchNorm with nccl; on CPU torch has no
  SyncBatchNorm, so such networks normalise over each rank's slice and keep rank 0's running
  statistics: not the one-process model (recorded in the manifest);
* validation cases are split round-robin over the ranks and their per-case Dice gathered, so
  the metric is the one-process metric of the same weights; early stopping follows from it
  and the time limit is rank 0's decision, broadcast, so every rank stops at the same step;
* only rank 0 writes (config, checkpoints, metrics, bundle) and emits events; every rank
  reads ``last.pt`` on ``--resume``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from radseg.errors import RadsegError
from radseg.system import usable_cores

__all__ = ["Group", "GlobalBatchLoss", "Local", "LOCAL", "check", "check_nproc"]


# --- checks, in the calling process, before anything starts --------------------------------
def check_nproc(nproc) -> int:
    if isinstance(nproc, bool) or not isinstance(nproc, int) or nproc < 1:
        raise RadsegError(f"--nproc must be a whole number of processes, at least 1; got {nproc!r}")
    return nproc


def check(config) -> tuple[str | None, str]:
    """``(backend, device)`` for a resolved config; a clear error for a plan that cannot run."""
    from radseg.models.cpu import resolve_device

    nproc = check_nproc(config.nproc)
    if config.backend not in (None, "auto", "gloo", "nccl"):
        raise RadsegError(f"--backend must be auto, gloo or nccl; got {config.backend!r}")
    device = resolve_device(config.device)
    if nproc == 1:
        return None, device
    if config.batch_size % nproc:
        raise RadsegError(f"batch size {config.batch_size} is not divisible by --nproc {nproc}: every process takes "
                          f"an equal share of each batch; choose a batch size that is a multiple of {nproc}")
    import torch
    import torch.distributed as dist

    if not dist.is_available():
        raise RadsegError("--nproc: this torch build has no torch.distributed")
    backend = config.backend if config.backend not in (None, "auto") else ("nccl" if device.startswith("cuda") else "gloo")
    if backend == "nccl":
        if not device.startswith("cuda"):
            raise RadsegError("--backend nccl needs CUDA devices (--device cuda); on CPU use gloo")
        if not dist.is_nccl_available():
            raise RadsegError("--backend nccl: this torch build has no NCCL; use --backend gloo")
    if device.startswith("cuda"):
        first = int(device.split(":")[1]) if ":" in device else 0
        if first + nproc > torch.cuda.device_count():
            raise RadsegError(f"--nproc {nproc} on {device} needs {first + nproc} CUDA devices (one per process); "
                              f"found {torch.cuda.device_count()}")
    return backend, device


# --- what a Session asks of its process group -----------------------------------------------
class Local:
    """One process: no collectives; what :class:`radseg.train.session.Session` always did."""

    rank, world, backend, is_main = 0, 1, None, True

    def threads(self, requested: int | None) -> int:
        return requested or usable_cores()

    def device(self, device: str) -> str:
        return device

    def wrap(self, net):
        """``(net, the module trained)``: both ``net`` in one process."""
        return net, net

    def make_loss(self, head: str):
        from radseg.train.losses import make_loss

        return make_loss(head)

    def shard(self, batch):
        return batch

    def loss_value(self, loss_fn, loss) -> float:
        return float(loss.detach())

    def should_stop(self) -> bool:
        return False

    def agree(self, flag: bool) -> bool:
        return bool(flag)

    def mine(self, n: int) -> list[int]:
        return list(range(n))

    def gather_rows(self, rows: dict[int, list[float | None]], n: int, width: int) -> list[list[float | None]]:
        return [rows[i] for i in range(n)]

    def describe(self, net, batch_size: int, threads: int) -> dict[str, Any]:
        return {"nproc": 1, "backend": None, "batch_per_process": batch_size, "threads_per_process": threads}


LOCAL = Local()


class Group(Local):
    """Rank ``rank`` of ``world`` processes in an initialised default process group."""

    def __init__(self, rank: int, world: int, backend: str, stop) -> None:
        self.rank, self.world, self.backend, self.is_main, self._stop = rank, world, backend, rank == 0, stop
        self._device = "cpu"
        self.batch_norm: str | None = None

    def threads(self, requested: int | None) -> int:
        return max(1, (requested or usable_cores()) // self.world)

    def device(self, device: str) -> str:
        if device.startswith("cuda"):
            import torch

            first = int(device.split(":")[1]) if ":" in device else 0
            device = f"cuda:{first + self.rank}"
            torch.cuda.set_device(device)
        self._device = device if self.backend == "nccl" else "cpu"  # where collective tensors live
        return device

    def wrap(self, net):
        import torch
        from torch.nn.parallel import DistributedDataParallel

        if any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in net.modules()):
            if self.backend == "nccl":
                net = torch.nn.SyncBatchNorm.convert_sync_batchnorm(net)
                self.batch_norm = "synchronised over the processes (SyncBatchNorm)"
            else:  # torch's SyncBatchNorm needs CUDA tensors (and nccl); DDP keeps rank 0's running statistics
                self.batch_norm = "per process: statistics over batch_size / nproc patches (SyncBatchNorm needs nccl)"
        param = next(net.parameters())
        ids = [param.device.index] if param.is_cuda else None
        # static graph: the same parameters take part every step, and some networks (unetr) have unused
        # ones, which DDP then leaves untouched (grad None, as in one process) instead of failing
        return net, DistributedDataParallel(net, device_ids=ids, static_graph=True)

    def make_loss(self, head: str):
        return GlobalBatchLoss(head, self)

    def shard(self, batch):
        size = batch.shape[0] // self.world
        return batch[self.rank * size:(self.rank + 1) * size]

    def _tensor(self, values, dtype=None):
        import torch

        return torch.tensor(values, dtype=dtype or torch.float64, device=self._device)

    def all_sum(self, tensor):
        import torch.distributed as dist

        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def loss_value(self, loss_fn, loss) -> float:
        return float(self.all_sum(self._tensor([loss_fn.value]))[0]) / self.world

    def should_stop(self) -> bool:
        import torch.distributed as dist

        flag = self._tensor([1.0 if self._stop.is_set() else 0.0])
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag[0] > 0)

    def agree(self, flag: bool) -> bool:
        import torch.distributed as dist

        value = self._tensor([1.0 if flag else 0.0])
        dist.broadcast(value, src=0)  # rank 0 decides (its clock), every rank follows
        return bool(value[0] > 0)

    def mine(self, n: int) -> list[int]:
        return list(range(self.rank, n, self.world))

    def gather_rows(self, rows: dict[int, list[float | None]], n: int, width: int) -> list[list[float | None]]:
        # Each row is non-zero on one rank only, so the sum is that rank's values exactly (x + 0 = x);
        # None travels as NaN (a Dice value is never NaN: absent classes are None).
        table = np.zeros((n, width), np.float64)
        for index, row in rows.items():
            table[index] = [np.nan if v is None else v for v in row]
        summed = self.all_sum(self._tensor(table)).cpu().numpy()
        return [[None if np.isnan(v) else float(v) for v in row] for row in summed]

    def describe(self, net, batch_size: int, threads: int) -> dict[str, Any]:
        out = {"nproc": self.world, "backend": self.backend, "batch_per_process": batch_size // self.world,
               "threads_per_process": threads}
        if self.batch_norm:
            out["batch_norm"] = self.batch_norm
        return out


class GlobalBatchLoss:
    """Dice + CE of the global batch, computed on one rank's slice (see the module docstring).

    The batch Dice needs the intersection and the sums over the whole batch: each rank adds the
    other ranks' (all-reduced, detached) statistics to its own, so its gradient is its share of
    the global Dice gradient; the Dice term is scaled by N because DDP averages gradients. The
    cross-entropy is a mean over equal slices, so DDP's average is already the global one. The
    same formulas as MONAI's DiceCELoss / DiceLoss(batch=True), smooth 1e-5, so one process
    (MONAI) and N (this) agree to float rounding. ``value`` is this rank's share of the reported loss.
    """

    smooth = 1e-5

    def __init__(self, head: str, group: Group) -> None:
        self.multilabel, self.group, self.value = head == "multilabel", group, 0.0

    def __call__(self, logits, target):
        import torch
        import torch.nn.functional as F

        axes = [0] + list(range(2, logits.dim()))
        if self.multilabel:
            target = target.float()
            probs, onehot = torch.sigmoid(logits), target
            ce = F.binary_cross_entropy_with_logits(logits, target)
        else:
            probs = torch.softmax(logits, 1)[:, 1:]
            onehot = F.one_hot(target[:, 0].long(), logits.shape[1]).movedim(-1, 1).to(probs.dtype)[:, 1:]
            ce = F.cross_entropy(logits, target[:, 0].long())
        local = torch.stack([torch.sum(probs * onehot, dim=axes), torch.sum(probs, dim=axes), torch.sum(onehot, dim=axes)])
        everyone = self.group.all_sum(local.detach().to(self.group._device, torch.float64)).to(local)
        tp, pred, truth = everyone + (local - local.detach())  # the global value, the gradient of this slice
        fp, fn = (pred - tp) * 0.5, (truth - tp) * 0.5  # MONAI's order of operations
        dice = torch.mean(1 - (2 * tp + self.smooth) / (2 * (tp + fp + fn) + self.smooth))
        self.value = float(dice.detach()) + float(ce.detach())
        return self.group.world * dice + ce
