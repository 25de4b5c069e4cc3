"""The network-grid engine shared by training validation and the predictor (radseg.models.grid)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("monai")

from radseg.models.grid import grid_probabilities  # noqa: E402


def pointwise(x: torch.Tensor) -> torch.Tensor:
    """A 'network' without context: three class logits from each pixel's value alone."""
    return torch.cat([-x, x, 0.5 * x], dim=1)


def test_whole_image_and_sliding_window_agree_for_a_pointwise_network():
    x = torch.linspace(-2, 2, 40 * 56).reshape(1, 1, 40, 56)
    whole = grid_probabilities(pointwise, x, head="multiclass", patch_size=(40, 56), whole=True)
    tiled = grid_probabilities(pointwise, x, head="multiclass", patch_size=(16, 16), whole=True, overlap=0.5)
    window = grid_probabilities(pointwise, x, head="multiclass", patch_size=(40, 56), whole=False)
    assert whole.shape == tiled.shape == (1, 3, 40, 56)
    assert torch.allclose(whole.sum(1), torch.ones(1, 40, 56), atol=1e-5)  # softmax over classes
    assert torch.allclose(whole, tiled, atol=1e-5) and torch.allclose(whole, window, atol=1e-5)


def test_input_smaller_than_the_patch_is_padded_and_cropped_back():
    x = torch.rand(1, 1, 10, 12)
    out = grid_probabilities(pointwise, x, head="multiclass", patch_size=(16, 16), whole=False)
    assert out.shape == (1, 3, 10, 12)
    assert torch.allclose(out, torch.softmax(pointwise(x), 1), atol=1e-5)


def test_multilabel_head_is_sigmoid_and_no_gradients_are_kept():
    x = torch.rand(2, 1, 16, 16, requires_grad=True)
    out = grid_probabilities(pointwise, x, head="multilabel", patch_size=(16, 16), whole=True)
    assert torch.allclose(out, torch.sigmoid(pointwise(x.detach())), atol=1e-6)
    assert not out.requires_grad


def test_flip_tta_needs_the_mirror_information_and_undoes_the_mirror():
    x = torch.rand(1, 1, 16, 20)
    with pytest.raises(ValueError, match="left-right axis"):
        grid_probabilities(pointwise, x, head="multiclass", patch_size=(16, 20), whole=True, tta=True)
    # a pointwise network gives the same scores on the mirror, so TTA (no pairs to swap) changes nothing
    plain = grid_probabilities(pointwise, x, head="multiclass", patch_size=(16, 20), whole=True)
    tta = grid_probabilities(pointwise, x, head="multiclass", patch_size=(16, 20), whole=True, tta=True,
                             lr_axis=1, channel_perm=[0, 1, 2])
    assert torch.allclose(plain, tta, atol=1e-6)
