"""The ``radseg`` root group: every command listed, each command module loaded only when used.

Each module's ``register(app)`` adds its commands; they parse options and call one public
function, importing heavy libraries inside the command. The root group loads a command
module only when one of its commands is run (or its own ``--help`` is asked for): ``radseg
--help`` lists the commands from :data:`COMMANDS` without importing any of them. Help is plain
text (typer's ``rich_markup_mode=None``): importing rich alone would take longer than the whole
of ``radseg --help`` does now.
"""

from __future__ import annotations

import gc
import importlib
from collections.abc import MutableMapping
from typing import Any, Iterator

import typer

from radseg.commands import version
from radseg.commands.common import Group, group

#: Every top-level command: name -> (module in radseg.commands that registers it, its short help).
#: The order is the order of the help listing. tests/test_imports.py checks the short help
#: against each command's own docstring, so the listing cannot drift from the commands.
COMMANDS: dict[str, tuple[str, str]] = {
    "info": ("info", "Show modality, shape, spacing, orientation, the series found and any problems."),
    "convert": ("info", "Convert images to NIfTI (or another format by suffix), with a JSON sidecar for DICOM."),
    "index": ("index", "Catalog every series and image under ROOT (modality, shape, spacing, problems) in one Parquet file."),
    "evaluate": ("evaluate", "Score predictions against ground truth: metrics per case, CIs, fairness by subgroup, "
                             "an HTML report."),
    "evaluate-detection": ("evaluate", "A segmentation model as detector and screener: mask/box AP, P/R, Dice, "
                                       "image ROC AUC with CIs, subgroups."),
    "synth": ("synth", "Make N phantom cases of KIND with exact labels and a cohort metadata.csv."),
    "train": ("train", "Train a segmentation model on a prepared dataset; writes a model bundle to OUTPUT/model."),
    "pretrain": ("train", "Pretrain a network without labels by restoring corrupted training images; "
                          "'radseg train --init' starts from it."),
    "benchmark": ("benchmark", "Train several architectures under one protocol; paired CIs and tests say which is better."),
    "segment": ("segment", "Segment a file or every image/series of a folder with a trained model "
                           "(CXAS-style -i/-o/-ot)."),
    "export-onnx": ("segment", "Export a model's network to ONNX (stored in the bundle) and check it against torch."),
    "features": ("features", "Measure label maps in mm: shape, chest CTR/SCD, knee JSW, hip head/JSW/LCEA/NSA, "
                             "CT volumes and HU."),
    "serve": ("serve", "Serve a local web page: upload an image, see the labels, legend and measurements, "
                       "download the result."),
    "demo": ("demo", "Run the whole radseg loop on phantoms it makes itself and write one report.html."),
    "version": ("version", "Print the radseg version."),
    "datasets": ("datasets", "Public dataset layouts -> prepared datasets; export to nnU-Net, COCO, YOLO."),
    "annotate": ("annotate", "Classical annotation synthesis on hip CT (bone, acetabulum / femoral head) and "
                             "active-learning refinement."),
    "models": ("models", "Model architectures, task presets and the trained models shipped with radseg."),
}


def load_commands(module_name: str) -> dict[str, Any]:
    """The click commands that ``radseg.commands.<module_name>`` registers, by name."""
    module = importlib.import_module(f"radseg.commands.{module_name}")
    holder = group("")

    @holder.callback()
    def _holder() -> None:  # a callback keeps a one-command module a group, so its commands are by name
        pass

    module.register(holder)
    return dict(typer.main.get_command(holder).commands)


class _LazyCommands(MutableMapping):
    """The root's commands: all names of :data:`COMMANDS` from the start, each module loaded on first lookup."""

    def __init__(self, loaded: dict[str, Any]) -> None:
        self.loaded = dict(loaded)

    def __getitem__(self, name: str) -> Any:
        if name not in self.loaded and name in COMMANDS:
            self.loaded.update(load_commands(COMMANDS[name][0]))
        return self.loaded[name]

    def __setitem__(self, name: str, command: Any) -> None:
        self.loaded[name] = command

    def __delitem__(self, name: str) -> None:
        del self.loaded[name]

    def __iter__(self) -> Iterator[str]:
        yield from COMMANDS
        yield from (name for name in self.loaded if name not in COMMANDS)

    def __len__(self) -> int:
        return len(set(COMMANDS) | set(self.loaded))


class RootGroup(Group):
    """The ``radseg`` group: commands load on demand; the listing in ``--help`` reads :data:`COMMANDS`."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.commands = _LazyCommands(self.commands)

    def list_commands(self, ctx) -> list[str]:
        return list(self.commands)  # names only: typer's items() would load every module

    def listing_line(self, ctx, name: str):
        if name in COMMANDS and name not in self.commands.loaded:
            return COMMANDS[name][1]
        return super().listing_line(ctx, name)


app = group(
    "Segmentation of radiographs and CT: read clinical files right, build datasets, train, "
    "benchmark honestly and write clinical outputs.",
    name="radseg",
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=RootGroup,
)


#: Set by :func:`radseg.cli.main`, which pauses the garbage collector while the command loads.
RESUME_GC = False


@app.callback()
def _root(show_version: bool = version.VersionOpt) -> None:
    global RESUME_GC
    if RESUME_GC:  # the command is loaded: what start-up made is frozen out of every later collection
        RESUME_GC = False
        gc.freeze()
        gc.enable()
