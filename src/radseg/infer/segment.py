"""``radseg segment``: a model over a file or a folder, outputs through the shared label writers.

Input: one file, a DICOM series folder, or a folder of anything readable (searched
recursively): DICOM files are grouped into series (a CT series is one item, each
radiograph its own), other images are one item each. Every item gets a case name (file
stem, or the series' folder name) and its output in ``OUT`` by ``output_type``:

============  ============================================================  ================
-ot           output                                                        writer kind
============  ============================================================  ================
png           ``OUT/<case>.png`` label map (8/16-bit, names in text chunk)  ``png``
png-classes   ``OUT/<case>/<class>.png`` + classes.json (CXAS layout)       ``png-classes``
jpg           ``OUT/<case>.jpg`` overlay preview (3D: the fullest slice)    ``overlay``
overlay       ``OUT/<case>.jpg`` overlay preview, for any model             ``overlay``
npy / npz     ``OUT/<case>.npy`` (+ .json) / ``OUT/<case>.npz``             ``npy`` / ``npz``
json          ``OUT/<case>.json`` COCO RLE                                  ``coco``
nifti         ``OUT/<case>.nii.gz``                                         ``nifti``
dicom-seg     ``OUT/<case>.dcm`` referencing the source DICOM               ``dicom-seg``
============  ============================================================  ================

A **multi-label model** (classes overlap, as in CXAS) follows CXAS's meaning of its output
types, since one label map cannot hold overlapping classes: ``png`` writes the per-class PNG
folder ``OUT/<case>/<class>.png`` (as ``png-classes``) and ``jpg`` the same masks as per-class
JPEGs; ``overlay`` gives the preview. ``npy``/``npz`` hold the ``[classes, H, W]`` bool stack
(CXAS's npy), ``json`` COCO RLE per class, ``dicom-seg`` one segment per class (overlaps kept);
``nifti`` needs classes that do not overlap.

A model whose manifest names a quality check (``quality_check``, see :mod:`radseg.infer.quality`)
gets one row per image in ``OUT/quality.csv``; implausible images are listed in the report.

A model with one finding (a fracture model) scores each image as ``radseg evaluate-detection``
does (the highest 5-pixel window-averaged probability): ``OUT/image_scores.csv`` has one row per
image (``case, input, image_score, threshold, flagged``). ``threshold`` is the model's operating
point (chosen on training data, see :func:`radseg.workflows.detection.save_operating_point`) and
``flagged`` is ``image_score >= threshold``; both are empty for a model that carries none.

A finished case leaves ``OUT/.radseg-segment/<type>/<case>.json`` (model hash, output type, the
settings that change the output: backend, TTA, overlap, multi-label threshold, clean-ups, DICOM read
options; files); a rerun skips it (resume) unless ``overwrite`` or one of those differs, which redoes
the case and names what changed (``SegmentReport.redone``; files of the old run that the new one does
not write are removed). A state file without settings (written by an older radseg) is redone. A bad
item is reported and the rest go on; ``-ot dicom-seg`` on a non-DICOM item is refused before the
model runs. Warnings of a writer (a DICOM-SEG whose source had no UIDs) are in ``SegmentReport.warnings``.
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable

import numpy as np

from radseg.errors import ReadError, RadsegError
from radseg.image import Image
from radseg.infer.quality import assess
from radseg.infer.segment_tables import write_quality, write_scores
from radseg.io.atomic import strip_suffix, write_text_atomic
from radseg.io.label_formats import LABEL_WRITERS
from radseg.registry import Registry
from radseg.scale.engine import EngineOptions, map_jobs_with_state
from radseg.scale.parts import select_part, unique_key

__all__ = ["segment", "SegmentReport", "OUTPUT_TYPES", "list_inputs"]

#: ``segment -ot`` name -> (file suffix, label writer kind in :data:`LABEL_WRITERS`).
OUTPUT_TYPES: Registry[tuple[str, str]] = Registry("output type")
for _name, _suffix, _kind in (("png", ".png", "png"), ("png-classes", "", "png-classes"), ("jpg", ".jpg", "jpg"),
                              ("overlay", ".jpg", "overlay"), ("npy", ".npy", "npy"), ("npz", ".npz", "npz"),
                              ("json", ".json", "coco"), ("nifti", ".nii.gz", "nifti"),
                              ("dicom-seg", ".dcm", "dicom-seg")):
    if _kind not in LABEL_WRITERS:
        raise ValueError(LABEL_WRITERS.unknown_message(_kind))
    OUTPUT_TYPES.register(_name, (_suffix, _kind))
STATE_DIR = ".radseg-segment"


@dataclass
class SegmentReport:
    written: list[Path] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    flagged: list[tuple[str, str]] = field(default_factory=list)  # (case, why): implausible, see quality.csv
    scored: int = 0  # images with an image score in image_scores.csv (a one-finding model)
    screened_positive: int = 0  # of those, at or above the model's operating point
    operating_point: dict[str, Any] | None = None  # the model's, when it carries one
    redone: list[tuple[str, str]] = field(default_factory=list)  # (case, what changed since its last run)
    warnings: list[tuple[str, str]] = field(default_factory=list)  # (item, warning of its writer)


@dataclass
class _Item:
    case: str
    label: str
    load: Callable[[], Image]


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._")[:80] or "case"


def list_inputs(source: Path, report: SegmentReport, read_options: dict[str, Any] | None = None) -> list[_Item]:
    """The items of ``source``: one per readable image or DICOM series."""
    from radseg.io import detect_format, read, series_options
    from radseg.io.dicom import read_series
    from radseg.io.dicom_scan import scan

    options = dict(read_options or {})
    if not source.exists():
        raise ReadError(source, "no such file or folder")
    if source.is_file():
        return [_Item(_safe(strip_suffix(source)), str(source), lambda: read(source, **_dicom_only(source, options)))]
    found = scan(source)
    for path, problem in found.unreadable:
        report.failed.append((str(path), problem))
    items, used = [], set()
    dicom_options = series_options(options)
    per_folder: dict[Path, int] = {}
    for series in found.series:
        per_folder[series.files[0].parent] = per_folder.get(series.files[0].parent, 0) + 1
    for series in found.series:
        folder = series.files[0].parent
        if series.kind == "radiograph" or len(series.files) == 1 and series.kind != "slices":
            name = strip_suffix(series.files[0])
        else:
            name = folder.name if folder != source or per_folder[folder] == 1 else source.name
            if per_folder[folder] > 1:
                name += f"_{series.number if series.number is not None else series.key[-6:]}"
        label = str(series.files[0] if len(series.files) == 1 else folder)
        items.append(_Item(unique_key(_safe(name), used), label, lambda s=series: read_series(s, **dicom_options)))
    for path in found.non_dicom:
        try:
            if detect_format(path) == "dicom":
                continue
        except ReadError:
            continue  # not an image (notes, listings)
        items.append(_Item(unique_key(_safe(strip_suffix(path)), used), str(path), lambda p=path: read(p)))
    return items


def catalog_items(entries, report: SegmentReport, read_options: dict[str, Any] | None = None) -> list[_Item]:
    """The items of catalog rows (:func:`radseg.scale.catalog_read.catalog_entries`): the case is the row's key,
    the files are the ones the catalog lists (no folder is walked); unreadable rows are failures."""
    from radseg.io import series_options

    dicom_options = series_options(read_options)
    items = []
    for entry in entries:
        if entry.kind == "unreadable":
            report.failed.append((entry.label, entry.problems or "unreadable (as indexed)"))
        else:
            items.append(_Item(_safe(entry.key), entry.label, partial(entry.load, **dicom_options)))
    return items


def _dicom_only(path: Path, options: dict[str, Any]) -> dict[str, Any]:
    from radseg.io import detect_format

    return options if options and detect_format(path) == "dicom" else {}


def _fullest_slice(image: Image, labels: Image) -> tuple[Image, Image]:
    """The axial slice with the most labelled voxels, as 2D images (for a 3D overlay preview)."""
    counts = (labels.array.reshape(labels.shape[0], -1) != 0).sum(axis=1)
    k = int(np.argmax(counts))
    spacing = image.spacing[1:]
    return (Image(image.array[k], spacing=spacing, metadata=image.metadata),
            Image(labels.array[k], spacing=spacing, metadata=labels.metadata))


#: CXAS's meaning of -ot png / jpg for a multi-label model: one image per class.
_MULTILABEL_KINDS = {"png": "png-classes", "jpg": "jpg-classes"}


def write_output(image: Image, labels: Image, out: Path, case: str, output_type: str) -> list[Path]:
    """Write one case's prediction; returns the files written."""
    from radseg.io import write

    from radseg.labels import is_multilabel

    suffix, kind = OUTPUT_TYPES[output_type]
    if is_multilabel(labels):
        kind = _MULTILABEL_KINDS.get(kind, kind)
    if kind in ("png-classes", "jpg-classes"):
        return [Path(p) for p in write(labels, out, kind=kind, case=case)]
    target = out / f"{case}{suffix}"
    if kind in ("jpg", "overlay"):
        if labels.ndim == 3:
            image, labels = _fullest_slice(image, labels)
        return [Path(write(labels, target, kind=kind, image=image))]
    if kind == "coco":
        sources = image.metadata.get("source_files") or [f"{case}.png"]
        return [Path(write(labels, target, kind=kind, file_name=Path(sources[0]).name))]
    result = write(labels, target, kind=kind)
    return [Path(p) for p in (result if isinstance(result, (list, tuple)) else [result])]


