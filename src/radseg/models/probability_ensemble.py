"""The network of an ensemble bundle: members' class probabilities averaged, returned as logits.

See :mod:`radseg.models.ensemble` for why and how ensembles are built; this module holds only
the ``nn.Module`` a bundle with ``members > 1`` builds (:meth:`ModelBundle.build_network`).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

__all__ = ["ProbabilityEnsemble", "member_prefix"]


def member_prefix(index: int) -> str:
    """Key prefix of member ``index``'s tensors in an ensemble's state_dict."""
    return f"members.{index}."


class ProbabilityEnsemble(nn.Module):
    """``forward(x)``: the logit of the members' mean class probability, exactly (log-sum-exp, no overflow):
    ``log(mean softmax)`` for a multi-class head (its softmax is the mean), ``logit(mean sigmoid)`` for a
    multi-label one; so sliding window, flip TTA and the ONNX export treat it as one network."""

    def __init__(self, members: Sequence[nn.Module], head: str) -> None:
        super().__init__()
        if len(members) < 2:
            raise ValueError("an ensemble needs two or more networks")
        self.members = nn.ModuleList(members)
        self.head = head
        self.log_count = math.log(len(members))

    def forward(self, x):
        logits = torch.stack([member(x) for member in self.members])  # [K, B, C, ...]
        if self.head == "multilabel":
            positive = torch.logsumexp(nn.functional.logsigmoid(logits), dim=0)
            negative = torch.logsumexp(nn.functional.logsigmoid(-logits), dim=0)
            return positive - negative  # log(mean p) - log(mean (1 - p)): the 1/K cancels
        return torch.logsumexp(torch.log_softmax(logits, dim=2), dim=0) - self.log_count
