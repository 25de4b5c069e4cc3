"""A small offline tour of radseg's readers: writes awkward DICOM series, then inspects and converts them.

Run with ``make demo`` (or ``.venv/bin/python examples/foundation_demo.py OUT``). Everything it
reads it first writes itself, so it needs no data and no network.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from radseg.image import Image
from radseg.io.dicom_write import write_dicom_series


def phantom(shape=(40, 128, 128)) -> np.ndarray:
    k, j, i = np.indices(shape)
    body = ((j - 64) ** 2 / 55**2 + (i - 64) ** 2 / 60**2) <= 1
    bone = (j - 70) ** 2 + (i - 40) ** 2 <= 12**2  # on the patient's right (low x)
    volume = np.where(body, 40, -1000) + np.where(bone, 660, 0)
    return volume.astype(np.int16)


def main(out: Path) -> None:
    radseg = [sys.executable, "-m", "radseg"]
    axial = Image(phantom(), spacing=(2.0, 0.8, 0.8), origin=(-51.2, -51.2, -40.0))
    write_dicom_series(axial, out / "archive" / "PA1" / "ST1" / "SE1", description="Axial 2mm", file_pattern="{uid}.dcm")
    tilt = axial.affine.copy()
    tilt[:3, 0] = [0.0, 2.0 * np.tan(np.radians(12)), 2.0]
    write_dicom_series(Image(phantom(), affine=tilt), out / "archive" / "PA2" / "ST1" / "SE1", description="Tilted 12deg")
    gap = write_dicom_series(axial, out / "archive" / "PA3" / "ST1" / "SE1", description="Missing slice")
    gap[17].unlink()
    (out / "archive" / "README.txt").write_text("not an image")
    print("$ radseg info", out / "archive", flush=True)
    subprocess.run([*radseg, "info", str(out / "archive")])
    print("\n$ radseg convert", out / "archive", out / "nifti", flush=True)
    subprocess.run([*radseg, "convert", str(out / "archive"), str(out / "nifti"), "-q"])
    print("\n$ radseg convert ... --allow-gaps (resumes: finished outputs are kept)", flush=True)
    code = subprocess.run([*radseg, "convert", str(out / "archive"), str(out / "nifti"), "--allow-gaps", "-q"]).returncode
    print(f"\nexit code {code}; outputs in {out / 'nifti'}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("out/demo"))
