"""Task presets: a sensible architecture, preprocessing and training schedule per kind of data.

``radseg train --preset hip-xray`` picks these; any single option can still be overridden.
Sizes are chosen for a CPU budget (minutes, not days): 256 px radiographs, 2 mm CT.
Windows follow the seed papers where they give one (HemSeg-200 clips brain CT to
[12, 79] HU and z-scores; the THA paper clips hip CT to [-125, 275] HU; bone is wider here,
so cortex stays distinct from trabecular bone).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from radseg.registry import Registry

__all__ = ["TaskPreset", "PRESETS", "default_preset"]


@dataclass(frozen=True)
class TaskPreset:
    name: str
    description: str
    spatial_dims: int
    architecture: str
    preprocessing: dict[str, Any]
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    #: Clean-ups for anatomy that is one piece per label (not for lesions or fractures).
    postprocessing: dict[str, Any] = field(default_factory=dict)


_XRAY = {"mode": "fit", "size": (256, 256), "intensity": "percentile", "percentiles": (0.5, 99.5)}
_SMALL_UNET_2D = {"channels": (16, 32, 64, 128, 256), "strides": (2, 2, 2, 2), "num_res_units": 1}
_LIGHT_UNET_2D = {"channels": (16, 32, 64, 128, 256), "strides": (2, 2, 2, 2), "num_res_units": 0}
_SMALL_UNET_3D = {"channels": (8, 16, 32, 64, 128), "strides": (2, 2, 2, 2), "num_res_units": 1}
_TRAIN_2D = {"batch_size": 8, "epochs": 30, "iters_per_epoch": 25, "val_every": 2, "lr": 3e-3}
_ONE_PIECE = {"largest_component": True, "fill_holes": True}
_TRAIN_3D = {"batch_size": 2, "epochs": 40, "iters_per_epoch": 25, "val_every": 4, "lr": 3e-3}

PRESETS: Registry[TaskPreset] = Registry("task preset")
for _preset in (
    TaskPreset("xray-2d", "any 2D radiograph: fit into 256x256, percentile normalisation", 2, "unet",
               _XRAY, _SMALL_UNET_2D, _TRAIN_2D),
    # In projection each ilium-ischium-pubis label (3, 4) is two pieces (the acetabulum label lies
    # between ilium and ischium) and an acetabulum may have a small second piece: only the femora
    # (5, 6) are cut to one piece (on the demo model: mean Dice 0.903 with every label cut, 0.957 so).
    # Tuned on 60 hip-xray phantoms for a 5-minute CPU budget (benchmarks/results/train_hip_xray.md):
    # the phantoms' bones are smooth, so 160 px loses nothing measurable (exact labels taken to
    # 160 px and back keep Dice 0.994; the predictor resamples class scores, not labels, to the
    # input grid); a U-Net with one convolution per level (no residual units) runs ~2x the
    # iterations of the residual one in the same time and a high learning rate (1e-2, cosine)
    # converges in a few hundred of them: test Dice 0.93-0.95 in 5 minutes on 2 shared cores,
    # where 256 px / residual units / 3e-3 reached 0.44-0.88.
    TaskPreset("hip-xray", "AP pelvis radiograph, HexAI hip labels 1-6: 160 px, light U-Net", 2, "unet",
               {**_XRAY, "size": (160, 160)}, _LIGHT_UNET_2D,
               {"batch_size": 8, "epochs": 40, "iters_per_epoch": 20, "val_every": 5, "lr": 1e-2},
               {"largest_component": [5, 6]}),
    TaskPreset("knee-xray", "bilateral knee radiograph, HexAI knee labels 1-8", 2, "unet", _XRAY, _SMALL_UNET_2D,
               _TRAIN_2D, _ONE_PIECE),
    # CXAS-like classes include unions of several pieces (lungs, ribs, spine): no one-piece clean-up;
    # no left-right flips (a mirrored PA chest is not a chest), as for cxr-anatomy.
    TaskPreset("chest-xray", "chest radiograph anatomy (CXAS-like classes)", 2, "unet",
               {**_XRAY, "size": (320, 320)}, _SMALL_UNET_2D, {**_TRAIN_2D, "flip_lr": False}),
    # Real PA chest radiographs (JSRT/SCR): heart, lungs, clavicles as overlapping classes (one
    # sigmoid channel each). Whole image fitted into 256 px (1.4 mm pixels at JSRT's 0.35 mm):
    # the resolution the published JSRT U-Nets use; no left-right flips (a mirrored chest puts
    # the heart on the wrong side, which no PA radiograph shows); one piece per structure.
    TaskPreset("cxr-anatomy", "PA chest radiograph anatomy (SCR/CXAS classes, multi-label): 256 px", 2, "unet",
               {**_XRAY, "size": (256, 256)}, _SMALL_UNET_2D,
               {"batch_size": 8, "epochs": 200, "iters_per_epoch": 25, "val_every": 5, "lr": 3e-3,
                "flip_lr": False},
               _ONE_PIECE),
    TaskPreset("fracture-xray", "musculoskeletal radiograph, fracture masks (FracAtlas)", 2, "unet",
               {**_XRAY, "size": (384, 384)}, _SMALL_UNET_2D, _TRAIN_2D),
    # FracAtlas (real radiographs, mostly 373x454, some 2304x2880, no pixel size): the image
    # fitted into 512 px (the paper's YOLOv8 baseline ran at 600); training on 192 px crops, half
    # of them centred on a fracture, because a fracture is ~0.4% of an image (whole-image
    # training at 512 px still predicted nothing after 650 iterations); no one-piece clean-up.
    TaskPreset("fracatlas", "FracAtlas fractures: image fitted to 512 px, 192 px training crops", 2, "unet",
               {**_XRAY, "size": (512, 512), "patch_size": (192, 192)}, _SMALL_UNET_2D,
               {"batch_size": 16, "epochs": 400, "iters_per_epoch": 25, "val_every": 8, "lr": 3e-3}),
    # Windowed 8-bit head-CT slices without pixel size (BHSD 512 px PNG, CT-ICH 650 px JPEG;
    # adapter brain-ct-slices): the whole slice fitted into 256 px (~1 mm pixels for a 25 cm
    # field) and trained whole (patch = fit size), grey levels scaled like the radiograph
    # presets (percentile clip, z-score): the window is already applied and not known in HU.
    # Left-right flips stay on (a bleed occurs on either side; no sided labels); no one-piece
    # clean-up (bleeds come in several pieces). Schedule for CPU: 400 batches of 8 at 256 px;
    # `radseg train` on the 72 real BHSD/CT-ICH slices ran 0.6-0.8 s per batch with
    # validation on 2 shared cores (0.45 s for the bare step): about 4-5 minutes.
    TaskPreset("brain-ct-2d", "windowed 8-bit head-CT slices, haemorrhage masks: fitted to 256 px, whole image",
               2, "unet", {**_XRAY, "size": (256, 256), "patch_size": (256, 256)}, _SMALL_UNET_2D,
               {"batch_size": 8, "epochs": 16, "iters_per_epoch": 25, "val_every": 2, "lr": 3e-3}),
    TaskPreset("ct-3d", "any CT: 2 mm voxels, 64^3 patches, window [-1000, 1500] HU", 3, "unet",
               {"mode": "spacing", "spacing": (2.0, 2.0, 2.0), "patch_size": (64, 64, 64), "intensity": "window",
                "window": (-1000.0, 1500.0)}, _SMALL_UNET_3D, _TRAIN_3D),
    TaskPreset("hip-ct", "hip CT bones (THA paper): 2 mm voxels, window [-200, 1500] HU", 3, "unet",
               {"mode": "spacing", "spacing": (2.0, 2.0, 2.0), "patch_size": (64, 64, 64), "intensity": "window",
                "window": (-200.0, 1500.0)}, _SMALL_UNET_3D, _TRAIN_3D,
               # "bone" is pelvis plus two femurs, several pieces: keeping its largest one alone
               # cost 0.30 Dice; acetabula and femoral heads are one piece each.
               {"largest_component": [2, 3, 4, 5], "fill_holes": True}),
    TaskPreset("brain-ct", "head CT haemorrhage (HemSeg-200): window [12, 79] HU, 5 mm slices", 3, "unet",
               {"mode": "spacing", "spacing": (5.0, 1.0, 1.0), "patch_size": (16, 128, 128), "intensity": "window",
                "window": (12.0, 79.0)},
               {"channels": (8, 16, 32, 64, 128), "strides": ((1, 2, 2), (1, 2, 2), (2, 2, 2), (2, 2, 2)),
                "num_res_units": 1}, _TRAIN_3D),
):
    PRESETS.register(_preset.name, _preset)


def default_preset(spatial_dims: int) -> TaskPreset:
    """The generic preset for 2D radiographs or 3D CT."""
    return PRESETS["xray-2d" if spatial_dims == 2 else "ct-3d"]
