"""``radseg index``: a Parquet catalog of every series and image under a folder tree, and reading it back.

One row per readable item (a CT/MR series, each radiograph, each NIfTI/PNG/... image) and one per
unreadable file (``kind == "unreadable"``), with the facts ``radseg info`` reports (modality, body part,
series description, shape, spacing, orientation, problems). DICOM pixels are never read, 3D NIfTI only
by its header; 2D images and MHA/NRRD are read (which checks them). Non-image files and the DICOM
objects ``info`` skips (localizers, derived images unless ``include_derived``, SEG/SR) get no row.

**No patient identifiers**: only the tags above are copied, never PatientName/ID, birth date, accession
number, institution or dates. Study and series UIDs are kept on purpose: they name an acquisition, not
a person, and join the catalog to a PACS. Paths are kept as the archive names them.

**Work unit: one folder** (its files, not its subfolders), so the job list comes from walking
directories only; folders run through :func:`radseg.scale.engine.map_jobs` (``--engine local|ray``).
The partial rows of a series whose files lie in several folders are replaced after the walk by one row
from all its files (its problems name the folders). ``--part K/N`` takes every N-th folder by relative
path and writes their rows only: give each part its own output (``-o catalog-1.parquet``) and read them
together (``read_catalog("catalog-*.parquet")``); a series split over two parts stays split there.

**Resume**: each folder's rows are cached in ``<catalog>.parts/<hash of the folder>.json`` (atomically,
as the folder finishes) with its signature (file names, sizes, mtimes). A rerun rescans only folders
that changed or have no part file. The parts folder is kept (files of folders gone are removed); delete
it to rescan everything. The catalog is written atomically at the end; it and its parts may lie in ROOT.

``key`` is the case name ``radseg segment`` gives the item (file stem, or the series' folder name with
``_<series number>`` when the folder holds several) after its parent folders relative to ROOT, joined
with ``_``: stable and unique over the whole tree.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from radseg.errors import RadsegError
from radseg.scale.catalog_read import _pyarrow
from radseg.scale.parts import unique_key

__all__ = ["build_catalog", "IndexReport", "COLUMNS"]

VERSION = 1  # part files of another version are rescanned
#: The catalog's columns, in order.
COLUMNS = ("key", "kind", "format", "modality", "body_part", "series_description", "series_number", "shape",
           "spacing_mm", "spacing_known", "orientation", "problems", "readable", "n_files", "series_uid",
           "study_uid", "path", "files", "root", "folder", "folder_signature")


@dataclass
class IndexReport:
    output: Path
    rows: int = 0
    kinds: dict[str, int] = field(default_factory=dict)  # kind -> rows
    folders: int = 0  # folders of this run (of this part)
    folders_scanned: int = 0
    folders_reused: int = 0  # rows taken from the previous run's part files
    skipped_files: int = 0  # DICOM that info skips too (localizers, derived, SEG/SR, not regular files)
    ignored_files: int = 0  # files that are not images
    merged_series: int = 0  # series found split over several folders
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (file, problem)


def build_catalog(root: str | Path, output: str | Path, *, engine=None, part: tuple[int, int] | None = None,
                  include_derived: bool = False, jobs_total: Callable[[int], None] | None = None,
                  on_progress: Callable[[str], None] | None = None) -> IndexReport:
    """Index ``root`` into the Parquet file ``output`` (see the module doc); ``engine``: EngineOptions."""
    from radseg.io.atomic import write_text_atomic
    from radseg.scale.engine import EngineOptions, map_jobs
    from radseg.scale.parts import select_part

    root, output = (Path(os.path.normpath(Path(p).absolute())) for p in (root, output))  # no "..", links kept
    if not root.is_dir():
        raise RadsegError(f"{root}: no such folder")
    _pyarrow()  # fail before the walk, not after it
    parts_dir = output.with_name(output.name + ".parts")
    folders = []  # relative, POSIX; only folders that hold files; hidden ones skipped as scan skips them
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and Path(folder, d) != parts_dir)
        if any(not name.startswith(".") for name in files):
            folders.append(Path(os.path.relpath(folder, root)).as_posix())
    folders = select_part(folders, part, key=str)
    jobs = [(str(root), rel, str(parts_dir), include_derived, str(output)) for rel in folders]
    if jobs_total:
        jobs_total(len(jobs))
    report, results = IndexReport(output, folders=len(jobs)), [{}] * len(jobs)
    for index, result in map_jobs(index_folder, jobs, engine or EngineOptions()):
        results[index] = result
        report.folders_reused += bool(result.get("reused"))
        if not result.get("reused") and result.get("signature"):  # cached as soon as done: a rerun resumes
            write_text_atomic(_part_path(parts_dir, result["folder"]), json.dumps(result))
        if on_progress:
            on_progress(result["folder"])
    report.folders_scanned = len(jobs) - report.folders_reused
    rows, report.merged_series = _merge_split_series(root, [r for res in results for r in res["rows"]], include_derived)
    rows = _finish_rows(root, rows)
    keep = {_part_path(parts_dir, rel).name for rel in folders}
    for stale in (p for p in parts_dir.glob("*") if p.name not in keep) if parts_dir.is_dir() else ():
        stale.unlink(missing_ok=True)  # folders gone since the last run, partial writes of a killed run
    _write_parquet(output, rows)
    report.rows = len(rows)
    for row in rows:
        report.kinds[row["kind"]] = report.kinds.get(row["kind"], 0) + 1
    report.unreadable = [(row["path"], row["problems"]) for row in rows if row["kind"] == "unreadable"]
    report.skipped_files, report.ignored_files = (sum(r.get(k, 0) for r in results) for k in ("skipped", "ignored"))
    return report


def index_folder(job: tuple[str, str, str, bool, str]) -> dict[str, Any]:
    """The rows of one folder (the catalog itself left out), from its part file when unchanged. Never raises."""
    root, rel, parts_dir, include_derived, output = job
    folder = Path(root) / rel
    try:
        entries = []  # (name, size, mtime) of the folder's files: its signature
        with os.scandir(folder) as listing:
            for entry in listing:
                if not entry.name.startswith(".") and not entry.is_dir() and entry.path != output:
                    try:
                        entries.append((entry.name, entry.stat().st_size, entry.stat().st_mtime_ns))
                    except OSError:  # a dangling link: scan names it
                        entries.append((entry.name, -1, -1))
        entries.sort()
        signature = hashlib.sha1(json.dumps([VERSION, include_derived, entries]).encode()).hexdigest()
        try:
            cached = json.loads(_part_path(Path(parts_dir), rel).read_text(encoding="utf-8"))
            if cached.get("version") == VERSION and cached.get("folder") == rel and cached.get("signature") == signature:
                return {**cached, "reused": True}
        except (OSError, ValueError, AttributeError):
            pass  # no part file, or a broken one: scan
        files = [folder / name for name, _, _ in entries]
        rows, skipped, ignored = _rows_of_files(Path(root), rel, files, include_derived)
        rows = [{**row, "folder_signature": signature} for row in rows]
        return {"version": VERSION, "folder": rel, "signature": signature, "rows": rows,
                "skipped": skipped, "ignored": ignored}
    except Exception as exc:  # noqa: BLE001 - a folder that cannot be listed is a row, not a crash
        row = _row(rel, kind="unreadable", path=rel, files=[], problems=[f"{type(exc).__name__}: {exc}"])
        return {"folder": rel, "signature": None, "rows": [{**row, "key": _key(Path(root), rel, None)}]}


def _part_path(parts_dir: Path, rel: str) -> Path:
    return parts_dir / f"{hashlib.sha1(rel.encode()).hexdigest()[:20]}.json"


def _rows_of_files(root: Path, rel: str, files: list[Path], include_derived: bool,
                   only_uid: str | None = None) -> tuple[list[dict[str, Any]], int, int]:
    """Rows of ``files`` (one folder, or the files of series ``only_uid``), with keys unique among them."""
    from radseg.io import detect_format
    from radseg.io.atomic import strip_suffix
    from radseg.io.dicom_scan import scan

    found = scan(files, include_derived=include_derived)
    series = [s for s in found.series if only_uid is None or s.uid == only_uid]
    rows, used, ignored = [], set(), 0
    for item in series:  # named as list_inputs of radseg.infer.segment names them
        name, suffix = None, ""  # a series: its folder's name
        if item.kind == "radiograph" or len(item.files) == 1 and item.kind != "slices":
            name = strip_suffix(item.files[0])
        elif len(series) > 1:
            suffix = f"_{item.number if item.number is not None else item.key[-6:]}"
        rows.append({**_series_row(root, rel, item), "key": unique_key(_key(root, rel, name, suffix), used)})
    if only_uid is not None:
        return rows, 0, 0
    for path in found.non_dicom:
        try:
            fmt = detect_format(path)
        except RadsegError:
            fmt = "dicom"  # not an image (notes, listings)
        if fmt == "dicom":
            ignored += 1
            continue
        try:
            facts = {**_image_facts(path, fmt), "kind": "image"}
        except Exception as exc:  # noqa: BLE001 - an unreadable image is a row with its problem
            facts = {"kind": "unreadable", "problems": [_problem(exc, path)], "readable": False}
        rows.append({**_row(rel, format=fmt, path=_rel(root, path), files=[_rel(root, path)], **facts),
                     "key": unique_key(_key(root, rel, strip_suffix(path)), used)})
    for path, why in found.unreadable:
        rows.append({**_row(rel, kind="unreadable", format="dicom", path=_rel(root, path), files=[_rel(root, path)],
                            problems=[why], readable=False), "key": unique_key(_key(root, rel, path.name), used)})
    return rows, len(found.skipped), ignored


def _row(rel: str, **facts: Any) -> dict[str, Any]:
    return {"kind": "", "format": "", "modality": "", "body_part": "", "series_description": "", "series_number": None,
            "shape": [], "spacing_mm": [], "spacing_known": False, "orientation": "", "problems": [], "readable": True,
            "series_uid": "", "study_uid": "", "folder": rel, "folder_signature": "", **facts}


def _series_row(root: Path, rel: str, series) -> dict[str, Any]:
    """A DICOM item's row: ``radseg info``'s description of it, plus body part and study UID of its first header."""
    from radseg.info import describe_series

    entry, ds = describe_series(series), series.first
    files = _slice_order(series) if series.kind == "slices" else series.files
    return _row(rel, kind="radiograph" if series.kind == "radiograph" else "series", format="dicom",
                modality=entry["modality"], body_part=str(ds.get("BodyPartExamined", "") or ""),
                series_description=entry["description"], series_number=entry["series_number"],
                shape=entry.get("shape", []), spacing_mm=entry.get("spacing_mm", []),
                spacing_known=bool(entry.get("spacing_known", False)), orientation=entry.get("orientation", ""),
                problems=entry["problems"], readable=entry.get("readable", True), series_uid=series.uid,
                study_uid=str(ds.get("StudyInstanceUID", "") or ""), files=[_rel(root, f) for f in files],
                path=_rel(root, files[0] if len(files) == 1 else files[0].parent), slices=series.kind == "slices")


def _slice_order(series) -> list[Path]:
    """The files of a slices series along the slice normal (file order when a position is missing)."""
    import numpy as np

    from radseg.io.dicom_tags import get_floats

    iop = get_floats(series.first, "ImageOrientationPatient", 6)
    positions = [get_floats(ds, "ImagePositionPatient", 3) for _, ds in series.headers]
    if iop is None or any(p is None for p in positions):
        return series.files
    normal = np.cross(iop[:3], iop[3:])
    return [series.files[i] for i in sorted(range(len(positions)), key=lambda i: float(positions[i] @ normal))]


def _image_facts(path: Path, fmt: str) -> dict[str, Any]:
    """``radseg info``'s facts of a non-DICOM image: a 3D NIfTI from its header (as read_nifti places
    it, without loading a voxel), any other image read (2D is cheap, and reading checks the file)."""
    import numpy as np

    from radseg.image import LPS_TO_RAS, Image
    from radseg.info import describe_image
    from radseg.io import nifti, read
    from radseg.io.dicom import NO_PIXEL_SIZE

    header, shape = None, ()
    if fmt == "nifti":
        import nibabel as nib

        try:
            header = nib.load(str(path))
            shape = tuple(int(n) for n in header.header.get_data_shape())
        except Exception:  # noqa: BLE001 - read() below names the problem
            pass
        shape = shape[:3] if len(shape) == 4 and shape[3] == 1 else shape
    if len(shape) not in (3, 4):
        entry = describe_image(read(path))
        return {"modality": entry["modality"], "series_description": entry["description"],
                **{k: entry[k] for k in ("shape", "spacing_mm", "spacing_known", "orientation", "problems")}}
    nifti._check_size(header, path)
    meta: dict[str, Any] = {"problems": []}
    affine = LPS_TO_RAS @ nifti._usable_affine(header, meta) @ nifti._REVERSE3
    if header.header.get_xyzt_units()[0] not in ("mm", "unknown"):
        meta["problems"].append(f"spatial units are {header.header.get_xyzt_units()[0]}, not mm; values used as stored")
    image = Image(np.broadcast_to(np.zeros((), np.uint8), shape[2::-1] + shape[3:]), affine=affine)  # no voxels
    known = meta.get("spacing_known", True)
    return {"shape": list(image.shape), "spacing_mm": [round(float(s), 6) for s in image.spacing],
            "spacing_known": known, "orientation": image.nifti_axis_codes,
            "problems": meta["problems"] + ([] if known else [NO_PIXEL_SIZE])}


def _problem(exc: Exception, path: Path) -> str:
    if isinstance(exc, RadsegError) and str(getattr(exc, "path", "")) == str(path):
        return getattr(exc, "problem", str(exc))  # the row names the file already
    return str(exc) if isinstance(exc, RadsegError) else f"{type(exc).__name__}: {exc}"


def _rel(root: Path, path: Path) -> str:
    return Path(os.path.relpath(path, root)).as_posix()


def _key(root: Path, rel: str, name: str | None, suffix: str = "") -> str:
    """The case name (a file's stem; None: the folder's name) after its parent folders relative to ROOT."""
    parts = [] if rel == "." else rel.split("/")
    parts = parts + [name] if name else parts or [root.name]
    text = re.sub(r"[^A-Za-z0-9._-]+", "_", "_".join(parts) + suffix).strip("._") or "case"
    return text if len(text) <= 120 else f"{text[:111]}-{hashlib.sha1(text.encode()).hexdigest()[:8]}"


def _merge_split_series(root: Path, rows: list[dict], include_derived: bool) -> tuple[list[dict], int]:
    """A series whose slices lie in several folders: its partial rows replaced by a rescan of all its files."""
    parts_of = defaultdict(list)
    for row in rows:
        if row.get("slices"):
            parts_of[row["series_uid"]].append(row)
    split = {uid: parts for uid, parts in parts_of.items() if len({r["folder"] for r in parts}) > 1}
    out, done = [], set()
    for row in rows:
        uid = row["series_uid"] if row.get("slices") and row["series_uid"] in split else None
        if uid is None:
            out.append(row)
        if uid is None or uid in done:
            continue
        done.add(uid)  # the whole series where its first part was
        parts, folders = split[uid], sorted({r["folder"] for r in split[uid]})
        common = _rel(root, Path(os.path.commonpath([str(root / f) for f in folders])))
        merged, _, _ = _rows_of_files(root, common, [root / f for r in parts for f in r["files"]], include_derived, uid)
        where = ", ".join(folders[:3]) + (f" and {len(folders) - 3} more" if len(folders) > 3 else "")
        signature = hashlib.sha1(" ".join(sorted(r["folder_signature"] for r in parts)).encode()).hexdigest()
        out += [{**m, "folder_signature": signature,
                 "problems": m["problems"] + [f"the files of this series are in {len(folders)} folders: {where}"]}
                for m in merged]
    return out, len(split)


def _finish_rows(root: Path, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Catalog rows: absolute ``path``, ``root``, problems as text, keys unique over the whole catalog."""
    counts: dict[str, int] = defaultdict(int)
    for row in rows:
        counts[row["key"]] += 1
    # two keys alike only for names that differ in characters a case name cannot hold (a/b_c, a_b/c)
    return [{**{column: row.get(column) for column in COLUMNS}, "root": str(root), "n_files": len(row["files"]),
             "key": row["key"] + ("-" + hashlib.sha1(row["path"].encode()).hexdigest()[:6] if counts[row["key"]] > 1 else ""),
             "path": os.path.normpath(root / row["path"]), "problems": "; ".join(row["problems"])} for row in rows]


def _write_parquet(output: Path, rows: list[dict[str, Any]]) -> None:
    import pyarrow.parquet as pq

    from radseg.io.atomic import atomic_path

    pa = _pyarrow()
    types = {"series_number": pa.int64(), "shape": pa.list_(pa.int64()), "spacing_mm": pa.list_(pa.float64()),
             "spacing_known": pa.bool_(), "readable": pa.bool_(), "n_files": pa.int64(), "files": pa.list_(pa.string())}
    schema = pa.schema([(c, types.get(c, pa.string())) for c in COLUMNS], metadata={"radseg.catalog": str(VERSION)})
    with atomic_path(output) as tmp:
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), tmp)
