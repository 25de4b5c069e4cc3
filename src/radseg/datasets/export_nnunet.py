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
the mapping is kept in ``dataset.json["radseg_label_values"]``. Colour images become grey
(one channel). Images keep their geometry (2D NIfTI for radiographs: nnU-Net's SimpleITKIO
reads them as 2D with the stored pixel size).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from radseg.datasets.export_common import (
    ExportResult,
    check_output,
    progress_hooks,
    safe_name,
)
from radseg.datasets.prepared import open_prepared
from radseg.errors import RadsegError
from radseg.image import Image
from radseg.io.atomic import write_text_atomic

__all__ = ["export"]


def export(prepared: str | Path, out: str | Path, *, dataset_id: int = 501, name: str | None = None,
           overwrite: bool = False, on_progress: Callable[[str], None] | None = None,
           jobs_total: Callable[[int], None] | None = None) -> ExportResult:
    """Write ``prepared`` as ``OUT/Dataset<ID>_<Name>`` (returned as ``result.root``)."""
    from radseg.io import write
    from radseg.labels import make_label_map

    if not 1 <= int(dataset_id) <= 999:
        raise ValueError(f"nnU-Net dataset ids are 1-999, got {dataset_id}")
    dataset = open_prepared(prepared)
    folder = Path(out) / f"Dataset{int(dataset_id):03d}_{safe_name(name or dataset.info.get('name', 'radseg'))}"
    check_output(folder, "dataset.json", overwrite, ("dataset.json", "splits_final.json", "imagesTr", "labelsTr", "imagesTs", "labelsTs"))
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
    tick = progress_hooks(on_progress, jobs_total, len(dataset.cases))
    written = {"train": [], "val": [], "test": []}
    for case in dataset.cases:
        tick(case.case_id)
        part = "Ts" if case.split == "test" else "Tr"
        try:
            image = _grey(dataset.read_image(case))
            labels = dataset.read_labels(case, like=image)
            mapped = make_label_map(labels.with_array(lut[labels.array.astype(np.int64)]), new_names)
            write(image, folder / f"images{part}" / f"{case.case_id}_0000.nii.gz")
            write(mapped, folder / f"labels{part}" / f"{case.case_id}.nii.gz", kind="nifti")
            written.setdefault(case.split, []).append(case.case_id)
            result.written += 1
        except RadsegError as exc:
            result.failed.append((case.case_id, str(exc)))
        except Exception as exc:  # keep the batch going
            result.failed.append((case.case_id, f"{type(exc).__name__}: {exc}"))
    label_table = {"background": 0}
    for value, label in new_names.items():
        key = label if label not in label_table else f"{label}_{value}"  # nnU-Net keys are names
        label_table[key] = value
    modality = str(dataset.info.get("modality") or "")
    spec = {
        "name": dataset.info.get("name", ""),
        "description": dataset.info.get("description", ""),
        "channel_names": {"0": "CT" if modality.upper() == "CT" else modality or "image"},
        "labels": label_table,
        "numTraining": len(written["train"]) + len(written["val"]),
        "file_ending": ".nii.gz",
        "radseg_label_values": {str(k): v for v, k in renumber.items()},
        "radseg_source": str(Path(prepared).resolve()),
    }
    write_text_atomic(folder / "dataset.json", json.dumps(spec, indent=1))
    if written["train"] and written["val"]:
        fold = [{"train": sorted(written["train"]), "val": sorted(written["val"])}]
        write_text_atomic(folder / "splits_final.json", json.dumps(fold, indent=1))
    return result


def _grey(image: Image) -> Image:
    if image.channels is None:
        return image
    grey = np.rint(image.array[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114]))
    return Image(grey.astype(np.uint8), affine=image.affine, metadata=image.metadata)