def segment(source: str | Path | None, output: str | Path, *, predictor, output_type: str = "png", overwrite: bool = False,
            read_options: dict[str, Any] | None = None, on_progress: Callable[[str], None] | None = None,
            jobs_total: Callable[[int], None] | None = None, part: tuple[int, int] | None = None,
            engine: EngineOptions | None = None, load_predictor: Callable[[], Any] | None = None,
            items: list[_Item] | None = None) -> SegmentReport:
    """Run ``predictor`` (a loaded :class:`~radseg.infer.predictor.Predictor`) over ``source``
    (or over ``items``, e.g. a catalog's rows from :func:`catalog_items`).

    ``part=(K, N)`` keeps part K of N of the items (by case name, :mod:`radseg.scale.parts`).
    ``engine`` (default local: this process) may name Ray: images are then read on Ray's CPU
    workers and predicted and written by an actor pool whose actors each call ``load_predictor()``
    once; the outputs, state files and report are the same as the local engine's."""
    if output_type not in OUTPUT_TYPES:
        raise RadsegError(OUTPUT_TYPES.unknown_message(output_type))
    engine = engine or EngineOptions()
    if engine.engine != "local" and load_predictor is None:
        raise RadsegError("segment on another engine needs load_predictor (each worker loads the model once)")
    out = Path(output)
    if out.exists() and not out.is_dir():
        raise RadsegError(f"{out}: the output must be a folder (it is a file)")
    report = SegmentReport()
    if items is None:
        items = list_inputs(Path(source), report, read_options)
    items = select_part(items, part, key=lambda item: item.case)
    if jobs_total:
        jobs_total(len(items))
    digest = predictor.bundle.digest
    settings = json.loads(json.dumps({**predictor.settings, "read_options": dict(sorted((read_options or {}).items()))},
                                     default=str))  # as it reads back from the state file
    check = (predictor.bundle.manifest or {}).get("quality_check")
    quality_rows: dict[str, dict[str, Any]] = {}
    score_rows: dict[str, dict[str, Any]] = {}
    jobs = []
    for item in items:
        state = out / STATE_DIR / output_type / f"{item.case}.json"
        record, changed = (None, None) if overwrite else _finished(state, digest, output_type, settings,
                                                                       getattr(predictor, "scores_images", False))
        if changed:
            report.redone.append((item.case, changed))
        if record is None:
            jobs.append(_Job(item, state, out, output_type, {"model": digest, "settings": settings}, check,
                             predictor.bundle.preprocessing))
            continue
        report.kept.append(item.case)
        if on_progress:
            on_progress(item.case)
        if record.get("image_score") is not None:
            score_rows[item.case] = {"case": item.case, "input": item.label, "image_score": record["image_score"]}
        if record.get("quality"):  # a resumed case keeps its flag
            quality_rows[item.case] = record["quality"]
            if str(record["quality"].get("plausible")) == "False":
                report.flagged.append((item.case, record["quality"].get("reasons", "")))
    setup = load_predictor if engine.engine != "local" else (lambda: predictor)
    for _, result in map_jobs_with_state(setup, _predict_and_write, jobs, engine, prepare=_read_job):
        if on_progress:
            on_progress(result["case"])
        if "error" in result:
            report.failed.append(result["error"])
            continue
        report.written.extend(result["files"])
        report.warnings.extend(result["warnings"])
        if result.get("image_score") is not None:
            score_rows[result["case"]] = {"case": result["case"], "input": result["input"],
                                          "image_score": result["image_score"]}
        if result["quality"] is not None:
            quality_rows[result["case"]] = result["quality"]
            if result["flagged"]:
                report.flagged.append((result["case"], result["flagged"]))
    write_quality(out, quality_rows)  # this run's items only, rebuilt from their state records
    report.scored, report.screened_positive, report.operating_point = write_scores(
        out, score_rows, predictor.bundle.manifest)
    if report.scored:
        from radseg.evaluate.operating_point import operating_point_mismatch, unusable_operating_point

        why = unusable_operating_point(predictor.bundle.manifest)  # a hand-edited manifest: say so, not "none"
        if why:
            report.warnings.append(("image_scores.csv", why))
        mismatch = report.operating_point and operating_point_mismatch(report.operating_point, tta=predictor.tta)
        if mismatch:  # the flags are made at a threshold chosen on other scores
            report.warnings.append(("image_scores.csv", f"{mismatch}: its sensitivity and specificity do not carry over"))
    return report


