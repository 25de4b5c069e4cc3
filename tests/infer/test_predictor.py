"""Predictor geometry with oracle networks: outputs land on the input grid, TTA swaps sides right."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("monai")

from radseg.image import Image  # noqa: E402
from radseg.infer.postprocess import fill_holes, largest_component  # noqa: E402
from radseg.infer.predictor import Predictor  # noqa: E402
from radseg.models.tta import mirror_tta  # noqa: E402
from radseg.models.bundle import ModelBundle  # noqa: E402
from radseg.models.preprocess import Preprocessing  # noqa: E402
from radseg.models.registry import build  # noqa: E402
from tests.conftest import oblique_direction  # noqa: E402
from tests.train.shapes import ball_case, dice  # noqa: E402

KWARGS = {"channels": [4, 8], "strides": [2], "num_res_units": 0}


def bundle_for(pre: Preprocessing, values, names, pairs=()) -> ModelBundle:
    net = build("unet", spatial_dims=pre.spatial_dims, in_channels=1, out_channels=len(values) + 1, overrides=KWARGS)
    return ModelBundle(architecture="unet", spatial_dims=pre.spatial_dims, in_channels=1, arch_kwargs=KWARGS,
                       head="multiclass", class_values=list(values), class_names=list(names), preprocessing=pre,
                       mirror_pairs=list(pairs), state_dict=net.state_dict())


def threshold_oracle(x: torch.Tensor) -> torch.Tensor:
    """Class 1 where the windowed intensity is above 0.5 (a 'network' that segments bright things)."""
    return torch.cat([torch.zeros_like(x), (x - 0.5) * 40], dim=1)


def sided_oracle(x: torch.Tensor) -> torch.Tensor:
    """Bright things in the image's low-column half are 'right' (1), in the other half 'left' (2)."""
    bright = (x - 0.5) * 40
    cols = torch.arange(x.shape[-1], device=x.device)
    low = (cols < x.shape[-1] / 2).float().view(1, 1, 1, -1)
    return torch.cat([torch.zeros_like(x), bright * low - 20 * (1 - low), bright * (1 - low) - 20 * low], dim=1)


@pytest.mark.parametrize("oblique", [False, True])
def test_3d_prediction_returns_to_the_input_grid(oblique):
    image, truth = ball_case(np.random.default_rng(1), shape=(24, 40, 36), spacing=(2.5, 0.9, 1.1))
    if oblique:  # same voxels, rotated frame: the ball must still come back voxel for voxel
        image = Image(image.array, spacing=image.spacing, origin=(5.0, -3.0, 40.0), direction=oblique_direction())
        truth = image.with_array(truth.array)
    pre = Preprocessing(spatial_dims=3, mode="spacing", spacing=(2.0, 2.0, 2.0), patch_size=(16, 16, 16),
                        intensity="window", window=(-1000, 2000))
    predictor = Predictor(bundle_for(pre, [1], ["ball"]), device="cpu")
    predictor.forward = threshold_oracle
    out = predictor.predict(image)
    assert out.same_geometry(image) and out.metadata["label_names"] == {1: "ball"}
    assert dice(out.array == 1, truth.array == 1) > 0.93
    centre_out = image.index_to_world(np.argwhere(out.array == 1).mean(0))
    centre_truth = image.index_to_world(np.argwhere(truth.array == 1).mean(0))
    assert np.linalg.norm(centre_out - centre_truth) < 0.5  # mm


def two_blobs() -> Image:
    array = np.zeros((60, 80), np.float32)
    array[20:40, 10:25] = 100  # patient right (low columns)
    array[15:30, 55:75] = 100  # patient left
    return Image(array, spacing=(0.5, 0.5))


def test_flip_tta_swaps_right_and_left_labels_back():
    pre = Preprocessing(spatial_dims=2, size=(64, 64), intensity="window", window=(0, 100))
    bundle = bundle_for(pre, [1, 2], ["right blob", "left blob"], pairs=[(1, 2)])
    plain = Predictor(bundle, device="cpu")
    plain.forward = sided_oracle
    with_tta = Predictor(bundle, device="cpu", tta=True)
    with_tta.forward = sided_oracle
    expected = plain.predict(two_blobs()).array
    assert set(np.unique(expected[20:40, 10:25])) == {1} and set(np.unique(expected[15:30, 55:75])) == {2}
    assert np.array_equal(with_tta.predict(two_blobs()).array, expected)
    # Without the swap, the mirrored pass calls the left blob 'right': the average loses the side.
    x = torch.from_numpy((two_blobs().array / 100)[None, None])
    score = lambda t: torch.softmax(sided_oracle(t), 1)  # noqa: E731
    wrong = mirror_tta(score, x, lr_axis=1, channel_perm=[0, 1, 2])
    assert torch.allclose(wrong[0, 1, 20:40, 10:25], wrong[0, 2, 20:40, 10:25])


def test_fit_mode_prediction_on_a_large_non_square_radiograph():
    array = np.zeros((900, 1300), np.float32)
    array[200:500, 300:700] = 100
    image = Image(array, spacing=(0.15, 0.15), metadata={"source_files": ["x.dcm"]})
    pre = Preprocessing(spatial_dims=2, size=(128, 128), intensity="window", window=(0, 100))
    predictor = Predictor(bundle_for(pre, [3], ["box"]), device="cpu")
    predictor.forward = threshold_oracle
    out = predictor.predict(image)
    assert out.shape == image.shape and out.metadata["source_files"] == ["x.dcm"]
    assert dice(out.array == 3, array > 0) > 0.98


def test_postprocess_keeps_largest_piece_and_fills_holes():
    labels = np.zeros((20, 20), np.uint8)
    labels[2:10, 2:10] = 1
    labels[5, 5] = 0  # hole
    labels[15:17, 15:17] = 1  # stray piece
    labels[12:18, 2:8] = 2
    labels[14, 4] = 1  # a label-1 island inside label 2
    out = fill_holes(largest_component(labels))
    # the island is a stray piece of 1 (removed); the hole it leaves in 2 is then filled with 2
    assert out[5, 5] == 1 and out[15:17, 15:17].sum() == 0 and out[14, 4] == 2
    assert (out == 2).sum() == 36 and (out == 1).sum() == 64
    filled = fill_holes(labels)
    assert filled[14, 4] == 1 and filled[5, 5] == 1  # filling only changes background
