"""HemSeg-200: RSNA 2019 brain-CT slices selected by a JSONL file, with NIfTI hemorrhage labels.

::

    ROOT/**/ID_<hex>.dcm                       RSNA slices (e.g. stage_2_train/), found by name anywhere
    ROOT/annotion_file_info.jsonl              {"patient", "scan_", "slice_list": [hex, ...]} per scan
                                               (500-scan variant: {"patient_name", "scan_name",
                                               "slice_list": {"0": hex, ...}})
    ROOT/**/<set>/<split>/label/<scan>.nii.gz  labels {0, 1}; extracted, or inside any ROOT/**/*.zip

One case per scan with a label; the split is the label's ``<split>`` folder (train/val/test);
the patient is the JSONL ``patient``. One patient can have several scans (the real file has
such patients), so the leakage check matters here. A slice file the JSONL names but the
root lacks is *missing* (listed by name; ``--allow-missing`` skips its scan).

The image is the selected slices read as one series, sorted by position like the authors'
SimpleITK script. Gantry tilt is kept as stored (``tilt="shear"``) because SimpleITK, on whose
output the labels were drawn, does not resample it; a gap in the slices fails the case.
"""

from __future__ import annotations

import os
import re
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from radseg.datasets.base import (
    CaseRecord,
    DatasetReport,
    DatasetScan,
    Loaded,
    normalise_split,
)
from radseg.errors import ReadError

NAME = "hemseg"
LABELS = {1: "hemorrhage"}
_LABEL_PATH = re.compile(r"(?:^|/)(?P<set>[^/]+)/(?P<split>[^/]+)/labels?/(?P<scan>[^/]+)\.nii(?:\.gz)?$")


def slice_file_name(slice_id: str) -> str:
    """``fd503db37`` -> ``ID_fd503db37.dcm`` (ids with the prefix or suffix are kept)."""
    if slice_id.endswith(".dcm"):
        return slice_id
    return f"{slice_id if slice_id.startswith('ID_') else 'ID_' + slice_id}.dcm"


def scan(root: Path, *, selection: str | None = None) -> DatasetScan:
    from radseg.convert import (
        read_selection,  # one reader for both JSONL variants (shared with convert)
    )

    report = DatasetReport(dataset=NAME, root=str(root))
    select = Path(selection) if selection else _find_selection(root)
    lines = list(read_selection(select))
    patients = _patients(select)
    dicoms, labels = _index(root, report)
    report.found = {"scans in the selection": len(lines), "DICOM slice files": len(dicoms),
                    "label files": len(labels)}
    records, seen = [], set()
    for number, scan_name, slices in lines:
        if scan_name in seen:
            report.skipped.append((f"{select.name}:{number}", f"scan {scan_name} listed twice"))
            continue
        seen.add(scan_name)
        if scan_name not in labels:
            report.skipped.append((f"scan {scan_name}", "no label file <set>/<split>/label/<scan>.nii.gz"))
            continue
        names = [slice_file_name(s) for s in slices]
        absent = [n for n in names if n not in dicoms]
        if absent:
            report.missing.extend((n, f"slice of scan {scan_name}, {select.name} line {number}") for n in absent)
            continue
        label_source, split, set_name = labels[scan_name]
        paths = [dicoms[n] for n in names]
        records.append(CaseRecord(
            case_id=scan_name, patient=patients.get(number) or scan_name,
            split=normalise_split(split, where=str(label_source)),
            metadata={"set": set_name, "slices": len(paths)},
            sources=[str(paths[0].parent.relative_to(root)), _label_text(label_source, root)],
            load=lambda p=paths, l=label_source, s=scan_name: _load(p, l, s),
        ))
    for scan_name, (source, _, _) in sorted(labels.items()):
        if scan_name not in seen:
            report.skipped.append((_label_text(source, root), "label of a scan that is not in the selection"))
    return DatasetScan(
        name=NAME, records=records, label_names=dict(LABELS), report=report, modality="CT", dims=3,
        window=(12.0, 79.0), preset="brain-ct",
        description="HemSeg-200: intraparenchymal/intraventricular hemorrhage on RSNA 2019 head CT",
        source={"selection": str(select)},
    )


def _find_selection(root: Path) -> Path:
    found = sorted(p for pattern in ("annotion_file_info*.jsonl", "*/annotion_file_info*.jsonl", "*.jsonl")
                   for p in root.glob(pattern))
    found = list(dict.fromkeys(found))
    if not found:
        raise ReadError(root, "no selection file annotion_file_info.jsonl (option selection=FILE)")
    preferred = [p for p in found if p.name.startswith("annotion_file_info")] or found
    if len(preferred) > 1:
        raise ReadError(root, f"several selection files ({', '.join(p.name for p in preferred)}); "
                              "pick one with --option selection=FILE")
    return preferred[0]


