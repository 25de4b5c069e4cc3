"""Class probabilities on the network grid: whole image or sliding window, optional flip TTA.

Shared by the predictor and by validation during training, so what training reports is
what ``radseg segment`` does. ``forward`` is anything mapping a float tensor
``[B, 1, *patch]`` to logits ``[B, C, *patch]``: a torch module or the ONNX Runtime session
wrapper, so both backends run the same windows with the same weights.

Sliding window: MONAI's ``sliding_window_inference`` with Gaussian weighting (centre
voxels of a window count more than its borders, which see less context) and the given
overlap; images smaller than the patch are padded by MONAI and cropped back.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from radseg.models.tta import mirror_tta

__all__ = ["grid_probabilities"]


def grid_probabilities(forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, *, head: str,
                       patch_size: Sequence[int], whole: bool, overlap: float = 0.5, sw_batch_size: int = 2,
                       tta: bool = False, lr_axis: int | None = None, channel_perm: Sequence[int] | None = None,
                       ) -> torch.Tensor:
    """Probabilities ``[B, C, *grid]`` for a network-grid input ``x`` ``[B, 1, *grid]``."""

    def activate(logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logits) if head == "multilabel" else torch.softmax(logits, dim=1)

    def score(inputs: torch.Tensor) -> torch.Tensor:
        if whole and tuple(inputs.shape[2:]) == tuple(patch_size):
            return activate(forward(inputs))
        from monai.inferers import sliding_window_inference

        logits = sliding_window_inference(inputs, roi_size=tuple(patch_size), sw_batch_size=sw_batch_size,
                                          predictor=forward, overlap=overlap, mode="gaussian")
        return activate(torch.as_tensor(logits))

    with torch.inference_mode():
        if tta:
            if lr_axis is None or channel_perm is None:
                raise ValueError("flip TTA needs the left-right axis and the channel permutation")
            return mirror_tta(score, x, lr_axis=lr_axis, channel_perm=channel_perm)
        return score(x)
