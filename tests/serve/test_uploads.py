"""Uploads: every accepted kind reads right; every bad one is refused with a message a person understands."""

from __future__ import annotations

import gzip
import stat
import zipfile

import numpy as np
import pytest

import radseg.io as rio
from radseg.image import Image
from radseg.serve.uploads import MB, UploadError, ZipLimits, load_upload, safe_extract_zip
from tests.conftest import phantom_volume
from tests.serve.conftest import grey_png


def load(path, tmp_path, **options):
    options.setdefault("max_bytes", 50 * MB)
    return load_upload(path, work_dir=tmp_path / "work", **options)


@pytest.fixture
def ct():
    return Image(phantom_volume(), spacing=(2.5, 0.7, 0.8), origin=(-30.0, -20.0, 100.0))


# --- good uploads ------------------------------------------------------------------------

def test_png_radiograph(tmp_path, disc_image):
    path = grey_png(disc_image[0], tmp_path / "chest x-ray.png")
    loaded = load(path, tmp_path)
    assert loaded.kind == "radiograph" and loaded.image.shape == (70, 90) and loaded.name == "chest_x-ray"


def test_jpeg_radiograph(tmp_path, disc_image):
    from PIL import Image as PILImage

    PILImage.open(grey_png(disc_image[0], tmp_path / "a.png")).convert("L").save(tmp_path / "b.jpg", quality=90)
    loaded = load(tmp_path / "b.jpg", tmp_path)
    assert loaded.kind == "radiograph" and loaded.image.shape == (70, 90)


def test_dicom_radiograph_keeps_its_pixel_size(tmp_path, disc_image):
    from radseg.io.dicom_write import write_dicom_radiograph

    path = write_dicom_radiograph(disc_image[0], tmp_path / "xray.dcm", uid_seed="serve")
    loaded = load(path, tmp_path)
    assert loaded.kind == "radiograph" and np.allclose(loaded.image.spacing, 0.5)


def test_nifti_volume(tmp_path, ct):
    path = rio.write(ct, tmp_path / "ct.nii.gz")
    loaded = load(path, tmp_path)
    assert loaded.kind == "volume" and loaded.name == "ct" and loaded.image.shape == ct.shape
    assert np.allclose(loaded.image.spacing, ct.spacing)


def test_zip_of_a_dicom_series(tmp_path, ct):
    from radseg.io.dicom_write import write_dicom_series

    files = write_dicom_series(ct, tmp_path / "series", uid_seed="serve")
    archive = tmp_path / "series.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for f in files:
            z.write(f, f"patient/CT/{f.name}")
        z.writestr("__MACOSX/._junk", b"x")
    loaded = load(archive, tmp_path)
    assert loaded.kind == "volume" and loaded.image.shape == ct.shape
    assert np.array_equal(loaded.image.array, ct.array)


def test_label_png_and_cxas_zip_as_labels(tmp_path, disc_image):
    truth = disc_image[1]
    png = rio.write(truth, tmp_path / "case1.png", kind="png")
    loaded = load(png, tmp_path, as_labels=True)
    assert loaded.kind == "labels" and loaded.image.metadata["label_names"] == {1: "disc", 2: "square"}
    files = rio.write(truth, tmp_path / "cxas", kind="png-classes", case="case1")
    archive = tmp_path / "cxas.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for f in files:
            z.write(f, f.relative_to(tmp_path / "cxas").as_posix())
    loaded = load(archive, tmp_path, as_labels=True)
    assert set(loaded.image.metadata.get("class_names") or loaded.image.metadata["label_names"].values()) == {"disc", "square"}


# --- bad uploads -------------------------------------------------------------------------

