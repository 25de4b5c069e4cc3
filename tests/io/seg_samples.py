"""SEG files shaped like other tools' test data, built with highdicom (their files are not available offline)."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pydicom


def cr_seg_without_pixel_measures(cr_path: Path, out: Path, box=(slice(10, 30), slice(20, 50))):
    """Like highdicom's tests/data/seg_image_cr_binary.dcm: a binary SEG of the CR at ``cr_path``
    whose shared functional group item is empty (no pixel measures; segment identification per
    frame). Returns (SEG path, the mask as drawn)."""
    import highdicom as hd
    from pydicom.dataset import Dataset
    from pydicom.sr.codedict import codes

    cr = pydicom.dcmread(cr_path)
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        if keyword in cr:
            delattr(cr, keyword)
    mask = np.zeros((1, int(cr.Rows), int(cr.Columns)), bool)
    mask[(0, *box)] = True
    seg = hd.seg.Segmentation(
        source_images=[cr], pixel_array=mask, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[hd.seg.SegmentDescription(
            segment_number=1, segment_label="lung", segmented_property_category=codes.SCT.AnatomicalStructure,
            segmented_property_type=codes.SCT.Lung, algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL)],
        series_instance_uid=hd.UID(), series_number=2, sop_instance_uid=hd.UID(), instance_number=1,
        manufacturer="test", manufacturer_model_name="test", software_versions="1", device_serial_number="1")
    shared = seg.SharedFunctionalGroupsSequence[0]
    for frame in seg.PerFrameFunctionalGroupsSequence:
        frame.SegmentIdentificationSequence = copy.deepcopy(shared.SegmentIdentificationSequence)
    seg.SharedFunctionalGroupsSequence = [Dataset()]
    seg.save_as(out)
    return out, mask[0]
