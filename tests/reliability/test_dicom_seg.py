"""What radseg promises on bad input: DICOM-SEG scenarios (``radseg segment -ot dicom-seg`` and reading SEGs).

Each scenario: the exit code (or the error raised), the offending file named, and nothing lost or
half-written: sources untouched, no partial output, the rest of a batch done.
"""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
import typer
from typer.testing import CliRunner

torch = pytest.importorskip("torch")
pytest.importorskip("monai")

import radseg.io as rio  # noqa: E402
from radseg.commands import segment as segment_commands  # noqa: E402
from radseg.errors import ReadError  # noqa: E402
from radseg.image import Image  # noqa: E402
from radseg.infer.predictor import Predictor  # noqa: E402
from radseg.io.dicom_write import write_dicom_radiograph  # noqa: E402
from radseg.train.config import TrainConfig  # noqa: E402
from radseg.train.data import from_pairs  # noqa: E402
from radseg.train.loop import train  # noqa: E402
from tests.train.shapes import disc_case  # noqa: E402


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    rng = np.random.default_rng(0)
    config = TrainConfig(output=tmp_path_factory.mktemp("run") / "run", preprocessing={"size": (32, 32)},
                         arch_kwargs={"channels": [4, 8], "strides": [2], "num_res_units": 0}, epochs=1,
                         iters_per_epoch=2, batch_size=2, val_every=1, threads=1, device="cpu")
    return train(config, from_pairs([disc_case(rng, shape=(40, 48)) for _ in range(3)])).model_path


@pytest.fixture(scope="module")
def cli():
    app = typer.Typer()
    app.callback()(lambda: None)
    segment_commands.register(app)
    runner = CliRunner()
    return lambda *args: runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def counted(monkeypatch):
    calls = []
    original = Predictor.predict
    monkeypatch.setattr(Predictor, "predict", lambda self, image: calls.append(1) or original(self, image))
    return calls


def radiograph(path, *, seed=2, blank=(), modality="DX"):
    """A DICOM radiograph of a disc; ``blank``: UIDs emptied (in the dataset and its file meta), as anonymisers do."""
    image, _ = disc_case(np.random.default_rng(seed), shape=(40, 48))
    write_dicom_radiograph(Image(np.clip(image.array * 10, 0, 4000).astype(np.uint16), spacing=(0.2, 0.2)), path,
                           modality=modality)
    if blank:
        ds = pydicom.dcmread(path)
        for keyword in blank:
            setattr(ds, keyword, "")
            if keyword in ("SOPInstanceUID", "SOPClassUID"):
                setattr(ds.file_meta, "MediaStorage" + keyword, "")
        ds.save_as(path, enforce_file_format=False)
    return path


def partials(folder) -> list:
    return [p for p in folder.rglob("*") if ".partial-" in p.name]


UIDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")


def test_source_without_uids_gets_deterministic_ones_with_a_warning(cli, model, tmp_path):
    source = radiograph(tmp_path / "in" / "dx.dcm", blank=UIDS)
    before = source.read_bytes()
    outputs = []
    for out in (tmp_path / "a", tmp_path / "b"):
        result = cli("segment", "-i", source, "-o", out, "-m", model, "-ot", "dicom-seg")
        assert result.exit_code == 0, result.output
        assert f"warning: {source}: source StudyInstanceUID, SeriesInstanceUID, SOPInstanceUID empty" \
            in result.output and "SHA-256" in result.output
        outputs.append(pydicom.dcmread(out / "dx.dcm"))
    a, b = outputs
    assert a.StudyInstanceUID == b.StudyInstanceUID  # deterministic: the same source, the same references
    ref = [ds.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0].ReferencedSOPInstanceUID for ds in outputs]
    assert ref[0] == ref[1] and ref[0]
    assert "SHA-256" in a.ImageComments
    assert source.read_bytes() == before and not partials(tmp_path)


def test_source_without_a_sop_class_and_an_unknown_modality_is_refused_the_batch_goes_on(cli, model, tmp_path):
    folder = tmp_path / "in"
    bad = radiograph(folder / "odd.dcm", blank=(*UIDS, "SOPClassUID"), modality="XC")
    radiograph(folder / "good.dcm", seed=3)
    result = cli("segment", "-i", folder, "-o", tmp_path / "out", "-m", model, "-ot", "dicom-seg")
    assert result.exit_code == 1
    assert f"{bad}" in result.output and "no SOP Class UID" in result.output and "Traceback" not in result.output
    assert sorted(p.name for p in (tmp_path / "out").glob("*.dcm")) == ["good.dcm"]
    assert not partials(tmp_path / "out")


def test_dicom_seg_of_a_png_is_refused_before_the_model_runs(cli, model, tmp_path, counted):
    png = tmp_path / "in" / "photo.png"
    image, _ = disc_case(np.random.default_rng(1), shape=(40, 48))
    rio.write(Image(np.clip(image.array, 0, 255).astype(np.uint8), spacing=(1, 1)), png)
    result = cli("segment", "-i", png, "-o", tmp_path / "out", "-m", model, "-ot", "dicom-seg")
    assert result.exit_code == 1
    assert f"{png}: dicom-seg needs DICOM input" in result.output
    assert counted == [] and not list((tmp_path / "out").glob("*.dcm"))


def _cr_seg_with_empty_shared_group(tmp_path):
    from tests.io.seg_samples import cr_seg_without_pixel_measures

    return cr_seg_without_pixel_measures(radiograph(tmp_path / "cr.dcm", modality="CR"),
                                         tmp_path / "seg_image_cr_binary.dcm", box=(slice(5, 20), slice(10, 30)))


def test_radiograph_seg_without_pixel_measures_reads_with_unknown_spacing(tmp_path):
    path, mask = _cr_seg_with_empty_shared_group(tmp_path)
    before = path.read_bytes()
    labels = rio.read_labels(path)
    np.testing.assert_array_equal(labels.array, mask.astype(np.uint8))
    assert labels.metadata["spacing_known"] is False
    assert path.read_bytes() == before


def test_truncated_seg_is_refused_naming_it(tmp_path):
    path, _ = _cr_seg_with_empty_shared_group(tmp_path)
    path.write_bytes(path.read_bytes()[:600])
    with pytest.raises(ReadError) as caught:
        rio.read_labels(path)
    assert str(path) in str(caught.value) and "DICOM-SEG" in str(caught.value)
