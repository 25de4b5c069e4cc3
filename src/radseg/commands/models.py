"""``radseg models list``: the architectures (``train --arch``), task presets (``--preset``) and shipped models (``-m``)."""

from __future__ import annotations

import json

import typer

from radseg.commands.common import JsonOpt, group


def _shipped() -> dict[str, str]:
    """``{name: one-line summary}`` of the shipped trained models (from their manifests)."""
    from radseg.models.bundle import load_bundle, shipped_models

    out = {}
    for name, path in shipped_models().items():
        bundle = load_bundle(path, weights=False)
        labels = ", ".join(bundle.class_names)
        out[name] = f"{bundle.spatial_dims}D {bundle.architecture}, labels: {labels}. {bundle.manifest.get('summary', '')}".strip()
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
