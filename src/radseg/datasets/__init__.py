"""Dataset adapters: each public layout -> case records -> a prepared dataset; export to nnU-Net/COCO/YOLO.

``DATASETS`` maps an adapter name to its :class:`Adapter` (what it expects, its options and
the module that reads it, imported on use). :func:`scan_dataset` runs one adapter;
:func:`radseg.datasets.preparation.prepare` writes the prepared folder (:mod:`.prepared`);
``EXPORTERS`` write a prepared folder in another tool's layout.
"""

from __future__ import annotations

from importlib import import_module
from pathlib import Path
from typing import Any

from radseg.datasets.adapters import DATASETS, EXPORTERS, Adapter, scan_dataset

__all__ = ["DATASETS", "EXPORTERS", "Adapter", "export", "open_prepared", "prepare", "scan_dataset"]


def prepare(*args, **kwargs):
    from radseg.datasets.preparation import prepare as _prepare

    return _prepare(*args, **kwargs)


def export(prepared: str | Path, out: str | Path, *, to: str, **options: Any):
    """Write the prepared dataset at ``prepared`` in the layout of ``to`` (nnunet, coco, yolo)."""
    return import_module(EXPORTERS[to]).export(prepared, out, **options)


def open_prepared(path: str | Path):
    from radseg.datasets.prepared import open_prepared as _open

    return _open(path)
