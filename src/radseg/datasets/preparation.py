"""``radseg datasets prepare``: an adapter's cases -> a prepared dataset folder (see :mod:`.prepared`).

Order of work: scan the layout; refuse missing files unless ``allow_missing``; assign
splits per patient and refuse leakage unless ``allow_leakage``; then write case by case
(image, instances, label map last, each atomically). A case whose label file exists is
complete, so a rerun resumes; a case that fails to load is reported and the rest go on.
Last, identical pictures (same stored pixels under other ids; FracAtlas holds 15 such pictures)
are kept in one split: radseg's own splits move a copy, with its patient, into its picture's split;
copies the dataset's published splits separate are leakage, refused unless ``allow_leakage``
(:func:`radseg.datasets.duplicates.place_copies`).

A case whose image has no physical pixel size (``metadata["spacing_known"]`` False: PNG/JPEG,
a radiograph without spacing tags) is listed in ``dataset.json``'s ``no_pixel_size``: its
image may be stored as NIfTI (which always states a spacing), so the flag must travel beside
it; :func:`radseg.datasets.prepared.open_prepared` restores it on read.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from radseg.datasets.base import (
    SPLITS,
    CaseRecord,
    DatasetReport,
    DatasetScan,
    LeakageError,
    Loaded,
    MissingFilesError,
    assign_splits,
    check_label_values,
    check_leakage,
    labels_on_grid,
)
from radseg.datasets.prepared import FORMAT, FORMAT_VERSION, write_instances
from radseg.errors import RadsegError, ReadError
from radseg.io.atomic import atomic_path, full_suffix, strip_suffix, write_text_atomic

__all__ = ["prepare", "write_prepared"]

_COPYABLE = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp"}
_STATE = ".radseg-prepare.json"  # the settings of the run that made the folder (guards resumes)


def prepare(
    name: str,
    root: str | Path,
    out: str | Path,
    *,
    allow_missing: bool = False,
    split: str = "auto",
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    seed: int = 0,
    allow_leakage: bool = False,
    overwrite: bool = False,
    options: dict[str, Any] | None = None,
    on_progress: Callable[[str], None] | None = None,
    jobs_total: Callable[[int], None] | None = None,
) -> DatasetReport:
    """Read dataset ``name`` at ``root`` with its adapter and write the prepared dataset to ``out``."""
    from radseg.datasets.adapters import scan_dataset

    root = Path(root)
    if not root.exists():
        raise ReadError(root, "no such folder")
    scan = scan_dataset(name, root, **(options or {}))
    return write_prepared(scan, out, allow_missing=allow_missing, split=split, fractions=fractions, seed=seed,
                          allow_leakage=allow_leakage, overwrite=overwrite, on_progress=on_progress,
                          jobs_total=jobs_total)


def write_prepared(
    scan: DatasetScan,
    out: str | Path,
    *,
    allow_missing: bool = False,
    split: str = "auto",
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    seed: int = 0,
    allow_leakage: bool = False,
    overwrite: bool = False,
    on_progress: Callable[[str], None] | None = None,
    jobs_total: Callable[[int], None] | None = None,
) -> DatasetReport:
    """Write an adapter's scan as a prepared dataset (see the module docstring)."""
    out = Path(out)
    report = scan.report
    if report.missing and not allow_missing:
        raise MissingFilesError(Path(report.root), report.missing)
    if report.missing:
        report.warnings.append(f"{len(report.missing)} listed file(s) missing: prepared without them (--allow-missing)")
    if not scan.records:
        raise ReadError(report.root, f"no usable case found for dataset {scan.name!r}\n{report.format_text()}")
    # patients whose split the dataset published (not one an adapter derived: FracAtlas negative_split=nearest)
    given = {r.patient for r in scan.records if r.split and not r.split_derived} if split != "generate" else set()
    report.split_source = assign_splits(scan.records, mode=split, fractions=fractions, seed=seed)
    problems = check_leakage(scan.records)
    if problems and not allow_leakage:
        raise LeakageError(problems)
    report.warnings.extend(f"leakage kept on request (--allow-leakage): {p}" for p in problems)
    settings = {"adapter": scan.name, "root": str(Path(report.root).resolve()), "source": scan.source,
                "split": split, "fractions": [float(f) for f in fractions], "seed": seed}
    _check_output(out, json.loads(json.dumps(settings, default=str)), overwrite)

    label_names = dict(scan.label_names) if scan.label_names is not None else None
    found_values: set[int] = set()
    files: dict[str, dict[str, str]] = {}
    unknown = _earlier_unknown(out) if not overwrite else set()  # resumed cases keep their flag
    no_pixel_size: set[str] = set()
    digests: dict[str, str | None] = {}  # case -> digest of its stored pixels, to keep copies in one split
    if jobs_total:
        jobs_total(len(scan.records))
    for record in scan.records:
        if on_progress:
            on_progress(record.case_id)
        done = None if overwrite else _finished(out, record.case_id)
        if done is not None:
            try:
                digests[record.case_id] = _digest_of(out / done["image"])
            except (RadsegError, OSError, ValueError):
                done = None  # the earlier run's image no longer reads: write the case again
        if done is not None:
            files[record.case_id] = done
            if record.case_id in unknown:
                no_pixel_size.add(record.case_id)
            report.kept += 1
            if label_names is None:
                found_values |= _values_in(out / done["labels"])
            continue
        try:
            entry, values, known = _write_case(record, out, scan, label_names)
            digests[record.case_id] = _digest_of(out / entry["image"])
            files[record.case_id] = entry  # only a case whose stored image reads back counts as prepared
            found_values |= values
            if not known:
                no_pixel_size.add(record.case_id)
            report.written += 1
        except RadsegError as exc:
            report.failed.append((record.case_id, str(exc)))
        except Exception as exc:  # keep the batch going; name the case and the error
            report.failed.append((record.case_id, f"{type(exc).__name__}: {exc}"))
    if label_names is None:
        label_names = {v: f"label_{v}" for v in sorted(found_values - {0})}
    ready = [r for r in scan.records if r.case_id in files]
    if not ready:
        raise ReadError(out, f"no case could be prepared\n{report.format_text()}")
    _place_copies(ready, digests, given, report, out=out, allow_leakage=allow_leakage)
    splits = {s: sorted(r.case_id for r in ready if r.split == s) for s in SPLITS}
    report.splits = {s: len(v) for s, v in splits.items()}
    report.warnings.extend(f"removed {name}: not a case of this preparation" for name in _prune(out, files))
    _write_tables(out, scan, ready, files, label_names, splits, report, seed=seed, fractions=fractions,
                  no_pixel_size=sorted(no_pixel_size & set(files)))
    return report


