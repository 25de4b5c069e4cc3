"""A prepared dataset in nnU-Net v2's raw layout, ready for ``nnUNetv2_plan_and_preprocess``.

::

    OUT/Dataset<ID>_<Name>/
      dataset.json          channel_names, labels (name -> consecutive value), numTraining, file_ending
      imagesTr/<case>_0000.nii.gz   train + val cases (nnU-Net cross-validates over them)
      labelsTr/<case>.nii.gz
      imagesTs/<case>_0000.nii.gz   test cases
      labelsTs/<case>.nii.gz        their labels, for ``nnUNetv2_evaluate_folder``
      splits_final.json     radseg's train/val split as nnU-Net fold 0; copy it to
                            nnUNet_preprocessed/Dataset<ID>_<Name>/ to train on exactly that split

nnU-Net wants consecutive label values 0..K: other values are renumbered in label order and
the mapping is kept in ``dataset.json["radseg_label_values"]``.

A **multi-label** dataset (classes overlap, e.g. the SCR heart over the lungs) becomes nnU-Net
v2's region-based format: every combination of classes found in the data gets one label value
(``radseg_combinations`` lists them), each class is a region, the list of the values whose
combination contains it (``labels: {"heart": [1, 4], ...}``), and ``regions_class_order`` gives,
per region, the value nnU-Net paints for it when it writes a label map (the value of the class
on its own where it occurs alone). Regions are listed from the largest class to the smallest, so
in nnU-Net's painted label maps a small class over a large one (the heart over a lung) stays
visible; that map still cannot show overlaps, nnU-Net's per-region probabilities can. nnU-Net
trains one sigmoid per region, as radseg does. In the exported ground truth each class mask is
exactly the union of its values. Colour images become grey
(one channel). Images keep their geometry (2D NIfTI for radiographs: nnU-Net's SimpleITKIO
reads them as 2D with the stored pixel size).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from radseg.datasets.export_common import (
    ExportResult,
    check_output,
    export_split,
    progress_hooks,
    safe_name,
)
from radseg.datasets.prepared import open_prepared
from radseg.errors import RadsegError
from radseg.image import Image, to_grey
from radseg.io.atomic import write_text_atomic

__all__ = ["export"]


def export(prepared: str | Path, out: str | Path, *, dataset_id: int = 501, name: str | None = None,
           overwrite: bool = False, on_progress: Callable[[str], None] | None = None,
           jobs_total: Callable[[int], None] | None = None) -> ExportResult:
    """Write ``prepared`` as ``OUT/Dataset<ID>_<Name>`` (returned as ``result.root``)."""
    from radseg.labels import make_label_map

    if not 1 <= int(dataset_id) <= 999:
        raise ValueError(f"nnU-Net dataset ids are 1-999, got {dataset_id}")
    dataset = open_prepared(prepared)
    folder = Path(out) / f"Dataset{int(dataset_id):03d}_{safe_name(name or dataset.info.get('name', 'radseg'))}"
    check_output(folder, "dataset.json", overwrite, ("dataset.json", "splits_final.json", "imagesTr", "labelsTr", "imagesTs", "labelsTs"))
    if dataset.info.get("multilabel"):
        return _export_regions(dataset, folder, prepared, on_progress, jobs_total)
    result = ExportResult(root=folder)
    values = sorted(dataset.label_names)
    renumber = {v: k for k, v in enumerate(values, start=1)}
    new_names = {renumber[v]: dataset.label_names[v] for v in values}
    if any(v != k for v, k in renumber.items()):
        result.warnings.append("label values renumbered to 1..K for nnU-Net: "
                               + ", ".join(f"{v}->{k}" for v, k in renumber.items()))
    lut = np.zeros(max(values, default=0) + 1, np.uint8 if len(values) < 256 else np.uint16)
    for value, new in renumber.items():
        lut[value] = new

    def label_map(labels: Image) -> Image:
        return make_label_map(labels.with_array(lut[labels.array.astype(np.int64)]), new_names)

    written = _write_cases(dataset, folder, result, label_map, on_progress, jobs_total)
    label_table = {"background": 0}
    for value, label in new_names.items():
        key = label if label not in label_table else f"{label}_{value}"  # nnU-Net keys are names
        label_table[key] = value
    _write_spec(folder, dataset, prepared, written, label_table,
                {"radseg_label_values": {str(k): v for v, k in renumber.items()}})
    return result


def _write_spec(folder: Path, dataset, prepared, written: dict[str, list[str]], labels: dict[str, Any],
                extra: dict[str, Any]) -> None:
    modality = str(dataset.info.get("modality") or "")
    spec = {
        "name": dataset.info.get("name", ""),
        "description": dataset.info.get("description", ""),
        "channel_names": {"0": "CT" if modality.upper() == "CT" else modality or "image"},
        "labels": labels,
        "numTraining": len(written["train"]) + len(written["val"]),
        "file_ending": ".nii.gz",
        **extra,
        "radseg_source": str(Path(prepared).resolve()),
    }
    write_text_atomic(folder / "dataset.json", json.dumps(spec, indent=1))
    if written["train"] and written["val"]:
        fold = [{"train": sorted(written["train"]), "val": sorted(written["val"])}]
        write_text_atomic(folder / "splits_final.json", json.dumps(fold, indent=1))


def _export_regions(dataset, folder: Path, prepared, on_progress, jobs_total) -> ExportResult:
    """Multi-label -> one value per class combination, classes as regions (see the module docstring)."""
    from radseg.labels import make_label_map

    result = ExportResult(root=folder)
    names = [dataset.label_names[v] for v in sorted(dataset.label_names)]
    combos: dict[tuple[int, ...], int] = {}  # classes present (channel indices) -> label value
    sizes = np.zeros(len(names), np.int64)  # pixels per class over the dataset

    def label_map(labels: Image) -> Image:
        stack = np.asarray(labels.array, bool)
        if stack.shape[-1] != len(names):
            raise RadsegError(f"{stack.shape[-1]} classes, the dataset has {len(names)}")
        sizes[:] += stack.reshape(-1, stack.shape[-1]).sum(axis=0)
        found, inverse = np.unique(stack.reshape(-1, stack.shape[-1]), axis=0, return_inverse=True)
        lut = np.zeros(len(found), np.uint16)
        for row, present in enumerate(found):
            key = tuple(int(c) for c in np.flatnonzero(present))
            if key:
                lut[row] = combos.setdefault(key, len(combos) + 1)
        mapped = lut[inverse.ravel()].reshape(stack.shape[:-1])
        return make_label_map(Image(mapped.astype(np.uint8 if len(combos) < 256 else np.uint16), affine=labels.affine), {})

    written = _write_cases(dataset, folder, result, label_map, on_progress, jobs_total)
    labels: dict[str, Any] = {"background": 0}
    order = []
    for channel in sorted(range(len(names)), key=lambda c: -sizes[c]):
        name = names[channel]
        values = sorted(v for key, v in combos.items() if channel in key)
        if not values:
            result.warnings.append(f"class {name!r} never occurs: left out of the regions")
            continue
        labels[name] = values
        order.append(combos.get((channel,), values[0]))
    _write_spec(folder, dataset, prepared, written, labels,
                {"regions_class_order": order,
                 "radseg_combinations": {str(v): [names[c] for c in key] for key, v in sorted(combos.items(), key=lambda kv: kv[1])}})
    result.warnings.append(f"multi-label: {len(names)} classes written as nnU-Net regions over {len(combos)} class "
                           "combinations (train with a region-based nnU-Net trainer)")
    return result


def _write_cases(dataset, folder: Path, result: ExportResult, label_map: Callable[[Image], Image],
                 on_progress, jobs_total) -> dict[str, list[str]]:
    """Each case's grey image and ``label_map(labels)`` into images/labelsTr or Ts; failures reported."""
    from radseg.io import write

    tick = progress_hooks(on_progress, jobs_total, len(dataset.cases))
    written: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for case in dataset.cases:
        tick(case.case_id)
        part = "Ts" if case.split == "test" else "Tr"
        try:
            image = to_grey(case.image)
            mapped = label_map(case.label)
            write(image, folder / f"images{part}" / f"{case.case_id}_0000.nii.gz")
            write(mapped, folder / f"labels{part}" / f"{case.case_id}.nii.gz", kind="nifti")
            written.setdefault(export_split(case), []).append(case.case_id)
            result.written += 1
        except RadsegError as exc:
            result.failed.append((case.case_id, str(exc)))
        except Exception as exc:  # keep the batch going
            result.failed.append((case.case_id, f"{type(exc).__name__}: {exc}"))
        finally:
            case.unload()
    return written

