"""Architecture registry and presets: every network builds in 2D and 3D and keeps the input size."""

from __future__ import annotations

import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")

from radseg.models.mirror import mirror_pairs, mirror_permutation  # noqa: E402
from radseg.models.presets import PRESETS  # noqa: E402
from radseg.models.registry import ARCHITECTURES, build, check_patch_size  # noqa: E402
from radseg.registry import UnknownNameError  # noqa: E402

EXPECTED = {"unet", "basicunet", "attention-unet", "segresnet", "vnet", "unetr", "swin-unetr"}


def test_registry_lists_the_seed_papers_architectures():
    assert EXPECTED <= set(ARCHITECTURES.names())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_architecture_builds_in_2d_with_multiclass_output(name):
    size = max(32, 2 * ARCHITECTURES[name].divisor)  # the deepest level needs more than one pixel
    net = build(name, spatial_dims=2, in_channels=1, out_channels=4, patch_size=(size, size))
    with torch.no_grad():
        out = net.eval()(torch.zeros(1, 1, size, size))
    assert tuple(out.shape) == (1, 4, size, size)


@pytest.mark.parametrize("name", ["unet", "segresnet", "vnet", "unetr"])
def test_3d_architectures_keep_the_patch_shape(name):
    net = build(name, spatial_dims=3, in_channels=1, out_channels=2, patch_size=(16, 32, 32),
                overrides={"channels": [4, 8, 16], "strides": [2, 2], "num_res_units": 0} if name == "unet" else None)
    with torch.no_grad():
        out = net.eval()(torch.zeros(1, 1, 16, 32, 32))
    assert tuple(out.shape) == (1, 2, 16, 32, 32)


def test_wrong_name_answers_with_the_valid_ones():
    with pytest.raises(UnknownNameError, match="Did you mean 'unet'"):
        build("unte", spatial_dims=2, in_channels=1, out_channels=2)


def test_patch_size_must_fit_the_downsampling():
    check_patch_size("unet", (64, 96))
    with pytest.raises(ValueError, match="multiple of 16"):
        check_patch_size("unet", (64, 100))
    with pytest.raises(ValueError, match="multiple of 32"):
        check_patch_size("swin-unetr", (48, 48, 48))


def test_presets_name_registered_architectures_and_valid_patches():
    from radseg.models.preprocess import Preprocessing

    for preset in PRESETS.items():
        name, p = preset
        assert p.architecture in ARCHITECTURES
        pre = Preprocessing.from_dict({**p.preprocessing, "spatial_dims": p.spatial_dims})
        check_patch_size(p.architecture, pre.patch_size)


def test_importing_the_registry_does_not_import_torch():
    code = "import sys; import radseg.models.registry, radseg.models.presets; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_mirror_pairs_from_hexai_hip_names():
    names = {1: "right acetabulum", 2: "left acetabulum", 3: "right ilium-ischium-pubis",
             4: "left ilium-ischium-pubis", 5: "right femur", 6: "left femur", 7: "sacrum"}
    assert mirror_pairs(names) == [(1, 2), (3, 4), (5, 6)]
    # multi-class: channel 0 is background, channel k is class_values[k-1]
    assert mirror_permutation([(1, 2), (5, 6)], [1, 2, 5, 6, 7], background=True) == [0, 2, 1, 4, 3, 5]
    assert mirror_permutation([(1, 2)], [1, 2], background=False) == [1, 0]
    assert mirror_pairs({1: "femur", 2: "tibia"}) == []
