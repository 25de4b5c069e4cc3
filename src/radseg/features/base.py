"""What every feature set returns: measurements with units, and the marks that show where.

A :class:`Measurement` is one number for one structure (``"right knee"``, ``"heart"``) with
its unit, or ``value=None`` and a ``note`` saying why it could not be made (a missing
structure, a shaft out of the picture ...). Never a sentinel like CXAS's ``-1``.

Marks (points, lines, circles) are in **plane millimetres**: the array index times the
pixel spacing, ``(row_mm, col_mm)`` in 2D and ``(slice_mm, row_mm, col_mm)`` in 3D. That is
the frame the picture is drawn in (rows down, columns right, square physical pixels), so
angles measured in it are the angles a viewer shows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from radseg.image import Image

__all__ = ["FeatureSet", "Mark", "Measurement", "circle", "line", "missing", "point"]


@dataclass
class Mark:
    """A thing to draw: ``kind`` is ``point``, ``line``, ``polyline`` or ``circle``; ``points``
    are plane-mm coordinates (one row per point); ``radius`` (mm) for circles."""

    kind: str
    points: np.ndarray
    radius: float = 0.0
    text: str = ""
    colour: tuple[int, int, int] = (255, 255, 0)

    def __post_init__(self) -> None:
        self.points = np.atleast_2d(np.asarray(self.points, dtype=float))


def point(p, *, text: str = "", colour=(255, 80, 80)) -> Mark:
    return Mark("point", p, text=text, colour=colour)


def line(p, q, *, text: str = "", colour=(255, 255, 0)) -> Mark:
    return Mark("line", np.stack([np.asarray(p, float), np.asarray(q, float)]), text=text, colour=colour)


def circle(centre, radius: float, *, text: str = "", colour=(0, 255, 255)) -> Mark:
    return Mark("circle", centre, radius=float(radius), text=text, colour=colour)


@dataclass
class Measurement:
    """One measured number (``value`` None when it cannot be made; ``note`` says why or how)."""

    structure: str
    name: str
    value: float | None
    unit: str
    note: str = ""
    marks: list[Mark] = field(default_factory=list)
    sources: tuple[str, ...] = ()  # label names the measurement used (the overlay colours these)

    def __post_init__(self) -> None:
        if self.value is not None:
            value = float(self.value)
            self.value = value if np.isfinite(value) else None

    @property
    def ok(self) -> bool:
        return self.value is not None

    @property
    def status(self) -> str:
        return "ok" if self.ok else "not measured"

    def row(self) -> dict:
        """The CSV columns of this measurement (without the case)."""
        return {"structure": self.structure, "measurement": self.name,
                "value": self.value, "unit": self.unit, "status": self.status, "note": self.note}


def missing(structure: str, names: Sequence[str] | str, unit: str, why: str) -> list[Measurement]:
    """One not-measured row per name, all saying ``why``."""
    names = [names] if isinstance(names, str) else list(names)
    return [Measurement(structure, name, None, unit, why) for name in names]


@dataclass(frozen=True)
class FeatureSet:
    """A named group of measurements: ``compute(labels, image=None) -> list[Measurement]``.

    ``dims`` lists the spatial dimensions it accepts (radiograph sets are 2D only).
    """

    name: str
    description: str
    compute: Callable[..., list[Measurement]]
    dims: tuple[int, ...] = (2, 3)

    def __call__(self, labels: Image, image: Image | None = None) -> list[Measurement]:
        return self.compute(labels, image=image)
