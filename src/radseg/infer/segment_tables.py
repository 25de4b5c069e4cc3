"""The per-image tables ``radseg segment`` writes next to its outputs, rebuilt from the state records
of the run's images: ``quality.csv`` (a model's quality check) and ``image_scores.csv`` (a one-finding
model's image score, flagged at its operating point). Both are written atomically; a table the
run has no rows for is removed, since another model's rows do not describe these outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from radseg.io.atomic import write_text_atomic

__all__ = ["QUALITY_FILE", "SCORES_FILE", "write_quality", "write_scores"]

QUALITY_FILE = "quality.csv"
SCORES_FILE = "image_scores.csv"


def _write_table(path: Path, rows: list[dict[str, Any]], columns: list[str]) -> None:
    """``rows`` as a CSV at ``path`` (atomically), or no file at all when there are none."""
    import csv
    import io

    if not rows:
        if path.exists():
            path.unlink()  # another model's rows: they do not describe these outputs
        return
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, buffer.getvalue())


def write_quality(out: Path, rows: dict[str, dict[str, Any]]) -> None:
    """OUT/quality.csv for this run's images (removed when none has a quality row)."""
    columns: list[str] = []
    for row in rows.values():
        columns += [k for k in row if k not in columns]
    _write_table(out / QUALITY_FILE, [rows[case] for case in sorted(rows)], columns)


def write_scores(out: Path, rows: dict[str, dict[str, Any]], manifest: dict | None
                 ) -> tuple[int, int, dict[str, Any] | None]:
    """OUT/image_scores.csv for this run's images, flagged at the model's operating point (or none without
    scores); returns (images scored, images flagged, the operating point or None)."""
    from radseg.evaluate.operating_point import flagged, model_operating_point

    point = model_operating_point(manifest) if rows else None
    table = [dict(rows[case], threshold="", flagged="") for case in sorted(rows)]
    hits = 0
    if point is not None and table:
        marks = flagged([row["image_score"] for row in table], point["threshold"])
        for row, mark in zip(table, marks):
            row.update(threshold=point["threshold"], flagged=bool(mark))
        hits = int(marks.sum())
    _write_table(out / SCORES_FILE, table, ["case", "input", "image_score", "threshold", "flagged"])
    return len(table), hits, point
