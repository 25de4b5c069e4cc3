"""Active-learning refinement (the THA paper's AAR): rank pseudo-labels by model disagreement, merge corrections.

Uncertainty of a case (or of one axial slice) is ``1 / (Dice(prediction, pseudo-label) + eps)``
(the paper's eq. 6). With several labels the Dice is the mean over the labels present in
either map (a label absent from both is skipped; no label at all counts as agreement, Dice 1).

``rank_cases`` scores every case of two folders paired by case name (``case.nii.gz`` ->
``case``) and :func:`write_ranking` writes ``ranking.csv`` (all cases, most uncertain
first), ``slices.csv`` (per axial slice, when asked), ``topk.csv`` and ``to_correct/``
(``labels/`` the top-K pseudo-labels, ``images/`` their CTs when an image folder is given)
ready for manual correction. :func:`merge_labels` puts the corrected files back: the output
folder gets every case (corrected where a correction exists, the pseudo-label otherwise)
and ``provenance.csv`` recording where each label came from, its SHA-256, and the version
of the merge it last changed in; ``history.csv`` keeps every earlier version's rows.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from radseg.errors import ReadError, WriteError
from radseg.evaluate.overlap import dice
from radseg.io.atomic import atomic_path, full_suffix, strip_suffix, write_text_atomic

__all__ = ["uncertainty", "slice_uncertainties", "rank_cases", "write_ranking", "merge_labels",
           "RankResult", "MergeResult"]

EPS = 1e-6


def _mean_dice(pred: np.ndarray, pseudo: np.ndarray, labels: Sequence[int] | None) -> float:
    values = labels if labels is not None else sorted((set(np.unique(pred)) | set(np.unique(pseudo))) - {0})
    # a label absent from both maps is NaN under the default policy and skipped; none left is agreement
    scores = [dice(pred == value, pseudo == value, empty="nan") for value in values]
    scores = [score for score in scores if not np.isnan(score)]
    return float(np.mean(scores)) if scores else 1.0


def uncertainty(pred: np.ndarray, pseudo: np.ndarray, *, labels: Sequence[int] | None = None, eps: float = EPS) -> tuple[float, float]:
    """``(uncertainty, dice)`` of one case: ``1 / (mean Dice + eps)`` over ``labels`` (default: all present)."""
    pred, pseudo = np.asarray(pred), np.asarray(pseudo)
    if pred.shape != pseudo.shape:
        raise ValueError(f"prediction {pred.shape} and pseudo-label {pseudo.shape} differ in shape")
    score = _mean_dice(pred, pseudo, labels)
    return 1.0 / (score + eps), score


def slice_uncertainties(pred: np.ndarray, pseudo: np.ndarray, *, axis: int = 0,
                        labels: Sequence[int] | None = None, eps: float = EPS) -> list[tuple[int, float, float]]:
    """``(slice index, uncertainty, dice)`` for every slice along ``axis`` with foreground in either map."""
    rows = []
    for index in range(pred.shape[axis]):
        a, b = np.take(pred, index, axis=axis), np.take(pseudo, index, axis=axis)
        if a.any() or b.any():
            rows.append((index, *uncertainty(a, b, labels=labels, eps=eps)))
    return rows


@dataclass
class RankResult:
    cases: "object"  # pandas DataFrame: case, dice, uncertainty, rank, prediction, pseudo
    slices: "object | None" = None  # pandas DataFrame per slice, or None
    failed: list[tuple[str, str]] = field(default_factory=list)
    only_prediction: list[Path] = field(default_factory=list)
    only_pseudo: list[Path] = field(default_factory=list)

    def top(self, k: int):
        return self.cases.head(k)


def _axial_axis(image) -> int:
    """The array axis closest to the patient z axis (slices of a 3D volume), or 0."""
    if image.ndim != 3:
        return 0
    return int(np.argmax(np.abs(image.direction[2])))


def rank_cases(pred_dir: str | Path, pseudo_dir: str | Path, *, labels: Sequence[int] | None = None,
               per_slice: bool = False, eps: float = EPS) -> RankResult:
    """Score every case present in both folders; most uncertain first. Unreadable pairs are reported, not fatal."""
    import pandas as pd

    from radseg.evaluate.cases import pair_cases

    pairing = pair_cases(pred_dir, pseudo_dir)
    rows, slice_rows, failed = [], [], []
    for case in pairing.cases():
        try:
            pred, pseudo = case.labels["prediction"], case.labels["truth"]
            value, score = uncertainty(pred.array, pseudo.array, labels=labels, eps=eps)
        except (ReadError, ValueError) as exc:
            failed.append((case.case_id, str(exc)))
            case.unload()
            continue
        rows.append({"case": case.case_id, "dice": score, "uncertainty": value,
                     "prediction": str(case.sources["prediction"]), "pseudo": str(case.sources["truth"])})
        if per_slice:
            axis = _axial_axis(pseudo)
            for index, s_value, s_score in slice_uncertainties(pred.array, pseudo.array, axis=axis, labels=labels, eps=eps):
                slice_rows.append({"case": case.case_id, "axis": axis, "slice": index, "dice": s_score,
                                   "uncertainty": s_value})
        case.unload()
    table = pd.DataFrame(rows, columns=["case", "dice", "uncertainty", "prediction", "pseudo"])
    # ties (equal Dice) keep case-name order so a rerun ranks identically
    table = table.sort_values(["uncertainty", "case"], ascending=[False, True], kind="mergesort").reset_index(drop=True)
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    slices = None
    if per_slice:
        slices = pd.DataFrame(slice_rows, columns=["case", "axis", "slice", "dice", "uncertainty"])
        slices = slices.sort_values(["uncertainty", "case", "slice"], ascending=[False, True, True], kind="mergesort").reset_index(drop=True)
    return RankResult(cases=table, slices=slices, failed=failed, only_prediction=pairing.only_prediction,
                      only_pseudo=pairing.only_truth)


def _copy_atomic(source: Path, target: Path) -> None:
    if source.is_dir():
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(source, target)
        return
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)


def _images_by_case(images_dir: Path) -> dict[str, Path]:
    if not images_dir.is_dir():
        raise ReadError(images_dir, "not a folder")
    found = {}
    for path in sorted(images_dir.iterdir()):
        if path.name.startswith("."):
            continue
        name = strip_suffix(path)
        for suffix in ("_0000",):  # nnU-Net image naming: case_0000.nii.gz is the case's first channel
            if name.endswith(suffix) and name[: -len(suffix)] not in found:
                found[name[: -len(suffix)]] = path
        found.setdefault(name, path)
    return found


def write_ranking(result: RankResult, out_dir: str | Path, *, k: int, images_dir: str | Path | None = None) -> dict[str, Path]:
    """Write ``ranking.csv``, ``topk.csv``, ``slices.csv`` (if scored) and ``to_correct/`` with the top ``k`` cases."""
    if k < 1:
        raise ValueError(f"-k must be at least 1, got {k}")
    out = Path(out_dir)
    paths = {"ranking": out / "ranking.csv", "topk": out / "topk.csv", "to_correct": out / "to_correct"}
    write_text_atomic(paths["ranking"], result.cases.to_csv(index=False))
    top = result.top(k)
    write_text_atomic(paths["topk"], top.to_csv(index=False))
    if result.slices is not None:
        paths["slices"] = out / "slices.csv"
        write_text_atomic(paths["slices"], result.slices.to_csv(index=False))
    images = _images_by_case(Path(images_dir)) if images_dir is not None else {}
    for row in top.itertuples():
        pseudo = Path(row.pseudo)
        _copy_atomic(pseudo, paths["to_correct"] / "labels" / pseudo.name)
        if row.case in images:
            _copy_atomic(images[row.case], paths["to_correct"] / "images" / images[row.case].name)
    return paths


@dataclass
class MergeResult:
    out_dir: Path
    version: int
    manual: list[str] = field(default_factory=list)
    pseudo: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def merge_labels(pseudo_dir: str | Path, corrected_dir: str | Path, out_dir: str | Path) -> MergeResult:
    """Every case of ``pseudo_dir`` into ``out_dir/labels``, replaced by its correction when one exists.

    A correction must be a readable label map on its pseudo-label's grid; a bad one is
    reported and the pseudo-label kept. Rerunning into the same ``out_dir`` makes a new version.
    """
    import pandas as pd

    from radseg.evaluate.cases import load_pair, pair_cases

    out = Path(out_dir)
    if out.resolve() in (Path(pseudo_dir).resolve(), Path(corrected_dir).resolve()):
        raise WriteError(out, "the output folder must differ from the pseudo-label and corrected folders")
    pairing = pair_cases(corrected_dir, pseudo_dir)
    pseudo = {case: p for case, _, p in pairing.pairs} | {strip_suffix(p): p for p in pairing.only_truth}
    corrected = {case: c for case, c, _ in pairing.pairs} | {strip_suffix(c): c for c in pairing.only_prediction}
    provenance_path, history_path = out / "provenance.csv", out / "history.csv"
    previous = pd.read_csv(provenance_path) if provenance_path.exists() else None
    version = int(previous["version"].max()) + 1 if previous is not None and len(previous) else 1
    last = {} if previous is None else {r.case: r for r in previous.itertuples()}
    result = MergeResult(out_dir=out, version=version)
    rows = []
    for case in sorted(pseudo.keys() | corrected.keys()):
        source, origin = "pseudo", pseudo.get(case)
        if case in corrected:
            try:
                if case in pseudo:
                    load_pair(corrected[case], pseudo[case])  # readable, and on the pseudo-label's grid
                source, origin = "manual", corrected[case]
            except (ReadError, ValueError) as exc:
                result.failed.append((case, f"{exc}; kept the pseudo-label"))
        if origin is None:
            continue
        target = out / "labels" / f"{case}{full_suffix(origin)}" if origin.is_file() else out / "labels" / case
        _copy_atomic(origin, target)
        sha = _sha256(target)
        before = last.get(case)
        # a new file or a new source (a correction identical to its pseudo-label is still a human's)
        fresh = before is None or before.sha256 != sha or before.source != source
        changed = version if fresh else int(before.changed_in_version)
        rows.append({"case": case, "source": source, "origin": str(origin), "file": str(target.relative_to(out)),
                     "sha256": sha, "version": version, "changed_in_version": changed})
        (result.manual if source == "manual" else result.pseudo).append(case)
    table = pd.DataFrame(rows, columns=["case", "source", "origin", "file", "sha256", "version", "changed_in_version"])
    history = pd.concat([pd.read_csv(history_path), table]) if history_path.exists() else table
    write_text_atomic(history_path, history.to_csv(index=False))
    write_text_atomic(provenance_path, table.to_csv(index=False))
    return result
