"""THA hip-CT dataset: DICOM series ``PA<n>/ST<n>/SE<n>/`` with per-slice PNG masks.

::

    ROOT/**/PA1/ST0/SE0/*.dcm                      one CT series
    ROOT/**/<masks of that series>/{left,right}/masks/{fem,ace}/%05d.png    0/255

Facts of the THA code (``instance_seg_main.py``) this adapter follows:

* ``left``/``right`` are *image halves*, not patient sides: ``left`` is columns ``0:W//2``,
  ``right`` columns ``W//2:``; each PNG is ``H x W//2`` (a full-width PNG is accepted too).
  The patient side of a half comes from the series geometry (with the usual orientation
  the image left is the patient's right).
* ``%05d`` is THA's slice index: the series sorted along the slice normal (GDCM) and then
  reversed, so index 0 is the last slice along the normal (the most superior one of a
  standard axial series): radseg slice ``n - 1 - index``. ``index_order="position"`` takes
  the index in position order instead.
* ``fem`` is the femur of that half in the slice, ``ace`` the acetabulum; slices without a
  PNG are unlabelled (THA masks only the slices where the femoral head is).

Which mask folder belongs to which series: the ``PA<n>``/``ST<n>``/``SE<n>`` ids in the mask
folder's path (``PA1_ST0_SE0/`` or ``PA1/ST0/SE0/``), else a table with ``dicom_dir`` and
``masks_dir`` columns (``metadata.csv``, as ``radseg synth hip-ct`` writes), else the only
series with the only mask folder. The patient is ``PA<n>``.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from radseg.datasets.base import CaseRecord, DatasetReport, DatasetScan, Loaded
from radseg.errors import ReadError

NAME = "tha"
LABELS = {1: "right acetabulum", 2: "left acetabulum", 3: "right femur", 4: "left femur"}
_VALUE = {("right", "ace"): 1, ("left", "ace"): 2, ("right", "fem"): 3, ("left", "fem"): 4}
_IDS = re.compile(r"^(PA|ST|SE)(\d+)$", re.IGNORECASE)
_IDS_IN_TEXT = re.compile(r"(?:^|[^A-Za-z])(PA|ST|SE)(\d+)", re.IGNORECASE)


def scan(root: Path, *, pairs: str | None = None, index_order: str = "tha") -> DatasetScan:
    if index_order not in ("tha", "position"):
        raise ValueError(f"option index_order must be tha or position, not {index_order!r}")
    report = DatasetReport(dataset=NAME, root=str(root))
    series = _find_series(root)
    masks = _find_mask_roots(root)
    table = _pair_table(Path(pairs) if pairs else root / "metadata.csv", root)
    report.found = {"DICOM series (PA/ST/SE)": len(series), "mask folders": len(masks)}
    paired: dict[Path, Path] = {}
    for mask_root in masks:
        target = _match(mask_root, series, table, root, single=len(series) == 1 and len(masks) == 1)
        if target is None:
            report.skipped.append((str(mask_root.relative_to(root)), "no PA/ST/SE series matches this mask folder"))
        elif target in paired:
            report.skipped.append((str(mask_root.relative_to(root)), f"a second mask folder for {target.relative_to(root)}"))
        else:
            paired[target] = mask_root
    records = []
    for folder, ids in sorted(series.items()):
        if folder not in paired:
            report.skipped.append((str(folder.relative_to(root)), "series without masks"))
            continue
        case_id = "_".join(f"{k}{ids[k]}" for k in ("PA", "ST", "SE"))
        records.append(CaseRecord(
            case_id=case_id, patient=f"PA{ids['PA']}",
            metadata={"study": f"ST{ids['ST']}", "series": f"SE{ids['SE']}"},
            sources=[str(folder.relative_to(root)), str(paired[folder].relative_to(root))],
            load=lambda f=folder, m=paired[folder]: _load(f, m, index_order),
        ))
    return DatasetScan(
        name=NAME, records=records, label_names=dict(LABELS), report=report, modality="CT", dims=3,
        window=(-125.0, 275.0), preset="hip-ct",
        description="THA hip CT: acetabulum and femur per side around the femoral heads",
        source={"index_order": index_order},
    )


def _ids(parts) -> dict[str, str]:
    found = {}
    for part in parts:
        for kind, number in _IDS_IN_TEXT.findall(part):
            found.setdefault(kind.upper(), number)
    return found


def _find_series(root: Path) -> dict[Path, dict[str, str]]:
    series = {}
    for folder in sorted(p for p in root.rglob("*") if p.is_dir()):
        names = [folder.parent.parent.name, folder.parent.name, folder.name]
        matched = [_IDS.match(n) for n in names]
        if all(matched) and [m.group(1).upper() for m in matched] == ["PA", "ST", "SE"]:
            series[folder] = {m.group(1).upper(): m.group(2) for m in matched}
    return series


def _find_mask_roots(root: Path) -> list[Path]:
    roots = set()
    for masks in root.rglob("masks"):
        if masks.is_dir() and masks.parent.name in ("left", "right") and \
                any((masks / kind).is_dir() for kind in ("fem", "ace")):
            roots.add(masks.parent.parent)
    return sorted(roots)


def _pair_table(path: Path, root: Path) -> dict[Path, Path]:
    if not path.exists():
        return {}
    import pandas as pd

    try:
        frame = pd.read_csv(path, dtype=str)
    except Exception as exc:
        raise ReadError(path, f"unreadable CSV ({exc})") from None
    if not {"dicom_dir", "masks_dir"} <= set(frame.columns):
        return {}
    base = path.parent
    return {(base / m).resolve(): (base / d).resolve() for d, m in zip(frame["dicom_dir"], frame["masks_dir"])
            if isinstance(d, str) and isinstance(m, str)}


def _match(mask_root: Path, series: dict[Path, dict[str, str]], table: dict[Path, Path], root: Path,
           *, single: bool) -> Path | None:
    wanted = _ids(mask_root.relative_to(root).parts)
    if wanted:
        hits = [f for f, ids in series.items() if all(ids.get(k) == v for k, v in wanted.items())]
        if len(hits) == 1:
            return hits[0]
    listed = table.get(mask_root.resolve())
    if listed is not None:
        return next((f for f in series if f.resolve() == listed), None)
    return next(iter(series)) if single else None


def _half_side(image) -> dict[str, str]:
    """Patient side of each image half from the column axis direction (+x in LPS is patient left)."""
    x = float(image.direction[0, 2])
    if abs(x) < 0.5:
        raise ReadError(image.metadata.get("source_files", ["series"])[0],
                        "columns do not run left-right (not an axial series): cannot tell the patient side of a half")
    return {"left": "right", "right": "left"} if x > 0 else {"left": "left", "right": "right"}


def _load(folder: Path, mask_root: Path, index_order: str) -> Loaded:
    from PIL import Image as PILImage

    from radseg.io import read
    from radseg.labels import make_label_map

    image = read(folder, tilt="shear")  # the masks were drawn on the stored voxels (no de-tilting)
    n, height, width = image.shape
    sides = _half_side(image)
    labels = np.zeros(image.shape, np.uint8)
    filled: dict[tuple[str, int], np.ndarray] = {}
    for half, columns in (("left", slice(0, width // 2)), ("right", slice(width // 2, width))):
        for kind in ("fem", "ace"):
            for png in sorted((mask_root / half / "masks" / kind).glob("*.png")):
                try:
                    index = int(png.stem)
                except ValueError:
                    raise ReadError(png, "mask file names are slice indices (%05d.png)") from None
                if not 0 <= index < n:
                    raise ReadError(png, f"slice index {index} outside the series' {n} slices")
                with PILImage.open(png) as pil:
                    mask = np.asarray(pil.convert("L") if pil.mode not in ("L", "1", "I;16") else pil)
                values = set(np.unique(mask).tolist())
                if not values <= {0, 255} and not values <= {0, 1}:
                    raise ReadError(png, f"unexpected value(s) {sorted(values - {0, 1, 255})}: THA masks are 0/255")
                k = n - 1 - index if index_order == "tha" else index
                target = labels[k, :, columns]
                if mask.shape == (height, width):
                    mask = mask[:, columns]  # a full-width PNG
                if mask.shape != target.shape:
                    raise ReadError(png, f"mask shape {mask.shape} does not match the {half} half "
                                         f"{target.shape} of image shape {image.shape[1:]}")
                on = mask > 0
                other = filled.get((half, k))
                if other is not None and np.any(other & on):
                    raise ReadError(png, f"femur and acetabulum masks overlap in {int(np.sum(other & on))} pixel(s)")
                filled[(half, k)] = on if other is None else other | on
                target[on] = _VALUE[(sides[half], kind)]
    label_map = make_label_map(image.with_array(labels), LABELS)
    return Loaded(image=image, labels=label_map)