def _earlier_unknown(out: Path) -> set[str]:
    """Cases an earlier run of this preparation recorded without a pixel size."""
    try:
        return {str(c) for c in json.loads((out / "dataset.json").read_text()).get("no_pixel_size") or []}
    except (OSError, ValueError, AttributeError):
        return set()


_OWN_ENTRIES = {"images", "labels", "instances", "dataset.json", "metadata.csv", "report.json", _STATE}


def _check_output(out: Path, settings: dict[str, Any], overwrite: bool) -> None:
    """Refuse a folder holding something else, or another preparation (unless ``overwrite``)."""
    if out.exists():
        foreign = sorted(p.name for p in out.iterdir() if p.name not in _OWN_ENTRIES)
        if foreign:
            raise RadsegError(f"{out}: folder holds other files ({', '.join(foreign[:3])}); "
                              "choose an empty or new folder for the prepared dataset")
        state = out / _STATE
        if state.exists() and not overwrite and json.loads(state.read_text()) != settings:
            raise RadsegError(f"{out}: holds another preparation ({state.read_text().strip()}); "
                              "use --overwrite or another folder")
    write_text_atomic(out / _STATE, json.dumps(settings, sort_keys=True))


def _finished(out: Path, case_id: str) -> dict[str, str] | None:
    """Files of a case written by an earlier run (its label map is written last)."""
    labels = next((out / "labels" / f"{case_id}{s}" for s in (".nii.gz", ".npz")
                   if (out / "labels" / f"{case_id}{s}").exists()), None)
    images = [p for p in (out / "images").glob(f"{case_id}.*") if strip_suffix(p) == case_id and not p.name.startswith(".")]
    if labels is None or not images:
        return None
    entry = {"image": f"images/{images[0].name}", "labels": f"labels/{labels.name}"}
    if (out / "instances" / f"{case_id}.npz").exists():
        entry["instances"] = f"instances/{case_id}.npz"
    return entry


