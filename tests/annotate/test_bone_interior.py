"""The whole bone (cortex, cancellous bone, marrow) on a geometric phantom and on a real PENGWIN crop."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from radseg.annotate.bone_extraction import extract_bone
from radseg.evaluate import dice
from radseg.image import Image

SPACING = (1.0, 0.8, 0.8)


def _long_bone(canal: bool = False, pocket_hu: float = 30.0):
    """A capsule-shaped bone in muscle: 1.6 mm cortex (1500 HU, but 250 HU where thin and porous on
    one side, as on real pelvic CT), cancellous core (220 HU) with a marrow pocket (``pocket_hu``:
    fatty marrow at 30 HU); optionally a 10 mm canal (epidural fat and fluid, -30 HU) running through
    it and out of both ends, as the sacral canal does, which is not bone.
    Blurred by a 0.8 mm PSF (so the voxels outside the cortex read as cancellous) plus noise."""
    z, y, x = np.meshgrid(*(np.arange(n) * s for n, s in zip((60, 80, 80), SPACING)), indexing="ij")
    r = np.hypot(y - 32, x - 32)
    along = np.clip(z, 12, 48)
    outer = np.hypot(r, z - along) <= 18.0
    core = np.hypot(r, z - along) <= 16.4
    pocket = np.hypot(np.hypot(y - 32, x - 36), z - 30) <= 5.0
    truth = outer.copy()
    canal_mask = np.zeros_like(outer)
    hu = np.full(outer.shape, 50.0)
    hu[outer] = 1500.0
    hu[outer & ~core & (x > 40)] = 250.0  # a thin, porous side: no closed ring of dense cortex
    hu[core] = 220.0
    hu[pocket] = pocket_hu
    if canal:
        canal_mask = np.hypot(y - 32, x - 24) <= 5.0
        hu[canal_mask] = -30.0
        truth &= ~canal_mask
        canal_mask &= outer
    hu = ndimage.gaussian_filter(hu, sigma=0.8 / np.array(SPACING)) + np.random.default_rng(0).normal(0, 10, hu.shape)
    return Image(hu.astype(np.float32), spacing=SPACING), truth, canal_mask


def test_whole_bone_takes_cancellous_bone_and_marrow_that_the_cut_misses():
    ct, truth, _ = _long_bone()
    cut = extract_bone(ct, whole=False).mask.array > 0
    whole = extract_bone(ct, whole=True).mask.array > 0
    assert dice(cut, truth) < 0.5  # the cut keeps the dense cortex only (no closed ring to fill)
    assert dice(whole, truth) >= 0.95
    assert (whole & ~truth).sum() / truth.sum() < 0.06  # the partial-volume rim outside is not grown into


def test_a_cavity_the_bone_encloses_is_bone_whatever_it_reads():
    """A pocket of -40 HU (fat, or marrow under a dark beam-hardening streak) closed in 3D by bone is
    marrow: filled; below the fatty-marrow threshold it would stay out without the cavity rule."""
    from radseg.annotate.bone_interior import whole_bone

    ct, truth, _ = _long_bone(pocket_hu=-40.0)
    z, y, x = np.meshgrid(*(np.arange(n) * s for n, s in zip(truth.shape, SPACING)), indexing="ij")
    pocket = np.hypot(np.hypot(y - 32, x - 36), z - 30) <= 3.5  # the pocket's core, inside its blurred edge
    whole = extract_bone(ct).mask.array > 0
    assert whole[pocket].all() and dice(whole, truth) >= 0.95
    cut = extract_bone(ct, whole=False).mask.array > 0
    open_ = whole_bone(cut, ct.array, spacing=np.array(SPACING), fill_cavities=False)
    assert not open_[pocket].any()


def test_a_fluid_canal_inside_the_bone_stays_out():
    ct, truth, canal = _long_bone(canal=True)
    whole = extract_bone(ct, whole=True).mask.array > 0
    assert canal.sum() > 1000
    assert (whole & canal).sum() / canal.sum() < 0.6  # its blurred border only: filling regardless of HU takes it all
    assert dice(whole, truth) >= 0.95


@pytest.mark.realdata
def test_real_pelvic_crop_whole_bone(shared_data):
    """PENGWIN 003_LI (0.97 mm pixels): the cut alone misses the cancellous interior (Dice 0.76);
    the whole bone reaches the manual mask (0.96 or better; benchmarks/results/annotate_real_ct.md)."""
    from radseg.io import read

    folder = shared_data / "ct" / "pengwin-crops" / "003"
    if not folder.is_dir():
        pytest.skip(f"{folder} not present")
    ct = read(folder / "003_LI.nii.gz")
    reference = read(folder / "003_LI_mask.nii.gz").array > 0
    cut = extract_bone(ct, whole=False).mask.array > 0
    whole = extract_bone(ct, whole=True).mask.array > 0
    assert dice(cut, reference) < 0.85
    assert dice(whole, reference) >= 0.95


@pytest.mark.realdata
def test_real_sacrum_crop_whole_bone(shared_data):
    """PENGWIN 003_SA, the hardest crop (thin cortex, fatty sacral body): the cut alone reaches 0.59,
    the whole bone 0.90 or better once the outline is closed over the thin cortex (0.89 without)."""
    from radseg.io import read

    folder = shared_data / "ct" / "pengwin-crops" / "003"
    if not folder.is_dir():
        pytest.skip(f"{folder} not present")
    ct = read(folder / "003_SA.nii.gz")
    reference = read(folder / "003_SA_mask.nii.gz").array > 0
    whole = extract_bone(ct).mask.array > 0
    assert dice(whole, reference) >= 0.90
    assert (whole & ~reference).sum() / reference.sum() < 0.08  # the closing does not spill out of the bone


def test_metal_is_no_bone_and_does_not_move_the_threshold():
    """A bone block beside a metal rod (3071 HU, as a hip stem saturates): the rod and its blurred
    edge stay out of the mask, and the bone is found as without the rod (Otsu would otherwise split
    metal from everything else at ~1000 HU and lose the bone)."""
    ct, truth, _ = _long_bone()
    hu = ct.array.copy()
    rod = np.zeros(hu.shape, bool)
    rod[5:55, 60:72, 60:72] = True
    hu[rod] = 3071.0
    plain, metal = extract_bone(ct), extract_bone(Image(hu, spacing=SPACING))
    with_metal = metal.mask.array > 0
    assert not with_metal[rod].any()
    assert abs(metal.threshold_hu - plain.threshold_hu) < 30
    assert dice(with_metal, truth) >= 0.95


def test_the_ring_metal_brightens_takes_the_label_beyond_it():
    """The cut takes the ring the blur brightens around metal (1000-2500 HU) for dense bone; it takes
    the label of the nearest voxel beyond the ring: bone where bone touches the metal, none in soft
    tissue or a cup's liner (on the demo's CT with a hip replacement: over-segmentation within 3 mm
    of the metal from 2259 to 894 voxels, bone Dice 0.944 to 0.947)."""
    from radseg.annotate.bone_extraction import _across_bloom, _metal

    spacing = np.array([1.0, 0.8, 0.8])
    hu = np.full((10, 40, 40), 50.0)
    hu[:, 15:25, 15:25] = 3071.0  # a metal bar
    hu[:, :, :13] = 400.0  # bone on its left, 2 voxels (1.6 mm) away
    metal = hu >= 2500
    bloom = _metal(hu, spacing)
    ring = bloom & ~metal
    cut = (hu > 200) | ring  # the cut takes the ring for dense bone
    out = _across_bloom(cut.copy(), metal, bloom, spacing)
    assert ring[:, 20, 13:15].all() and out[:, 20, 13:15].all()  # next to bone: bone, as beyond it
    assert ring[:, 20, 25:27].all() and cut[:, 20, 25:27].all() and not out[:, 20, 25:27].any()  # tissue beyond


def _bone_beside_a_streaking_rod():
    """A bone (cylinder, 1500 HU cortex, 450 HU where it faces the rod, as an osteoporotic cortex;
    220 HU core) 13 mm from a metal rod (3071 HU) whose bright
    beam-hardening streaks (2 voxels wide, 260 HU) run through the soft tissue between and beyond them;
    0.8 mm PSF plus noise. Returns (CT, bone truth, streak voxels)."""
    spacing = (1.0, 0.8, 0.8)
    z, y, x = np.meshgrid(*(np.arange(n) * s for n, s in zip((24, 100, 110), spacing)), indexing="ij")
    r_bone, r_rod = np.hypot(y - 40, x - 30), np.hypot(y - 40, x - 62)
    truth = r_bone <= 12.0
    hu = np.full(truth.shape, 50.0)
    hu[truth] = 1500.0
    hu[truth & (x > 30)] = 450.0
    hu[r_bone <= 10.0] = 220.0
    streaks = np.zeros(truth.shape, bool)
    angle = np.arctan2(y - 40, x - 62)
    for direction in np.deg2rad([180, 130, 230, 90, -90]):  # one onto the bone, four past or away from it
        across = np.abs(np.sin(angle - direction)) * r_rod
        streaks |= (across <= 0.8) & (np.cos(angle - direction) > 0) & (r_rod > 5.0) & (r_rod < 40.0)
    streaks &= ~truth
    hu[streaks] = 260.0
    hu[r_rod <= 5.0] = 3071.0
    hu = ndimage.gaussian_filter(hu, sigma=0.8 / np.array(spacing)) + np.random.default_rng(1).normal(0, 10, hu.shape)
    return Image(hu.astype(np.float32), spacing=spacing), truth, streaks


def test_growth_along_metal_streaks_is_dropped_and_the_bone_kept():
    """Growth from the bone runs along the bright streaks radiating from an implant into soft tissue
    (on the demo's CT with a hip replacement: bone Dice 0.948; with the streak rule 0.951, and better
    on each of 8 implant phantoms). The rule drops the thin grown lines, not the bone."""
    ct, truth, streaks = _bone_beside_a_streaking_rod()
    kept = extract_bone(ct, streak_open_mm=0).mask.array > 0
    mask = extract_bone(ct).mask.array > 0
    assert (kept & streaks).sum() > 400  # without the rule the growth takes the streaks
    assert (mask & streaks).sum() < 0.1 * (kept & streaks).sum()
    assert (mask & truth).sum() / truth.sum() >= 0.97  # the bone stays
    assert dice(mask, truth) > dice(kept, truth) + 0.02
    far = extract_bone(ct, streak_mm=5.0).mask.array > 0  # streaks beyond the reach stay
    assert (far & streaks).sum() > 0.5 * (kept & streaks).sum()
