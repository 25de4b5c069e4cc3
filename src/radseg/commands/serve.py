"""``radseg serve``: a local web page to segment and measure radiographs and CT (gradio)."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def serve(
        model: Path | None = typer.Option(None, "-m", "--model", envvar="RADSEG_MODEL", help="A model bundle (folder or .zip) or a folder of bundles; each is a choice on the page. Without it the page measures uploaded label maps."),
        host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (loopback by default: only this machine can reach the page)."),
        port: int = typer.Option(7860, "--port", help="Port."),
        max_upload_mb: float = typer.Option(512.0, "--max-upload-mb", help="Largest upload accepted (MB); zips may unpack to 8x this."),
        device: str = typer.Option("auto", "--device", help="cpu, cuda or auto."),
        threads: int | None = typer.Option(None, "--threads", help="CPU threads for the model (default: all cores)."),
    ) -> None:
        """Serve a local web page: upload an image, see the labels, legend and measurements, download the result."""
        from radseg.errors import RadsegError

        if max_upload_mb <= 0:
            typer.secho("error: --max-upload-mb must be positive", fg=typer.colors.RED, err=True)
            raise typer.Exit(1)
        if host not in ("127.0.0.1", "localhost", "::1"):
            typer.secho(f"warning: binding to {host}: anyone who can reach this address can upload files and run models",
                        fg=typer.colors.YELLOW, err=True)
        try:
            from radseg.serve.app import serve as run

            run(model, host=host, port=port, max_upload_mb=max_upload_mb, device=device, threads=threads)
        except RadsegError as exc:
            typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
            raise typer.Exit(1)
        except OSError as exc:
            typer.secho(f"error: cannot serve on {host}:{port} ({exc})", fg=typer.colors.RED, err=True)
            raise typer.Exit(1)
