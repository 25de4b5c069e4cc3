"""Any images + masks matched by file stem, in any format radseg reads, with an optional metadata CSV.

::

    ROOT/images/<case>.<ext>    image file (PNG, JPEG, TIFF, NIfTI, MHA, NRRD, DICOM) or a DICOM series folder
    ROOT/masks/<case>.<ext>     label map (label PNG, NIfTI, NPY/NPZ, TIFF, MHA ...); ``labels/`` works too
    ROOT/metadata.csv           optional: a ``case`` column (or the first column), optional ``patient``
                                and ``split`` columns, any subgroup columns (sex, age, site ...)

Options: ``labels="1=femur,2=tibia"`` fixes the label table (other mask values are an
error for that case); without it the table is the values found. ``binary=true`` makes
every non-zero mask value label 1 (0/255 masks). A case without a patient column is its
own patient. Images without a mask and masks without an image are reported.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from radseg.datasets.base import (
    CaseRecord,
    DatasetReport,
    DatasetScan,
    Loaded,
    default_metadata_path,
    normalise_split,
    option_bool,
    read_metadata_table,
)
from radseg.errors import ReadError
from radseg.io.atomic import strip_suffix

NAME = "folder"
_SKIP_SUFFIXES = {".json", ".txt", ".csv", ".md", ".yaml", ".yml"}


def scan(root: Path, *, images: str = "images", masks: str | None = None, metadata: str | None = None,
         labels: str | None = None, binary: bool | str = False, modality: str | None = None) -> DatasetScan:
    binary = option_bool(binary, "binary")
    report = DatasetReport(dataset=NAME, root=str(root))
    image_dir = root / images
    if not image_dir.is_dir():
        raise ReadError(image_dir, "image folder not found (option images=NAME picks another)")
    mask_dir = root / masks if masks else next((root / d for d in ("masks", "labels") if (root / d).is_dir()), None)
    if mask_dir is None or not mask_dir.is_dir():
        raise ReadError(root / (masks or "masks"), "mask folder not found (option masks=NAME picks another)")
    if not labels and not binary and _class_folders(mask_dir):
        # <case>/<class>.png folders (CXAS layout, radseg's chest phantom): overlapping classes
        from radseg.datasets.chest import scan_cxas

        scan = scan_cxas(root, images=images, masks=masks or mask_dir.name, metadata=metadata)
        scan.report.warnings.append("masks are per-class folders: read as a multi-label dataset (the cxas adapter)")
        scan.modality = modality or scan.modality
        return scan
    image_files = _entries(image_dir, report)
    mask_files = _entries(mask_dir, report)
    table = read_metadata_table(Path(metadata) if metadata else default_metadata_path(root))
    label_names = parse_label_table(labels) if labels else ({1: "foreground"} if binary else None)
    report.found = {"images": len(image_files), "masks": len(mask_files), "metadata rows": len(table)}
    for stem in sorted(set(mask_files) - set(image_files)):
        report.skipped.append((str(mask_files[stem].relative_to(root)), "mask without an image of the same name"))
    records = []
    for stem, image_path in sorted(image_files.items()):
        if stem not in mask_files:
            report.skipped.append((str(image_path.relative_to(root)), "image without a mask of the same name"))
            continue
        row = dict(table.get(stem, {}))
        patient = str(row.pop("patient", None) or stem)
        split = row.pop("split", None)
        records.append(CaseRecord(
            case_id=stem, patient=patient,
            split=normalise_split(split, where=f"metadata row {stem}") if split else None,
            metadata=row, sources=[str(image_path.relative_to(root)), str(mask_files[stem].relative_to(root))],
            load=lambda i=image_path, m=mask_files[stem]: _load(i, m, binary),
        ))
    dims = _dims(records, root)
    return DatasetScan(name=NAME, records=records, label_names=label_names, report=report,
                       modality=modality or ("CT" if dims == 3 else "XR"), dims=dims,
                       description=f"images and masks from {root}", source={"binary": binary})


def _class_folders(mask_dir: Path) -> bool:
    from radseg.io.label_png import is_class_folder

    first = next((p for p in sorted(mask_dir.iterdir()) if p.is_dir() and not p.name.startswith(".")), None)
    return first is not None and is_class_folder(first)


def parse_label_table(text: str) -> dict[int, str]:
    """``"1=femur,2=tibia"`` -> ``{1: "femur", 2: "tibia"}``."""
    table = {}
    for part in str(text).split(","):
        if not part.strip():
            continue
        value, sep, name = part.partition("=")
        try:
            number = int(value)
        except ValueError:
            number = -1
        if not sep or number < 1 or not name.strip():
            raise ValueError(f"labels {text!r}: expected VALUE=NAME pairs with values >= 1, e.g. 1=femur,2=tibia")
        table[number] = name.strip()
    return table


def _entries(folder: Path, report: DatasetReport) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.suffix.lower() in _SKIP_SUFFIXES:
            continue
        stem = path.name if path.is_dir() else strip_suffix(path)
        if stem in found:
            report.skipped.append((str(path), f"another file has the same name {stem!r} ({found[stem].name})"))
            continue
        found[stem] = path
    return found


def _dims(records: list[CaseRecord], root: Path) -> int:
    if not records:
        return 2
    from radseg.io import read

    first = records[0]
    try:
        return read(root / first.sources[0]).ndim
    except ReadError:
        return 2


def _load(image_path: Path, mask_path: Path, binary: bool) -> Loaded:
    from radseg.io import read, read_labels

    image = read(image_path)
    try:
        labels = read_labels(mask_path)
    except ReadError:
        labels = read(mask_path)  # a plain raster/ITK mask that read_labels does not take
    if labels.channels is not None:
        raise ReadError(mask_path, f"mask has {labels.channels} channels; expected one label value per pixel")
    array = labels.array
    if array.dtype.kind == "f":
        if not np.array_equal(array, np.round(array)):
            raise ReadError(mask_path, "mask has non-integer values")
        array = array.astype(np.int32)
    if binary:
        array = (array != 0).astype(np.uint8)
    if np.any(array < 0):
        raise ReadError(mask_path, "mask has negative values")
    source = None
    if image.metadata.get("format") == "raster":
        # Copy raster files unchanged unless an EXIF tag turns them in viewers (then pixels are re-encoded as read).
        source = image_path if image.metadata.get("exif_orientation") is None else None
    return Loaded(image=image, labels=labels.with_array(array), image_file=source)
