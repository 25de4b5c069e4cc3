"""Synthetic cohorts: reproducible subjects, independent of cohort size, and the planted shift."""

from __future__ import annotations

import pytest

from radseg.synth.cohort import CONTRAST_FACTOR, NEUTRAL, SIZE_FACTOR, Shift, age_group, make_cohort, make_subject


def test_subject_k_does_not_depend_on_cohort_size():
    small = make_cohort(3, seed=7, prefix="X")
    large = make_cohort(10, seed=7, prefix="X")
    assert small == large[:3]
    assert make_subject(2, seed=7, prefix="X") == large[2]


def test_seed_changes_subjects_and_case_seeds_differ():
    a, b = make_cohort(20, seed=1, prefix="X"), make_cohort(20, seed=2, prefix="X")
    assert [s.seed for s in a] != [s.seed for s in b]
    assert len({s.seed for s in a}) == 20
    assert [s.case_id for s in a] == [f"X{k:04d}" for k in range(1, 21)]


def test_demographics_are_plausible():
    cohort = make_cohort(400, seed=0, prefix="X")
    sexes = {s.sex for s in cohort}
    assert sexes == {"F", "M"}
    assert all(25 <= s.age <= 92 and s.age_group == age_group(s.age) for s in cohort)
    black = sum(s.race == "Black" for s in cohort) / len(cohort)
    assert 0.15 < black < 0.35  # drawn with weight 0.25


def test_shift_marks_exactly_the_group():
    shift = Shift.parse("race=Black:contrast")
    cohort = make_cohort(200, seed=3, prefix="X", shift=shift)
    for subject in cohort:
        assert subject.shifted == (subject.race == "Black")
        expected = CONTRAST_FACTOR if subject.shifted else 1.0
        assert subject.difficulty["contrast"] == expected
        assert subject.difficulty["noise"] == subject.difficulty["size"] == 1.0
    sized = make_cohort(50, seed=3, prefix="X", shift=Shift.parse("sex=F:size"))
    assert all(s.difficulty["size"] == (SIZE_FACTOR if s.sex == "F" else 1.0) for s in sized)
    null = make_cohort(50, seed=3, prefix="X", shift=Shift.parse("sex=F:none"))
    assert all(s.difficulty == NEUTRAL for s in null) and any(s.shifted for s in null)
    # demographics do not depend on the shift
    plain = make_cohort(200, seed=3, prefix="X")
    assert [(s.sex, s.age, s.race, s.seed) for s in plain] == [(s.sex, s.age, s.race, s.seed) for s in cohort]


@pytest.mark.parametrize("text, problem", [("race", "ATTRIBUTE=VALUE"), ("height=3", "attribute"),
                                           ("sex=F:blur", "effect")])
def test_bad_shift_is_explained(text, problem):
    with pytest.raises(ValueError, match=problem):
        Shift.parse(text)
