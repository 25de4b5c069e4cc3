"""radseg.models.resample (numpy, no torch) against torch's F.interpolate, which it replaced."""

from __future__ import annotations

import numpy as np
import pytest

from radseg.models.resample import resize

torch = pytest.importorskip("torch")
F = torch.nn.functional


def reference(array, shape, mode):
    t = torch.from_numpy(array)[None, None]
    if mode == "nearest":
        return F.interpolate(t, size=shape, mode="nearest-exact")[0, 0].numpy()
    shrinking = any(n < o for n, o in zip(shape, array.shape))
    interp = "bilinear" if array.ndim == 2 else "trilinear"
    return F.interpolate(t, size=shape, mode=interp, align_corners=False,
                         antialias=shrinking and array.ndim == 2)[0, 0].numpy()


@pytest.mark.parametrize("shape_in, shape_out", [((37, 53), (512, 512)), ((600, 750), (205, 256)),
                                                 ((256, 256), (900, 1100)), ((300, 200), (256, 171)),
                                                 ((100, 50), (30, 200)), ((10, 20, 30), (15, 7, 31)), ((5, 6), (5, 6))])
@pytest.mark.parametrize("mode", ["linear", "nearest"])
def test_resize_is_torchs_interpolate(shape_in, shape_out, mode):
    # smooth values, like images and probabilities (random noise only magnifies float32 rounding)
    grids = np.meshgrid(*[np.linspace(0, 3, n, dtype=np.float32) for n in shape_in], indexing="ij")
    array = (np.sin(sum(grids)) + 0.1 * np.random.default_rng(0).normal(size=shape_in)).astype(np.float32)
    got, expected = resize(array, shape_out, mode=mode), reference(array, shape_out, mode)
    assert got.shape == expected.shape and got.dtype == np.float32
    if mode == "nearest":
        np.testing.assert_array_equal(got, expected)
    else:
        np.testing.assert_allclose(got, expected, atol=3e-5)


def test_resize_refuses_an_unknown_mode_and_a_wrong_rank():
    with pytest.raises(ValueError, match="mode"):
        resize(np.zeros((4, 4)), (2, 2), mode="cubic")
    with pytest.raises(ValueError, match="resize"):
        resize(np.zeros((4, 4)), (2, 2, 2))
