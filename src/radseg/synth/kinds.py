"""The registry of phantom kinds: ``PHANTOMS`` maps a kind name to the module that makes it.

Kept apart from the package ``__init__`` so that the driver (:mod:`radseg.synth.run`) can look
kinds up without importing the package that re-exports the driver (no import cycle).
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
