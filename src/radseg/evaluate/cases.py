"""Pair prediction and ground-truth files by case name, and load each pair on one grid.

A case name is the file name without its format suffix (``case01.nii.gz`` -> ``case01``);
a folder counts as one case (the CXAS per-class PNG layout). Files on one side only are
listed, never silently dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from radseg.case import Case
from radseg.errors import ReadError
from radseg.image import Image, align_axes
from radseg.io.atomic import full_suffix, strip_suffix

LABEL_SUFFIXES = {".nii", ".nii.gz", ".png", ".npy", ".npz", ".dcm", ".json", ".mha", ".nrrd", ".tif", ".tiff"}


@dataclass
class Pairing:
    pairs: list[tuple[str, Path, Path]] = field(default_factory=list)  # (case, prediction, truth)
    only_prediction: list[Path] = field(default_factory=list)
    only_truth: list[Path] = field(default_factory=list)

    def cases(self) -> list[Case]:
        """One lazy Case per pair: label roles ``prediction`` and ``truth``, both on the truth's grid
        (read together, by :func:`load_pair`, on first access); load warnings in ``metadata["warnings"]``."""
        return [_paired_case(*pair) for pair in self.pairs]


def _paired_case(name: str, prediction: Path, truth: Path) -> Case:
    case = Case(name, sources={"prediction": prediction, "truth": truth})

    def role(key: str):
        def load() -> Image:  # both files are read together, so both roles are filled (and freed) together
            pred, ref, warnings = load_pair(prediction, truth)
            case.metadata["warnings"] = warnings
            case.labels.cache("prediction", pred)
            case.labels.cache("truth", ref)
            return pred if key == "prediction" else ref
        return load

    case.labels["prediction"], case.labels["truth"] = role("prediction"), role("truth")
    return case


def _cases(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise ReadError(folder, "not a folder")
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue
        if path.is_dir():
            from radseg.io.label_png import is_class_folder

            if is_class_folder(path):
                found[path.name] = path
            continue
        suffix = full_suffix(path)
        if suffix not in LABEL_SUFFIXES:
            continue
        if suffix == ".json" and path.with_suffix(".npy").exists():
            continue  # the sidecar of a .npy, not a COCO file
        name = strip_suffix(path)
        if name in found:
            raise ReadError(path, f"two files for case {name!r}: {found[name].name} and {path.name}")
        found[name] = path
    return found


def pair_cases(predictions: str | Path, truths: str | Path) -> Pairing:
    """Match files of two folders by case name."""
    pred, truth = _cases(Path(predictions)), _cases(Path(truths))
    pairing = Pairing()
    for name in sorted(pred.keys() & truth.keys()):
        pairing.pairs.append((name, pred[name], truth[name]))
    pairing.only_prediction = [pred[n] for n in sorted(pred.keys() - truth.keys())]
    pairing.only_truth = [truth[n] for n in sorted(truth.keys() - pred.keys())]
    return pairing


def _read_any(path: Path) -> Image:
    from radseg.io import read, read_labels

    suffix = full_suffix(path)
    if path.is_dir() or suffix in (".nii", ".nii.gz", ".png", ".npy", ".npz", ".json", ".dcm"):
        return read_labels(path)
    return read(path)


def load_label_map(path: Path, image: Image | None = None) -> Image:
    """Any label file (NIfTI, PNG, NPY/NPZ, COCO, DICOM-SEG, MHA/NRRD, CXAS folder) as a label map
    (``image``: the file already read)."""
    from radseg.labels import make_label_map, to_label_map

    image = _read_any(path) if image is None else image
    try:
        return to_label_map(image) if "class_names" in image.metadata else make_label_map(image)
    except ValueError as exc:
        raise ReadError(path, f"not a label map ({exc})") from None


def load_pair(prediction: Path, truth: Path) -> tuple[Image, Image, list[str]]:
    """Prediction and truth label maps on the truth's grid, plus any warnings.

    A prediction stored in another axis order (e.g. LAS vs LPS) is reordered without
    interpolation; a different shape or spacing is an error naming both files.
    """
    return _aligned(load_label_map(prediction), load_label_map(truth), prediction, truth)


def _with_units(pred: Image, ref: Image, prediction: Path, truth: Path) -> Image:
    """``ref`` whose metadata says whether the pair has a physical pixel size: ``spacing_known`` is
    False when either file lacks one (the unknown wins) and ``no_pixel_size`` lists those files."""
    unknown = [str(path) for path, image in ((prediction, pred), (truth, ref))
               if image.metadata.get("spacing_known", True) is False]
    return Image(ref.array, affine=ref.affine,
                 metadata={**ref.metadata, "spacing_known": not unknown, "no_pixel_size": unknown})


def _aligned(pred: Image, ref: Image, prediction: Path, truth: Path) -> tuple[Image, Image, list[str]]:
    ref = _with_units(pred, ref, prediction, truth)
    warnings: list[str] = []
    if pred.ndim != ref.ndim:
        raise ReadError(prediction, f"is {pred.ndim}D but its ground truth {truth.name} is {ref.ndim}D")
    if not pred.same_geometry(ref):
        try:
            pred = align_axes(pred, ref)
            warnings.append("prediction stored in another axis order: reordered onto the ground truth grid")
        except ValueError:
            if pred.shape != ref.shape:
                raise ReadError(prediction, f"shape {pred.shape} differs from ground truth {truth.name} {ref.shape}") from None
            known = pred.metadata.get("spacing_known", True) and ref.metadata.get("spacing_known", True)
            if known and not np.allclose(pred.spacing, ref.spacing, rtol=1e-3):
                raise ReadError(prediction, f"spacing {np.round(pred.spacing, 4).tolist()} differs from ground truth "
                                            f"{truth.name} {np.round(ref.spacing, 4).tolist()}") from None
            warnings.append("prediction geometry differs from the ground truth (origin/direction); "
                            "compared voxel by voxel on the ground-truth grid")
    return pred, ref, warnings


def read_pair(prediction: Path, truth: Path):
    """Both files, read once: ``("classes", {class name: (pred, truth)}, truth image)`` when either is
    multi-label (classes may overlap, as in CXAS/SCR), else ``("labels", pred, truth, warnings)`` as
    :func:`load_pair` gives them.

    Multi-label classes are matched by name; a class on one side only is compared with an empty
    mask (it scores 0 or NaN, never disappears); each keeps its label value from the truth (else
    the prediction), so a class is one row of the summary whatever the order of the files.
    """
    from radseg.labels import is_multilabel, iter_classes

    pred, ref = _read_any(prediction), _read_any(truth)
    if not (is_multilabel(pred) or is_multilabel(ref)):
        return ("labels", *_aligned(load_label_map(prediction, pred), load_label_map(truth, ref), prediction, truth))
    if pred.shape != ref.shape:
        raise ReadError(prediction, f"shape {pred.shape} differs from ground truth {truth.name} {ref.shape}")
    ref = _with_units(pred, ref, prediction, truth)
    pred_masks = {str(n): (v, np.asarray(m, bool)) for v, n, m in iter_classes(pred, include_empty=True)}
    ref_masks = {str(n): (v, np.asarray(m, bool)) for v, n, m in iter_classes(ref, include_empty=True)}
    empty = np.zeros(ref.shape, bool)
    pairs = {}
    for name in list(ref_masks) + [n for n in pred_masks if n not in ref_masks]:
        value = (ref_masks.get(name) or pred_masks[name])[0]
        pairs[name] = (int(value), pred_masks.get(name, (0, empty))[1], ref_masks.get(name, (0, empty))[1])
    return "classes", pairs, ref
