"""An accumulator for many cases: add pairs as they come, then read the table and the summary.

    acc = MetricAccumulator(labels={1: "femur", 2: "tibia"}, nsd_tolerance=2.0)
    for case, pred, truth in pairs:
        acc.add(case, pred, truth)          # radseg Images (spacing from truth) or arrays + spacing=
    acc.per_case()                          # one row per case x label
    acc.summary(resamples=10000)            # mean, sd, median and bootstrap 95% CI per label x metric

It keeps only the per-case numbers, never the masks, so memory does not grow with volume size.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from radseg.evaluate.metrics import ID_COLUMNS, label_rows
from radseg.image import Image


class MetricAccumulator:
    """Per-case metrics of label maps (see :func:`radseg.evaluate.metrics.per_label_metrics`)."""

    def __init__(self, *, labels: Mapping[int, str] | Sequence[int] | None = None, nsd_tolerance: float | None = None,
                 hd_percentile: float = 95.0, empty: Any = "nan", hd_variant: str = "max",
                 assd_variant: str = "pooled") -> None:
        self.labels = dict(labels) if isinstance(labels, Mapping) else (
            {int(v): f"label_{int(v)}" for v in labels} if labels is not None else None)
        self.options = {"nsd_tolerance": nsd_tolerance, "hd_percentile": hd_percentile, "empty": empty,
                        "hd_variant": hd_variant, "assd_variant": assd_variant}
        self.rows: list[dict[str, Any]] = []

    def add(self, case: str, pred: Image | np.ndarray, truth: Image | np.ndarray, *,
            spacing: Sequence[float] | None = None) -> dict[int, dict[str, float]]:
        """Score one pair; spacing (mm per array axis) defaults to the truth Image's."""
        if isinstance(truth, Image):
            spacing = tuple(truth.spacing) if spacing is None else spacing
            names = truth.metadata.get("label_names", {})
        else:
            names = {}
        pred_array = pred.array if isinstance(pred, Image) else np.asarray(pred)
        truth_array = truth.array if isinstance(truth, Image) else np.asarray(truth)
        rows = label_rows(case, pred_array, truth_array, labels=self.labels, names=names, spacing=spacing,
                          **self.options)
        self.rows.extend(rows)
        return {row["label"]: {k: v for k, v in row.items() if k not in ID_COLUMNS} for row in rows}

    def __len__(self) -> int:
        return len({row["case"] for row in self.rows})

    def per_case(self):
        import pandas as pd

        return pd.DataFrame(self.rows)

    def summary(self, *, resamples: int = 10000, method: str = "percentile", seed: int = 0):
        from radseg.evaluate.run import summarise

        return summarise(self.per_case(), resamples=resamples, method=method, seed=seed)

    def reset(self) -> None:
        self.rows.clear()
