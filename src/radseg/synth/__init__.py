"""Procedural phantoms with exact labels: the embedded default data (``radseg synth``).

``PHANTOMS`` maps a kind name to the module that makes it (imported on first use); see
:mod:`radseg.synth.common` for what a kind module provides and :mod:`radseg.synth.cohort`
for the subjects and the ``--shift`` of difficulty.
"""

from __future__ import annotations

from importlib import import_module
from types import ModuleType

from radseg.registry import Registry

PHANTOMS: Registry[str] = Registry("phantom kind")
for _name, _module in (
    ("hip-ct", "radseg.synth.hip_ct"),
    ("hip-xray", "radseg.synth.hip_xray"),
    ("knee-xray", "radseg.synth.knee_xray"),
    ("brain-ct", "radseg.synth.brain_ct"),
    ("chest-xray", "radseg.synth.chest_xray"),
    ("fracture-xray", "radseg.synth.fracture_xray"),
):
    PHANTOMS.register(_name, _module)


def phantom_kind(name: str) -> ModuleType:
    """The module of a phantom kind (a wrong name lists the valid ones)."""
    return import_module(PHANTOMS[name])


def synthesize(*args, **kwargs):
    from radseg.synth.run import synthesize as _synthesize

    return _synthesize(*args, **kwargs)


__all__ = ["PHANTOMS", "phantom_kind", "synthesize"]
