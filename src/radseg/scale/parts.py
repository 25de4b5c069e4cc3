"""``--part K/N``: deterministic sharding of a batch by sorted case key, for SLURM arrays or any
scheduler without Ray.

The items are sorted by their key (the case name a command gives the item, which does not depend on
the part) and item ``i`` of that order goes to part ``i mod N + 1``: the N parts together cover
every case exactly once and differ in size by at most one. The same input always gives the same
parts, whatever the order the file system lists it in.
"""

from __future__ import annotations

from typing import Callable, Sequence, TypeVar

T = TypeVar("T")

__all__ = ["parse_part", "select_part", "unique_key"]


def parse_part(text: str | None) -> tuple[int, int] | None:
    """``"K/N"`` -> ``(K, N)`` with 1 <= K <= N; None for None or ""; ValueError naming the problem."""
    if not text:
        return None
    try:
        k, n = (int(word) for word in text.split("/"))
    except ValueError:
        raise ValueError(f"--part {text!r}: expected K/N with whole numbers, e.g. 1/4") from None
    if n < 1 or not 1 <= k <= n:
        raise ValueError(f"--part {text!r}: K must be between 1 and N (N >= 1), e.g. 1/4 ... 4/4")
    return k, n


def select_part(items: Sequence[T], part: tuple[int, int] | None, key: Callable[[T], str]) -> list[T]:
    """The items of part ``K`` of ``N`` (all items, in their order, when ``part`` is None)."""
    if part is None:
        return list(items)
    k, n = part
    keys = [key(item) for item in items]
    if len(set(keys)) != len(keys):
        raise ValueError("--part needs a unique key per item; two items share one")
    order = sorted(range(len(items)), key=keys.__getitem__)
    chosen = {index for rank, index in enumerate(order) if rank % n == k - 1}
    return [item for index, item in enumerate(items) if index in chosen]


def unique_key(name: str, used: set[str]) -> str:
    """``name``, or ``name-2``, ``name-3`` ... when taken; the result is added to ``used``."""
    candidate, n = name, 2
    while candidate in used:
        candidate, n = f"{name}-{n}", n + 1
    used.add(candidate)
    return candidate
