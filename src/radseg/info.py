"""``radseg info``: what a file or folder holds, and what is wrong with it, without converting it.

Never raises on bad content: every item that cannot be described becomes an entry naming
the file and the problem (``unreadable_files``, or ``problems`` of a series).
"""

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
        try:
            images = [describe_image(read(path))]
            unreadable = []
        except Exception as exc:  # noqa: BLE001 - info reports, it never crashes
            images, unreadable = [], [{"file": str(path), "problem": _problem(exc, path)}]
        return {"path": str(path), "format": fmt, "images": images, "unreadable_files": unreadable}
    from radseg.io.dicom_scan import scan

    found = scan(path, include_derived=include_derived)
    images = [describe_series(series) for series in found.series]
    unreadable = [{"file": str(p), "problem": why} for p, why in found.unreadable]
    if path.is_file() and not images and not unreadable and found.skipped:
        unreadable = [{"file": str(p), "problem": why} for p, why in found.skipped]
    return {
        "path": str(path),
        "format": "dicom",
        "images": images,
        "unreadable_files": unreadable,
        "skipped_files": [{"file": str(p), "reason": why} for p, why in found.skipped],
        "non_dicom_files": [str(p) for p in found.non_dicom],
    }


def _problem(exc: Exception, path: Path) -> str:
    """The problem of an exception, without repeating the file name the entry already gives."""
    if isinstance(exc, RadsegError) and str(getattr(exc, "path", "")) == str(path):
        return exc.problem  # type: ignore[attr-defined]
    if isinstance(exc, RadsegError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _spacing_fields(spacing, known: bool) -> dict[str, Any]:
    return {"spacing_mm": [round(float(s), 6) for s in spacing], "spacing_known": known,
            "spacing_unit": "mm" if known else "px"}


def describe_image(image: Image) -> dict[str, Any]:
    from radseg.io.dicom import NO_PIXEL_SIZE

    meta = image.metadata
    known = bool(meta.get("spacing_known", True))
    problems = list(meta.get("problems", []))
    if not known and NO_PIXEL_SIZE not in problems:
        problems.append(NO_PIXEL_SIZE)
    finite = image.array[np.isfinite(image.array)] if image.array.dtype.kind == "f" else image.array
    return {
        "modality": meta.get("modality", ""),
        "description": meta.get("series_description", ""),
        "shape": list(image.shape),
        "axes": "slice,row,column" if image.ndim == 3 else "row,column",
        "channels": image.channels,
        "dtype": str(image.array.dtype),
        **_spacing_fields(image.spacing, known),
        "orientation": image.nifti_axis_codes,
        "origin_mm": [round(float(v), 4) for v in image.origin],
        "value_range": [float(finite.min()), float(finite.max())] if finite.size else None,
        "problems": problems,
    }


def describe_series(series) -> dict[str, Any]:
    """Header-only description of one scanned DICOM item."""
    from radseg.io.dicom import NO_PIXEL_SIZE, radiograph_spacing, series_planes
    from radseg.io.dicom_scan import frame_count
    from radseg.io.dicom_stack import plan_stack

    entry: dict[str, Any] = {
        "series": series.key,
        "kind": series.kind,
        "modality": series.modality,
        "description": series.description,
        "series_number": series.number,
        "files": len(series.files),
        "frames": frame_count(series.first) if series.kind != "slices" else len(series.files),
        "problems": list(series.problems),
    }
    ds = series.first
    for path, why in series.broken:
        entry["problems"].append(f"{path}: {why} (reading this series fails)")
    if series.broken:
        entry["readable"] = False
    for path, why in series.suspects:
        entry["problems"].append(f"unreadable file in the series folder: {path}: {why}")
    try:
        if series.kind == "radiograph":
            spacing, source = radiograph_spacing(ds)
            samples = int(ds.get("SamplesPerPixel", 1) or 1)
            frames = entry["frames"]
            entry.update(
                shape=([frames] if frames > 1 else []) + [int(ds.Rows), int(ds.Columns)],
                axes="frame,row,column" if frames > 1 else "row,column",
                channels=samples if samples > 1 else None,
                **_spacing_fields(([1.0] if frames > 1 else []) + list(spacing), source is not None),
                spacing_source=source, photometric=str(ds.get("PhotometricInterpretation", "")),
                bits_stored=int(ds.get("BitsStored", 0) or 0),
            )
            if frames > 1:
                entry["problems"].append(f"{frames} frames without patient geometry: frame axis spacing is 1 (not mm)")
            if source is None:
                entry["problems"].append(NO_PIXEL_SIZE)
            return entry
        plan = plan_stack(series_planes(series), name=str(series.files[0]))
        first = plan.planes[0]
        affine = plan.affine(sheared=False)
        entry.update(
            shape=[len(plan.grid), *first.shape],
            axes="slice,row,column",
            **_spacing_fields([plan.step, *first.pixel_spacing], True),
            orientation=axis_codes(affine)[::-1],
            origin_mm=[round(float(v), 4) for v in first.position],
        )
        entry["problems"] += plan.problems
        if plan.irregular:
            entry["problems"].append(f"slice spacing is not regular: {plan.irregular} (reading fails unless gaps are resampled)")
        if plan.tilt_degrees:
            entry["problems"].append(f"gantry tilt of {plan.tilt_degrees:.2f} degrees (resampled on read unless tilt='shear')")
    except Exception as exc:  # noqa: BLE001 - a bad header is a problem of this item, not a crash
        entry["problems"].append(str(exc) if isinstance(exc, RadsegError) else f"{series.files[0]}: {_problem(exc, series.files[0])}")
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
            lines.append(f"    files: {item['files']}" + (f", frames: {item['frames']}" if item.get("frames", 1) > 1
                                                           and item.get("kind") != "slices" else ""))
        if "shape" in item:
            shape = " x ".join(str(s) for s in item["shape"])
            spacing = " x ".join(f"{s:.4g}" for s in item["spacing_mm"])
            channels = f", {item['channels']} channels" if item.get("channels") else ""
            lines.append(f"    shape: {shape} ({item['axes']}{channels}), spacing: {spacing} {item.get('spacing_unit', 'mm')}")
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
        lines += [f"  {entry['file']}: {entry['reason']}" for entry in skipped[:_SHOWN]]
        if len(skipped) > _SHOWN:
            lines.append(f"  ... and {len(skipped) - _SHOWN} more (--json lists all)")
    others = info.get("non_dicom_files", [])
    if others:
        lines.append(f"non-DICOM files ignored: {len(others)}")
        lines += [f"  {name}" for name in others[:_SHOWN]]
        if len(others) > _SHOWN:
            lines.append(f"  ... and {len(others) - _SHOWN} more (--json lists all)")
    return "\n".join(lines)


_SHOWN = 20  # files named per list in the text output


def _round(values: np.ndarray, digits: int = 4) -> list[float]:
    return [round(float(v), digits) for v in values]
