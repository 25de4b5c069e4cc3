"""Preprocessing a model carries with it: image grid -> network grid and back, and intensities.

One :class:`Preprocessing` is saved in every model bundle, so training and inference
transform images the same way. Geometry steps, in order:

1. **grey**: a colour image (trailing channel axis) becomes the mean of its channels; a
   MONOCHROME1 radiograph (``metadata["photometric"]``, kept as stored by the reader) is
   inverted so bone is bright in every input.
2. **canonical axes** (3D): axes are permuted and flipped (no interpolation) so array
   axes run superior, posterior, left (``SPL``: the default radseg layout), whatever
   order the file stored (:func:`radseg.orientation.canonical_axes`; a strongly oblique
   volume gets the nearest order and an ``ObliqueWarning``). Side-specific labels
   (right/left) then always sit on the same side of the network's input.
3. **resample** with linear interpolation (labels: nearest), pixel edges kept aligned
   (``align_corners=False``), so the inverse maps exactly back:

   * ``mode="fit"`` (2D radiographs): scale the physical extent to fit ``size`` keeping the
     aspect ratio, pad the rest (CXAS squashes to 512x512 instead; keeping the aspect keeps
     shapes, and distances, undistorted). Downsampling is antialiased.
   * ``mode="spacing"``: resample to ``spacing`` mm per (canonical) axis; large images are
     then run by sliding window over ``patch_size`` tiles.
4. **intensity**: ``percentile`` (clip to the image's ``percentiles``, then z-score; for
   radiographs, whose grey levels have no physical unit), ``window`` (clip to a fixed
   window, e.g. HU; then z-score with the training set's mean/std when known, else scale to
   0..1), or ``zscore`` (per image).

:class:`GridMap` records the steps taken for one image so network outputs (class scores)
can be returned to the input grid: :meth:`GridMap.restore_channel`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from radseg.image import Image
from radseg.models.resample import resize
from radseg.orientation import canonical_axes, from_canonical, to_canonical

__all__ = ["Preprocessing", "GridMap", "prepare", "prepare_labels"]

INTENSITY_MODES = ("percentile", "window", "zscore")


@dataclass
class Preprocessing:
    """How images enter the network (saved in the bundle's ``model.json``)."""

    spatial_dims: int
    mode: str = "fit"
    size: tuple[int, ...] | None = (256, 256)
    spacing: tuple[float, ...] | None = None
    patch_size: tuple[int, ...] | None = None  # default: the fit size, else 256 per axis
    intensity: str = "percentile"
    percentiles: tuple[float, float] = (0.5, 99.5)
    window: tuple[float, float] | None = None
    mean: float | None = None
    std: float | None = None
    canonical: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {self.spatial_dims}")
        if self.mode not in ("fit", "spacing"):
            raise ValueError(f"preprocessing mode must be 'fit' or 'spacing', got {self.mode!r}")
        if self.mode == "fit":
            if self.spatial_dims != 2:
                raise ValueError("mode 'fit' is for 2D images; 3D volumes use mode 'spacing'")
            if not self.size or len(self.size) != 2:
                raise ValueError("mode 'fit' needs size=(rows, cols)")
            self.size = tuple(int(s) for s in self.size)
            # A smaller patch trains on crops of the fitted image (small findings then fill more
            # of each batch); inference still covers the whole fitted grid.
            self.patch_size = self.size if self.patch_size is None else self.patch_size
            if any(int(p) > s for p, s in zip(self.patch_size, self.size)):
                raise ValueError(f"patch_size {tuple(self.patch_size)} is larger than the fit size {self.size}")
        elif not self.spacing or len(self.spacing) != self.spatial_dims:
            raise ValueError(f"mode 'spacing' needs spacing with {self.spatial_dims} values (mm)")
        if self.patch_size is None:
            self.patch_size = (256,) * self.spatial_dims
        if self.spacing is not None:
            self.spacing = tuple(float(s) for s in self.spacing)
        self.patch_size = tuple(int(s) for s in self.patch_size)
        if len(self.patch_size) != self.spatial_dims:
            raise ValueError(f"patch_size needs {self.spatial_dims} values, got {self.patch_size}")
        if self.intensity not in INTENSITY_MODES:
            raise ValueError(f"intensity must be one of {', '.join(INTENSITY_MODES)}, got {self.intensity!r}")
        if self.intensity == "window" and (not self.window or self.window[1] <= self.window[0]):
            raise ValueError(f"intensity 'window' needs window=(low, high) with low < high, got {self.window}")
        self.percentiles = tuple(float(p) for p in self.percentiles)
        if self.window is not None:
            self.window = tuple(float(w) for w in self.window)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}

    def differences(self, other: "Preprocessing") -> dict[str, tuple[Any, Any]]:
        """``{field: (ours, theirs)}`` for every field that differs, values as stored (lists, not tuples)."""
        ours, theirs = self.to_dict(), other.to_dict()
        return {k: (ours.get(k), theirs.get(k)) for k in sorted(set(ours) | set(theirs)) if ours.get(k) != theirs.get(k)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Preprocessing":
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        for key in ("size", "spacing", "patch_size", "percentiles", "window"):
            if known.get(key) is not None:
                known[key] = tuple(known[key])
        return cls(**known)


@dataclass
class GridMap:
    """The geometric steps applied to one image, to undo them on network outputs."""

    original_shape: tuple[int, ...]
    perm: tuple[int, ...]
    flips: tuple[bool, ...]
    canonical_shape: tuple[int, ...]
    resized_shape: tuple[int, ...]
    pad_before: tuple[int, ...]
    grid_shape: tuple[int, ...]
    grid_spacing: tuple[float, ...]

    def crop(self, grid_array: np.ndarray) -> np.ndarray:
        """Remove the fit padding from ``[..., *grid]``."""
        index = tuple(slice(p, p + s) for p, s in zip(self.pad_before, self.resized_shape))
        return grid_array[(Ellipsis, *index)]

    def restore_channel(self, channel, *, mode: str = "linear") -> np.ndarray:
        """One network-grid channel (numpy, or a torch tensor: shape = grid) on the original grid."""
        if not isinstance(channel, np.ndarray):
            channel = channel.detach().float().cpu().numpy() if hasattr(channel, "detach") else np.asarray(channel)
        out = resize(self.crop(channel), self.canonical_shape, mode=mode)
        return from_canonical(out, self.perm, self.flips)

    def to_grid(self, array: np.ndarray, *, mode: str, pad_value: float = 0.0) -> np.ndarray:
        """Any array on the original grid (spatial axes only) onto the network grid."""
        canon = np.ascontiguousarray(to_canonical(array, self.perm, self.flips))
        resized = resize(canon, self.resized_shape, mode=mode)
        if self.resized_shape == self.grid_shape:
            return resized
        out = np.full(self.grid_shape, pad_value, np.float32)
        out[tuple(slice(p, p + s) for p, s in zip(self.pad_before, self.resized_shape))] = resized
        return out


def plan_grid(image: Image, pre: Preprocessing) -> GridMap:
    """Where ``image`` lands on the network grid (no pixels touched)."""
    if image.ndim != pre.spatial_dims:
        raise ValueError(f"this model takes {pre.spatial_dims}D images; got a {image.ndim}D image {image.shape}")
    if image.ndim == 3 and pre.canonical:
        perm, flips = canonical_axes(image.affine)
    else:
        perm, flips = tuple(range(image.ndim)), (False,) * image.ndim
    shape = np.array([image.shape[p] for p in perm])
    spacing = np.array([image.spacing[p] for p in perm])
    extent = shape * spacing
    if pre.mode == "fit":
        scale = min(t / e for t, e in zip(pre.size, extent))  # pixels per mm
        resized = np.maximum(1, np.minimum(pre.size, np.rint(extent * scale))).astype(int)
        grid = np.array(pre.size)
        pad = (grid - resized) // 2
    else:
        resized = np.maximum(1, np.rint(extent / np.array(pre.spacing))).astype(int)
        grid, pad = resized, np.zeros(image.ndim, int)
    return GridMap(original_shape=tuple(image.shape), perm=tuple(perm), flips=tuple(flips),
                   canonical_shape=tuple(int(s) for s in shape), resized_shape=tuple(int(s) for s in resized),
                   pad_before=tuple(int(p) for p in pad), grid_shape=tuple(int(g) for g in grid),
                   grid_spacing=tuple(float(e / r) for e, r in zip(extent, resized)))


def grey(image: Image) -> np.ndarray:
    """The image's values as float32, colour channels averaged; MONOCHROME1 inverted (bone bright)."""
    array = np.asarray(image.array)
    if image.channels is not None:
        array = array.mean(axis=-1)
    array = array.astype(np.float32, copy=False)
    if image.metadata.get("photometric") == "MONOCHROME1":
        # Stored inverted (the reader keeps it so): flip so every radiograph reaches the network alike.
        array = float(np.max(array)) + float(np.min(array)) - array
    return array


def normalise(values: np.ndarray, pre: Preprocessing, *, valid: np.ndarray | None = None) -> np.ndarray:
    """Intensity step; statistics come from ``valid`` pixels (not the fit padding)."""
    sample = values if valid is None else values[valid]
    if sample.size == 0:
        sample = values
    if pre.intensity == "window":
        low, high = pre.window
        out = np.clip(values, low, high)
        if pre.mean is not None and pre.std:
            return ((out - pre.mean) / pre.std).astype(np.float32)
        return ((out - low) / (high - low)).astype(np.float32)
    if pre.intensity == "percentile":
        low, high = np.percentile(sample, pre.percentiles)
        values = np.clip(values, low, high)
        sample = np.clip(sample, low, high)
    mean, std = float(sample.mean()), float(sample.std())
    return ((values - mean) / (std if std > 1e-6 else 1.0)).astype(np.float32)


def prepare(image: Image, pre: Preprocessing) -> tuple[np.ndarray, GridMap]:
    """``(network input [1, *grid] float32, GridMap)`` for one image."""
    grid = plan_grid(image, pre)
    values = grey(image)
    if not np.all(np.isfinite(values)):
        values = np.nan_to_num(values, nan=float(np.nanmin(values)) if np.isfinite(values).any() else 0.0)
    resized = grid.to_grid(values, mode="linear", pad_value=np.nan)
    valid = np.isfinite(resized)
    # Padding takes the darkest value of the image (air / no signal), after normalisation.
    resized[~valid] = np.min(resized[valid]) if valid.any() else 0.0
    return normalise(resized, pre, valid=valid)[None], grid


def prepare_labels(labels: Image, grid: GridMap) -> np.ndarray:
    """Labels on the network grid: an integer map ``[*grid]`` (or a bool stack ``[C, *grid]``)."""
    if labels.shape != grid.original_shape:
        raise ValueError(f"labels {labels.shape} do not match the image {grid.original_shape}")
    array = np.asarray(labels.array)
    if labels.channels is not None:  # multi-label: one channel at a time
        return np.stack([grid.to_grid(array[..., c].astype(np.float32), mode="nearest") > 0.5
                         for c in range(array.shape[-1])])
    out = grid.to_grid(array.astype(np.float32), mode="nearest")
    return np.rint(out).astype(np.int16 if array.max(initial=0) > 255 else np.uint8)
