"""Pictures of where each measurement was taken: the image, the labels, the lines and points.

The picture is drawn with square physical pixels (anisotropic spacing is resampled), at least
900 pixels on its long side (small phantoms are enlarged so the marks stay legible) and at
most 1600. A legend on the right lists the measured values, and says what could not be measured.
3D label maps are shown as the coronal slice through the measured femoral heads (or the labels'
centre), head up, patient right on the left; a sphere appears as its cross-section.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from radseg.features.base import Mark, Measurement
from radseg.image import Image
from radseg.io.atomic import atomic_path
from radseg.io.label_png import label_colour
from radseg.labels import iter_classes

__all__ = ["write_feature_overlay"]

MIN_SIDE, MAX_SIDE = 900, 1600
MAX_LEGEND = 40


def _grey(image: Image | None, shape) -> np.ndarray:
    if image is None or image.shape != tuple(shape) or image.channels is not None:
        return np.full(shape, 40.0)
    values = image.array.astype(np.float64)
    low, high = np.percentile(values, [1, 99])
    high = high if high > low else low + 1.0
    grey = np.clip((values - low) / (high - low), 0, 1) * 255.0
    return 255.0 - grey if image.metadata.get("photometric") == "MONOCHROME1" else grey


def _shown(measurements: list[Measurement]) -> set[str] | None:
    """The label names the measurements used (None: show every label)."""
    names = {name for m in measurements for name in m.sources}
    return names or None


def _coronal(labels: Image, image: Image | None, measurements: list[Measurement]):
    """A 3D case as one coronal plane: (grey, label planes [(value, name, mask)], spacing, 2D marks)."""
    spacing = labels.spacing
    circles = [m for ms in measurements for m in ms.marks if m.kind == "circle" and m.points.shape[1] == 3]
    if circles:
        row = round(float(np.mean([c.points[0, 1] for c in circles])) / float(spacing[1]))
    else:
        found = np.argwhere(labels.array if labels.channels is None else labels.array.any(axis=-1))
        row = int(np.median(found[:, 1])) if len(found) else labels.shape[1] // 2
    row = int(np.clip(row, 0, labels.shape[1] - 1))
    superior_up = labels.affine[2, 0] > 0  # axis 0 runs towards the head: show it at the top
    flip = (lambda a: a[::-1]) if superior_up else (lambda a: a)
    height_mm = (labels.shape[0] - 1) * spacing[0]
    shown = _shown(measurements)
    planes = [(v, n, flip(mask[:, row, :])) for v, n, mask in iter_classes(labels, include_empty=False)
              if shown is None or n in shown]
    grey = flip(_grey(image, labels.shape)[:, row, :]) if image is not None else np.full(
        (labels.shape[0], labels.shape[2]), 40.0)
    marks = []
    y_plane = row * spacing[1]
    for ms in measurements:
        for m in ms.marks:
            if m.points.shape[1] != 3:
                continue
            pts = m.points[:, [0, 2]].copy()
            if superior_up:
                pts[:, 0] = height_mm - pts[:, 0]
            radius = m.radius
            if m.kind == "circle":
                off = abs(m.points[0, 1] - y_plane)
                if off >= m.radius:
                    continue
                radius = float(np.sqrt(m.radius**2 - off**2))
            marks.append(Mark(m.kind, pts, radius=radius, text=m.text, colour=m.colour))
    return grey, planes, np.array([spacing[0], spacing[2]]), marks


def _flat(labels: Image, image: Image | None, measurements: list[Measurement]):
    shown = _shown(measurements)
    planes = [(v, n, m) for v, n, m in iter_classes(labels, include_empty=False) if shown is None or n in shown]
    marks = [m for ms in measurements for m in ms.marks if m.points.shape[1] == 2]
    return _grey(image, labels.shape), planes, np.asarray(labels.spacing, float), marks


def _legend_lines(measurements: list[Measurement], title: str) -> list[str]:
    lines = [title] if title else []
    shown = [m for m in measurements if m.marks or not m.ok]
    for m in shown[:MAX_LEGEND]:
        if m.ok:
            value = f"{m.value:.3f}" if m.unit == "ratio" else f"{m.value:.1f}"
            lines.append(f"{m.structure}: {m.name} = {value} {m.unit}")
        else:
            note = m.note if len(m.note) <= 90 else m.note[:89].rstrip() + "..."
            lines.append(f"{m.structure}: {m.name} not measured ({note})")
    if len(shown) > MAX_LEGEND:
        lines.append(f"... {len(shown) - MAX_LEGEND} more in the CSV")
    return lines


def _place_texts(draw, items, font, picture_size, *, gap: int) -> None:
    """Draw each text beside its anchor where it overlaps no earlier text and stays in the picture."""
    placed: list[tuple[float, float, float, float]] = []
    width, height = picture_size
    for (x, y), text, colour in items:
        w, h = draw.textlength(text, font=font), font.size * 1.2
        candidates = [(x + gap, y - h / 2), (x - gap - w, y - h / 2), (x - w / 2, y - gap - h), (x - w / 2, y + gap)]
        candidates += [(cx, cy + k * h) for k in (1, -1, 2, -2, 3, -3) for cx, cy in candidates[:2]]
        inside = [(cx, cy) for cx, cy in candidates if 0 <= cx and cx + w <= width and 0 <= cy and cy + h <= height]
        free = [(cx, cy) for cx, cy in inside
                if all(cx + w < a or cx > c or cy + h < b or cy > d for a, b, c, d in placed)]
        cx, cy = (free or inside or candidates)[0]
        placed.append((cx, cy, cx + w, cy + h))
        draw.text((cx, cy), text, fill=colour, font=font, stroke_width=2, stroke_fill=(0, 0, 0))


def write_feature_overlay(labels: Image, measurements: list[Measurement], path: str | Path, *,
                          image: Image | None = None, title: str = "") -> Path:
    """Write a PNG of the labels (over ``image`` when given) with every measurement's marks."""
    from PIL import Image as PILImage
    from PIL import ImageDraw, ImageFont
    from scipy import ndimage

    path = Path(path)
    grey, planes, spacing, marks = (_coronal if labels.ndim == 3 else _flat)(labels, image, measurements)
    height, width = grey.shape
    extent = np.array([height * spacing[0], width * spacing[1]])  # mm
    square = extent / float(min(spacing))
    scale = float(np.clip(max(square), MIN_SIDE, MAX_SIDE)) / float(max(square))
    size = np.maximum(np.rint(square * scale).astype(int), 1)
    mm_per_px = extent / size
    zoom = size / np.array([height, width])
    base = ndimage.zoom(grey, zoom, order=1)[: size[0], : size[1]]
    rgb = np.repeat(base[..., None], 3, axis=-1)
    edges = []
    rows = np.minimum(((np.arange(size[0]) + 0.5) / zoom[0]).astype(int), height - 1)  # nearest source pixel
    cols = np.minimum(((np.arange(size[1]) + 0.5) / zoom[1]).astype(int), width - 1)
    for value, _, mask in planes:
        big = mask[np.ix_(rows, cols)]
        colour = np.asarray(label_colour(value), float)
        rgb[big] = 0.75 * rgb[big] + 0.25 * colour
        edges.append((big & ~ndimage.binary_erosion(big, iterations=2, border_value=1), colour))
    for edge, colour in edges:
        rgb[edge] = colour
    picture = PILImage.fromarray(np.clip(np.rint(rgb), 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(picture)
    pen = max(3, round(int(max(size)) / 400))
    font = ImageFont.load_default(size=max(14, int(max(size) / 60)))

    def xy(p):  # plane mm (row, col) -> picture (x, y), pixel centres aligned
        return (float((p[1] + 0.5 * spacing[1]) / mm_per_px[1] - 0.5),
                float((p[0] + 0.5 * spacing[0]) / mm_per_px[0] - 0.5))

    labels_to_place = []
    for m in marks:
        colour = tuple(int(c) for c in m.colour)
        if m.kind in ("line", "polyline"):
            draw.line([xy(p) for p in m.points], fill=colour, width=pen)
        elif m.kind == "circle":
            cx, cy = xy(m.points[0])
            rx, ry = m.radius / mm_per_px[1], m.radius / mm_per_px[0]
            draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], outline=colour, width=pen)
        else:
            cx, cy = xy(m.points[0])
            draw.ellipse([cx - 2 * pen, cy - 2 * pen, cx + 2 * pen, cy + 2 * pen], fill=colour)
        if m.text:
            anchor = m.points.mean(axis=0) if m.kind == "line" else m.points[0]
            labels_to_place.append((xy(anchor), m.text, colour))
    _place_texts(draw, labels_to_place, font, (size[1], size[0]), gap=3 * pen)

    lines = _legend_lines(measurements, title)
    pad = 12
    text_w = max((draw.textlength(t, font=font) for t in lines), default=0)
    row_h = int(font.size * 1.4)
    canvas = PILImage.new("RGB", (size[1] + int(text_w) + 3 * pad, max(size[0], 2 * pad + row_h * len(lines))), (24, 24, 24))
    canvas.paste(picture, (0, 0))
    legend = ImageDraw.Draw(canvas)
    for i, text in enumerate(lines):
        legend.text((size[1] + pad, pad + i * row_h), text, fill=(235, 235, 235), font=font)
    with atomic_path(path) as tmp:
        canvas.save(tmp, format="PNG")
    return path
