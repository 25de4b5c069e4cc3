"""Clinical measurements from label maps, in millimetres, with pictures of where they were taken.

``FEATURE_SETS`` is the registry (and the source of ``radseg features --set`` choices):

=======  ==============================================================================
shape    any label, 2D or 3D: area/volume, centroid, box, perimeter, compactness, convexity
chest    chest radiograph: cardio-thoracic ratio (CXAS and textbook), spine-centre distance
knee     knee radiograph: medial/lateral minimum and fixed-location joint-space width
hip      hip/pelvis radiograph: femoral head centre/diameter, min JSW, LCEA, neck-shaft angle
ct       CT: volume and HU statistics per label, femoral-head sphere fit, hip joint space
=======  ==============================================================================

Each set returns :class:`Measurement` rows: a value with its unit, or ``None`` with a note
saying why it could not be made. Sides come from label names, never image position.

    from radseg.features import measure
    rows = measure(labels, "knee")            # labels: a radseg Image (label map)
    [(m.structure, m.name, m.value, m.unit) for m in rows]

Folders and CSVs: :func:`radseg.features.run.extract_features` (what ``radseg features`` runs).
"""

from __future__ import annotations

from importlib import import_module

from radseg.features.base import FeatureSet, Mark, Measurement
from radseg.image import Image
from radseg.registry import Registry

__all__ = ["FEATURE_SETS", "FeatureSet", "Mark", "Measurement", "check_integer_labels", "measure", "prepare"]


def _lazy(module: str):
    def compute(labels, *, image=None, **options):
        return import_module(module).compute(labels, image=image, **options)

    return compute


FEATURE_SETS: Registry[FeatureSet] = Registry("feature set")
for _name, _description, _dims in (
    ("shape", "area or volume, centroid, box, perimeter, compactness, convexity of every label", (2, 3)),
    ("chest", "cardio-thoracic ratio (CXAS and textbook) and spine-centre distance", (2,)),
    ("knee", "medial/lateral minimum and fixed-location joint-space width per knee", (2,)),
    ("hip", "femoral head centre and diameter, min joint space, LCEA, neck-shaft angle per hip", (2,)),
    ("ct", "volume and HU statistics per label, femoral-head sphere fit, hip joint space", (3,)),
):
    FEATURE_SETS.register(_name, FeatureSet(_name, _description, _lazy(f"radseg.features.{_name}"), _dims))


def prepare(labels: Image, feature_set: str, *, image: Image | None = None) -> tuple[Image, Image | None]:
    """The label map (and image) as the set measures them: a single-slice 3D map becomes 2D for
    radiograph sets; labels without a known pixel size take the image's geometry (same shape)."""
    from radseg.features.structures import as_2d

    chosen = FEATURE_SETS[feature_set]
    check_integer_labels(labels)
    if chosen.dims == (2,) and labels.ndim == 3:
        labels = as_2d(labels)
        if image is not None and image.ndim == 3:
            try:
                image = as_2d(image)
            except ValueError:
                image = None  # a real volume: not the radiograph these labels belong to
    if labels.ndim not in chosen.dims:
        raise ValueError(f"the {feature_set} set needs a {' or '.join(f'{d}D' for d in chosen.dims)} "
                         f"label map, got {labels.ndim}D")
    if image is not None and labels.metadata.get("spacing_known", True) is False \
            and image.metadata.get("spacing_known", True) and image.shape == labels.shape:
        labels = Image(labels.array, affine=image.affine, metadata={**labels.metadata, "spacing_known": True})
    return labels, image


def check_integer_labels(labels: Image) -> None:
    """ValueError when a label map holds non-integer or non-finite values (a probability map,
    an intensity image): measuring it would silently drop those voxels. ``radseg evaluate``
    refuses the same files."""
    import numpy as np

    array = np.asarray(labels.array)
    if array.dtype.kind != "f":
        return
    finite = np.isfinite(array)
    bad = np.unique(array[~finite | (array != np.round(np.where(finite, array, 0)))])
    if bad.size:
        shown = ", ".join(f"{v:g}" for v in bad[:5]) + (" ..." if bad.size > 5 else "")
        raise ValueError(f"not a label map: {bad.size} non-integer value(s) ({shown}); a label map holds "
                         "whole numbers (0 = background). Is this a probability or intensity image?")


_PIXEL_UNITS = {"mm": "px", "mm2": "px2", "mL": "voxels"}


def measure(labels: Image, feature_set: str = "shape", *, image: Image | None = None,
            source: str | None = None) -> list[Measurement]:
    """The measurements of one feature set on one label map (``image`` for HU values and spacing).

    Without a physical pixel size (``metadata["spacing_known"]`` False: PNG/JPEG, a radiograph
    without spacing tags) lengths are in ``px``, areas ``px2``, volumes ``voxels``; names that
    say mm (``bbox_row_size_mm``) say px instead (``bbox_row_size_px``), and the note names
    ``source`` (the file) as the reason.
    """
    labels, image = prepare(labels, feature_set, image=image)
    rows = FEATURE_SETS[feature_set].compute(labels, image=image)
    if labels.metadata.get("spacing_known", True) is False:
        why = f"no physical pixel size in {source}" if source else "pixel size unknown"
        for m in rows:  # no pixel size: the numbers are pixels, and the unit and name say so
            if m.unit in _PIXEL_UNITS:
                if m.unit == "mL" and m.value is not None:
                    m.value = float(round(m.value * 1000.0))  # 1 mm voxels were assumed: mL * 1000 = voxel count
                m.unit = _PIXEL_UNITS[m.unit]
                m.note = (f"{why}: measured in pixels; " + m.note).rstrip("; ")
            if m.note:
                m.note = m.note.replace(" mm", " px")  # e.g. a circle fit's RMS: pixels too
            if m.name.endswith("_mm"):
                m.name = m.name[:-3] + "_px"
    return rows
