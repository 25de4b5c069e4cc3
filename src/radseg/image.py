"""The one image type every radseg module passes around (:class:`Image`), and grid helpers.

Conventions (decided once, here):

* **Array axes** are in numpy C order as the pixels are stored in DICOM: a 2D image is
  ``[row, column]``; a 3D volume is ``[slice, row, column]``. This is the reverse of the
  ITK / NIfTI index order ``(i, j, k)`` and the same as ``SimpleITK.GetArrayFromImage``.
  An optional trailing channel axis (e.g. RGB) is allowed; ``Image.channels`` says so.
* **Geometry** is one affine of shape ``(n+1, n+1)`` (``n`` = 2 or 3 spatial axes) mapping
  an array index, in array-axis order, to world coordinates in **millimetres**.
  Column ``a`` of the affine's upper-left block is the world step taken when array axis
  ``a`` increases by one (its norm is that axis' spacing).
* **World frame** for 3D is DICOM patient coordinates, **LPS**: +x towards the patient's
  Left, +y Posterior, +z Superior (the DICOM and ITK convention). NIfTI files are RAS and
  are converted on read and write.
* For 2D images the world frame is the image plane in mm (a radiograph has no
  patient position); where the source gives one, the 3D plane position is kept in
  ``metadata`` (``image_position_patient``, ``image_orientation_patient``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

__all__ = ["Image", "axis_codes", "align_axes", "to_grey", "LPS_TO_RAS"]

#: Flip x and y: converts an LPS affine to RAS (and back: the matrix is its own inverse).
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])

# Letters an LPS world axis points to, for positive and negative steps.
_LPS_LETTERS = (("L", "R"), ("P", "A"), ("S", "I"))


def _as_affine(
    ndim: int,
    spacing: Sequence[float] | None,
    origin: Sequence[float] | None,
    direction: Any,
) -> np.ndarray:
    spacing_arr = np.ones(ndim) if spacing is None else np.asarray(spacing, dtype=float)
    origin_arr = np.zeros(ndim) if origin is None else np.asarray(origin, dtype=float)
    # Default: array axes (slice, row, col) run along world (z, y, x), as SimpleITK's numpy view does.
    direction_arr = np.eye(ndim)[::-1] if direction is None else np.asarray(direction, dtype=float)
    if spacing_arr.shape != (ndim,) or origin_arr.shape != (ndim,):
        raise ValueError(
            f"spacing and origin need {ndim} values for a {ndim}D image, "
            f"got spacing={list(spacing_arr)} origin={list(origin_arr)}"
        )
    if direction_arr.shape != (ndim, ndim):
        raise ValueError(f"direction must be {ndim}x{ndim}, got shape {direction_arr.shape}")
    if np.any(spacing_arr <= 0) or not np.all(np.isfinite(spacing_arr)):
        raise ValueError(f"spacing must be positive and finite (mm), got {list(spacing_arr)}")
    affine = np.eye(ndim + 1)
    affine[:ndim, :ndim] = direction_arr * spacing_arr[np.newaxis, :]
    affine[:ndim, ndim] = origin_arr
    return affine


@dataclass(eq=False)
class Image:
    """Pixel or voxel array with its geometry (mm, LPS) and free metadata.

    Build from ``spacing``/``origin``/``direction`` (spacing and direction columns in
    array-axis order, origin in world x, y(, z)) or from one ``affine``. The default
    direction maps array axes (slice, row, col) to world (z, y, x) — an axial stack, or
    for 2D rows along y and columns along x. With no spacing, pixels are 1 mm and
    ``metadata["spacing_known"]`` is False so callers can tell.
    """

    array: np.ndarray
    affine: np.ndarray = field(default=None)  # type: ignore[assignment]
    metadata: dict[str, Any] = field(default_factory=dict)

    def __init__(
        self,
        array: Any,
        *,
        spacing: Sequence[float] | None = None,
        origin: Sequence[float] | None = None,
        direction: Any = None,
        affine: Any = None,
        metadata: Mapping[str, Any] | None = None,
        spatial_ndim: int | None = None,
    ) -> None:
        self.array = np.asarray(array)
        self.metadata = dict(metadata or {})
        if affine is not None:
            if spacing is not None or origin is not None or direction is not None:
                raise ValueError("give either affine or spacing/origin/direction, not both")
            affine = np.asarray(affine, dtype=float)
            ndim = affine.shape[0] - 1
            if affine.shape != (ndim + 1, ndim + 1) or ndim not in (2, 3):
                raise ValueError(f"affine must be 3x3 (2D) or 4x4 (3D), got {affine.shape}")
            self.affine = affine.copy()
        else:
            ndim = spatial_ndim or (
                len(spacing) if spacing is not None else min(self.array.ndim, 3)
            )
            if ndim not in (2, 3):
                raise ValueError(f"radseg images are 2D or 3D, got {ndim} spatial axes")
            if spacing is None:
                self.metadata.setdefault("spacing_known", False)
            self.affine = _as_affine(ndim, spacing, origin, direction)
        extra = self.array.ndim - self.ndim
        if extra not in (0, 1):
            raise ValueError(
                f"array of shape {self.array.shape} does not fit a {self.ndim}D geometry "
                "(one trailing channel axis at most)"
            )
        if np.linalg.matrix_rank(self.affine[: self.ndim, : self.ndim]) < self.ndim:
            raise ValueError("affine is singular: the axes do not span the image space")

    # --- geometry -------------------------------------------------------------------
    @property
    def ndim(self) -> int:
        """Number of spatial axes (2 or 3)."""
        return self.affine.shape[0] - 1

    @property
    def shape(self) -> tuple[int, ...]:
        """Spatial shape (channels excluded)."""
        return tuple(self.array.shape[: self.ndim])

    @property
    def channels(self) -> int | None:
        """Number of channels of a trailing channel axis, or None for a scalar image."""
        return self.array.shape[-1] if self.array.ndim > self.ndim else None

    @property
    def spacing(self) -> np.ndarray:
        """Step in mm along each array axis."""
        return np.linalg.norm(self.affine[: self.ndim, : self.ndim], axis=0)

    @property
    def origin(self) -> np.ndarray:
        """World position (mm) of the centre of the first pixel/voxel."""
        return self.affine[: self.ndim, self.ndim].copy()

    @property
    def direction(self) -> np.ndarray:
        """Unit world direction of each array axis, as columns."""
        return self.affine[: self.ndim, : self.ndim] / self.spacing[np.newaxis, :]

    @property
    def is_sheared(self) -> bool:
        """True when the axes are not orthogonal (e.g. a CT acquired with gantry tilt)."""
        d = self.direction
        return bool(np.max(np.abs(d.T @ d - np.eye(self.ndim))) > 1e-4)

    def index_to_world(self, index: Any) -> np.ndarray:
        """Map array indices (``[..., ndim]``) to world mm."""
        index = np.asarray(index, dtype=float)
        return index @ self.affine[: self.ndim, : self.ndim].T + self.affine[: self.ndim, self.ndim]

    def world_to_index(self, point: Any) -> np.ndarray:
        """Map world mm (``[..., ndim]``) to (fractional) array indices."""
        point = np.asarray(point, dtype=float)
        inv = np.linalg.inv(self.affine)
        return point @ inv[: self.ndim, : self.ndim].T + inv[: self.ndim, self.ndim]

    @property
    def axis_codes(self) -> str:
        """Orientation letters, one per array axis (see :func:`axis_codes`)."""
        return axis_codes(self.affine)

    @property
    def nifti_axis_codes(self) -> str:
        """Orientation letters in ITK/NIfTI index order (i, j, k), as nibabel and ITK-SNAP show them."""
        return self.axis_codes[::-1]

    def ras_affine(self) -> np.ndarray:
        """4x4 RAS affine in NIfTI index order (i, j, k): what a NIfTI file of this image holds."""
        reverse_axes = np.eye(4)
        reverse_axes[:3, :3] = np.eye(3)[::-1]  # NIfTI (i, j, k) = array axes (k, j, i)
        return LPS_TO_RAS @ self.affine3d() @ reverse_axes

    def affine3d(self) -> np.ndarray:
        """The 4x4 LPS affine; a 2D image becomes one 1 mm slice ``[1, row, col]`` at z=0."""
        if self.ndim == 3:
            return self.affine.copy()
        out = np.zeros((4, 4))
        out[2, 0] = 1.0  # the added slice axis points along z
        out[:2, 1:3] = self.affine[:2, :2]
        out[:2, 3] = self.affine[:2, 2]
        out[3, 3] = 1.0
        return out

    # --- convenience ------------------------------------------------------------------
    def with_array(self, array: Any, **metadata_updates: Any) -> "Image":
        """A new Image on the same geometry (e.g. a label map predicted for this image)."""
        array = np.asarray(array)
        if tuple(array.shape[: self.ndim]) != self.shape:
            raise ValueError(f"array shape {array.shape} does not match image shape {self.shape}")
        return Image(array, affine=self.affine, metadata={**self.metadata, **metadata_updates})

    def same_geometry(self, other: "Image", *, atol: float = 1e-3) -> bool:
        """True when both images share shape and affine (within ``atol`` mm)."""
        return self.shape == other.shape and np.allclose(self.affine, other.affine, atol=atol)

    def __repr__(self) -> str:
        sp = ", ".join(f"{s:.4g}" for s in self.spacing)
        return (
            f"Image(shape={self.array.shape}, dtype={self.array.dtype}, spacing=({sp}) mm, "
            f"axes={self.axis_codes or '?'})"
        )


def to_grey(image: Image) -> Image:
    """One grey channel (ITU-R 601 luma, as PIL's "L"; equal channels stay exactly as they are), same dtype."""
    if image.channels is None:
        return image
    array = np.asarray(image.array)
    if array.shape[-1] < 3:  # grey + alpha
        return Image(array[..., 0].copy(), affine=image.affine, metadata=dict(image.metadata))
    grey = np.rint(array[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114]))
    return Image(grey.astype(image.array.dtype), affine=image.affine, metadata=dict(image.metadata))


