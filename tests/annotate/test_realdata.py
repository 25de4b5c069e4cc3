"""Bone extraction and hip-joint split on the real CTs in ../shared/data/ct (plausibility, no labels needed)."""

from __future__ import annotations

import numpy as np
import pytest

from radseg.annotate.bone_extraction import extract_bone
from radseg.annotate.hip_joint import segment_hip_joint
from radseg.orientation import canonical
from radseg.io import read

pytestmark = pytest.mark.realdata
METAL_HU = 2500.0


def _ct_folder(shared_data, name):
    folder = shared_data / "ct" / name
    if not folder.is_dir():
        pytest.skip(f"{folder} not present")
    return folder


def _bone_plausible(ct, bone, *, low_ml, high_ml):
    mask = bone.mask.array > 0
    ml = mask.sum() * float(np.prod(ct.spacing)) / 1000.0
    assert low_ml <= ml <= high_ml, ml
    hu = ct.array[mask]
    # the whole bone: cortex and cancellous bone, some fatty marrow, not soft tissue (the cortex-only
    # mask of the TotalSegmentator example has 95 % above 150 HU; its whole bone 61 % and 83 % above 100 HU)
    assert (hu > 100).mean() >= 0.75 and np.median(hu) > 150
    assert (ct.array[~mask] > 600).mean() < 0.002  # nearly no dense bone left outside


def test_abdomen_pelvis_ct(shared_data):
    """TotalSegmentator's example CT (3 mm): spine, pelvis and both hips at the lower edge; the
    left hip carries a metal implant (> 2500 HU), so only hips with a bony head must be found."""
    ct = read(_ct_folder(shared_data, "totalsegmentator-example") / "example_ct.nii.gz")
    bone = extract_bone(ct)
    _bone_plausible(ct, bone, low_ml=300, high_ml=3000)
    result = segment_hip_joint(ct, bone=bone.mask)
    work = canonical(ct).array
    midline = work.shape[2] / 2
    found = 0
    for name, side in result.sides.items():
        half = work[:, :, : int(midline)] if name == "right" else work[:, :, int(midline):]
        lower = half[: work.shape[0] // 3]
        if (lower > METAL_HU).sum() > 50:
            continue  # an implant, no femoral head to find
        assert side.found, f"{name}: {side.reason}"
        found += 1
        assert 15.0 <= side.radius_mm <= 32.0
        assert side.centre_index[0] < work.shape[0] / 3  # at the lower edge of the scan
        assert (side.centre_index[2] < midline) == (name == "right")  # patient right at low x (LPS)
        assert (side.centre_mm[0] < 0) == (name == "right")
    assert found >= 1
    labels = result.labels.array
    assert (labels == 4).sum() > 0 and (labels == 2).sum() > 0


@pytest.mark.slow
def test_pelvic_bone_crops(shared_data):
    """PENGWIN crops (one hip bone each, the rest set to 0 HU): the bone is found, and with no
    femur in the crop no femoral head is claimed."""
    folder = _ct_folder(shared_data, "pengwin-crops") / "001"
    ct = read(folder / "001_LI.nii.gz")
    bone = extract_bone(ct)
    _bone_plausible(ct, bone, low_ml=100, high_ml=800)
    reference = read(folder / "001_LI_mask.nii.gz").array > 0
    mask = bone.mask.array > 0
    assert 2 * (mask & reference).sum() / (mask.sum() + reference.sum()) >= 0.8
    result = segment_hip_joint(ct, bone=bone.mask)
    assert not any(side.found for side in result.sides.values())
