"""``radseg convert``: any readable input to NIfTI (or another format by suffix), one file per series.

* file -> file: read, write by the output suffix.
* folder -> file: the folder must hold one series (or ``series=`` picks one).
* folder -> folder: every series (and every non-DICOM image) becomes
  ``OUT/<relative folder>/<series number>_<description>_<id>.nii.gz`` with a JSON sidecar of
  acquisition metadata that carries no patient identifiers, UIDs or dates.
* ``select=FILE.jsonl`` (HemSeg-200 style): each line names a scan and the slices
  ``ID_<slice>.dcm`` that make it; each scan becomes ``OUT/<scan>.nii.gz``.

Batch rules: a bad item is reported and the rest still convert; an output that already
exists is kept (resume) unless ``overwrite``; every file is written atomically. The image is
written first and its sidecar second, so a sidecar never describes a missing image; an
image whose sidecar is missing (a run killed between the two) is redone on resume, and the
hidden ``.partial`` files a killed run left beside an output are removed before it is written.
Files that are not regular files (FIFOs, devices) are never opened: they are named as warnings.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from radseg.errors import ReadError, RadsegError
from radseg.image import Image
from radseg.io import IMAGE_WRITERS, detect_format, read, series_options, write
from radseg.io.atomic import full_suffix, remove_stale_partials, write_text_atomic
from radseg.scale.engine import EngineOptions, map_jobs
from radseg.scale.parts import select_part

ProgressCallback = Callable[[str], None]


@dataclass
class ConvertReport:
    """What a conversion did: written outputs, kept (already existing) outputs and failures."""

    written: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (item, problem)
    warnings: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed


@dataclass
class _Job:
    """One output to make: a name and a function that reads its image."""

    name: str
    output: Path
    load: Callable[..., Image]
    dicom: bool = False  # a DICOM item gets a JSON sidecar
    sinks: bool = False  # ``load(sink=...)`` takes a NiftiSink: a .nii output is then written slice by slice


def convert(
    source: str | Path,
    target: str | Path,
    *,
    select: str | Path | None = None,
    suffix: str = ".nii.gz",
    overwrite: bool = False,
    sidecar: bool = True,
    on_progress: ProgressCallback | None = None,
    jobs_total: Callable[[int], None] | None = None,
    part: tuple[int, int] | None = None,
    engine: EngineOptions | None = None,
    entries: list | None = None,
    **read_options: Any,
) -> ConvertReport:
    """Convert ``source`` to ``target``; see the module docstring for the modes.

    ``read_options`` go to :func:`radseg.io.read` (``series``, ``on_gap``, ``tilt``,
    ``include_derived``, ``invert_monochrome1``). ``part=(K, N)`` converts part K of N of the
    items (by output path); ``engine`` runs the items in this process (local, the default) or on Ray.
    ``entries`` (rows of a ``radseg index`` catalog, :func:`radseg.scale.catalog_read.catalog_entries`) replace
    ``source``: each becomes ``target/<key><suffix>``, read from the files the catalog lists.
    """
    source, target = Path(source), Path(target)
    report = ConvertReport()
    if entries is not None:
        jobs = list(_catalog_jobs(entries, target, suffix, report, read_options))
    elif not source.exists():
        raise ReadError(source, "no such file or folder")
    elif select is not None:
        jobs = list(_select_jobs(source, target, Path(select), suffix, report, read_options))
    elif full_suffix(target) in IMAGE_WRITERS:
        if _is_dicom(source):
            jobs = [_Job(source.name, target, lambda sink=None: _read_dicom(source, read_options, sink), True,
                         sinks=True)]
        else:
            jobs = [_Job(source.name, target, lambda: read(source), False)]
    elif source.is_dir():
        jobs = list(_folder_jobs(source, target, suffix, report, read_options))
    else:
        name = _safe_name(source.name.split(".")[0]) + suffix
        jobs = [_Job(source.name, target / name, lambda: read(source, **_options_for(source, read_options)),
                     _is_dicom(source))]
    _check_suffix(jobs, suffix)
    jobs = select_part(jobs, part, key=lambda job: str(job.output))
    if jobs_total:
        jobs_total(len(jobs))
    pending = []
    for job in jobs:
        for output in (job.output, sidecar_path(job.output)):
            for stale in remove_stale_partials(output):
                report.warnings.append((job.name, f"removed {stale.name}, left by an interrupted run"))
        complete = job.output.exists() and (not (sidecar and job.dicom) or sidecar_path(job.output).exists())
        if complete and not overwrite:
            report.kept.append(job.output)
            if on_progress:
                on_progress(job.name)
        else:
            pending.append((job, sidecar))
    if engine is None or engine.engine == "local":
        engine = EngineOptions(workers=1)  # locally one process: the readers' closures do not pickle, and reading is I/O
    for _, result in map_jobs(_convert_job, pending, engine):
        if on_progress:
            on_progress(result["name"])
        report.warnings.extend(result["warnings"])
        if "error" in result:
            report.failed.append((result["name"], result["error"]))
        else:
            report.written.append(result["output"])
    return report


def _convert_job(task: tuple[_Job, bool]) -> dict[str, Any]:
    """Read one item and write its output (then its sidecar); never raises: a failure is the result."""
    job, sidecar = task
    try:
        if job.sinks and full_suffix(job.output) == ".nii":
            from radseg.io.nifti import NiftiSink

            sink = NiftiSink(job.output)  # a plain series goes to the file slice by slice, never whole in memory
            image = job.load(sink=sink)
            if not sink.written:
                write(image, job.output)
        else:
            image = job.load()
            write(image, job.output)
        if sidecar and image.metadata.get("format") == "dicom":
            write_text_atomic(sidecar_path(job.output), json.dumps(sidecar_content(image), indent=2))
        return {"name": job.name, "output": job.output,
                "warnings": [(job.name, problem) for problem in image.metadata.get("problems", [])]}
    except RadsegError as exc:
        # Avoid "item: item: problem" when the error already names this very item.
        same_item = str(getattr(exc, "path", "")) == job.name
        error = getattr(exc, "problem", str(exc)) if same_item else str(exc)
    except Exception as exc:  # keep a batch going; name the item and the error
        error = f"{type(exc).__name__}: {exc}"
    return {"name": job.name, "output": job.output, "warnings": [], "error": error}


def _catalog_jobs(entries, target: Path, suffix: str, report: ConvertReport,
                  read_options: dict[str, Any]) -> Iterator[_Job]:
    from functools import partial

    dicom_options = series_options(read_options)
    for entry in entries:
        if entry.kind == "unreadable":
            report.failed.append((entry.label, entry.problems or "unreadable (as indexed)"))
            continue
        dicom = entry.format == "dicom"
        yield _Job(entry.label, target / f"{_safe_name(entry.key)}{suffix}",
                   partial(entry.load, **dicom_options) if dicom else entry.load, dicom)


def _check_suffix(jobs: list[_Job], suffix: str) -> None:
    if suffix not in IMAGE_WRITERS:
        from radseg.errors import WriteError

        raise WriteError(suffix, IMAGE_WRITERS.unknown_message(suffix))


def _is_dicom(path: Path) -> bool:
    try:
        return detect_format(path) == "dicom"
    except RadsegError:
        return False


def _read_dicom(path: Path, options: dict[str, Any], sink: Any = None) -> Image:
    """``read(path, **options)`` of a DICOM file or folder, with ``sink`` (see :func:`_convert_job`)."""
    from radseg.io.dicom import read_dicom

    return read_dicom(path, sink=sink, **options)


def _options_for(path: Path, options: dict[str, Any]) -> dict[str, Any]:
    """DICOM options only reach the DICOM reader (others take none)."""
    return options if detect_format(path) == "dicom" else {}


def sidecar_path(output: Path) -> Path:
    return output.with_name(output.name[: len(output.name) - len(full_suffix(output))] + ".json")


def sidecar_content(image: Image) -> dict[str, Any]:
    """Acquisition metadata (allow-listed tags) and the geometry radseg derived; no identifiers."""
    from radseg import __version__

    meta = image.metadata
    return {
        **meta.get("dicom", {}),
        "radseg": {
            "version": __version__,
            "kind": meta.get("kind"),
            "shape": list(image.shape),
            "axes": "slice,row,column" if image.ndim == 3 else "row,column",
            "spacing_mm": [float(s) for s in image.spacing],
            "orientation": image.nifti_axis_codes,
            "slices": len(meta.get("source_files", [])),
            "spacing_source": meta.get("spacing_source"),
            "problems": list(meta.get("problems", [])),
        },
    }


def _folder_jobs(source: Path, target: Path, suffix: str, report: ConvertReport,
                 read_options: dict[str, Any]) -> Iterator[_Job]:
    from radseg.io.dicom import read_series
    from radseg.io.dicom_scan import scan

    found = scan(source, include_derived=read_options.get("include_derived", False))
    in_series = {path for series in found.series for path, _ in series.broken}
    for path, problem in found.unreadable:
        if path not in in_series:  # a broken file of a series is reported with its series
            report.failed.append((str(path), problem))
    for path, reason in found.skipped:
        if reason.startswith("not a regular file"):
            report.warnings.append((str(path), reason))
    dicom_options = series_options(read_options)
    selector = read_options.get("series")
    used: set[Path] = set()
    for series in found.series:
        if selector and not series.matches(selector):
            continue
        relative = series.files[0].parent.relative_to(source) if source in series.files[0].parents else Path()
        if series.kind == "slices":
            stem = f"{series.number if series.number is not None else 0:03d}_{series.description or series.modality}"
        else:
            stem = series.files[0].name.split(".")[0]
        output = _unique(target / relative / f"{_safe_name(stem)}_{_short_hash(series.key)}{suffix}", used)
        yield _Job(f"{series.files[0] if len(series.files) == 1 else series.files[0].parent} [series {series.key}]",
                   output, lambda s=series, sink=None: read_series(s, sink=sink, **dicom_options), dicom=True,
                   sinks=True)
    if selector:
        return
    for path in found.non_dicom:
        try:
            fmt = detect_format(path)
        except ReadError:
            continue  # not an image at all (notes, listings): ignored, as info reports
        if fmt == "dicom":
            continue
        relative = path.parent.relative_to(source) if source in path.parents else Path()
        output = _unique(target / relative / f"{_safe_name(path.name.split('.')[0])}{suffix}", used)
        yield _Job(str(path), output, lambda p=path: read(p))


def _select_jobs(source: Path, target: Path, select: Path, suffix: str, report: ConvertReport,
                 read_options: dict[str, Any]) -> Iterator[_Job]:
    """HemSeg-200 selection: one scan per JSONL line, slices named ``ID_<slice>.dcm``."""
    from radseg.io.dicom import read_series
    from radseg.io.dicom_scan import scan

    index: dict[str, Path] = {}
    for folder, _, files in os.walk(source):
        for name in files:
            index.setdefault(name, Path(folder) / name)
    dicom_options = series_options(read_options)
    for line_number, scan_name, slices in read_selection(select):
        label = f"{select.name}:{line_number} scan {scan_name}"
        paths, missing = [], []
        for slice_id in slices:
            name = slice_id if slice_id.endswith(".dcm") else f"{slice_id if slice_id.startswith('ID_') else 'ID_' + slice_id}.dcm"
            (paths if name in index else missing).append(index.get(name, name))
        if missing:
            shown = ", ".join(str(m) for m in missing[:5]) + (" ..." if len(missing) > 5 else "")
            report.failed.append((label, f"{len(missing)} of {len(slices)} listed slice file(s) not found under {source}: {shown}"))
            continue

        def load(paths=paths, label=label) -> Image:
            found = scan(paths, include_derived=True)
            if found.unreadable:
                path, problem = found.unreadable[0]
                raise ReadError(path, problem)
            return read_series(found.select(None, origin=label), **dicom_options)

        yield _Job(label, target / f"{_safe_name(scan_name)}{suffix}", load, dicom=True)


def read_selection(path: Path) -> Iterator[tuple[int, str, list[str]]]:
    """Lines of a HemSeg-200 selection file as (line number, scan name, slice ids).

    Accepts ``{"patient", "scan_", "slice_list": [...]}`` and
    ``{"patient_name", "scan_name", "slice_list": {"0": ..., ...}}``.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ReadError(path, f"cannot read selection file ({exc})") from exc
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ReadError(path, f"line {number} is not JSON ({exc.msg})") from None
        scan_name = entry.get("scan_", entry.get("scan_name", entry.get("scan")))
        slices = entry.get("slice_list")
        if not scan_name or slices is None:
            raise ReadError(path, f"line {number} needs 'scan_' (or 'scan_name') and 'slice_list'")
        if isinstance(slices, dict):
            slices = [slices[k] for k in sorted(slices, key=lambda k: int(k) if str(k).isdigit() else k)]
        yield number, str(scan_name), [str(s) for s in slices]


def _safe_name(text: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._")
    return cleaned[:80] or "image"


def _short_hash(text: str) -> str:
    import hashlib  # here: OpenSSL's start-up (3-7 ms) is for folder outputs only

    return hashlib.sha1(text.encode()).hexdigest()[:8]


def _unique(path: Path, used: set[Path]) -> Path:
    candidate, n = path, 2
    while candidate in used:
        candidate = path.with_name(f"{path.name[: -len(full_suffix(path))]}-{n}{full_suffix(path)}")
        n += 1
    used.add(candidate)
    return candidate
