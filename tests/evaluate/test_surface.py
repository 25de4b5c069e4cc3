"""Surface distances: hand-derived values on anisotropic grids, brute force, MONAI and DeepMind."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import ndimage

from radseg.evaluate import (
    EmptyPolicy,
    assd,
    hausdorff,
    hd95,
    nsd,
    per_label_metrics,
    segmentation_metrics,
    surface_distances,
    surface_metrics,
)


def random_blob(shape, seed, fraction=0.35, sigma=2.0):
    """Thresholded smoothed noise: a few irregular blobs covering ``fraction`` of the array."""
    noise = ndimage.gaussian_filter(np.random.default_rng(seed).standard_normal(shape), sigma)
    return noise > np.quantile(noise, 1 - fraction)


def brute_force(pred, truth, spacing):
    """Border = mask XOR its scipy erosion (face connectivity, outside = background);
    every pairwise distance in mm; the minimum per point."""
    points = []
    for mask in (pred, truth):
        border = mask & ~ndimage.binary_erosion(mask)
        points.append(np.argwhere(border) * np.asarray(spacing))
    pairwise = np.sqrt(((points[0][:, None, :] - points[1][None, :, :]) ** 2).sum(axis=-1))
    return pairwise.min(axis=1), pairwise.min(axis=0)


# --- hand-derived --------------------------------------------------------------------------


def test_two_rectangles_on_anisotropic_pixels():
    spacing = (2.0, 0.5)  # rows 2 mm apart, columns 0.5 mm
    truth = np.zeros((10, 12), bool)
    truth[2:4, 2:6] = True  # rows 2-3, cols 2-5: two rows, so all 8 pixels are border
    pred = np.zeros_like(truth)
    pred[5:7, 4:8] = True  # shifted 3 rows (6 mm) and 2 columns (1 mm)
    # Truth pixel (r, c) -> nearest pred border pixel (5, clamp(c, 4, 7)):
    #   row gap (5 - r) * 2 mm: r=3 -> 4 mm, r=2 -> 6 mm;
    #   column gap max(0, 4 - c) * 0.5 mm: c=2 -> 1 mm, c=3 -> 0.5 mm, c=4,5 -> 0.
    # Raster order (r=2: c=2..5, then r=3: c=2..5):
    expected_truth = np.sqrt([37, 36.25, 36, 36, 17, 16.25, 16, 16])
    # Pred pixel (r, c), r in 5,6, c in 4..7 -> truth (3, clamp(c, 2, 5)): the mirror image.
    expected_pred = np.sqrt([16, 16, 16.25, 17, 36, 36, 36.25, 37])
    sd = surface_distances(pred, truth, spacing=spacing)
    np.testing.assert_allclose(sd.truth_to_pred, expected_truth, rtol=1e-15)
    np.testing.assert_allclose(sd.pred_to_truth, expected_pred, rtol=1e-15)
    assert hausdorff(sd) == pytest.approx(math.sqrt(37))  # 6.083 mm
    # Both directed sets sorted: 4, 4, √16.25, √17, 6, 6, √36.25, √37; the 95th percentile sits
    # at position 0.95 * 7 = 6.65: √36.25 + 0.65 (√37 - √36.25).
    p95 = math.sqrt(36.25) + 0.65 * (math.sqrt(37) - math.sqrt(36.25))
    assert hd95(sd) == pytest.approx(p95)
    # Pooled, each value twice: 16 values, position 15 * 0.95 = 14.25 between the two √37.
    assert hd95(sd, variant="pooled") == pytest.approx(math.sqrt(37))
    mean = (8 + 12 + math.sqrt(16.25) + math.sqrt(17) + math.sqrt(36.25) + math.sqrt(37)) / 8
    assert assd(sd) == pytest.approx(mean) and assd(sd, variant="mean_of_means") == pytest.approx(mean)
    assert nsd(sd, 4.0) == pytest.approx(4 / 16)  # only the 4 mm distances (2 per direction)
    assert nsd(sd, 4.2) == pytest.approx(8 / 16)
    assert nsd(sd, 6.1) == 1.0
    # The same pixels with the spacing swapped give other distances: the axis order matters.
    assert surface_distances(pred, truth, spacing=(0.5, 2.0)).hausdorff() == pytest.approx(math.sqrt(1.5**2 + 4**2))


def test_nested_segments_show_the_variants():
    spacing = (2.0, 0.5)
    truth = np.zeros((5, 9), bool)
    truth[2, 2:6] = True  # one row of 4 pixels
    pred = np.zeros_like(truth)
    pred[2, 2:4] = True  # its first two pixels
    # pred -> truth: both pred pixels are truth border pixels: [0, 0].
    # truth -> pred: cols 2, 3 -> 0; col 4 -> 0.5 mm; col 5 -> 1.0 mm.
    sd = surface_distances(pred, truth, spacing=spacing)
    np.testing.assert_array_equal(sd.pred_to_truth, [0.0, 0.0])
    np.testing.assert_allclose(sd.truth_to_pred, [0.0, 0.0, 0.5, 1.0])
    assert sd.hausdorff() == 1.0
    assert sd.assd() == pytest.approx(1.5 / 6)  # pooled: 6 distances summing to 1.5
    assert sd.assd(variant="mean_of_means") == pytest.approx((0 + 1.5 / 4) / 2)
    # max variant: truth->pred 95th of [0, 0, .5, 1] at 0.95 * 3 = 2.85 -> 0.5 + 0.85 * 0.5.
    assert sd.hd95() == pytest.approx(0.925)
    # pooled: [0, 0, 0, 0, .5, 1] at 0.95 * 5 = 4.75 -> 0.5 + 0.75 * 0.5.
    assert sd.hd95(variant="pooled") == pytest.approx(0.875)
    assert sd.hd95(percentile=50) == pytest.approx(0.25)
    assert sd.nsd(0.5) == pytest.approx(5 / 6)


@pytest.mark.parametrize("shift", [1, 2, 3])
def test_cube_shifted_along_the_coarse_axis(shift):
    spacing = (2.5, 0.8, 0.8)
    truth = np.zeros((16, 12, 12), bool)
    truth[2:8, 2:8, 2:8] = True
    pred = np.roll(truth, shift, axis=0)
    # The bottom face of the truth (slice 2) is `shift` slices below the pred's bottom face, the
    # pred's top face as far above the truth's; every other border voxel is closer (side faces
    # coincide where the slices overlap; the truth's top face is <= 1 voxel diagonal from a pred side).
    assert hausdorff(surface_distances(pred, truth, spacing=spacing)) == pytest.approx(2.5 * shift)
    across = np.roll(truth, shift, axis=2)
    assert hausdorff(surface_distances(across, truth, spacing=spacing)) == pytest.approx(0.8 * shift)
    out = segmentation_metrics(pred, truth, spacing=spacing)
    assert out["dice"] == pytest.approx((6 - shift) / 6)
    assert out["hd"] == pytest.approx(2.5 * shift) and out["volume_difference"] == 0.0


def test_identical_masks_are_zero():
    mask = random_blob((30, 40), 3)
    sd = surface_distances(mask, mask, spacing=(1.5, 0.7))
    assert sd.hausdorff() == 0.0 and sd.hd95() == 0.0 and sd.assd() == 0.0 and sd.nsd(0.0) == 1.0


# --- exact against brute force ------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape, spacing", [((40, 50), (2.0, 0.5)), ((14, 18, 22), (2.5, 0.8, 0.7)), ((64,), (0.3,))]
)
def test_equals_brute_force_exactly(shape, spacing):
    for seed in range(4):  # blobs cover 35% and touch the array edges (the padded path)
        pred, truth = random_blob(shape, seed), random_blob(shape, seed + 100)
        expected_pred, expected_truth = brute_force(pred, truth, spacing)
        sd = surface_distances(pred, truth, spacing=spacing)
        np.testing.assert_array_equal(sd.pred_to_truth, expected_pred)
        np.testing.assert_array_equal(sd.truth_to_pred, expected_truth)


def test_small_masks_away_from_the_edges_equal_brute_force():
    pred = np.zeros((30, 40, 50), bool)
    truth = np.zeros_like(pred)
    pred[10:14, 5:12, 20:30] = True
    truth[12:20, 8:10, 25:45] = True
    truth[15, 30, 5] = True  # an isolated voxel far away
    spacing = (3.0, 0.6, 0.9)
    expected_pred, expected_truth = brute_force(pred, truth, spacing)
    sd = surface_distances(pred, truth, spacing=spacing, workers=1)
    np.testing.assert_array_equal(sd.pred_to_truth, expected_pred)
    np.testing.assert_array_equal(sd.truth_to_pred, expected_truth)


# --- empty masks -------------------------------------------------------------------------------


def test_empty_masks_follow_the_policy():
    empty = np.zeros((8, 9), bool)
    some = empty.copy()
    some[2:5, 3:6] = True
    both = surface_distances(empty, empty)
    assert all(math.isnan(v) for v in (both.hausdorff(), both.hd95(), both.assd(), both.nsd(1.0)))
    perfect = surface_distances(empty, empty, empty="perfect")
    assert (perfect.hausdorff(), perfect.hd95(), perfect.assd(), perfect.nsd(1.0)) == (0.0, 0.0, 0.0, 1.0)
    for pred, truth in ((some, empty), (empty, some)):
        one = surface_distances(pred, truth, spacing=(2.0, 0.5))
        assert one.hausdorff() == math.inf and one.hd95() == math.inf and one.assd() == math.inf
        assert one.nsd(5.0) == 0.0
        lenient = surface_distances(pred, truth, empty=EmptyPolicy(one="nan"))
        assert math.isnan(lenient.hausdorff()) and math.isnan(lenient.assd()) and lenient.nsd(5.0) == 0.0
    missed = surface_distances(empty, some)
    assert missed.pred_to_truth.size == 0 and np.all(np.isinf(missed.truth_to_pred))


def test_argument_checks():
    mask = random_blob((20, 20), 0)
    sd = surface_distances(mask, np.roll(mask, 2, axis=0))
    with pytest.raises(ValueError, match="percentile"):
        sd.hd95(percentile=101)
    with pytest.raises(ValueError, match="variant"):
        sd.hd95(variant="mean")
    with pytest.raises(ValueError, match="variant"):
        sd.assd(variant="max")
    with pytest.raises(ValueError, match="tolerance"):
        sd.nsd(-1.0)
    with pytest.raises(ValueError, match="spacing"):
        surface_distances(mask, mask, spacing=(1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="boolean"):
        surface_distances(mask.astype(int) * 3, mask)


# --- convenience functions ------------------------------------------------------------------------


def test_surface_metrics_dict_from_one_computation():
    pred, truth = random_blob((12, 30, 30), 1), random_blob((12, 30, 30), 2)
    spacing = (2.0, 0.7, 0.7)
    sd = surface_distances(pred, truth, spacing=spacing)
    out = surface_metrics(pred, truth, spacing=spacing, nsd_tolerance=1.5)
    assert out == {"hd": sd.hausdorff(), "hd95": sd.hd95(), "assd": sd.assd(), "nsd": sd.nsd(1.5)}
    assert set(surface_metrics(pred, truth, spacing=spacing, percentile=90)) == {"hd", "hd90", "assd"}


def label_maps(shape=(14, 36, 40), seed=0, n_labels=3):
    rng = np.random.default_rng(seed)
    truth = np.zeros(shape, np.uint8)
    pred = np.zeros(shape, np.uint8)
    for value in range(1, n_labels + 1):
        truth[random_blob(shape, int(rng.integers(1000)), fraction=0.12)] = value
        pred[random_blob(shape, int(rng.integers(1000)), fraction=0.12)] = value
    return pred, truth


def test_per_label_metrics_equal_the_single_mask_functions():
    pred, truth = label_maps()
    spacing = (2.5, 0.8, 0.8)
    table = per_label_metrics(pred, truth, labels=[1, 2, 3, 7], spacing=spacing, nsd_tolerance=2.0)
    for value in (1, 2, 3):
        single = segmentation_metrics(pred == value, truth == value, spacing=spacing, nsd_tolerance=2.0)
        assert table[value] == single
        assert set(single) == {"dice", "iou", "precision", "sensitivity", "volume_difference",
                               "relative_volume_difference", "hd", "hd95", "assd", "nsd"}
    absent = table[7]  # in neither map: the both-empty policy
    assert math.isnan(absent["dice"]) and math.isnan(absent["hd"]) and absent["volume_difference"] == 0.0
    only_pred = per_label_metrics(pred, np.zeros_like(truth), labels=[1], spacing=spacing)[1]
    assert only_pred["dice"] == 0.0 and only_pred["hd"] == math.inf
    assert per_label_metrics(pred, truth, labels=[1], spacing=spacing, hd_percentile=90)[1].keys() >= {"hd90"}


def test_per_label_many_labels_path_agrees():
    pred, truth = label_maps(shape=(10, 30, 30), seed=4, n_labels=9)  # >= 8 labels: find_objects path
    labels = list(range(1, 10))
    fast = per_label_metrics(pred, truth, labels=labels + [12], spacing=(2.0, 1.0, 0.5))
    for value in labels:
        assert fast[value] == segmentation_metrics(pred == value, truth == value, spacing=(2.0, 1.0, 0.5))
    assert math.isnan(fast[12]["dice"])
    with pytest.raises(ValueError, match="repeat"):
        per_label_metrics(pred, truth, labels=[1, 1])


# --- reference libraries -------------------------------------------------------------------------
# Where the definitions agree (same border-voxel surface, same percentile interpolation):
#   radseg hausdorff             == MONAI compute_hausdorff_distance(percentile=None)
#   radseg hd95 (variant "max")  == MONAI compute_hausdorff_distance(percentile=95)
#   radseg assd (variant pooled) == MONAI compute_average_surface_distance(symmetric=True)
#   radseg nsd(tau)              == MONAI compute_surface_dice([tau], use_subvoxels=False)
# MONAI's distances are float32, hence the 1e-4 relative tolerance.

CASES = [((40, 48), (2.0, 0.5)), ((16, 24, 28), (2.5, 0.8, 0.7))]


@pytest.fixture(scope="module")
def monai_metrics():
    pytest.importorskip("torch", reason="MONAI comparison needs torch (train extra)")
    return pytest.importorskip("monai.metrics", reason="MONAI not installed (train extra)")


@pytest.mark.parametrize("shape, spacing", CASES)
def test_matches_monai(monai_metrics, shape, spacing):
    import torch

    m = monai_metrics
    for seed in range(3):
        pred, truth = random_blob(shape, seed), random_blob(shape, seed + 20)
        yp, yt = (torch.from_numpy(x)[None, None].float() for x in (pred, truth))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # MONAI's own deprecation notices
            ref_hd = float(m.compute_hausdorff_distance(yp, yt, include_background=True, spacing=spacing))
            ref_hd95 = float(m.compute_hausdorff_distance(yp, yt, include_background=True, spacing=spacing,
                                                          percentile=95))
            ref_asd = float(m.compute_average_surface_distance(yp, yt, include_background=True, spacing=spacing,
                                                               symmetric=True))
            ref_nsd = float(m.compute_surface_dice(yp, yt, [1.5], include_background=True, spacing=spacing))
        sd = surface_distances(pred, truth, spacing=spacing)
        assert sd.hausdorff() == pytest.approx(ref_hd, rel=1e-4)
        assert sd.hd95() == pytest.approx(ref_hd95, rel=1e-4)
        assert sd.assd() == pytest.approx(ref_asd, rel=1e-4)
        assert sd.nsd(1.5) == pytest.approx(ref_nsd, rel=1e-4)


def test_empty_masks_like_monai(monai_metrics):
    import torch

    m = monai_metrics
    some = random_blob((20, 20), 1)
    empty = np.zeros_like(some)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MONAI warns about the empty masks
        for pred, truth, expected in ((empty, empty, math.nan), (some, empty, math.inf), (empty, some, math.inf)):
            yp, yt = (torch.from_numpy(x)[None, None].float() for x in (pred, truth))
            ref = float(m.compute_hausdorff_distance(yp, yt, include_background=True))
            ours = surface_distances(pred, truth).hausdorff()
            assert ref == pytest.approx(expected, nan_ok=True) and ours == pytest.approx(expected, nan_ok=True)


@pytest.fixture(scope="module")
def deepmind():
    return pytest.importorskip("surface_distance", reason="DeepMind surface-distance not installed "
                                                          "(pip install surface-distance)")


# surface-distance 0.1 still imports from scipy.ndimage.filters / .morphology (deprecated).
deepmind_warnings = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@deepmind_warnings
def test_deepmind_hausdorff_on_boxes(deepmind):
    # DeepMind's surface points sit at voxel corners; for boxes both surfaces are the same
    # shape, half a voxel apart, so the Hausdorff distances agree exactly.
    spacing = (2.5, 0.8, 0.7)
    truth = np.zeros((16, 20, 24), bool)
    truth[3:9, 4:12, 5:15] = True
    pred = np.zeros_like(truth)
    pred[5:12, 6:16, 2:12] = True
    dm = deepmind.compute_surface_distances(truth, pred, spacing)
    ours = surface_distances(pred, truth, spacing=spacing)
    assert ours.hausdorff() == pytest.approx(deepmind.compute_robust_hausdorff(dm, 100), rel=1e-12)


@deepmind_warnings
@pytest.mark.parametrize("shape, spacing", CASES)
def test_deepmind_hausdorff_within_one_voxel_diagonal(deepmind, shape, spacing):
    # In general the two surfaces differ (voxel centres vs voxel corners); each lies within half
    # a voxel diagonal of the other, so by the triangle inequality the Hausdorff distances differ
    # by at most one voxel diagonal. DeepMind's HD95 and average distance are area-weighted on
    # its corner surface: a different definition, not compared.
    diagonal = float(np.linalg.norm(spacing))
    for seed in range(3):
        pred, truth = random_blob(shape, seed), random_blob(shape, seed + 20)
        dm = deepmind.compute_robust_hausdorff(deepmind.compute_surface_distances(truth, pred, spacing), 100)
        assert abs(surface_distances(pred, truth, spacing=spacing).hausdorff() - dm) <= diagonal + 1e-9
