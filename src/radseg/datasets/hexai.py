"""HexAI-KneeHipBoneSeg: OAI knee/hip radiographs (DICOM), NIfTI masks, subject metadata.

Layout, as the HexAI code reads it (``bonyanatomy/dataset.py``)::

    ROOT/Knee/Images/<id>.dcm        ROOT/Knee/Annotations/<id>.nii.gz
    ROOT/Hip/Images/<id>.dcm         ROOT/Hip/Annotations/<id>.nii.gz
    a metadata table (.xlsx or .csv) with an id column, P02SEX, P02RACE, V00AGE

``images/`` + ``masks/`` directly under the root (the ``radseg synth knee-xray`` layout) is
read too. Masks: HexAI loads them with nibabel and turns them 90 degrees clockwise and
flips them, which is exactly a transpose: the NIfTI ``i`` axis runs along image columns.
radseg's NIfTI reader already returns ``[row, col]`` that way, so the mask lands on the
DICOM grid without any turn; its affine is ignored (the DICOM's geometry rules). A 3D mask
must have exactly one labelled slice (HexAI takes slice 1 of 2, else the middle one, which
can pick an empty slice; radseg takes the labelled one and says so).
Metadata: OAI codes (``1: Male``, ``2: Black or African American``) become ``sex`` (M/F),
``race`` (White/Black/Asian/Other) and ``age_group`` (<=50, 51-64, 65-79, 80+) for the
fairness audit; the raw columns are kept.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from radseg.datasets.base import CaseRecord, DatasetReport, DatasetScan, Loaded
from radseg.errors import ReadError
from radseg.image import Image
from radseg.io.atomic import strip_suffix

NAME = "hexai-kneehip"
KNEE_LABELS = {1: "right patella", 2: "right femur", 3: "right tibia", 4: "right fibula",
               5: "left patella", 6: "left femur", 7: "left tibia", 8: "left fibula"}
HIP_LABELS = {1: "right acetabulum", 2: "left acetabulum", 3: "right ilium-ischium-pubis",
              4: "left ilium-ischium-pubis", 5: "right femur", 6: "left femur"}
_ID_COLUMNS = ("id", "ID", "image_id", "case", "case_id", "filename", "file")
_PATIENT_COLUMNS = ("patient", "patient_id", "ParticipantID", "participant_id", "subject")


def scan(root: Path, *, anatomy: str | None = None, metadata: str | None = None) -> DatasetScan:
    anatomy = _anatomy(root, anatomy)
    report = DatasetReport(dataset=NAME, root=str(root))
    image_dir, mask_dir = _folders(root, anatomy)
    images = {strip_suffix(p): p for p in sorted(image_dir.iterdir()) if p.is_file() and not p.name.startswith(".")}
    masks = {strip_suffix(p): p for p in sorted(mask_dir.iterdir()) if p.is_file() and not p.name.startswith(".")}
    table_path = Path(metadata) if metadata else _find_metadata(root, anatomy)
    table = _read_metadata(table_path) if table_path else {}
    if table_path is None:
        report.warnings.append("no metadata table found: no sex, race or age columns for the fairness audit")
    labels = KNEE_LABELS if anatomy == "knee" else HIP_LABELS
    report.found = {"images": len(images), "masks": len(masks), "metadata rows": len(table)}
    for stem in sorted(set(masks) - set(images)):
        report.skipped.append((str(masks[stem].relative_to(root)), "mask without an image of the same id"))
    records = []
    for stem, image_path in images.items():
        if stem not in masks:
            report.skipped.append((str(image_path.relative_to(root)), "image without a mask of the same id"))
            continue
        row = table.get(stem)
        if row is None and table:
            report.warnings.append(f"{stem}: no metadata row")
        subject = subject_columns(row or {})
        patient = str(subject.pop("patient", None) or stem)
        records.append(CaseRecord(
            case_id=stem, patient=patient, metadata=subject,
            sources=[str(image_path.relative_to(root)), str(masks[stem].relative_to(root))],
            load=lambda i=image_path, m=masks[stem]: _load(i, m, labels),
        ))
    return DatasetScan(
        name=NAME, records=records, label_names=dict(labels), report=report, modality="XR", dims=2,
        preset=f"{anatomy}-xray",
        description=f"HexAI-KneeHipBoneSeg {anatomy} radiographs (OAI) with bone masks",
        source={"anatomy": anatomy, "metadata": str(table_path) if table_path else None},
    )


def _anatomy(root: Path, anatomy: str | None) -> str:
    if anatomy:
        value = str(anatomy).strip().lower()
        if value not in ("knee", "hip"):
            raise ValueError(f"option anatomy must be knee or hip, not {anatomy!r}")
        return value
    present = [a for a in ("knee", "hip") if any((root / n).is_dir() for n in (a, a.capitalize()))]
    if len(present) == 1:
        return present[0]
    raise ValueError("give --option anatomy=knee or anatomy=hip (the label tables differ)")


def _folders(root: Path, anatomy: str) -> tuple[Path, Path]:
    bases = [root / anatomy.capitalize(), root / anatomy, root]
    for base in bases:
        images = next((base / n for n in ("Images", "images") if (base / n).is_dir()), None)
        masks = next((base / n for n in ("Annotations", "annotations", "masks", "Masks") if (base / n).is_dir()), None)
        if images and masks:
            return images, masks
    raise ReadError(root, f"no {anatomy.capitalize()}/Images + {anatomy.capitalize()}/Annotations "
                          "(or images/ + masks/) folders")


def _find_metadata(root: Path, anatomy: str) -> Path | None:
    found = [p for pattern in ("*.xlsx", "*.csv", "*/*.xlsx", "*/*.csv") for p in sorted(root.glob(pattern))
             if not p.name.startswith((".", "~$")) and p.name != "metadata.csv"]
    if not found:
        return None
    ranked = sorted(found, key=lambda p: (anatomy not in p.name.lower(), "meta" not in p.name.lower(), len(p.parts)))
    return ranked[0]


def _read_metadata(path: Path) -> dict[str, dict[str, Any]]:
    import pandas as pd

    try:
        frame = pd.read_excel(path, dtype=object) if path.suffix.lower() in (".xlsx", ".xls") else \
            pd.read_csv(path, dtype=object)
    except ImportError as exc:
        raise ReadError(path, f"reading .xlsx needs openpyxl: pip install openpyxl ({exc})") from None
    except FileNotFoundError:
        raise ReadError(path, "metadata table not found") from None
    except Exception as exc:
        raise ReadError(path, f"unreadable metadata table ({exc})") from None
    key = next((c for c in _ID_COLUMNS if c in frame.columns), None)
    if key is None:
        raise ReadError(path, f"no id column (one of {', '.join(_ID_COLUMNS)}); columns: {', '.join(map(str, frame.columns))}")
    frame = frame.astype(object).where(frame.notna(), None)
    return {strip_suffix(str(row[key])): row for row in frame.to_dict("records")}


def _oai_code(value: Any) -> str:
    """``"2: Female"`` -> ``"female"``; plain text is lower-cased."""
    text = str(value).strip()
    return re.sub(r"^\s*\d+\s*[:.]\s*", "", text).strip().lower()


def subject_columns(row: dict[str, Any]) -> dict[str, Any]:
    """Normalised sex, race, age, age_group (+ patient when the table has one) and the raw OAI columns."""
    from radseg.evaluate.fairness import age_group

    out: dict[str, Any] = {}
    patient = next((row[c] for c in _PATIENT_COLUMNS if row.get(c) is not None), None)
    if patient is not None:
        out["patient"] = str(patient)
    sex = row.get("P02SEX", row.get("sex"))
    if sex is not None:
        text = _oai_code(sex)
        out["sex"] = {"male": "M", "m": "M", "1": "M", "female": "F", "f": "F", "2": "F"}.get(text, text)
    race = row.get("P02RACE", row.get("race"))
    if race is not None:
        text = _oai_code(race)
        out["race"] = ("White" if "white" in text and "non" not in text else "Black" if "black" in text
                       else "Asian" if "asian" in text else "Other")
    age = row.get("V00AGE", row.get("age"))
    try:
        out["age"] = float(age) if age is not None else None
    except (TypeError, ValueError):
        out["age"] = None
    out["age_group"] = age_group(out["age"]) if out["age"] is not None else None
    for column in ("P02SEX", "P02RACE", "V00AGE"):
        if column in row:
            out[column] = row[column]
    return out


def _load(image_path: Path, mask_path: Path, labels: dict[int, str]) -> Loaded:
    from radseg.io import read
    from radseg.labels import make_label_map

    image = read(image_path)
    if image.ndim != 2:
        raise ReadError(image_path, f"expected a 2D radiograph, got a {image.ndim}D image")
    mask = read(mask_path)
    array, warnings = _mask_plane(mask.array, mask_path)
    if array.shape != image.shape:
        raise ReadError(mask_path, f"mask shape {array.shape} (after HexAI's transpose) does not match "
                                   f"image shape {image.shape} of {image_path.name}")
    if array.dtype.kind == "f" and not np.array_equal(array, np.round(array)):
        raise ReadError(mask_path, "mask has non-integer values")
    if array.size and array.min() < 0:
        raise ReadError(mask_path, f"mask has negative values (min {array.min()})")
    array = array.astype(np.uint8 if array.max(initial=0) < 256 else np.int32)
    # The DICOM's grid is the truth: the NIfTI affine of these masks carries no usable geometry.
    label_map = make_label_map(Image(array, affine=image.affine, metadata={"source_files": [str(mask_path)]}), labels)
    return Loaded(image=image, labels=label_map, warnings=warnings)


def _mask_plane(array: np.ndarray, path: Path) -> tuple[np.ndarray, list[str]]:
    """A 2D mask from a 2D file or a 3D file with one labelled slice (radseg order [k, row, col])."""
    if array.ndim == 2:
        return array, []
    if array.ndim != 3:
        raise ReadError(path, f"mask with shape {array.shape}: expected 2D or 3D with one labelled slice")
    labelled = [k for k in range(array.shape[0]) if np.any(array[k])]
    if len(labelled) > 1:
        raise ReadError(path, f"3D mask with {len(labelled)} labelled slices ({labelled}); expected one")
    index = labelled[0] if labelled else array.shape[0] // 2
    note = f"3D mask of {array.shape[0]} slices: used slice {index}" + ("" if labelled else " (all empty)")
    return array[index], [note]
