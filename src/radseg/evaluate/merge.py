"""``radseg evaluate --merge``: the evaluations of several ``--part K/N`` runs as one.

Each part wrote its cases' rows to ``per_case.csv``; the rows together are the whole run's rows
(every case once: a case in two parts is refused), and the statistics (CIs, fairness) are
computed again over all of them, with the seed and settings given here. So ``--part 1/N`` ...
``--part N/N`` then ``--merge`` give the tables of one run over every case.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from radseg.errors import ReadError, RadsegError
from radseg.evaluate.run import PART_MERGE_HINT, Evaluation, add_statistics, check_options, load_metadata

__all__ = ["merge_parts"]


def merge_parts(folders: Sequence[str | Path], *, metadata: str | Path | None = None, by: Sequence[str] = (),
                reference: dict[str, str] | None = None, resamples: int = 10000, ci_method: str = "percentile",
                seed: int = 0) -> Evaluation:
    """One evaluation from the output folders of ``radseg evaluate --part`` runs."""
    import pandas as pd

    check_options(resamples=resamples, by=by)
    if not folders:
        raise RadsegError("--merge needs the output folders of the part runs")
    table = load_metadata(metadata, by) if metadata is not None and by else None
    frames, evaluation = [], Evaluation(per_case=None, summary=None)
    for folder in map(Path, folders):
        rows, record = folder / "per_case.csv", folder / "summary.json"
        if not rows.is_file() or not record.is_file():
            raise ReadError(folder, "no per_case.csv / summary.json: not the output folder of a radseg evaluate run")
        frames.append(pd.read_csv(rows, keep_default_na=True))
        done = json.loads(record.read_text())
        evaluation.failed += [(f["case"], f["problem"]) for f in done.get("failed", [])]
        evaluation.warnings += [(w["case"], w["problem"]) for w in done.get("warnings", [])
                                if PART_MERGE_HINT not in w["problem"]]
        evaluation.unmatched_predictions += done.get("unmatched_predictions", [])
        evaluation.unmatched_truths += done.get("unmatched_truths", [])
        evaluation.settings.setdefault("parts", []).append(done.get("settings", {}).get("part"))
    per_case = pd.concat(frames, ignore_index=True)
    twice = per_case.duplicated(["case", "label"], keep=False)
    if twice.any():
        raise RadsegError(f"case {per_case.loc[twice, 'case'].iloc[0]!r} is in more than one of the merged folders: "
                          "merge the parts of one split (--part 1/N ... N/N), each once")
    evaluation.per_case = per_case.sort_values(["case", "label"], kind="stable").reset_index(drop=True)
    add_statistics(evaluation, table, by=by, reference=reference, resamples=resamples, ci_method=ci_method, seed=seed)
    evaluation.settings.update({"merged_from": [str(f) for f in folders], "bootstrap_resamples": resamples,
                                "ci_method": ci_method, "seed": seed, "by": list(by)})
    return evaluation
