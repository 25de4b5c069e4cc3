"""Training augmentation: a left-right mirror must swap right/left labels (and nothing else)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from radseg.models.mirror import LR_AXIS, mirror_pairs, mirror_permutation  # noqa: E402
from radseg.train.augment import Augmenter  # noqa: E402

HIP = {1: "right acetabulum", 2: "left acetabulum", 3: "right ilium-ischium-pubis", 4: "left ilium-ischium-pubis",
       5: "right femur", 6: "left femur"}


def _hip_like(rows: int = 32, cols: int = 48) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-sided labels (odd values) in the low columns, their left partners mirrored across."""
    target = np.zeros((rows, cols), np.int64)
    for k, value in enumerate((1, 3, 5)):
        target[4 + 8 * k:10 + 8 * k, 3 + 2 * k:14 + 2 * k] = value
    mirrored = target[:, ::-1]
    target = np.where(mirrored > 0, mirrored + 1, target)  # left partner on the other side
    image = (target > 0).astype(np.float32) + 0.1 * np.arange(cols)[None, :] / cols  # not symmetric
    return torch.from_numpy(image)[None, None], torch.from_numpy(target)[None, None]


def _mirror_only(perm) -> Augmenter:
    lut = torch.arange(len(perm))[perm]
    return Augmenter(2, LR_AXIS[2], lut, None, flip_lr=True, p_affine=0.0, p_intensity=0.0, p_noise=0.0)


def test_hip_labels_pair_by_side():
    assert mirror_pairs(HIP) == [(1, 2), (3, 4), (5, 6)]
    assert mirror_permutation(mirror_pairs(HIP), list(HIP), background=True) == [0, 2, 1, 4, 3, 6, 5]


def test_mirror_keeps_right_labels_on_the_image_left():
    image, target = _hip_like()
    perm = mirror_permutation(mirror_pairs(HIP), list(HIP), background=True)
    augment = _mirror_only(perm)
    gen = torch.Generator().manual_seed(0)
    seen_flipped = seen_plain = False
    for _ in range(12):
        x, y = augment(image.repeat(4, 1, 1, 1), target.repeat(4, 1, 1, 1), gen)
        for b in range(4):
            flipped = not torch.equal(x[b], image[0])
            if flipped:
                assert torch.equal(x[b], image[0].flip(-1))
                seen_flipped = True
            else:
                seen_plain = True
            # whether mirrored or not: right labels stay in the low columns, and every left-right
            # pair swaps (the anatomy looks the same, only the image content is mirrored)
            assert torch.equal(y[b], target[0])
            cols = y[b, 0].nonzero()[:, 1]
            values = y[b, 0][y[b, 0] > 0]
            assert (cols[values % 2 == 1] < 24).all() and (cols[values % 2 == 0] >= 24).all()
    assert seen_flipped and seen_plain


def test_mirror_without_the_swap_would_move_labels_across():
    image, target = _hip_like()
    augment = _mirror_only(list(range(7)))  # no pairs: labels follow the pixels
    gen = torch.Generator().manual_seed(1)
    x, y = augment(image.repeat(8, 1, 1, 1), target.repeat(8, 1, 1, 1), gen)
    assert any(torch.equal(y[b], target[0].flip(-1)) and not torch.equal(y[b], target[0]) for b in range(8))
