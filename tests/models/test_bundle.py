"""Model bundles: save/load round trips (folder and zip), integrity and version checks."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from radseg.errors import ReadError  # noqa: E402
from radseg.models.bundle import FORMAT_VERSION, ModelBundle, load_bundle  # noqa: E402
from radseg.models.preprocess import Preprocessing  # noqa: E402
from radseg.models.registry import build  # noqa: E402

KWARGS = {"channels": [4, 8, 16], "strides": [2, 2], "num_res_units": 0}


def make_bundle(seed: int = 0) -> ModelBundle:
    torch.manual_seed(seed)
    net = build("unet", spatial_dims=2, in_channels=1, out_channels=3, overrides=KWARGS)
    return ModelBundle(architecture="unet", spatial_dims=2, in_channels=1, arch_kwargs=KWARGS, head="multiclass",
                       class_values=[1, 4], class_names=["right femur", "left femur"],
                       preprocessing=Preprocessing(spatial_dims=2, size=(32, 32)), mirror_pairs=[(1, 4)],
                       manifest={"data": {"data_hash": "abc"}}, state_dict=net.state_dict())


@pytest.mark.parametrize("name", ["model", "model.zip"])
def test_round_trip_gives_the_same_network(tmp_path, name):
    bundle = make_bundle()
    path = bundle.save(tmp_path / name)
    loaded = load_bundle(path)
    assert loaded.label_names == {1: "right femur", 4: "left femur"}
    assert loaded.mirror_pairs == [(1, 4)] and loaded.manifest["data"]["data_hash"] == "abc"
    assert loaded.preprocessing == bundle.preprocessing
    assert loaded.digest == bundle.digest and len(loaded.digest) == 64
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded.build_network()(x), bundle.build_network()(x))


def test_changed_weights_are_refused(tmp_path):
    path = make_bundle().save(tmp_path / "model")
    data = bytearray((path / "weights.pt").read_bytes())
    data[-100] ^= 0xFF
    (path / "weights.pt").write_bytes(bytes(data))
    with pytest.raises(ReadError, match="weights.pt does not match its recorded SHA-256"):
        load_bundle(path)


def test_missing_file_and_newer_format_are_refused(tmp_path):
    path = make_bundle().save(tmp_path / "model")
    (path / "manifest.json").unlink()
    with pytest.raises(ReadError, match="manifest.json is missing"):
        load_bundle(path)
    path = make_bundle().save(tmp_path / "model2")
    config = json.loads((path / "model.json").read_text())
    config["format_version"] = FORMAT_VERSION + 1
    (path / "model.json").write_text(json.dumps(config))
    with pytest.raises(ReadError, match="newer than this radseg"):
        load_bundle(path)


def test_not_a_model_is_named(tmp_path):
    (tmp_path / "junk.zip").write_bytes(b"not a zip")
    with pytest.raises(ReadError, match="junk.zip"):
        load_bundle(tmp_path / "junk.zip")
    with zipfile.ZipFile(tmp_path / "empty.zip", "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(ReadError, match="no model.json"):
        load_bundle(tmp_path / "empty.zip")
    with pytest.raises(ReadError, match="no such model"):
        load_bundle(tmp_path / "absent")


def test_zip_bundle_is_written_atomically_and_completely(tmp_path):
    path = make_bundle().save(tmp_path / "model.zip")
    with zipfile.ZipFile(path) as archive:
        assert sorted(archive.namelist()) == ["manifest.json", "model.json", "weights.pt"]
    assert not [p for p in tmp_path.iterdir() if "partial" in p.name]
    assert np.isfinite(load_bundle(path).state_dict["model.0.conv.weight"].numpy()).all()
