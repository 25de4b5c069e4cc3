"""Synthetic cohorts: who the phantom subjects are, and the planted subgroup difficulty (``--shift``).

Every subject gets demographic columns like the seed datasets' metadata (sex, age, age group,
race group, site and scanner) and its own seed, derived from the run seed and the case index
with :class:`numpy.random.SeedSequence`, so case ``k`` is the same whatever ``n`` is and
whichever cases a resumed run still has to make.

A shift (``"race=Black:contrast"``) makes one group harder in a documented way; a generator
reads the factors from :attr:`Subject.difficulty` and must honour all of them:

============  ===================================================================
effect        what changes for subjects in the shifted group
============  ===================================================================
``contrast``  bone (or lesion) contrast over soft tissue times ``CONTRAST_FACTOR``
``noise``     image noise standard deviation times ``NOISE_FACTOR``
``size``      anatomy linear size times ``SIZE_FACTOR`` (smaller structures)
``density``   osteoporotic bone: cortical and cancellous bone HU over soft tissue (muscle) times
              ``DENSITY_FACTOR`` and the cortex thinner by the same factor (``hip-ct``,
              ``hip-xray``); kinds without bone density ignore it
``none``      nothing: the null setting, where a fairness audit should find no gap
============  ===================================================================
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

SEXES = ("F", "M")
RACES = ("White", "Black", "Asian", "Other")
RACE_WEIGHTS = (0.55, 0.25, 0.12, 0.08)
SITES = ("site-A", "site-B", "site-C")
SCANNERS = {"site-A": "Vendor1 Model X", "site-B": "Vendor2 Model Y", "site-C": "Vendor3 Model Z"}
CONTRAST_FACTOR = 0.6
NOISE_FACTOR = 2.0
SIZE_FACTOR = 0.85
DENSITY_FACTOR = 0.6
EFFECTS = {"contrast": ("contrast", CONTRAST_FACTOR), "noise": ("noise", NOISE_FACTOR),
           "size": ("size", SIZE_FACTOR), "density": ("density", DENSITY_FACTOR), "none": (None, 1.0)}
NEUTRAL = {"contrast": 1.0, "noise": 1.0, "size": 1.0, "density": 1.0}


def age_group(age: float) -> str:
    """HexAI's groups plus 80+ (see :func:`radseg.evaluate.fairness.age_group`)."""
    return "<=50" if age <= 50 else "51-64" if age <= 64 else "65-79" if age <= 79 else "80+"


@dataclass(frozen=True)
class Shift:
    """``attribute=value:effect``: subjects whose ``attribute`` equals ``value`` get ``effect``."""

    attribute: str
    value: str
    effect: str

    @classmethod
    def parse(cls, text: str | None) -> "Shift | None":
        if not text:
            return None
        condition, _, effect = text.partition(":")
        attribute, _, value = condition.partition("=")
        effect = effect or "contrast"
        if not attribute or not value:
            raise ValueError(f"--shift {text!r}: expected ATTRIBUTE=VALUE[:EFFECT], e.g. race=Black:contrast")
        if attribute not in ("sex", "race", "age_group", "site"):
            raise ValueError(f"--shift {text!r}: attribute must be sex, race, age_group or site")
        if effect not in EFFECTS:
            raise ValueError(f"--shift {text!r}: effect must be one of {', '.join(EFFECTS)}")
        return cls(attribute, value, effect)

    def __str__(self) -> str:
        return f"{self.attribute}={self.value}:{self.effect}"


@dataclass(frozen=True)
class Subject:
    """One synthetic patient. ``rng()`` gives the generator its own reproducible random stream."""

    case_id: str
    index: int
    seed: int
    sex: str
    age: int
    age_group: str
    race: str
    site: str
    scanner: str
    shifted: bool = False
    difficulty: dict[str, float] = field(default_factory=lambda: dict(NEUTRAL))

    def rng(self) -> np.random.Generator:
        return np.random.default_rng(self.seed)

    def columns(self) -> dict[str, Any]:
        """The demographic columns of ``metadata.csv``."""
        row = asdict(self)
        difficulty = row.pop("difficulty")
        row.pop("seed")
        row.pop("index")
        row.update({f"difficulty_{k}": v for k, v in difficulty.items()})
        return row


def make_subject(index: int, *, seed: int, prefix: str, shift: Shift | None = None) -> Subject:
    """Subject ``index`` of the cohort with run seed ``seed`` (independent of cohort size)."""
    sequence = np.random.SeedSequence([int(seed), int(index)])
    demo_rng = np.random.default_rng(sequence.spawn(1)[0])
    case_seed = int(sequence.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))
    sex = SEXES[int(demo_rng.integers(2))]
    age = int(np.clip(np.rint(demo_rng.normal(62, 12)), 25, 92))
    race = RACES[int(demo_rng.choice(len(RACES), p=RACE_WEIGHTS))]
    site = SITES[int(demo_rng.integers(len(SITES)))]
    subject = dict(sex=sex, age=age, age_group=age_group(age), race=race, site=site)
    shifted = shift is not None and str(subject[shift.attribute]) == shift.value
    difficulty = dict(NEUTRAL)
    if shifted:
        key, factor = EFFECTS[shift.effect]
        if key:
            difficulty[key] = factor
    return Subject(case_id=f"{prefix}{index + 1:04d}", index=index, seed=case_seed, scanner=SCANNERS[site],
                   shifted=shifted, difficulty=difficulty, **subject)


def make_cohort(n: int, *, seed: int, prefix: str, shift: Shift | None = None) -> list[Subject]:
    return [make_subject(k, seed=seed, prefix=prefix, shift=shift) for k in range(n)]
