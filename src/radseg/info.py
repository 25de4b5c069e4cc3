"""``radseg info``: what a file or folder holds, and what is wrong with it, without converting it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from radseg.errors import RadsegError
from radseg.image import Image, axis_codes


def describe(path: str | Path, *, include_derived: bool = False) -> dict[str, Any]:
    """A JSON-ready description of ``path``: one entry per image or series, plus file problems.

    DICOM series are described from their headers only (no pixel decoding), so a large
    archive is listed quickly; single non-DICOM files are read.
    """
    from radseg.io import detect_format, read

    path = Path(path)
    fmt = detect_format(path)
    if fmt != "dicom":
        image = read(path)
        return {"path": str(path), "format": fmt, "images": [describe_image(image)]}
    from radseg.io.dicom_scan import scan

    found = scan(path, include_derived=include_derived)
    return {
        "path": str(path),
        "format": "dicom",
        "images": [describe_series(series) for series in found.series],
        "unreadable_files": [{"file": str(p), "problem": why} for p, why in found.unreadable],
        "skipped_files": [{"file": str(p), "reason": why} for p, why in found.skipped],
        "non_dicom_files": [str(p) for p in found.non_dicom],
    }


def describe_image(image: Image) -> dict[str, Any]:
    meta = image.metadata
    return {
        "modality": meta.get("modality", ""),
        "description": meta.get("series_description", ""),
        "shape": list(image.shape),
        "axes": "slice,row,column" if image.ndim == 3 else "row,column",
        "channels": image.channels,
        "dtype": str(image.array.dtype),
        "spacing_mm": [round(float(s), 6) for s in image.spacing],
        "spacing_known": bool(meta.get("spacing_known", True)),
        "orientation": image.nifti_axis_codes,
        "origin_mm": [round(float(v), 4) for v in image.origin],
        "value_range": [float(image.array.min()), float(image.array.max())] if image.array.size else None,
        "problems": list(meta.get("problems", [])),
    }


def describe_series(series) -> dict[str, Any]:
    """Header-only description of one scanned DICOM item."""
    from radseg.io.dicom import radiograph_spacing, series_planes
    from radseg.io.dicom_stack import plan_stack

    entry: dict[str, Any] = {
        "series": series.key,
        "kind": series.kind,
        "modality": series.modality,
        "description": series.description,
        "series_number": series.number,
        "files": len(series.files),
        "problems": list(series.problems),
    }
    ds = series.first
    try:
        if series.kind == "radiograph":
            spacing, source = radiograph_spacing(ds)
            entry.update(
                shape=[int(ds.Rows), int(ds.Columns)], axes="row,column", spacing_mm=list(spacing),
                spacing_source=source, photometric=str(ds.get("PhotometricInterpretation", "")),
                bits_stored=int(ds.get("BitsStored", 0) or 0),
            )
            if source is None:
                entry["problems"].append("no valid PixelSpacing or ImagerPixelSpacing: 1 mm pixels assumed")
            return entry
        plan = plan_stack(series_planes(series), name=str(series.files[0]))
        first = plan.planes[0]
        affine = plan.affine(sheared=False)
        entry.update(
            shape=[len(plan.grid), *first.shape],
            axes="slice,row,column",
            spacing_mm=[round(plan.step, 6), *first.pixel_spacing],
            orientation=axis_codes(affine)[::-1],
            origin_mm=[round(float(v), 4) for v in first.position],
        )
        entry["problems"] += plan.problems
        if plan.irregular:
            entry["problems"].append(f"slice spacing is not regular: {plan.irregular} (reading fails unless gaps are resampled)")
        if plan.tilt_degrees:
            entry["problems"].append(f"gantry tilt of {plan.tilt_degrees:.2f} degrees (resampled on read unless tilt='shear')")
    except RadsegError as exc:
        entry["problems"].append(str(exc))
        entry["readable"] = False
    return entry


def format_text(info: dict[str, Any]) -> str:
    """Human-readable form of :func:`describe`'s result."""
    lines = [f"{info['path']} ({info['format']})"]
    for index, item in enumerate(info["images"], start=1):
        title = item.get("series") or item.get("description") or ""
        lines.append(f"[{index}] {item.get('modality') or '?'} {item.get('kind', '')} {title}".rstrip())
        if item.get("description") and item.get("series"):
            lines.append(f"    description: {item['description']}")
        if "files" in item:
            lines.append(f"    files: {item['files']}")
        if "shape" in item:
            shape = " x ".join(str(s) for s in item["shape"])
            spacing = " x ".join(f"{s:.4g}" for s in item["spacing_mm"])
            lines.append(f"    shape: {shape} ({item['axes']}), spacing: {spacing} mm")
        if item.get("orientation"):
            lines.append(f"    orientation: {item['orientation']} (NIfTI/ITK i,j,k axis codes)")
        for key in ("spacing_source", "photometric", "dtype"):
            if item.get(key):
                lines.append(f"    {key.replace('_', ' ')}: {item[key]}")
        for problem in item.get("problems", []):
            lines.append(f"    problem: {problem}")
    for entry in info.get("unreadable_files", []):
        lines.append(f"unreadable: {entry['file']}: {entry['problem']}")
    skipped = info.get("skipped_files", [])
    if skipped:
        reasons: dict[str, int] = {}
        for entry in skipped:
            reasons[entry["reason"]] = reasons.get(entry["reason"], 0) + 1
        lines.append("skipped: " + ", ".join(f"{n} {why}" for why, n in reasons.items()))
    if info.get("non_dicom_files"):
        lines.append(f"non-DICOM files ignored: {len(info['non_dicom_files'])}")
    return "\n".join(lines)


def _round(values: np.ndarray, digits: int = 4) -> list[float]:
    return [round(float(v), digits) for v in values]
