"""One sliding window for both backends (radseg.models.window), checked against MONAI's own."""

from __future__ import annotations

import numpy as np
import pytest

from radseg.models.grid import grid_probabilities
from radseg.models.window import importance_map, sliding_window, window_starts

torch = pytest.importorskip("torch")
monai_inferers = pytest.importorskip("monai.inferers")
monai_utils = pytest.importorskip("monai.data.utils")


def contextual(x):
    """A 'network' whose logits depend on the window's position in it (so the weighting shows)."""
    ramp = (torch if not isinstance(x, np.ndarray) else np).linspace(0, 1, x.shape[-1], dtype=x.dtype)
    return (torch.cat if not isinstance(x, np.ndarray) else np.concatenate)([x * ramp, -x, x * 0.3 + ramp], 1)


@pytest.mark.parametrize("size, roi, overlap", [((40, 56), (16, 16), 0.5), ((10, 12), (16, 16), 0.5),
                                                ((512, 512), (192, 192), 0.5), ((37, 23), (16, 24), 0.25),
                                                ((9, 20, 31), (8, 8, 16), 0.5), ((16, 16), (16, 16), 0.5)])
def test_positions_weights_and_output_match_monai(size, roi, overlap):
    from monai.inferers.utils import _get_scan_interval

    padded = tuple(max(s, r) for s, r in zip(size, roi))
    interval = _get_scan_interval(padded, roi, len(roi), (overlap,) * len(roi))
    expected = [tuple(s.start for s in box) for box in monai_utils.dense_patch_slices(padded, roi, interval)]
    assert window_starts(padded, roi, overlap) == expected
    monai_map = monai_utils.compute_importance_map(roi, mode="gaussian").numpy()
    np.testing.assert_allclose(importance_map(roi), monai_map, rtol=1e-6, atol=1e-7)

    x = torch.rand(2, 1, *size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        reference = monai_inferers.sliding_window_inference(x, roi, 3, contextual, overlap=overlap, mode="gaussian")
    by_torch = sliding_window(contextual, x, roi, overlap=overlap, sw_batch_size=3)
    by_numpy = sliding_window(contextual, x.numpy(), roi, overlap=overlap, sw_batch_size=3)
    assert by_torch.shape == reference.shape == by_numpy.shape
    np.testing.assert_allclose(by_torch.numpy(), torch.as_tensor(reference).numpy(), atol=2e-6)
    np.testing.assert_allclose(by_numpy, by_torch.numpy(), atol=2e-6)


@pytest.mark.parametrize("head", ["multiclass", "multilabel"])
def test_grid_probabilities_numpy_and_torch_agree_with_tta(head):
    x = torch.rand(1, 1, 40, 56, generator=torch.Generator().manual_seed(1))
    options = dict(head=head, patch_size=(16, 24), whole=True, overlap=0.5, tta=True, lr_axis=1, channel_perm=[0, 2, 1])
    by_torch = grid_probabilities(contextual, x, **options)
    by_numpy = grid_probabilities(contextual, x.numpy(), **options)
    assert isinstance(by_numpy, np.ndarray)
    np.testing.assert_allclose(by_numpy, by_torch.numpy(), atol=2e-6)
