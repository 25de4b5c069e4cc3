"""Shared, session-wide phantoms for the annotate tests (each costs seconds, so it is made once)."""

from __future__ import annotations

import numpy as np
import pytest

from radseg.image import Image

#: A coarse grid (3 mm slices, 1.2 mm pixels) keeps a hip-ct case at ~4 M voxels.
SPACING = (3.0, 1.2, 1.2)


def reoriented(image: Image, perm=(2, 1, 0), flip=(False, False, True)) -> Image:
    """The same image in world space stored with its array axes permuted (``perm``: old axis of
    each new axis) and flipped; the affine follows, so every voxel keeps its world position."""
    array = np.transpose(image.array, perm)
    for axis, f in enumerate(flip):
        if f:
            array = np.flip(array, axis=axis)
    # homogeneous map from the new index to the old index
    to_old = np.zeros((4, 4))
    to_old[3, 3] = 1.0
    for new_axis, old_axis in enumerate(perm):
        if flip[new_axis]:
            to_old[old_axis, new_axis] = -1.0
            to_old[old_axis, 3] = image.shape[old_axis] - 1
        else:
            to_old[old_axis, new_axis] = 1.0
    return Image(np.ascontiguousarray(array), affine=image.affine @ to_old, metadata=dict(image.metadata))


@pytest.fixture(scope="session")
def hip_case():
    """A pathology-0 hip-ct phantom on the coarse grid: (ct, exact labels)."""
    from radseg.synth import hip_ct
    from radseg.synth.cohort import make_subject

    case = hip_ct.make_case(make_subject(0, seed=11, prefix=hip_ct.PREFIX), spacing=SPACING, pathology=0)
    return case.image, case.labels


@pytest.fixture(scope="session")
def hip_bone(hip_case):
    from radseg.annotate.bone_extraction import extract_bone

    return extract_bone(hip_case[0])


@pytest.fixture(scope="session")
def hip_result(hip_case, hip_bone):
    from radseg.annotate.hip_joint import segment_hip_joint

    return segment_hip_joint(hip_case[0], bone=hip_bone.mask)
