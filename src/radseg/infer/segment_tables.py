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


def write_quality(out: Path, rows: dict[str, dict[str, Any]]) -> None:
    """OUT/quality.csv for this run's images (removed when none has a quality row)."""
    import csv
    import io

    if not rows:
        if (out / QUALITY_FILE).exists():
            (out / QUALITY_FILE).unlink()  # another model's flags: they do not describe these outputs
        return
    columns: list[str] = []
    for row in rows.values():
        columns += [k for k in row if k not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    for case in sorted(rows):
        writer.writerow(rows[case])
    write_text_atomic(out / QUALITY_FILE, buffer.getvalue())


SCORES_FILE = "image_scores.csv"


def write_scores(out: Path, rows: dict[str, dict[str, Any]], manifest: dict | None
                 ) -> tuple[int, int, dict[str, Any] | None]:
    """OUT/image_scores.csv for this run's images, flagged at the model's operating point (or none without
    scores); returns (images scored, images flagged, the operating point or None)."""
    import csv
    import io

    from radseg.evaluate.operating_point import model_operating_point

    if not rows:
        if (out / SCORES_FILE).exists():
            (out / SCORES_FILE).unlink()  # another model's scores: they do not describe these outputs
        return 0, 0, None
    point = model_operating_point(manifest)
    positive = 0
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["case", "input", "image_score", "threshold", "flagged"])
    writer.writeheader()
    for case in sorted(rows):
        row = dict(rows[case], threshold="", flagged="")
        if point is not None:
            row.update(threshold=point["threshold"], flagged=bool(row["image_score"] >= point["threshold"]))
            positive += bool(row["flagged"])
        writer.writerow(row)
    write_text_atomic(out / SCORES_FILE, buffer.getvalue())
    return len(rows), positive, point
