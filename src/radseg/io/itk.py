"""MetaImage (.mha/.mhd), NRRD and other ITK formats through SimpleITK.

SimpleITK's numpy view is ``[k, j, i]`` (reverse of ITK index order), the same as radseg's
array order, and its world frame is LPS, the same as radseg's; only the per-axis
spacing and direction columns need reversing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from radseg.errors import ReadError, WriteError
from radseg.image import Image
from radseg.io.atomic import atomic_path


def read_itk(path: str | Path) -> Image:
    import SimpleITK as sitk

    path = Path(path)
    try:
        img = sitk.ReadImage(str(path))
    except Exception as exc:
        raise ReadError(path, f"not readable by SimpleITK ({str(exc).strip().splitlines()[-1]})") from exc
    ndim = img.GetDimension()
    if ndim not in (2, 3):
        raise ReadError(path, f"{ndim}D images are not supported (2D or 3D)")
    array = sitk.GetArrayFromImage(img)
    direction = np.asarray(img.GetDirection(), dtype=float).reshape(ndim, ndim)[:, ::-1]
    spacing = np.asarray(img.GetSpacing(), dtype=float)[::-1]
    affine = np.eye(ndim + 1)
    affine[:ndim, :ndim] = direction * spacing[np.newaxis, :]
    affine[:ndim, ndim] = img.GetOrigin()
    meta = {"format": "itk", "source_files": [str(path)], "problems": []}
    return Image(array, affine=affine, metadata=meta)


def write_itk(image: Image, path: str | Path) -> Path:
    import SimpleITK as sitk

    path = Path(path)
    array = image.array.astype(np.uint8) if image.array.dtype == bool else image.array
    try:
        img = sitk.GetImageFromArray(array, isVector=image.channels is not None)
    except Exception as exc:
        raise WriteError(path, f"SimpleITK cannot hold {array.dtype} data ({exc})") from exc
    img.SetSpacing([float(s) for s in image.spacing[::-1]])
    img.SetOrigin([float(o) for o in image.origin])
    img.SetDirection([float(v) for v in image.direction[:, ::-1].ravel()])
    with atomic_path(path) as tmp:
        sitk.WriteImage(img, str(tmp), useCompression=True)
    return path