def _prune(out: Path, files: dict[str, dict[str, str]]) -> list[str]:
    """Delete files of cases this run did not produce (an earlier run's, a failed case's, partial writes).

    ``radseg train`` reads every file in images/ and labels/, so nothing stale may stay there.
    """
    keep = {path for entry in files.values() for path in entry.values()}
    removed = []
    for folder in ("images", "labels", "instances"):
        if not (out / folder).is_dir():
            continue
        for path in sorted((out / folder).iterdir()):
            relative = f"{folder}/{path.name}"
            if relative not in keep and path.is_file():
                path.unlink()
                if not path.name.startswith("."):
                    removed.append(relative)
    return removed


def _place_copies(ready: list[CaseRecord], digests: dict[str, str | None], given: set[str], report: DatasetReport,
                  *, out: Path, allow_leakage: bool) -> None:
    """Move radseg's own splits of copies into their picture's split; refuse (or report) the dataset's."""
    from radseg.datasets.duplicates import place_copies

    moved, conflicts, repeats = place_copies(ready, digests, given)
    if conflicts and not allow_leakage:
        # an earlier run's tables would describe a folder this run has changed: the folder is unfinished
        for table in ("dataset.json", "metadata.csv", "report.json"):
            (out / table).unlink(missing_ok=True)
        raise LeakageError([f"{c} (the cases are written: a rerun with --allow-leakage resumes)" for c in conflicts])
    if moved:
        report.split_source += "; copies of one picture kept in one split (warnings)"
    report.warnings.extend(f"kept with a copy: {m}" for m in moved)
    report.warnings.extend(f"leakage kept on request (--allow-leakage): {c}" for c in conflicts)
    report.warnings.extend(f"repeated within a split: {r}" for r in repeats)


def _digest_of(path: Path) -> str | None:
    """The digest of the pixels as stored (what ``datasets duplicates`` and training read): the same for
    a case written now and one a rerun resumes, whatever the writer converted."""
    from radseg.datasets.duplicates import picture_digest
    from radseg.io import read

    return picture_digest(read(path).array)


def _values_in(path: Path) -> set[int]:
    from radseg.io import read_labels

    return {int(v) for v in np.unique(read_labels(path).array)}


def _write_case(record: CaseRecord, out: Path, scan: DatasetScan,
                label_names: dict[int, str] | None) -> tuple[dict[str, str], set[int], bool]:
    """Write one case; returns its files, its label values and whether its image has a pixel size."""
    from radseg.io import write
    from radseg.labels import make_label_map

    loaded: Loaded = record.load()
    image = loaded.image
    if image.ndim != scan.dims:
        raise ReadError(record.sources[0] if record.sources else record.case_id,
                        f"{image.ndim}D image in a {scan.dims}D dataset")
    name = record.sources[-1] if record.sources else record.case_id
    if scan.multilabel:
        labels = _multilabel_on_grid(loaded.labels, image, name=name)
        expected = [label_names[v] for v in sorted(label_names or {})]
        if expected and labels.metadata["class_names"] != expected:
            raise ReadError(name, f"classes {labels.metadata['class_names']} differ from the dataset's {expected}")
        values = {c + 1 for c in range(labels.channels) if labels.array[..., c].any()}
    else:
        labels = labels_on_grid(loaded.labels, image, name=name)
        check_label_values(labels, label_names, name=name)
        if labels.metadata.get("grid_warning"):
            loaded.warnings.append(labels.metadata.pop("grid_warning"))
        array = labels.array
        if array.dtype.kind not in "ui" or array.dtype.itemsize > 2:
            array = array.astype(np.uint8 if int(array.max(initial=0)) < 256 else np.uint16)
        labels = make_label_map(labels.with_array(array), label_names or {})
        values = {int(v) for v in np.unique(array)}
    for warning in loaded.warnings:
        scan.report.warnings.append(f"{record.case_id}: {warning}")

    entry: dict[str, str] = {}
    source = loaded.image_file
    if source is not None and full_suffix(source) in _COPYABLE:
        target = out / "images" / f"{record.case_id}{full_suffix(source)}"
        with atomic_path(target) as tmp:
            shutil.copyfile(source, tmp)  # byte-identical: no second lossy encoding
    else:
        target = write(image, out / "images" / f"{record.case_id}{_image_suffix(image)}")
    entry["image"] = f"images/{Path(target).name}"
    if loaded.instances is not None:
        write_instances(out / "instances" / f"{record.case_id}.npz", loaded.instances, image.affine, image.shape)
        entry["instances"] = f"instances/{record.case_id}.npz"
    label_file = f"labels/{record.case_id}{'.npz' if scan.multilabel else '.nii.gz'}"
    write(labels, out / label_file, kind="npz" if scan.multilabel else "nifti")
    entry["labels"] = label_file
    return entry, values, image.metadata.get("spacing_known", True) is not False


