"""Training options in one dataclass, built from a task preset plus the user's overrides."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from radseg.models.presets import PRESETS, default_preset

__all__ = ["TrainConfig"]


@dataclass
class TrainConfig:
    """What ``radseg train`` does. Units: epochs of ``iters_per_epoch`` batches; seconds; mm.

    ``preprocessing`` holds :class:`~radseg.models.preprocess.Preprocessing` fields (mode,
    size or spacing, patch_size, intensity, window...); unset ones come from the preset.
    Set ``time_limit`` (seconds) to stop on time. It only stops: the learning-rate schedule
    always follows the planned iterations (``epochs`` x ``iters_per_epoch``), so a run under a
    limit that does not bind gives the same weights as one without, and a run the limit stops
    has had exactly the learning rates of the unlimited run up to where it stopped (it ends
    before the schedule has annealed; plan fewer epochs to anneal within a budget).
    """

    output: Path = Path("run")
    preset: str | None = None
    architecture: str | None = None
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    head: str = "multiclass"
    preprocessing: dict[str, Any] = field(default_factory=dict)
    postprocessing: dict[str, Any] | None = None  # {"largest_component": bool, "fill_holes": bool}
    epochs: int | None = None
    iters_per_epoch: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    weight_decay: float = 1e-4
    warmup_fraction: float = 0.05
    val_every: int | None = None
    patience: int | None = None  # validations without improvement before stopping; None = never
    time_limit: float | None = None
    foreground_fraction: float = 0.5  # share of patches centred on a labelled voxel
    #: Share of patches centred on the network's own false positives in the training images
    #: (hard negatives), mined every ``mine_every`` epochs (None: 5 validations apart); 0: off.
    hard_negatives: float = 0.0
    mine_every: int | None = None
    #: A metadata column (e.g. FracAtlas ``body_part``): within each of its values, draw training images
    #: with and without a finding equally often (:func:`radseg.train.sampler.finding_balance`); None: uniform.
    balance_by: str | None = None
    augment: bool = True
    flip_lr: bool | None = None  # mirror left-right, swapping right/left labels (None: the preset's, else on)
    rotate_degrees: float = 12.0
    scale_range: tuple[float, float] = (0.85, 1.15)
    seed: int = 0
    device: str = "auto"
    threads: int | None = None  # with nproc > 1: shared out, threads // nproc per process
    #: Data-parallel processes (see :mod:`radseg.train.distributed`); batch_size stays the global batch.
    nproc: int = 1
    backend: str | None = None  # torch.distributed backend for nproc > 1: gloo, nccl; None: nccl on CUDA, else gloo
    val_fraction: float = 0.2
    #: Validate (and pick the best checkpoint) on this seeded share of the train split instead of
    #: the dataset's val split, which then stays unseen (see :func:`radseg.train.data.split_cases`).
    holdout: float | None = None
    #: Which train cases are held out: a seeded ``"random"`` draw, or the ``"last"`` ones in case-id order
    #: (a block, for datasets split by id ranges whose neighbouring ids share a patient, as FracAtlas).
    holdout_order: str = "random"
    resume: bool = False
    save_zip: bool = False
    #: A trained bundle (path or shipped name) whose weights start this run: fine-tuning, e.g.
    #: at a higher resolution. Architecture, options and classes must match.
    init: str | None = None

    def resolved(self, spatial_dims: int) -> "TrainConfig":
        """A copy with every unset option filled from the preset (default: by dimensionality)."""
        preset = PRESETS[self.preset] if self.preset else default_preset(spatial_dims)
        if preset.spatial_dims != spatial_dims:
            raise ValueError(f"preset {preset.name!r} is for {preset.spatial_dims}D data; this data is {spatial_dims}D")
        train = preset.training
        arch = self.architecture or preset.architecture
        kwargs = dict(self.arch_kwargs)
        if arch == preset.architecture and not kwargs:
            kwargs = dict(preset.arch_kwargs)
        return replace(
            self, preset=preset.name, architecture=arch, arch_kwargs=kwargs,
            preprocessing={**preset.preprocessing, **self.preprocessing, "spatial_dims": spatial_dims},
            postprocessing=dict(preset.postprocessing if self.postprocessing is None else self.postprocessing),
            epochs=self.epochs or train.get("epochs", 30),
            iters_per_epoch=self.iters_per_epoch or train.get("iters_per_epoch", 25),
            batch_size=self.batch_size or train.get("batch_size", 4),
            lr=self.lr or train.get("lr", 3e-3),
            val_every=self.val_every or train.get("val_every", 2),
            flip_lr=bool(train.get("flip_lr", True) if self.flip_lr is None else self.flip_lr),
            output=Path(self.output),
        )

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["output"] = str(self.output)
        return json.loads(json.dumps(out, default=list))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        names = {f.name for f in fields(cls)}
        known = {k: v for k, v in data.items() if k in names}
        if "output" in known:
            known["output"] = Path(known["output"])
        if "scale_range" in known:
            known["scale_range"] = tuple(known["scale_range"])
        return cls(**known)
