"""``--init``: the weights a training run starts from, a trained bundle or pretrained weights.

* A **bundle** (fine-tuning, e.g. at a finer grid, or with hard negatives): the same network, options
  and classes; every weight is taken.
* **Pretrained weights** (``pretrained.pt`` of ``radseg pretrain``, or its run folder): the same network
  and options; every tensor whose name and shape fit is taken. The output layers differ (one restored
  image channel against the run's classes) and start from random weights, as in Models Genesis'
  fine-tuning. Fewer than half the tensors fitting is refused: that is another network.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch

from radseg.errors import RadsegError

__all__ = ["Initialised", "initialise"]


@dataclass
class Initialised:
    kind: str  # "bundle" or "pretrained"
    taken: int
    total: int
    fresh: list[str] = field(default_factory=list)  # tensors left at random weights


def initialise(net: torch.nn.Module, source: str, *, architecture: str, class_names: list[str], arch_kwargs: dict,
               spatial_dims: int, preprocessing: dict | None = None, held_out: Sequence = ()) -> Initialised:
    """Load ``source``'s weights into ``net``; refuses a source made for another network or input, and
    pretrained weights that saw any of ``held_out`` (the cases this run selects its checkpoint on: by id,
    and by pixels among the unlabelled images of ``pretrain --images``)."""
    from radseg.models.pretrained import pretrained_path, read_pretrained, same_options

    found = pretrained_path(source)
    if found is None:
        _unfinished(source)
        return _from_bundle(net, source, architecture, class_names)
    state = read_pretrained(found)
    if state["architecture"] != architecture or int(state["spatial_dims"]) != spatial_dims \
            or not same_options(state["arch_kwargs"], arch_kwargs):
        raise RadsegError(f"--init {source}: pretrained for {state['architecture']} ({state['spatial_dims']}D, "
                          f"{state['arch_kwargs']}); this run builds {architecture} ({spatial_dims}D, {arch_kwargs}): "
                          "give the same --arch and --model-args as the pretraining")
    if preprocessing is not None and not same_options(state["preprocessing"], preprocessing):
        differ = sorted(k for k in {*state["preprocessing"], *preprocessing}
                        if not same_options({k: state["preprocessing"].get(k)}, {k: preprocessing.get(k)}))
        raise RadsegError(f"--init {source}: pretrained on other input ({', '.join(differ)} differ); give the same "
                          "--preset, --size, --spacing, --patch-size and --window as the pretraining")
    data = state["manifest"].get("data") or {}
    seen = set(data.get("train_cases") or []) & {case.case_id for case in held_out}
    remedy = "give the same --holdout, --holdout-order and --seed as the pretraining"
    archive = set((data.get("unlabelled") or {}).get("pixel_digests") or [])
    if archive and not seen:
        from radseg.datasets.duplicates import pixel_digest

        seen = {case.case_id for case in held_out if pixel_digest(case.image.array) in archive}
        remedy = ("copies of them were among its --images; pretrain with this --data beside --images, which "
                  "leaves such copies out")
    if seen:
        raise RadsegError(f"--init {source}: pretrained on {len(seen)} of the cases this run validates on "
                          f"(e.g. {sorted(seen)[0]!r}), which would flatter the checkpoint chosen on them; {remedy}")
    own = net.state_dict()
    # the output layers were the restored image's (one channel), not this run's classes, even when shapes fit
    output = set(state.get("output_keys") or [])
    fits = {k: v for k, v in state["state_dict"].items()
            if k in own and k not in output and tuple(own[k].shape) == tuple(v.shape)}
    if len(fits) * 2 < len(own):
        raise RadsegError(f"--init {source}: only {len(fits)} of this network's {len(own)} weight tensors fit "
                          "the pretrained ones")
    net.load_state_dict(fits, strict=False)
    return Initialised("pretrained", len(fits), len(own), [k for k in own if k not in fits])


def _unfinished(source: str) -> None:
    """A pretraining run folder without its weights yet: say so rather than 'not a model bundle'."""
    from pathlib import Path

    from radseg.models.pretrained import FILE

    folder = Path(source)
    if (folder / "checkpoints" / "last.pt").is_file() and not (folder / "model.json").exists() \
            and _checkpoint_task(folder) == "pretrain":
        raise RadsegError(f"--init {source}: the pretraining has not finished (no {FILE} yet); let it finish, "
                          f"or stop it (Ctrl-C) to write {FILE} from its last epoch")
    if Path(source).suffix == ".pt" and not Path(source).exists():
        raise RadsegError(f"--init {source}: no such file")


def _checkpoint_task(folder) -> str | None:
    """The task a run folder's checkpoint says it ran (``pretrain``), else None."""
    try:
        return torch.load(folder / "checkpoints" / "last.pt", map_location="cpu", weights_only=True).get("task")
    except Exception:  # noqa: BLE001 - a damaged or foreign checkpoint is simply not a pretraining run's
        return None


def _from_bundle(net: torch.nn.Module, source: str, architecture: str, class_names: list[str]) -> Initialised:
    from radseg.models.bundle import load_bundle

    bundle = load_bundle(source)
    if bundle.members > 1:
        raise RadsegError(f"--init {source}: an ensemble of {bundle.members} networks cannot start one network; "
                          "initialise from one of its members")
    if bundle.class_names != class_names or bundle.architecture != architecture:
        raise RadsegError(f"--init {source}: {bundle.architecture} with classes {bundle.class_names} does not match "
                          f"this run ({architecture}, classes {class_names})")
    try:
        net.load_state_dict(bundle.state_dict)
    except RuntimeError as exc:
        raise RadsegError(f"--init {source}: its weights do not fit this network ({str(exc).splitlines()[0]})") from None
    total = len(net.state_dict())
    return Initialised("bundle", total, total)
