"""Geometry helpers of the head-CT phantom: ellipsoids and smooth random fields evaluated on
axial planes of a CT grid, fast because every field is affine in the pixel indices.

The *model frame* is in millimetres of a canonical head (x to the patient's left, y
posterior, z superior, origin near the centre of the cranial cavity). A :class:`Pose` maps
world LPS millimetres to the model frame (rotation, translation and the size factor), so a
plane of the CT grid becomes ``q = W @ (x_i, y_j, z) + t``: each model coordinate is
``a * x_i + b * y_j + c``, a broadcast sum of two 1D vectors. Ellipsoid coordinates and
plane waves are affine in ``q`` too, so nothing here ever builds a 3D coordinate array.
Ellipsoids are :class:`radseg.synth.geometry.Ellipsoid` (``centre``, semi-axes ``radii``, ``rotation``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from radseg.synth.geometry import Ellipsoid, euler_rotation


def rotation(yaw_deg: float = 0.0, pitch_deg: float = 0.0, roll_deg: float = 0.0) -> np.ndarray:
    """Rotation about z (yaw), then x (pitch, nodding), then y (roll, tilting to a shoulder)."""
    return euler_rotation("zxy", (yaw_deg, pitch_deg, roll_deg))


@dataclass(frozen=True)
class Pose:
    """Where the model head lies in the world: ``world = centre + scale * rotation @ q``."""

    centre: np.ndarray
    rotation: np.ndarray
    scale: float

    @property
    def to_model(self) -> np.ndarray:
        return self.rotation.T / self.scale

    def world(self, q) -> np.ndarray:
        return self.centre + self.scale * self.rotation @ np.asarray(q, float)

    def world_box(self, centre, half) -> tuple[np.ndarray, np.ndarray]:
        """World centre and half-size of a model-frame box (``half`` per model axis)."""
        half_world = self.scale * np.abs(self.rotation) @ np.asarray(half, float)
        return self.world(centre), half_world


@dataclass
class Plane:
    """One axial plane of the grid, cropped to ``rows`` x ``cols`` (index ranges)."""

    z: float
    xs: np.ndarray  # world x of each column of the crop
    ys: np.ndarray  # world y of each row of the crop
    pose: Pose

    def __post_init__(self) -> None:
        # Coordinates relative to the head centre stay small, so float32 keeps 1e-5 mm.
        self.dx = (self.xs - self.pose.centre[0]).astype(np.float32)
        self.dy = (self.ys - self.pose.centre[1]).astype(np.float32)
        self.dz = float(self.z - self.pose.centre[2])

    def affine(self, lin: np.ndarray, offset: np.ndarray) -> list[np.ndarray]:
        """Fields ``lin @ q + offset`` on this plane, one 2D array per row of ``lin``."""
        weights = lin @ self.pose.to_model
        consts = offset + weights[:, 2] * self.dz
        return [np.float32(w[1]) * self.dy[:, None] + (np.float32(w[0]) * self.dx[None, :] + np.float32(c))
                for w, c in zip(weights, consts)]

    def model(self) -> list[np.ndarray]:
        return self.affine(np.eye(3), np.zeros(3))

    def unit(self, ellipsoid: Ellipsoid) -> list[np.ndarray]:
        return self.affine(*ellipsoid.linear())

    def radius2(self, ellipsoid: Ellipsoid) -> np.ndarray:
        """Squared normalised radius: < 1 inside the ellipsoid."""
        u, v, w = self.unit(ellipsoid)
        return u * u + v * v + w * w

    def waves(self, field: WaveField) -> np.ndarray:
        """The random field on this plane: each cosine of an affine phase is an outer product."""
        weights = field.k @ self.pose.to_model
        consts = field.phase + weights[:, 2] * self.dz
        # cos(a_i + b_j) = cos a cos b - sin a sin b: two outer products per wave, no 2D cosine.
        a = (weights[:, :1] * self.dx[None, :].astype(float))
        b = (weights[:, 1:2] * self.dy[None, :].astype(float) + consts[:, None])
        left = np.concatenate([np.cos(b), -np.sin(b)]).astype(np.float32) * np.float32(field.gain)
        right = np.concatenate([np.cos(a), np.sin(a)]).astype(np.float32)
        out = np.multiply.outer(left[0], right[0])
        for row, col in zip(left[1:], right[1:]):  # elementwise, not BLAS: the same bytes on any machine
            out += np.multiply.outer(row, col)
        return out


@dataclass(frozen=True)
class WaveField:
    """A smooth random field of unit variance: a sum of plane waves with random directions."""

    k: np.ndarray  # (n, 3) wave vectors (radians per model mm)
    phase: np.ndarray  # (n,)

    @property
    def gain(self) -> float:
        return float(np.sqrt(2.0 / len(self.phase)))

    @classmethod
    def random(cls, rng: np.random.Generator, *, n: int, wavelength: tuple[float, float]) -> WaveField:
        direction = rng.normal(size=(n, 3))
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
        lengths = rng.uniform(*wavelength, size=n)
        return cls(direction * (2 * np.pi / lengths)[:, None], rng.uniform(0, 2 * np.pi, size=n))


def ellipsoid_distance(u: np.ndarray, v: np.ndarray, w: np.ndarray, axes) -> np.ndarray:
    """Approximate signed distance (model mm, < 0 inside) from unit-sphere coordinates.

    First-order estimate ``(f - 1) / |grad f|`` with ``f`` the normalised radius: exact for
    a sphere, smooth everywhere, good to about a millimetre within 15 mm of the surface of
    the head-sized ellipsoids used here (shells of bone and scalp follow it).
    """
    a, b, c = (np.float32(x) for x in axes)
    f2 = u * u + v * v + w * w
    f = np.sqrt(f2)
    grad = np.sqrt((u / a) ** 2 + (v / b) ** 2 + (w / c) ** 2)
    return (f2 - f) / np.maximum(grad, np.float32(1e-6))


def section_box(pose: Pose, ellipsoid: Ellipsoid, z: float) -> tuple[np.ndarray, np.ndarray] | None:
    """World centre and half-size (x, y) of the cut of a model ellipsoid by the plane ``z``."""
    lin, _ = ellipsoid.linear()
    a = lin @ pose.to_model  # u = a @ (p - c_world): quadratic form Q = a^T a
    c_world = pose.world(ellipsoid.centre)
    q = a.T @ a
    dz = z - c_world[2]
    q2_inv = np.linalg.inv(q[:2, :2])
    shift = -dz * q2_inv @ q[:2, 2]
    rest = 1.0 - dz * dz * (q[2, 2] - q[2, :2] @ q2_inv @ q[:2, 2])
    if rest <= 0:
        return None
    return c_world[:2] + shift, np.sqrt(rest * np.diag(q2_inv))


def upsample2(values: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Linear interpolation from samples at even indices to the full ``shape``."""
    for axis, n in enumerate(shape):
        values = np.moveaxis(values, axis, 0)
        full = np.empty((n, *values.shape[1:]), values.dtype)
        full[0::2] = values[: (n + 1) // 2]
        following = np.concatenate([values[1:], values[-1:]])
        full[1::2] = ((values + following) * np.float32(0.5))[: n // 2]
        values = np.moveaxis(full, 0, axis)
    return values


def grid_range(lo: float, hi: float, origin: float, step: float, n: int) -> slice:
    """Index slice of grid positions ``origin + k * step`` (step > 0) within ``[lo, hi]``."""
    start = max(0, int(np.ceil((lo - origin) / step)))
    stop = min(n, int(np.floor((hi - origin) / step)) + 1)
    return slice(start, max(start, stop))


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@dataclass
class Grid:
    """The CT grid: ``shape`` (slices, rows, cols), ``spacing`` (mm), ``origin`` (world LPS of voxel 0)."""

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]

    def xs(self) -> np.ndarray:
        return self.origin[0] + self.spacing[2] * np.arange(self.shape[2])

    def ys(self) -> np.ndarray:
        return self.origin[1] + self.spacing[1] * np.arange(self.shape[1])

    def zs(self) -> np.ndarray:
        return self.origin[2] + self.spacing[0] * np.arange(self.shape[0])


@dataclass
class Local:
    """A structure painted only inside its own box: ``paint(plane, hu, ctx)`` on the crop."""

    name: str
    centre: np.ndarray  # model frame
    half: np.ndarray  # model-frame half-size of its box
    paint: Callable[[Plane, np.ndarray, Context], np.ndarray]
    margin: float = 2.0


@dataclass
class Context:
    """Per-plane fields the painters share (crops of the plane's head crop)."""

    d_cav: np.ndarray
    inner: np.ndarray  # inside the cranial cavity
    below: np.ndarray  # outside cavity and skull-base plate: where skull-base structures go
    vent: np.ndarray  # ventricles (CSF)
    fine: np.ndarray  # fine random texture (diploe, folia, air cells)

    def crop(self, rows: slice, cols: slice) -> Context:
        return Context(self.d_cav[rows, cols], self.inner[rows, cols], self.below[rows, cols],
                       self.vent[rows, cols], self.fine[rows, cols])


def crop(plane_z: float, xs: np.ndarray, ys: np.ndarray, world_centre, world_half) -> tuple[slice, slice] | None:
    """Rows and columns of a plane crop that a world box touches (None when it misses)."""
    if abs(plane_z - world_centre[2]) > world_half[2]:
        return None
    dx, dy = xs[1] - xs[0] if xs.size > 1 else 1.0, ys[1] - ys[0] if ys.size > 1 else 1.0
    cols = grid_range(world_centre[0] - world_half[0], world_centre[0] + world_half[0], xs[0], dx, xs.size)
    rows = grid_range(world_centre[1] - world_half[1], world_centre[1] + world_half[1], ys[0], dy, ys.size)
    if cols.stop <= cols.start or rows.stop <= rows.start:
        return None
    return rows, cols
