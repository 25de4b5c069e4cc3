"""Architectures radseg trains (MONAI networks), and task presets, as name -> spec registries.

Importing this module does not import torch or MONAI: the registries are plain data, so
``radseg models list`` and ``--help`` stay instant; :func:`build` imports MONAI.

Every architecture takes ``spatial_dims`` (2 or 3), one input channel per image channel
and ``out_channels`` = classes + 1 (background) for a multi-class head (softmax, argmax)
or = classes for a multi-label head (sigmoid, > 0.5; classes may overlap, as in CXAS).
``divisor`` is the multiple every input side must be (the network downsamples by it);
patch sizes are checked against it before training starts, not after an hour.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from radseg.registry import Registry

__all__ = ["ArchSpec", "ARCHITECTURES", "build", "check_patch_size", "count_parameters"]


@dataclass(frozen=True)
class ArchSpec:
    """One network family: the MONAI class, its defaults per dimensionality, constraints."""

    name: str
    monai_class: str
    description: str
    divisor: int
    defaults_2d: dict[str, Any] = field(default_factory=dict)
    defaults_3d: dict[str, Any] = field(default_factory=dict)
    #: True when the network needs the input size at construction (transformers).
    needs_img_size: bool = False

    def defaults(self, spatial_dims: int) -> dict[str, Any]:
        return dict(self.defaults_2d if spatial_dims == 2 else self.defaults_3d)


ARCHITECTURES: Registry[ArchSpec] = Registry("model architecture")
for _spec in (
    ArchSpec("unet", "UNet", "residual U-Net (MONAI UNet), instance norm", 16,
             {"channels": (16, 32, 64, 128, 256), "strides": (2, 2, 2, 2), "num_res_units": 2},
             {"channels": (16, 32, 64, 128, 256), "strides": (2, 2, 2, 2), "num_res_units": 2}),
    ArchSpec("basicunet", "BasicUNet", "plain two-conv U-Net (MONAI BasicUNet)", 16,
             {"features": (16, 16, 32, 64, 128, 16)}, {"features": (16, 16, 32, 64, 128, 16)}),
    ArchSpec("attention-unet", "AttentionUnet", "U-Net with attention gates on the skips", 16,
             {"channels": (16, 32, 64, 128, 256), "strides": (2, 2, 2, 2)},
             {"channels": (16, 32, 64, 128, 256), "strides": (2, 2, 2, 2)}),
    ArchSpec("segresnet", "SegResNet", "residual encoder, light decoder (MONAI SegResNet)", 8,
             {"init_filters": 16}, {"init_filters": 16}),
    ArchSpec("vnet", "VNet", "V-Net: residual stages, strided-conv downsampling", 16,
             {"dropout_prob_down": 0.0, "dropout_prob_up": (0.0, 0.0)},
             {"dropout_prob_down": 0.0, "dropout_prob_up": (0.0, 0.0)}),
    ArchSpec("unetr", "UNETR", "ViT encoder (16-pixel patches) with a convolutional decoder", 16,
             {"feature_size": 16, "hidden_size": 384, "mlp_dim": 1536, "num_heads": 6},
             {"feature_size": 16, "hidden_size": 384, "mlp_dim": 1536, "num_heads": 6}, needs_img_size=True),
    ArchSpec("swin-unetr", "SwinUNETR", "shifted-window transformer encoder (MONAI SwinUNETR)", 32,
             {"feature_size": 24}, {"feature_size": 24}),
):
    ARCHITECTURES.register(_spec.name, _spec)


def check_patch_size(name: str, patch_size: Sequence[int]) -> None:
    """Raise ValueError when a patch side is not a multiple of the architecture's divisor."""
    spec = ARCHITECTURES[name]
    bad = [int(s) for s in patch_size if int(s) % spec.divisor]
    if bad:
        raise ValueError(f"{name} needs every patch side to be a multiple of {spec.divisor}; "
                         f"patch {tuple(int(s) for s in patch_size)} has {bad}")


def _jsonable(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def resolve_kwargs(name: str, *, spatial_dims: int, patch_size: Sequence[int] | None = None,
                   overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The constructor options a bundle records: defaults, then the user's ``overrides``."""
    spec = ARCHITECTURES[name]
    kwargs = spec.defaults(spatial_dims)
    kwargs.update(overrides or {})
    if spec.needs_img_size:
        if patch_size is None:
            raise ValueError(f"{name} needs the patch size (img_size) to be built")
        kwargs.setdefault("img_size", [int(s) for s in patch_size])
    return {k: _jsonable(v) for k, v in kwargs.items()}


def build(name: str, *, spatial_dims: int, in_channels: int, out_channels: int,
          patch_size: Sequence[int] | None = None, overrides: dict[str, Any] | None = None):
    """A freshly initialised ``torch.nn.Module`` of architecture ``name``."""
    from monai.networks import nets

    if spatial_dims not in (2, 3):
        raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
    spec = ARCHITECTURES[name]
    kwargs = resolve_kwargs(name, spatial_dims=spatial_dims, patch_size=patch_size, overrides=overrides)
    for key in ("channels", "strides", "features", "blocks_down", "blocks_up", "img_size", "dropout_prob_up"):
        if key in kwargs and isinstance(kwargs[key], list):
            kwargs[key] = tuple(kwargs[key])
    if spec.name == "vnet" and 16 % in_channels:
        raise ValueError("vnet needs 16 to be a multiple of the input channels")
    if spec.name == "vnet":
        kwargs.setdefault("dropout_dim", spatial_dims)
    cls = getattr(nets, spec.monai_class)
    return cls(spatial_dims=spatial_dims, in_channels=in_channels, out_channels=out_channels, **kwargs)


def count_parameters(module) -> int:
    return int(sum(p.numel() for p in module.parameters()))
