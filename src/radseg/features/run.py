"""``radseg features``: measure a label file or a folder of them into one long CSV.

One row per case x structure x measurement: ``case, set, structure, measurement, value, unit,
status, note``. ``unit`` is honest: a label file without a physical pixel size (PNG/JPEG, a
radiograph without spacing tags) and no ``--image`` that has one gives lengths in ``px``, areas
in ``px2``, volumes in ``voxels``, and measurement names ending ``_px`` instead of ``_mm``
(``bbox_row_size_px``); the note says which file has no pixel size. A float label map with
non-integer values (a probability map) is refused, naming the file. ``status`` is ``ok``, ``not measured`` (value empty, the note says why: a
missing structure, a shaft out of the picture ...) or ``error`` (the case could not be read or
measured; the other cases are still measured). Cases are file names without the format suffix
(a CXAS per-class PNG folder counts as one case); images pair with labels by that name.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from radseg.errors import RadsegError, ReadError
from radseg.io.atomic import full_suffix, strip_suffix, write_text_atomic
from radseg.system import usable_cores

__all__ = ["COLUMNS", "FeatureRun", "extract_features", "find_cases"]

COLUMNS = ("case", "set", "structure", "measurement", "value", "unit", "status", "note")
LABEL_SUFFIXES = {".nii", ".nii.gz", ".png", ".npy", ".npz", ".dcm", ".json", ".mha", ".nrrd", ".tif", ".tiff"}
_LABEL_READER_SUFFIXES = {".nii", ".nii.gz", ".png", ".npy", ".npz", ".json", ".dcm"}


@dataclass
class FeatureRun:
    """What a run made: the CSV rows, the overlays, and the cases that failed (with why)."""

    output: Path
    rows: list[dict[str, Any]] = field(default_factory=list)
    overlays: list[Path] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)


_PREFERENCE = (".nii.gz", ".nii", ".npz", ".npy", ".mha", ".nrrd", ".png", "", ".dcm", ".json", ".tif", ".tiff")


def find_cases(path: str | Path, *, images: bool = False, duplicates: list | None = None) -> dict[str, Path]:
    """``{case: path}`` for a label (or image) file, or every one in a folder.

    With ``images=True`` sub-folders count as cases too (DICOM series folders). When one case
    is stored twice (``case.npz`` beside the CXAS folder ``case/``), the more direct format wins
    (NIfTI, NPZ, NPY, MHA/NRRD, PNG, folder, ...) and the other is appended to ``duplicates``.
    """
    path = Path(path)
    if not path.exists():
        raise ReadError(path, "no such file or folder")
    from radseg.io.label_png import is_class_folder

    if path.is_file() or is_class_folder(path):
        return {strip_suffix(path): path}
    found: dict[str, Path] = {}
    for item in sorted(path.iterdir()):
        if item.name.startswith("."):
            continue
        if item.is_dir():
            if not (images or is_class_folder(item)):  # a CXAS case folder, radseg's or CXAS's own
                continue
        else:
            suffix = full_suffix(item)
            if not images and suffix not in LABEL_SUFFIXES:
                continue
            if suffix == ".json" and (item.with_suffix(".npy").exists() or item.with_suffix(".npz").exists()):
                continue  # the sidecar of a .npy, not a COCO file
        name = strip_suffix(item) if item.is_file() else item.name
        if name in found:
            rank = [_rank(found[name]), _rank(item)]
            keep, drop = (found[name], item) if rank[0] <= rank[1] else (item, found[name])
            found[name] = keep
            if duplicates is not None:
                duplicates.append((name, f"{drop.name} ignored: {keep.name} holds the same case"))
            continue
        found[name] = item
    return found


def _rank(path: Path) -> int:
    suffix = "" if path.is_dir() else full_suffix(path)
    return _PREFERENCE.index(suffix) if suffix in _PREFERENCE else len(_PREFERENCE)


def _read_labels(path: Path):
    import radseg.io as rio

    if path.is_dir() or full_suffix(path) in _LABEL_READER_SUFFIXES:
        return rio.read_labels(path)
    return rio.read(path)


def _measure_case(job: tuple[str, str, str | None, str, str | None]) -> dict[str, Any]:
    """Worker: one case's rows (or its error, never raised: one bad case must not stop a batch)."""
    import radseg.io as rio
    from radseg.features import measure, prepare
    from radseg.features.overlay import write_feature_overlay

    case, labels_path, image_path, feature_set, overlay_dir = job
    try:
        labels = _read_labels(Path(labels_path))
        image = rio.read(image_path) if image_path else None
        labels, image = prepare(labels, feature_set, image=image)
        if image is not None and image.shape != labels.shape:
            raise ReadError(Path(image_path), f"image shape {image.shape} differs from the labels' {labels.shape}")
        source = labels_path if image_path is None else f"{labels_path} nor {image_path}"
        measurements = measure(labels, feature_set, image=image, source=source)
        rows = [{"case": case, "set": feature_set, **m.row()} for m in measurements]
        overlay = None
        if overlay_dir:
            overlay = str(write_feature_overlay(labels, measurements, Path(overlay_dir) / f"{case}.png",
                                                image=image, title=f"{case} ({feature_set})"))
        return {"case": case, "rows": rows, "overlay": overlay}
    except RadsegError as exc:  # names the file already
        return {"case": case, "error": str(exc)}
    except ValueError as exc:
        return {"case": case, "error": f"{labels_path}: {exc}"}
    except Exception as exc:  # a bug or an odd file: report it with the case, keep the batch going
        return {"case": case, "error": f"{labels_path}: {type(exc).__name__}: {exc}"}


