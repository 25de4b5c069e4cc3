"""The ``radseg`` command, built from the command modules in :mod:`radseg.commands`.

Each module's ``register(app)`` adds its commands; they parse options and call one public
function, importing heavy libraries inside the command so ``radseg --help`` answers at once.
The shared pieces (error exit, progress, registry choices, common options) are in
:mod:`radseg.commands.common`.
"""

from __future__ import annotations

import sys

import typer

from radseg.commands import annotate, datasets, demo, evaluate, features, info, models, segment, serve, synth, train, version
from radseg.commands.common import group

app = group(
    "Segmentation of radiographs and CT: read clinical files right, build datasets, train, "
    "benchmark honestly and write clinical outputs.",
    name="radseg",
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(show_version: bool = version.VersionOpt) -> None:
    pass


# The order of the help listing: single commands in this order, then the groups (datasets, annotate, models).
for _module in (info, evaluate, synth, datasets, annotate, train, segment, models, features, serve, demo, version):
    _module.register(app)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
