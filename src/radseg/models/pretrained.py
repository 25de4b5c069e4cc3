"""Pretrained weights from ``radseg pretrain``: one file, ``pretrained.pt``, that ``radseg train --init`` starts from.

Not a model bundle: the network was trained to restore corrupted images (one output channel), not to
segment, so it cannot run ``segment``. The file holds the network's name and options (resolved),
the preprocessing it saw, the weights, and a manifest (JSON text: data, recipe, hardware).
It is written to a temporary file and renamed, so a kill never leaves half of one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FORMAT = "radseg-pretrained"
FILE = "pretrained.pt"

__all__ = ["FORMAT", "FILE", "pretrained_path", "read_pretrained", "write_pretrained", "same_options"]


def pretrained_path(source: str | Path) -> Path | None:
    """The pretrained-weights file ``source`` names (the file, or a pretrain run folder), else None."""
    path = Path(source)
    if path.is_file() and path.suffix == ".pt":
        return path
    if path.is_dir() and (path / FILE).is_file() and not (path / "manifest.json").exists():
        return path / FILE
    return None


def read_pretrained(path: str | Path) -> dict[str, Any]:
    """The contents of a pretrained-weights file; a damaged or foreign file is refused naming it."""
    import torch

    from radseg.errors import ReadError

    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds for a damaged file
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
        raise ReadError(path, f"damaged pretrained weights, cannot be loaded ({first})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ReadError(path, f"not radseg pretrained weights (no '{FORMAT}' format mark); "
                              "--init takes a model bundle or the pretrained.pt of 'radseg pretrain'")
    missing = [k for k in ("architecture", "spatial_dims", "arch_kwargs", "preprocessing", "state_dict") if k not in state]
    if missing:
        raise ReadError(path, f"pretrained weights without {', '.join(missing)}")
    state = dict(state)
    try:
        for key in ("arch_kwargs", "preprocessing", "manifest"):
            state[key] = json.loads(state.get(key) or "{}")
    except (TypeError, ValueError) as exc:
        raise ReadError(path, f"pretrained weights with damaged {key} ({exc})") from None
    return state


def write_pretrained(path: str | Path, *, architecture: str, spatial_dims: int, arch_kwargs: dict[str, Any],
                     preprocessing: dict[str, Any], state_dict: dict[str, Any], manifest: dict[str, Any],
                     output_keys: list[str] = ()) -> Path:
    """``output_keys``: the weights of the output layers (restored image), which ``--init`` never takes."""
    import torch

    from radseg.io.atomic import atomic_path

    state = {"format": FORMAT, "format_version": 1, "architecture": architecture, "spatial_dims": int(spatial_dims),
             "arch_kwargs": json.dumps(arch_kwargs, sort_keys=True), "preprocessing": json.dumps(preprocessing),
             "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()}, "manifest": json.dumps(manifest),
             "output_keys": list(output_keys)}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return Path(path)


def same_options(stored: dict[str, Any], resolved: dict[str, Any]) -> bool:
    """Whether two sets of network options are equal (tuples and lists alike)."""
    return json.loads(json.dumps(stored, sort_keys=True)) == json.loads(json.dumps(resolved, sort_keys=True))
