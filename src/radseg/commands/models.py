"""``radseg models list``: the architectures (``train --arch``), task presets (``--preset``) and shipped models (``-m``);
``radseg models ensemble``: several trained models of one recipe as one (probabilities averaged)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from radseg.commands.common import JsonOpt, group


def _shipped() -> dict[str, str]:
    """``{name: one-line summary}`` of the shipped trained models (from their manifests)."""
    from radseg.models.bundle import load_bundle, shipped_models

    out = {}
    for name, path in shipped_models().items():
        bundle = load_bundle(path, weights=False)
        labels = ", ".join(bundle.class_names)
        out[name] = f"{bundle.spatial_dims}D {bundle.kind}, labels: {labels}. {bundle.manifest.get('summary', '')}".strip()
    return out


def register(app: typer.Typer) -> None:
    from radseg.models.presets import PRESETS
    from radseg.models.registry import ARCHITECTURES

    models_app = group("Model architectures, task presets and the trained models shipped with radseg.")
    app.add_typer(models_app, name="models")

    @models_app.command("list")
    def models_list(as_json: bool = JsonOpt) -> None:
        """List the architectures (MONAI networks), the task presets and the shipped trained models."""
        if as_json:
            typer.echo(json.dumps({
                "architectures": {n: {"monai": s.monai_class, "divisor": s.divisor, "description": s.description}
                                  for n, s in ARCHITECTURES.items()},
                "presets": {n: {"dims": p.spatial_dims, "architecture": p.architecture, "description": p.description,
                                "preprocessing": p.preprocessing} for n, p in PRESETS.items()},
                "shipped": _shipped()}, indent=2, default=list))
            return
        typer.echo("architectures (train --arch):")
        for name, spec in ARCHITECTURES.items():
            typer.echo(f"  {name:<15} MONAI {spec.monai_class:<14} 2D/3D, sides multiple of {spec.divisor:<3} {spec.description}")
        typer.echo("task presets (train --preset):")
        for name, preset in PRESETS.items():
            typer.echo(f"  {name:<15} {preset.spatial_dims}D {preset.architecture:<10} {preset.description}")
        typer.echo("trained models shipped with radseg (-m NAME):")
        for name, summary in _shipped().items():
            typer.echo(f"  {name:<15} {summary}")

    @models_app.command("ensemble")
    def models_ensemble(
        members: List[str] = typer.Argument(..., help="Two or more model bundles (folders, .zip or shipped names) of "
                                                     "the same network, labels and preprocessing."),
        output: Path = typer.Option(..., "-o", "--output", help="The ensemble's bundle: a folder, or a file ending in .zip."),
        summary: Optional[str] = typer.Option(None, "--summary", help="One line describing the ensemble (kept in its manifest)."),
        onnx: bool = typer.Option(True, "--onnx/--no-onnx", help="Also store the ensemble's ONNX graph (for --backend onnx)."),
    ) -> None:
        """Average several trained models' class probabilities as one model (nnU-Net's fold ensemble).

        The members must be the same architecture for the same labels and preprocessing (runs of one recipe:
        other seeds, folds, continued runs; their widths may differ). Held-out cases are kept only when every member held out the
        same ones; operating points are not carried over (choose one with evaluate-detection --split holdout).
        """
        from radseg.commands.common import fail
        from radseg.errors import RadsegError
        from radseg.models.bundle import load_bundle
        from radseg.models.ensemble import combine_bundles

        if len(members) < 2:
            fail("an ensemble needs two or more models")
        if output.exists() and not (output.is_dir() and not any(output.iterdir())):
            fail(f"{output}: exists; give a new .zip or folder (an ensemble is never written over another model)")
        try:
            bundle = combine_bundles([load_bundle(m) for m in members], summary=summary)
            if onnx:  # before anything is written: a failed export leaves no bundle without its graph
                from radseg.infer.onnx import export_onnx

                bundle.onnx_bytes = export_onnx(bundle, store=False)
            bundle.save(output)
        except RadsegError as exc:
            fail(f"{output}: not written: {exc}")
        typer.echo(f"wrote {output}: ensemble of {bundle.members} networks ({', '.join(members)})"
                   f"{', with its ONNX graph' if onnx else ''}")