@dataclass
class _Job:
    """One case to segment: the item, where its state record goes, and what the record must say."""

    item: _Item
    state: Path
    out: Path
    output_type: str
    record: dict[str, Any]  # model digest and settings, as the state file stores them
    check: Any  # the model's quality check (manifest), or None
    preprocessing: Any = None  # the model's Preprocessing: the reader prepares the network input too
    image: Image | None = None  # filled by _read_job
    prepared: Any = None  # (network input, GridMap), filled by _read_job


def _failure(label: str, exc: Exception) -> tuple[str, str]:
    """(item, problem), without repeating the item when the error already names it."""
    if isinstance(exc, RadsegError):
        same = str(getattr(exc, "path", "")) == label
        return label, getattr(exc, "problem", str(exc)) if same else str(exc)
    return label, f"{type(exc).__name__}: {exc}"


def _read_job(job: _Job) -> _Job | dict[str, Any]:
    """Read and decode the item's image and prepare the network input (a Ray CPU task, or inline):
    the job with both, or an error record."""
    from radseg.infer.predictor import prepare_input

    try:
        image = job.item.load()
        if job.output_type == "dicom-seg" and image.metadata.get("format") != "dicom":
            # refuse before the network runs: a SEG must reference DICOM source images
            raise ReadError(job.item.label, f"dicom-seg needs DICOM input; this is {image.metadata.get('format', 'not DICOM')} "
                                            "(choose -ot png, npz, json or nifti)")
        job.prepared = prepare_input(image, job.preprocessing)
    except Exception as exc:  # noqa: BLE001 - a batch reports the item and goes on
        return {"case": job.item.case, "error": _failure(job.item.label, exc)}
    job.image = image
    return job


