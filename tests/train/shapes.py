"""Small hand-built training data with known geometry: discs and squares in 2D, balls in 3D."""

from __future__ import annotations

import numpy as np

from radseg.image import Image
from radseg.labels import make_label_map


def disc_case(rng: np.random.Generator, *, shape=(70, 90), spacing=(0.5, 0.5)) -> tuple[Image, Image]:
    """A bright disc (label 1) on the left of the picture and a dimmer square (label 2) on the right."""
    h, w = shape
    image = rng.normal(0, 10, shape) + 100
    labels = np.zeros(shape, np.uint8)
    yy, xx = np.mgrid[:h, :w]
    cy, cx, r = rng.uniform(0.3, 0.7) * h, rng.uniform(0.25, 0.4) * w, rng.uniform(0.12, 0.18) * h
    disc = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
    image[disc] += 80
    labels[disc] = 1
    side = int(0.17 * h)
    sy, sx = int(rng.uniform(0.15, 0.7) * h), int(rng.uniform(0.62, 0.78) * w)
    image[sy:sy + side, sx:sx + side] += 50
    labels[sy:sy + side, sx:sx + side] = 2
    img = Image(image.astype(np.float32), spacing=spacing)
    return img, make_label_map(labels, {1: "disc", 2: "square"}, like=img)


def ball_case(rng: np.random.Generator, *, shape=(20, 32, 32), spacing=(2.0, 1.5, 1.5)) -> tuple[Image, Image]:
    """A CT-like volume (HU) with a 1000 HU ball (label 1) in 0 HU tissue."""
    k, j, i = np.indices(shape)
    centre = [rng.uniform(0.35, 0.65) * s for s in shape]
    radius_mm = rng.uniform(8, 11)
    dist = np.sqrt(sum(((a - c) * s) ** 2 for a, c, s in zip((k, j, i), centre, spacing)))
    ball = dist < radius_mm
    image = rng.normal(0, 30, shape) + np.where(ball, 1000, 0)
    img = Image(image.astype(np.int16), spacing=spacing, origin=(-20.0, 10.0, 50.0))
    return img, make_label_map(ball.astype(np.uint8), {1: "ball"}, like=img)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.logical_and(a, b).sum() / (a.sum() + b.sum())
