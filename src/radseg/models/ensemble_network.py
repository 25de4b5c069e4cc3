"""The network of an ensemble bundle: its members' logits side by side.

See :mod:`radseg.models.ensemble` for why and how ensembles are built. The network built for a
bundle with ``members > 1`` (:meth:`ModelBundle.build_network`) returns the K members' logits
stacked on the channel axis, ``[B, K*C, ...]``. Sliding-window blending works channel by channel,
so each member's logits are blended exactly as that network's alone would be; the class
probabilities are then taken per member and averaged (:func:`radseg.models.grid.activate` with
``members=K``). The result is the mean of what each member gives on its own, window blending and
flip TTA included, on the torch and ONNX backends alike (the exported graph is this network).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

__all__ = ["EnsembleNetwork", "member_prefix"]


def member_prefix(index: int) -> str:
    """Key prefix of member ``index``'s tensors in an ensemble's state_dict."""
    return f"members.{index}."


class EnsembleNetwork(nn.Module):
    """``forward(x) -> [B, K*C, ...]``: the members' logits, member after member on the channel axis."""

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        if len(members) < 2:
            raise ValueError("an ensemble needs two or more networks")
        self.members = nn.ModuleList(members)

    def forward(self, x):
        return torch.cat([member(x) for member in self.members], dim=1)