def _multilabel_on_grid(labels, image, *, name: str):
    """A multi-label mask [..., C] on ``image``'s grid (same spatial shape; the image's geometry)."""
    from radseg.labels import is_multilabel, make_multilabel

    if not is_multilabel(labels):
        raise ReadError(name, "a multi-label dataset needs one mask per class")
    if labels.shape != image.shape:
        raise ReadError(name, f"mask shape {tuple(labels.shape)} does not match image shape {tuple(image.shape)}")
    stack = np.moveaxis(np.asarray(labels.array, bool), -1, 0)
    return make_multilabel(stack, labels.metadata["class_names"], like=image)


def _image_suffix(image) -> str:
    """PNG for 8/16-bit radiographs without a pixel size (nothing to lose), else NIfTI."""
    raster = image.ndim == 2 and not image.metadata.get("spacing_known", True) and (
        image.array.dtype in (np.uint8, np.uint16) if image.channels is None
        else image.array.dtype == np.uint8 and image.channels in (3, 4))
    return ".png" if raster else ".nii.gz"


def _write_tables(out: Path, scan: DatasetScan, ready: list[CaseRecord], files: dict[str, dict[str, str]],
                  label_names: dict[int, str], splits: dict[str, list[str]], report: DatasetReport,
                  *, seed: int, fractions: Sequence[float], no_pixel_size: Sequence[str] = ()) -> None:
    import pandas as pd

    rows = [{"case": r.case_id, "patient": r.patient, "split": r.split, **r.metadata} for r in ready]
    write_text_atomic(out / "metadata.csv", pd.DataFrame(rows).to_csv(index=False))
    endings = sorted({full_suffix(f["image"]) for f in files.values()})
    spec = {
        "name": scan.name,
        "description": scan.description,
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "modality": scan.modality,
        "channel_names": {"0": scan.modality},
        "dims": scan.dims,
        "labels": {"background": 0, **{n: v for v, n in sorted(label_names.items())}},
        "label_names": {str(v): n for v, n in sorted(label_names.items())},
        "numTraining": len(splits["train"]) + len(splits["val"]),
        "file_ending": endings[0] if len(endings) == 1 else endings,
        "window": [float(v) for v in scan.window] if scan.window else None,
        "preset": scan.preset,
        "splits": splits,
        "cases": {r.case_id: files[r.case_id] for r in ready},
        "has_instances": any("instances" in f for f in files.values()),
        "multilabel": scan.multilabel,
        "no_pixel_size": list(no_pixel_size),  # cases whose lengths are pixels, not mm
        "source": {"adapter": scan.name, "root": report.root, "split_source": report.split_source,
                   "seed": seed, "fractions": list(fractions), **scan.source},
    }
    write_text_atomic(out / "dataset.json", json.dumps(spec, indent=1))
    write_text_atomic(out / "report.json", json.dumps(report.to_dict(), indent=1))
