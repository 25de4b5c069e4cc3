"""The label-map writer registry (``kind`` -> writer) and the matching reader, ``read_labels``.

Every command that writes masks (segment, annotate, synth, datasets) goes through
:func:`radseg.io.write` with ``kind=`` one of :data:`LABEL_WRITERS`:

============  =====================================================================
kind          output
============  =====================================================================
nifti         ``.nii.gz`` label map, integer dtype, label names in a header extension
png           one 8/16-bit PNG label map (2D), names in a PNG text chunk
png-classes   CXAS layout: ``<dir>/<case>/<class name>.png`` (0/255) + ``classes.json``
jpg-classes   CXAS's ``-ot jpg``: the same per-class masks as JPEG (lossy edges; read back at > 127)
npy           ``[classes, ...]`` bool stack (multi-label) or label map + ``<stem>.json``
npz           the same, compressed, names and affine inside
coco          COCO JSON, RLE per class and connected instance (pycocotools)
dicom-seg     DICOM Segmentation on the source DICOM (highdicom)
overlay       PNG/JPG preview: image + coloured labels + legend (needs ``image=``)
============  =====================================================================

JPEG is never a label format of its own: ``jpg`` is accepted as a kind only for the overlay
preview, and ``jpg-classes`` exists because CXAS users expect its per-class JPEG folders.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from radseg.errors import ReadError, WriteError
from radseg.image import Image
from radseg.io.atomic import full_suffix
from radseg.registry import Registry

LabelWriter = Callable[..., Any]


def _nifti(labels: Image, target: Path, **_: Any) -> Path:
    from radseg.io.nifti import write_nifti
    from radseg.labels import to_label_map

    if full_suffix(target) not in (".nii", ".nii.gz"):
        target = target / "labels.nii.gz" if target.is_dir() else target.with_name(target.name + ".nii.gz")
    return write_nifti(to_label_map(labels), target)


def _png(labels: Image, target: Path, **_: Any) -> Path:
    from radseg.io.label_png import write_label_png
    from radseg.labels import to_label_map

    return write_label_png(to_label_map(labels), target)


def _png_classes(labels: Image, target: Path, *, case: str | None = None, **_: Any) -> list[Path]:
    from radseg.io.label_png import write_class_pngs

    return write_class_pngs(labels, target, case or _case_name(labels))


def _jpg_classes(labels: Image, target: Path, *, case: str | None = None, **_: Any) -> list[Path]:
    from radseg.io.label_png import write_class_pngs

    return write_class_pngs(labels, target, case or _case_name(labels), ext=".jpg")


def _npy(labels: Image, target: Path, **_: Any) -> list[Path]:
    from radseg.io.label_arrays import write_npy

    return write_npy(labels, target)


def _npz(labels: Image, target: Path, **_: Any) -> Path:
    from radseg.io.label_arrays import write_npz

    return write_npz(labels, target)


def _coco(labels: Image, target: Path, *, file_name: str | None = None, **_: Any) -> Path:
    from radseg.io.coco import write_coco

    return write_coco(labels, target, file_name=file_name or _case_name(labels) + ".png")


def _dicom_seg(labels: Image, target: Path, **options: Any) -> Path:
    from radseg.io.dicom_seg import write_dicom_seg

    return write_dicom_seg(labels, target, **options)


def _overlay(labels: Image, target: Path, *, image: Image | None = None, **options: Any) -> Path:
    from radseg.io.label_png import write_overlay

    if image is None:
        raise WriteError(target, "an overlay needs the image it is drawn on (image=...)")
    return write_overlay(image, labels, target, **options)


LABEL_WRITERS: Registry[LabelWriter] = Registry("label format")
for _kind, _writer in (("nifti", _nifti), ("png", _png), ("png-classes", _png_classes),
                       ("jpg-classes", _jpg_classes), ("npy", _npy),
                       ("npz", _npz), ("coco", _coco), ("dicom-seg", _dicom_seg), ("overlay", _overlay),
                       ("jpg", _overlay)):
    LABEL_WRITERS.register(_kind, _writer)


def write_labels(labels: Image, target: str | Path, kind: str, **options: Any) -> Any:
    """Write a label map or multi-label mask as ``kind`` (see the table above)."""
    target = Path(target)
    if kind == "jpg" and full_suffix(target) not in (".jpg", ".jpeg"):
        raise WriteError(target, "kind 'jpg' writes an overlay preview; give a .jpg path (JPEG never holds labels)")
    writer = LABEL_WRITERS[kind]
    _check_writable(target)
    return writer(labels, target, **options)


def _check_writable(target: Path) -> None:
    """Fail early, naming the path, when the output cannot be created."""
    for parent in (target, *target.parents):
        if parent.exists():
            if not parent.is_dir() and parent != target:
                raise WriteError(target, f"cannot write here: {parent} is a file, not a folder")
            break


def _case_name(labels: Image) -> str:
    sources = labels.metadata.get("source_files") or []
    if sources:
        from radseg.io.atomic import strip_suffix

        return strip_suffix(sources[0])
    return "case"


def read_labels(path: str | Path, *, like: Image | None = None) -> Image:
    """Read a label map (or multi-label mask) written by any label writer."""
    path = Path(path)
    if path.is_dir():
        from radseg.io.label_png import is_class_folder, read_class_pngs

        if is_class_folder(path):  # radseg's classes.json, or plain CXAS output: classes by file name
            return read_class_pngs(path, like=like)
        raise ReadError(path, "a label folder holds per-class PNG/JPEG masks only (the CXAS layout) or classes.json")
    suffix = full_suffix(path)
    if suffix in (".nii", ".nii.gz"):
        from radseg.io.nifti import read_nifti

        return read_nifti(path)
    if suffix == ".png":
        from radseg.io.label_png import read_label_png

        return read_label_png(path)
    if suffix == ".npy":
        from radseg.io.label_arrays import read_npy

        return read_npy(path)
    if suffix == ".npz":
        from radseg.io.label_arrays import read_npz

        return read_npz(path)
    if suffix == ".json":
        from radseg.io.coco import read_coco

        return read_coco(path)
    if suffix in (".jpg", ".jpeg"):
        raise ReadError(path, "JPEG is lossy and never holds labels")
    from radseg.io.dicom_seg import read_dicom_seg

    return read_dicom_seg(path)

