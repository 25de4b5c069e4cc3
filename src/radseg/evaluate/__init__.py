"""Segmentation metrics: overlap and volume (:mod:`.overlap`), surface distances (:mod:`.surface`),
all of them per mask pair or label map (:mod:`.metrics`).

Plain functions on boolean masks (2D ``[row, col]`` or 3D ``[slice, row, col]``), spacing in mm
per array axis, keyword-only options, one empty-mask policy (:class:`EmptyPolicy`, ``empty=``)
shared by every metric. The definitions, and how they relate to MONAI and DeepMind's
surface-distance, are in the docstrings of the two modules.

    from radseg.evaluate import dice, surface_distances
    sd = surface_distances(pred, truth, spacing=(2.5, 0.8, 0.8))
    sd.hausdorff(), sd.hd95(), sd.assd(), sd.nsd(2.0)

Many cases: :class:`MetricAccumulator`; statistics: :func:`bootstrap_ci` and
:func:`fairness_report`; instance AP: :func:`coco_instance_ap`; folders:
:func:`evaluate_folders` (what ``radseg evaluate`` runs).
"""

from radseg.evaluate import metrics, overlap, surface

# the metric modules' own __all__ lists are the package's metric API (one list each, not two)
from radseg.evaluate.metrics import *  # noqa: F401,F403
from radseg.evaluate.overlap import *  # noqa: F401,F403
from radseg.evaluate.surface import *  # noqa: F401,F403

__all__ = [
    *overlap.__all__,
    *surface.__all__,
    *metrics.__all__,
    "MetricAccumulator",
    "bootstrap_ci",
    "hemseg_protocol_ci",
    "age_group",
    "fairness_table",
    "fairness_report",
    "coco_instance_ap",
    "evaluate_folders",
]


#: Imported on first use (PEP 562): the metrics need numpy alone, statistics need scipy.special and pandas.
_LAZY = {
    "MetricAccumulator": "radseg.evaluate.accumulate",
    "bootstrap_ci": "radseg.evaluate.bootstrap",
    "hemseg_protocol_ci": "radseg.evaluate.bootstrap",
    "age_group": "radseg.evaluate.fairness",
    "fairness_report": "radseg.evaluate.fairness",
    "fairness_table": "radseg.evaluate.fairness",
    "coco_instance_ap": "radseg.evaluate.instances",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'radseg.evaluate' has no attribute {name!r}")


def evaluate_folders(*args, **kwargs):
    """See :func:`radseg.evaluate.run.evaluate_folders`."""
    from radseg.evaluate.run import evaluate_folders as _evaluate_folders

    return _evaluate_folders(*args, **kwargs)
