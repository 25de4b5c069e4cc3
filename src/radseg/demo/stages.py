"""Run named stages in order with timings, a line of progress each, and a record for the report."""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator


@dataclass
class StageRecord:
    name: str
    title: str
    seconds: float = 0.0
    status: str = "pending"  # pending, done, failed, skipped
    results: dict[str, Any] = field(default_factory=dict)
    commands: list[str] = field(default_factory=list)  # the CLI equivalent of what the stage did
    note: str = ""


class StageLog:
    """Ordered stage records; ``with log.stage("synth", "Synthesize phantoms") as rec: ...``."""

    def __init__(self, echo: Callable[[str], None] = print) -> None:
        self.records: list[StageRecord] = []
        self.echo = echo

    @contextmanager
    def stage(self, name: str, title: str) -> Iterator[StageRecord]:
        record = StageRecord(name=name, title=title)
        self.records.append(record)
        self.echo(f"[{len(self.records)}] {title} ...")
        start = time.perf_counter()
        try:
            yield record
        except Exception as exc:
            record.status = "failed"
            record.note = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            record.seconds = time.perf_counter() - start
        record.status = "done"
        warned = len(record.results.get("warnings", []))
        self.echo(f"    done in {record.seconds:.1f} s" + (f" ({record.note})" if record.note else "")
                  + (f", with {warned} warning(s) below an aim (see the report)" if warned else ""))

    def __getitem__(self, name: str) -> StageRecord:
        return next(r for r in self.records if r.name == name)

    def total_seconds(self) -> float:
        return sum(r.seconds for r in self.records)
