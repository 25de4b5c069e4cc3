"""Detector processing of a digital radiograph: what a DX system does before display.

Raw radiographs span a wide range of attenuation (lung vs abdomen, thin vs thick soft tissue);
vendors compress the broad range and boost fine detail (multi-scale equalisation) so bone edges
show everywhere. :func:`equalise` does the simplest version of that on the log image.
"""

from __future__ import annotations

import numpy as np


def equalise(intensity: np.ndarray, spacing_mm: float, *, strength: float, detail: float,
             broad_mm: float = 20.0, fine_mm: float = 2.5, pivot: float | None = None) -> np.ndarray:
    """Processed density (``-ln I`` units): ``d - strength (broad(d) - pivot) + detail (d - fine(d))``.

    ``broad`` and ``fine`` are Gaussian blurs (sigma in mm); ``pivot`` (default: the median of the
    broad component) is the density the compression leaves in place.
    """
    from scipy import ndimage

    density = -np.log(np.clip(intensity, 1e-9, None))
    factor = 4  # the broad blur on a 4x coarser grid, then expanded
    small = ndimage.gaussian_filter(density[::factor, ::factor], broad_mm / (spacing_mm * factor), mode="nearest")
    broad = ndimage.zoom(small, factor, order=1, grid_mode=True, mode="nearest")[: density.shape[0], : density.shape[1]]
    pivot = float(np.median(small)) if pivot is None else pivot
    fine = ndimage.gaussian_filter(density, fine_mm / spacing_mm, mode="nearest") if detail else density
    return density - strength * (broad - pivot) + detail * (density - fine)
