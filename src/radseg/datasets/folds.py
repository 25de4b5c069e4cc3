"""Patient-grouped K-fold cross-validation: every case of one patient lands in the same fold.

Deterministic: the same cases, ``k`` and seed give the same folds on any machine. Patients
(``case.patient``; a case without one is its own patient) are shuffled by the seed, then
placed largest first into the fold holding the fewest cases so far (ties: the lower fold),
so folds stay balanced in cases even when one patient has many slices.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Sequence

import numpy as np

from radseg.case import Case

__all__ = ["patient_folds", "patient_of"]


def patient_of(case: Case) -> str:
    """The grouping key: the case's patient, else its own id (never shared by accident)."""
    patient = case.patient
    return f"patient:{patient}" if patient not in (None, "") else f"case:{case.case_id}"


def patient_folds(cases: Sequence[Case], k: int, *, seed: int = 0) -> list[list[str]]:
    """``k`` lists of case ids (each sorted); a patient's cases are never in two folds.

    Raises ``ValueError`` when there are fewer patients than folds (a fold would be empty).
    """
    if int(k) < 2:
        raise ValueError(f"cross-validation needs at least 2 folds, got {k}")
    groups: dict[str, list[str]] = defaultdict(list)
    for case in cases:
        groups[patient_of(case)].append(case.case_id)
    if len(groups) < k:
        raise ValueError(f"{k} folds need at least {k} patients; the data has {len(groups)} "
                         f"({len(cases)} cases). Use fewer folds.")
    names = sorted(groups)
    order = [names[i] for i in np.random.default_rng(seed).permutation(len(names))]
    order.sort(key=lambda name: -len(groups[name]))  # stable: equal sizes keep the seeded order
    folds: list[list[str]] = [[] for _ in range(k)]
    for name in order:
        smallest = min(range(k), key=lambda f: (len(folds[f]), f))
        folds[smallest].extend(groups[name])
    return [sorted(fold) for fold in folds]
