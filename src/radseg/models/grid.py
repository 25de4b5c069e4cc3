"""Class probabilities on the network grid: whole image or sliding window, optional flip TTA.

Shared by the predictor (both backends) and by validation during training, so what training
reports is what ``radseg segment`` does. ``forward`` maps a float input ``[B, 1, *patch]`` to
logits ``[B, C, *patch]``: a torch module on torch tensors, or the ONNX Runtime session
wrapper on numpy arrays (then nothing here imports torch). Both run the same windows with
the same weights (:mod:`radseg.models.window`: Gaussian weighting as MONAI's
``sliding_window_inference`` with ``mode="gaussian"``; images smaller than the patch are
padded and cropped back).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from radseg.models.tta import mirror_tta
from radseg.models.window import sliding_window

__all__ = ["grid_probabilities", "activate"]


def activate(logits: Any, head: str, members: int = 1) -> Any:
    """Sigmoid (multi-label head) or softmax over the channel axis (multi-class), numpy or torch.

    ``members`` > 1: ``logits`` are an ensemble's ``[B, K*C, ...]`` (:mod:`radseg.models.ensemble_network`);
    each member's probabilities are taken apart and their mean ``[B, C, ...]`` is returned."""
    if members > 1:
        batch, stacked, rest = logits.shape[0], logits.shape[1], tuple(logits.shape[2:])
        if stacked % members:
            raise ValueError(f"{stacked} channels do not split into {members} ensemble members")
        one = activate(logits.reshape(batch * members, stacked // members, *rest), head)
        return one.reshape(batch, members, stacked // members, *rest).mean(1)
    if not isinstance(logits, np.ndarray):
        import torch

        return torch.sigmoid(logits) if head == "multilabel" else torch.softmax(logits, dim=1)
    logits = logits.astype(np.float32, copy=False)
    if head == "multilabel":
        return (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def grid_probabilities(forward: Callable[[Any], Any], x: Any, *, head: str, patch_size: Sequence[int], whole: bool,
                       overlap: float = 0.5, sw_batch_size: int = 2, tta: bool = False, lr_axis: int | None = None,
                       channel_perm: Sequence[int] | None = None, members: int = 1) -> Any:
    """Probabilities ``[B, C, *grid]`` for a network-grid input ``x`` ``[B, 1, *grid]`` (numpy or torch).

    ``members``: an ensemble's network count (its logits come stacked; their probabilities are averaged
    after the windows are blended, so each member is blended as it would be alone)."""

    def score(inputs: Any) -> Any:
        if whole and tuple(inputs.shape[2:]) == tuple(patch_size):
            return activate(forward(inputs), head, members)
        return activate(sliding_window(forward, inputs, patch_size, overlap=overlap, sw_batch_size=sw_batch_size), head,
                        members)

    def run() -> Any:
        if tta:
            if lr_axis is None or channel_perm is None:
                raise ValueError("flip TTA needs the left-right axis and the channel permutation")
            return mirror_tta(score, x, lr_axis=lr_axis, channel_perm=channel_perm)
        return score(x)

    if isinstance(x, np.ndarray):
        return run()
    import torch

    with torch.inference_mode():
        return run()