def _predict_and_write(predictor, job: _Job | dict[str, Any]) -> dict[str, Any]:
    """Predict one read image, write its outputs and then its state record (atomically, in that order)."""
    if isinstance(job, dict):
        return job  # the read failed
    item, image = job.item, job.image
    try:
        labels = predictor.predict(image, job.prepared)
        job.prepared = None  # the network input is not needed any more
        quality = assess(labels, job.check)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            files = write_output(image, labels, job.out, item.case, job.output_type)
        _remove_stale(job.state, files, job.out)
        row = quality.row(item.case) if quality is not None else None
        score = labels.metadata.get("image_score")
        write_text_atomic(job.state, json.dumps({
            "input": item.label, **job.record, "output_type": job.output_type, "quality": row,
            "image_score": score, "files": [str(f) for f in files]}, indent=1))
    except Exception as exc:  # noqa: BLE001 - a batch reports the item and goes on
        return {"case": item.case, "error": _failure(item.label, exc)}
    return {"case": item.case, "input": item.label, "files": files, "quality": row, "image_score": score,
            "flagged": "; ".join(quality.reasons) if quality is not None and not quality.ok else "",
            "warnings": [(item.label, str(w.message).removeprefix(f"{item.label}: ")) for w in caught]}


def _finished(state: Path, digest: str | None, output_type: str, settings: dict[str, Any],
              scored: bool = False) -> tuple[dict[str, Any] | None, str | None]:
    """(the state record of a case finished with this model and these settings, else None;
    what differs from the last run when it must be redone for that, else None)."""
    if not state.exists():
        return None, None
    try:
        record = json.loads(state.read_text())
        if not isinstance(record, dict):
            raise ValueError
    except ValueError:
        return None, "unreadable state file"
    changed = []
    if record.get("model") != digest:
        changed.append("model")
    if record.get("output_type") != output_type:
        changed.append("output type")
    old = record.get("settings")
    if not isinstance(old, dict):
        changed.append("settings not recorded (older radseg)")
    elif scored and "image_score" not in record:
        changed.append("image score not recorded (older radseg)")
    else:
        changed += [key for key in sorted(set(old) | set(settings)) if old.get(key) != settings.get(key)]
    if changed:
        return None, ", ".join(changed)
    if not all(Path(f).exists() for f in record.get("files", [])):
        return None, None  # an output was deleted: redo quietly
    return record, None


def _remove_stale(state: Path, files: list[Path], out: Path) -> None:
    """Delete the files of the case's previous run (inside ``out``) that this run did not rewrite."""
    try:
        old = json.loads(state.read_text()).get("files", []) if state.exists() else []
    except (ValueError, AttributeError):
        return
    keep, root = {Path(f).resolve() for f in files}, out.resolve()
    for name in old:
        path = Path(name)
        if path.resolve() not in keep and path.resolve().is_relative_to(root) and path.is_file():
            path.unlink()
