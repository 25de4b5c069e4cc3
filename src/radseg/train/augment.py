"""Batched data augmentation in torch: left-right mirror with label swap, affine, intensity.

Runs on the whole batch at once (on the training device), so augmentation costs a few
percent of a training step rather than a Python loop per sample. Every random draw comes
from the ``torch.Generator`` passed in (seeded and checkpointed by the training loop).

* **mirror** along the left-right axis, swapping right/left labels (see
  :mod:`radseg.models.mirror`); other axes are never mirrored (a pelvis upside down is not
  a pelvis).
* **affine**: rotation (in-plane for 2D, about the slice axis for 3D) and isotropic scale,
  image resampled linearly, labels by nearest neighbour. Rotations are built in pixel
  units, so non-square patches are not sheared.
* **intensity**: contrast and brightness on the normalised image, additive Gaussian noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["Augmenter"]


@dataclass
class Augmenter:
    spatial_dims: int
    lr_axis: int
    label_lut: torch.Tensor | None  # multi-class: index -> index after a mirror
    channel_perm: list[int] | None  # multi-label: channel order after a mirror
    flip_lr: bool = True
    rotate_degrees: float = 12.0
    scale_range: tuple[float, float] = (0.85, 1.15)
    p_affine: float = 0.6
    p_intensity: float = 0.8
    p_noise: float = 0.2

    def __call__(self, image: torch.Tensor, target: torch.Tensor, gen: torch.Generator):
        """``image [B, 1, *S]`` float, ``target [B, 1, *S]`` long or ``[B, C, *S]`` float."""
        batch = image.shape[0]
        rand = lambda *shape: torch.rand(*shape, generator=gen).to(image.device)  # noqa: E731
        if self.flip_lr:
            flip = rand(batch) < 0.5
            if flip.any():
                axis = 2 + self.lr_axis
                image = torch.where(_bcast(flip, image), image.flip(axis), image)
                mirrored = target.flip(axis)
                if self.label_lut is not None:
                    mirrored = self.label_lut.to(target.device)[mirrored]
                elif self.channel_perm is not None:
                    mirrored = mirrored[:, self.channel_perm]
                target = torch.where(_bcast(flip, target), mirrored, target)
        do_affine = rand(batch) < self.p_affine
        angles = (rand(batch) * 2 - 1) * math.radians(self.rotate_degrees)
        low, high = self.scale_range
        scales = low + rand(batch) * (high - low)
        if do_affine.any():
            theta = self._theta(image.shape[2:], angles, scales, do_affine).to(image)
            grid = F.affine_grid(theta, list(image.shape), align_corners=False)
            image = F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=False)
            target = F.grid_sample(target.float(), grid, mode="nearest", padding_mode="zeros",
                                   align_corners=False).to(target.dtype)
        do_int = rand(batch) < self.p_intensity
        contrast = torch.where(do_int, 0.75 + 0.5 * rand(batch), torch.ones(batch, device=image.device))
        bright = torch.where(do_int, (rand(batch) * 2 - 1) * 0.2, torch.zeros(batch, device=image.device))
        image = image * _bcast(contrast, image) + _bcast(bright, image)
        noisy = rand(batch) < self.p_noise
        if noisy.any():
            sigma = _bcast(noisy.float() * rand(batch) * 0.1, image)
            image = image + sigma * torch.randn(image.shape, generator=gen).to(image.device)
        return image, target

    def _theta(self, size, angles, scales, active) -> torch.Tensor:
        """Output->input affine in normalised coordinates (x = last axis), built in pixel units."""
        n = self.spatial_dims
        batch = angles.shape[0]
        theta = torch.zeros(batch, n, n + 1)
        # normalised coordinate u maps to pixels as u * size/2: conjugate the rotation by that
        half = torch.tensor([float(s) for s in reversed(size)]) / 2  # (x, y[, z]) extents
        for b in range(batch):
            if not active[b]:
                theta[b, :, :n] = torch.eye(n)
                continue
            c, s = math.cos(float(angles[b])), math.sin(float(angles[b]))
            rot = torch.eye(n)
            rot[0, 0], rot[0, 1], rot[1, 0], rot[1, 1] = c, -s, s, c  # in the (x, y) plane: in-plane / axial
            pixel = rot / float(scales[b])
            theta[b, :, :n] = torch.diag(1 / half) @ pixel @ torch.diag(half)
        return theta


def _bcast(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return values.view(-1, *([1] * (like.dim() - 1)))
