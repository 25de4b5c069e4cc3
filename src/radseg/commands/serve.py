"""``radseg serve``: a local web page to segment and measure radiographs and CT (gradio)."""

from __future__ import annotations

from pathlib import Path

import typer

from radseg.commands.common import fail, model_help, warn


def register(app: typer.Typer) -> None:
    @app.command()
    def serve(
        model: Path | None = typer.Option(None, "-m", "--model", envvar="RADSEG_MODEL", help=model_help(
            "A trained model bundle (folder or .zip) or a folder of bundles, each a choice on the page (default: "
            "$RADSEG_MODEL; without one the page measures uploaded label maps)")),
        host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (loopback by default: only this machine can reach the page)."),
        port: int = typer.Option(7860, "--port", help="Port."),
        max_upload_mb: float = typer.Option(512.0, "--max-upload-mb", help="Largest upload accepted (MB); zips may unpack to 8x this."),
        device: str = typer.Option("auto", "--device", help="cpu, cuda or auto."),
        threads: int | None = typer.Option(None, "--threads", help="CPU threads for the model (default: the cores this process may use)."),
        max_megapixels: float = typer.Option(36.0, "--max-megapixels", help="Largest 2D image accepted, in million pixels, checked from the file header before decoding."),
        max_megavoxels: float = typer.Option(268.0, "--max-megavoxels", help="Largest volume accepted, in million voxels, checked from the headers before decoding."),
    ) -> None:
        """Serve a local web page: upload an image, see the labels, legend and measurements, download the result."""
        from radseg.errors import RadsegError

        if max_upload_mb <= 0:
            fail("--max-upload-mb must be positive")
        if max_megapixels <= 0 or max_megavoxels <= 0:
            fail("--max-megapixels and --max-megavoxels must be positive")
        if host not in ("127.0.0.1", "localhost", "::1"):
            warn(f"binding to {host}: anyone who can reach this address can upload files and run models")
        try:
            from radseg.serve.app import serve as run
            from radseg.serve.uploads import PixelLimits

            limits = PixelLimits(max_pixels=int(max_megapixels * 1e6), max_voxels=int(max_megavoxels * 1e6))
            run(model, host=host, port=port, max_upload_mb=max_upload_mb, device=device, threads=threads,
                pixel_limits=limits)
        except RadsegError as exc:
            fail(str(exc))
        except OSError as exc:
            fail(f"cannot serve on {host}:{port} ({exc})")
