"""Patient-grouped folds: no patient in two folds, deterministic, balanced, refused when impossible."""

from __future__ import annotations

import pytest

from radseg.case import Case
from radseg.datasets.folds import patient_folds


def _cases(sizes: dict[str, int]) -> list[Case]:
    return [Case(f"{patient}_{i}", subject={"patient": patient}) for patient, n in sizes.items() for i in range(n)]


def test_a_patient_never_spans_two_folds_and_every_case_is_held_out_once():
    cases = _cases({f"p{k}": 1 + k % 4 for k in range(13)})
    folds = patient_folds(cases, 5, seed=3)
    held = [c for fold in folds for c in fold]
    assert sorted(held) == sorted(c.case_id for c in cases)  # each case once
    for fold in folds:
        for other in folds:
            if other is not fold:
                assert not {c.split("_")[0] for c in fold} & {c.split("_")[0] for c in other}
    sizes = [len(f) for f in folds]
    assert max(sizes) - min(sizes) <= 4  # largest patient has 4 cases: greedy keeps folds within one patient


def test_deterministic_and_seeded():
    cases = _cases({f"p{k}": 2 for k in range(10)})
    assert patient_folds(cases, 3, seed=0) == patient_folds(list(reversed(cases)), 3, seed=0)
    assert patient_folds(cases, 3, seed=0) != patient_folds(cases, 3, seed=1)


def test_cases_without_a_patient_are_their_own_group():
    cases = [Case(f"c{i}") for i in range(6)]
    folds = patient_folds(cases, 3)
    assert sorted(len(f) for f in folds) == [2, 2, 2]


def test_fewer_patients_than_folds_is_refused():
    with pytest.raises(ValueError, match="5 folds need at least 5 patients; the data has 2"):
        patient_folds(_cases({"a": 5, "b": 5}), 5)