def _patients(select: Path) -> dict[int, str]:
    import json

    patients = {}
    for number, line in enumerate(select.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # read_selection has already named the bad line
            patient = entry.get("patient", entry.get("patient_name"))
            if patient:
                patients[number] = str(patient)
    return patients


def _index(root: Path, report: DatasetReport) -> tuple[dict[str, Path], dict[str, tuple[Any, str, str]]]:
    """Slice files by name, and labels by scan: (path or (zip, member), split, set)."""
    dicoms: dict[str, Path] = {}
    labels: dict[str, tuple[Any, str, str]] = {}

    def add_label(source: Any, text: str) -> None:
        match = _LABEL_PATH.search(text.replace("\\", "/"))
        if not match:
            return
        scan_name = match["scan"]
        try:
            normalise_split(match["split"])
        except ReadError:  # e.g. a prepared dataset inside the root: not a HemSeg label folder
            report.skipped.append((text, f"label folder {match['split']!r} is not train, val or test"))
            return
        if scan_name in labels and labels[scan_name][1] != match["split"]:
            report.warnings.append(f"scan {scan_name} has labels in the {labels[scan_name][1]} and "
                                   f"{match['split']} splits; the first is used")
            return
        labels.setdefault(scan_name, (source, match["split"], match["set"]))

    for folder, _, files in os.walk(root):
        for name in files:
            path = Path(folder) / name
            if name.startswith("ID_") and name.endswith(".dcm"):
                if name in dicoms:
                    report.warnings.append(f"{name} found twice ({dicoms[name]} and {path}); the first is used")
                    continue
                dicoms[name] = path
            elif name.endswith((".nii.gz", ".nii")):
                add_label(path, str(path.relative_to(root)))
            elif name.endswith(".zip"):
                try:
                    with zipfile.ZipFile(path) as archive:
                        for member in archive.namelist():
                            add_label((path, member), member)
                except zipfile.BadZipFile:
                    report.skipped.append((str(path.relative_to(root)), "not a readable zip file"))
    return dicoms, labels


def _label_text(source: Any, root: Path) -> str:
    if isinstance(source, tuple):
        return f"{Path(source[0]).relative_to(root)}:{source[1]}"
    return str(Path(source).relative_to(root))


def _read_label(source: Any):
    from radseg.io import read_labels

    if not isinstance(source, tuple):
        return read_labels(source)
    archive_path, member = source
    suffix = ".nii.gz" if member.endswith(".gz") else ".nii"
    with zipfile.ZipFile(archive_path) as archive, tempfile.TemporaryDirectory() as folder:
        target = Path(folder) / f"label{suffix}"
        target.write_bytes(archive.read(member))
        try:
            return read_labels(target)
        except ReadError as exc:
            raise ReadError(f"{archive_path}:{member}", exc.problem) from None


def _load(paths: list[Path], label_source: Any, scan_name: str) -> Loaded:
    import numpy as np

    from radseg.image import Image, align_axes
    from radseg.io.dicom import read_series
    from radseg.io.dicom_scan import scan as scan_dicom

    found = scan_dicom(paths, include_derived=True)
    if found.unreadable:
        path, problem = found.unreadable[0]
        raise ReadError(path, problem)
    image = read_series(found.select(None, origin=f"scan {scan_name}"), tilt="shear")
    labels = _read_label(label_source)
    warnings = []
    name = str(label_source[1] if isinstance(label_source, tuple) else label_source)
    if labels.ndim != 3:
        raise ReadError(name, f"label is {labels.ndim}D; the scan is 3D")
    if not labels.same_geometry(image, atol=0.05):
        try:
            labels = align_axes(labels, image, atol=0.05)
        except ValueError:
            if labels.shape != image.shape:
                raise ReadError(name, f"mask shape {labels.shape} does not match image shape {image.shape} "
                                      f"of scan {scan_name}") from None
            shift = float(np.abs(labels.affine - image.affine).max())
            warnings.append(f"label geometry differs from the DICOM series (up to {shift:.3g} mm in the affine); "
                            "same voxel grid assumed")
            labels = Image(labels.array, affine=image.affine, metadata=labels.metadata)
    return Loaded(image=image, labels=labels, warnings=warnings)