def axis_codes(affine: np.ndarray) -> str:
    """Orientation letters for each array axis of an LPS affine.

    Each letter names where the axis points as its index grows, like nibabel's
    ``aff2axcodes`` (which uses RAS): ``L`` (towards patient left), ``R``, ``P``, ``A``,
    ``S``, ``I``. 2D plane images have no patient frame and return ``""``.
    """
    affine = np.asarray(affine, dtype=float)
    ndim = affine.shape[0] - 1
    if ndim != 3:
        return ""
    letters = []
    for column in affine[:3, :3].T:
        world_axis = int(np.argmax(np.abs(column)))
        letters.append(_LPS_LETTERS[world_axis][0 if column[world_axis] > 0 else 1])
    return "".join(letters)


def align_axes(image: Image, reference: Image, *, atol: float = 1e-3) -> Image:
    """``image`` with its array axes permuted and flipped onto ``reference``'s grid.

    For comparing two readers (or a prediction with its ground truth) that store the same
    voxels in different axis orders (e.g. dcm2niix writes LAS, radseg LPS). No
    interpolation: fails when the grids differ by more than axis order and direction.
    """
    n = image.ndim
    if reference.ndim != n:
        raise ValueError(f"cannot align a {n}D image to a {reference.ndim}D reference")
    transform = np.linalg.inv(image.affine) @ reference.affine  # reference index -> image index
    linear = transform[:n, :n]
    perm = np.argmax(np.abs(linear), axis=0)  # image axis serving each reference axis
    signs = np.sign(linear[perm, np.arange(n)])
    expected = np.zeros((n, n))
    expected[perm, np.arange(n)] = signs
    if sorted(perm) != list(range(n)) or not np.allclose(linear, expected, atol=1e-4):
        raise ValueError("grids differ by more than axis order and flips (resampling would be needed)")
    array = np.transpose(image.array, (*perm, *range(n, image.array.ndim)))
    for axis, sign in enumerate(signs):
        if sign < 0:
            array = np.flip(array, axis=axis)
    aligned = Image(np.ascontiguousarray(array), affine=_flipped_affine(image, perm, signs), metadata=image.metadata)
    if aligned.shape != reference.shape or not np.allclose(aligned.affine, reference.affine, atol=atol):
        raise ValueError(
            f"grids do not match after reordering axes: shape {aligned.shape} vs {reference.shape}, "
            f"max affine difference {np.abs(aligned.affine - reference.affine).max():.4g} mm"
        )
    return aligned


def _flipped_affine(image: Image, perm: np.ndarray, signs: np.ndarray) -> np.ndarray:
    n = image.ndim
    affine = np.eye(n + 1)
    for axis, (source_axis, sign) in enumerate(zip(perm, signs)):
        column = image.affine[:n, source_axis]
        affine[:n, axis] = column * sign
    # The new first voxel is the old voxel at the far end of every flipped axis.
    start = np.array([image.shape[p] - 1 if s < 0 else 0 for p, s in zip(perm, signs)], dtype=float)
    old_index = np.zeros(n)
    old_index[perm] = start
    affine[:n, n] = image.index_to_world(old_index)
    return affine