def extract_features(
    labels: str | Path,
    *,
    feature_set: str,
    output: str | Path,
    image: str | Path | None = None,
    overlay_dir: str | Path | None = None,
    workers: int | None = 1,
    on_total: Callable[[int], None] | None = None,
    on_progress: Callable[[str], None] | None = None,
) -> FeatureRun:
    """Measure every case of ``labels`` (file or folder) with ``feature_set`` and write ``output`` CSV."""
    import pandas as pd

    from radseg.features import FEATURE_SETS

    FEATURE_SETS[feature_set]  # a wrong name fails here, before any work, with the valid names
    duplicates: list[tuple[str, str]] = []
    cases = find_cases(labels, duplicates=duplicates)
    if not cases:
        raise ReadError(Path(labels), "no label files found (NIfTI, PNG, NPY/NPZ, COCO JSON, DICOM-SEG, MHA/NRRD)")
    run = FeatureRun(output=Path(output), warnings=duplicates)
    images: dict[str, Path] = {}
    if image is not None:
        image = Path(image)
        if Path(labels).is_file() or (Path(labels) / "classes.json").exists():
            images = {name: image for name in cases}  # one case: the image file or DICOM folder
        elif image.is_dir():
            images = find_cases(image, images=True, duplicates=run.warnings)
        else:
            raise ReadError(image, "LABELS is a folder, so --image must be a folder of images named like the labels")
        for name in cases:
            if name not in images:
                run.warnings.append((name, "no image with this name: measured without one"))
    jobs = [(name, str(path), str(images[name]) if name in images else None, feature_set,
             str(overlay_dir) if overlay_dir else None) for name, path in cases.items()]
    if on_total:
        on_total(len(jobs))
    workers = max(1, min(workers or usable_cores(), len(jobs)))
    if workers == 1:
        outcomes = map(_measure_case, jobs)
    else:
        pool = ProcessPoolExecutor(max_workers=workers)
        outcomes = pool.map(_measure_case, jobs, chunksize=1)
    try:
        for outcome in outcomes:
            if "error" in outcome:
                run.failed.append((outcome["case"], outcome["error"]))
                run.rows.append({"case": outcome["case"], "set": feature_set, "structure": "", "measurement": "",
                                 "value": None, "unit": "", "status": "error", "note": outcome["error"]})
            else:
                run.rows += outcome["rows"]
                if outcome["overlay"]:
                    run.overlays.append(Path(outcome["overlay"]))
            if on_progress:
                on_progress(outcome["case"])
    finally:
        if workers > 1:
            pool.shutdown()
    table = pd.DataFrame(run.rows, columns=list(COLUMNS))
    write_text_atomic(run.output, table.to_csv(index=False, float_format="%.6g"))
    return run
