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

import torch

from radseg.errors import RadsegError

__all__ = ["Initialised", "initialise"]


@dataclass
class Initialised:
    kind: str  # "bundle" or "pretrained"
    taken: int
    total: int
    fresh: list[str] = field(default_factory=list)  # tensors left at random weights


def initialise(net: torch.nn.Module, source: str, *, architecture: str, class_names: list[str],
               arch_kwargs: dict, spatial_dims: int) -> Initialised:
    """Load ``source``'s weights into ``net``; refuses a source made for another network."""
    from radseg.models.pretrained import pretrained_path, read_pretrained, same_options

    found = pretrained_path(source)
    if found is None:
        return _from_bundle(net, source, architecture, class_names)
    state = read_pretrained(found)
    if state["architecture"] != architecture or int(state["spatial_dims"]) != spatial_dims \
            or not same_options(state["arch_kwargs"], arch_kwargs):
        raise RadsegError(f"--init {source}: pretrained for {state['architecture']} ({state['spatial_dims']}D, "
                          f"{state['arch_kwargs']}); this run builds {architecture} ({spatial_dims}D, {arch_kwargs}): "
                          "give the same --arch and --model-args as the pretraining")
    own = net.state_dict()
    fits = {k: v for k, v in state["state_dict"].items() if k in own and tuple(own[k].shape) == tuple(v.shape)}
    if len(fits) * 2 < len(own):
        raise RadsegError(f"--init {source}: only {len(fits)} of this network's {len(own)} weight tensors fit "
                          "the pretrained ones")
    net.load_state_dict(fits, strict=False)
    return Initialised("pretrained", len(fits), len(own), [k for k in own if k not in fits])


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
