"""``radseg serve``: a local web page to segment a radiograph or CT and measure it.

The logic lives in plain modules, testable without a browser or gradio:

* :mod:`radseg.serve.uploads`: an uploaded file -> Image, with size, type and zip checks;
* :mod:`radseg.serve.models`: the offered model bundles, loaded once;
* :mod:`radseg.serve.render`: overlay PNG, legend, measurements table, downloads;
* :mod:`radseg.serve.service`: one request start to end (never raises: problems become messages).

:mod:`radseg.serve.app` wires them to a gradio page (``pip install 'radseg[web]'``) that
loads nothing from outside the machine and sends no telemetry.
"""

from __future__ import annotations

__all__ = ["build_app", "serve"]


def build_app(*args, **kwargs):
    from radseg.serve.app import build_app as _build

    return _build(*args, **kwargs)


def serve(*args, **kwargs):
    from radseg.serve.app import serve as _serve

    return _serve(*args, **kwargs)
