"""Procedural phantoms with exact labels: the embedded default data (``radseg synth``).

``PHANTOMS`` maps a kind name to the module that makes it (imported on first use; the registry
lives in :mod:`radseg.synth.kinds`); see :mod:`radseg.synth.common` for what a kind module
provides and :mod:`radseg.synth.cohort` for the subjects and the ``--shift`` of difficulty.
Submodules import from the defining modules, never from this package.
"""

from __future__ import annotations

from radseg.synth.kinds import PHANTOMS, phantom_kind


def synthesize(*args, **kwargs):
    """:func:`radseg.synth.run.synthesize` (imported on first use: it pulls in I/O)."""
    from radseg.synth.run import synthesize as _synthesize

    return _synthesize(*args, **kwargs)


__all__ = ["PHANTOMS", "phantom_kind", "synthesize"]