def test_wrong_type_names_the_accepted_ones(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("not an image")
    with pytest.raises(UploadError, match=r"notes.txt: \.txt is not a supported image type; upload PNG, JPEG"):
        load(path, tmp_path)
    exe = tmp_path / "tool.exe"
    exe.write_bytes(b"MZ\x90\x00" + bytes(200))
    with pytest.raises(UploadError, match="not a supported image type"):
        load(exe, tmp_path)


def test_corrupt_and_truncated_files(tmp_path, disc_image, ct):
    fake = tmp_path / "fake.png"
    fake.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 50)
    with pytest.raises(UploadError, match="could not read fake.png"):
        load(fake, tmp_path)
    good = grey_png(disc_image[0], tmp_path / "good.png").read_bytes()
    cut = tmp_path / "cut.png"
    cut.write_bytes(good[: len(good) // 2])
    with pytest.raises(UploadError, match="could not read cut.png"):
        load(cut, tmp_path)
    nifti = gzip.decompress(rio.write(ct, tmp_path / "ct.nii.gz").read_bytes())
    short = tmp_path / "short.nii"
    short.write_bytes(nifti[:1000])
    with pytest.raises(UploadError, match="could not read short.nii"):
        load(short, tmp_path)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(UploadError, match="empty"):
        load(empty, tmp_path)


def test_oversized_upload(tmp_path, disc_image):
    path = grey_png(disc_image[0], tmp_path / "x.png")
    with pytest.raises(UploadError, match=r"above this server's upload limit of 1 KB \(radseg serve --max-upload-mb\)"):
        load(path, tmp_path, max_bytes=1024)


def _zip_with(path, entries):
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, data in entries:
            z.writestr(name, data)
    return path


def test_zip_slip_is_refused_and_nothing_escapes(tmp_path):
    for name in ("../../evil.dcm", "ok/../../evil.dcm", "/etc/evil.dcm", "C:/evil.dcm", "..\\evil.dcm"):
        archive = _zip_with(tmp_path / "slip.zip", [("fine.dcm", b"x"), (name, b"evil")])
        with pytest.raises(UploadError, match="outside the zip's folder|absolute path"):
            load(archive, tmp_path)
    assert not list(tmp_path.rglob("evil.dcm"))


def test_zip_symlink_is_refused(tmp_path):
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as z:
        info = zipfile.ZipInfo("series/link.dcm")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        z.writestr(info, "/etc/passwd")
    with pytest.raises(UploadError, match="symbolic link"):
        load(archive, tmp_path)


def test_zip_bombs_are_refused(tmp_path):
    bomb = _zip_with(tmp_path / "bomb.zip", [("zeros.dcm", bytes(20 * MB))])
    assert bomb.stat().st_size < 100_000
    with pytest.raises(UploadError, match="zip bomb"):
        load(bomb, tmp_path)
    many = _zip_with(tmp_path / "many.zip", [(f"f{i}.dcm", b"x") for i in range(30)])
    with pytest.raises(UploadError, match="30 files, more than the 20 allowed"):
        load(many, tmp_path, zip_limits=ZipLimits(max_members=20))
    big = _zip_with(tmp_path / "big.zip", [(f"f{i}.dcm", np.random.default_rng(i).bytes(300_000)) for i in range(4)])
    with pytest.raises(UploadError, match="unpacks to 1.1 MB, above the 1.0 MB limit"):
        load(big, tmp_path, zip_limits=ZipLimits(max_unpacked_bytes=MB))


def test_zip_whose_header_lies_about_its_size(tmp_path):
    """A member that inflates to more than its header declares is stopped while unpacking."""
    data = bytes(3 * MB)
    archive = _zip_with(tmp_path / "liar.zip", [("a.dcm", data)])
    raw = bytearray(archive.read_bytes())
    # Patch the declared uncompressed size (local header offset 22, central directory offset 24) to 1000 bytes.
    raw[22:26] = (1000).to_bytes(4, "little")
    central = raw.rfind(b"PK\x01\x02")
    raw[central + 24:central + 28] = (1000).to_bytes(4, "little")
    archive.write_bytes(bytes(raw))
    with pytest.raises(UploadError, match="zip bomb|damaged"):
        safe_extract_zip(archive, tmp_path / "out", limits=ZipLimits(max_ratio=1e9))
    assert not (tmp_path / "out" / "unzipped" / "a.dcm").exists()


def test_corrupt_zip_and_empty_zip(tmp_path):
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"PK\x03\x04" + b"\x00" * 100)
    with pytest.raises(UploadError, match="not a readable zip"):
        load(bad, tmp_path)
    empty = _zip_with(tmp_path / "empty.zip", [])
    with pytest.raises(UploadError, match="holds no files"):
        load(empty, tmp_path)
    notes = _zip_with(tmp_path / "notes.zip", [("readme.txt", b"hello")])
    with pytest.raises(UploadError, match="could not read notes.zip"):
        load(notes, tmp_path)


def test_a_label_upload_that_is_not_labels(tmp_path):
    rgb = tmp_path / "photo.png"
    from PIL import Image as PILImage

    PILImage.fromarray(np.random.default_rng(0).integers(0, 255, (20, 30, 3), dtype=np.uint8)).save(rgb)
    with pytest.raises(UploadError, match="could not read photo.png"):
        load(rgb, tmp_path, as_labels=True)
