"""Dice + cross-entropy for both heads (MONAI losses).

Multi-class: MONAI ``DiceCELoss`` on softmax, Dice over the foreground classes only (the
background would dominate it), cross-entropy over all, Dice pooled over the batch so a
patch without some class does not give that class a meaningless 0 or 1 (nnU-Net's
"batch Dice"). Multi-label: MONAI's ``DiceCELoss`` would treat the channels as one
categorical distribution, so it is sigmoid Dice plus binary cross-entropy per channel.
"""

from __future__ import annotations

import torch

__all__ = ["make_loss"]


class _MultiLabelDiceBCE(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        from monai.losses import DiceLoss

        self.dice = DiceLoss(sigmoid=True, batch=True)
        self.bce = torch.nn.BCEWithLogitsLoss()

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        target = target.float()
        return self.dice(logits, target) + self.bce(logits, target)


def make_loss(head: str) -> torch.nn.Module:
    if head == "multilabel":
        return _MultiLabelDiceBCE()
    from monai.losses import DiceCELoss

    return DiceCELoss(to_onehot_y=True, softmax=True, include_background=False, batch=True)
