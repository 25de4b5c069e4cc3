"""The gradio page of ``radseg serve``: widgets wired to :class:`radseg.serve.service.Service`.

Offline by construction: gradio's analytics and Hugging Face telemetry are switched off
before gradio is imported, the theme's fonts are served by the local server, server-side
rendering (a Node process) is off, and the server binds to loopback unless told otherwise.
"""

from __future__ import annotations

import atexit
import html
import os
import shutil
from pathlib import Path

from radseg.errors import MissingExtraError
from radseg.serve.models import LABELS_CHOICE, ModelCache, find_models
from radseg.serve.render import DOWNLOAD_FORMATS, FEATURE_CHOICES
from radseg.serve.service import Analysis, Service, clean_on_signals, empty_table
from radseg.serve.uploads import MB, PixelLimits, accepted_text

__all__ = ["LOOPBACK", "OFFLINE_ENV", "build_app", "import_gradio", "serve"]

#: Set before gradio is imported: no analytics, no version checks, no hub calls.
OFFLINE_ENV = {
    "GRADIO_ANALYTICS_ENABLED": "False",
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "1",
    "GRADIO_SSR_MODE": "False",
}
LOOPBACK = ("127.0.0.1", "localhost", "::1")

CSS = """
#download-status .error {border-left: 4px solid #c62828; padding: 6px 10px; background: #c6282814;}
#status .ok {border-left: 4px solid #2e7d32; padding: 6px 10px; background: #2e7d3214;}
#status .error {border-left: 4px solid #c62828; padding: 6px 10px; background: #c6282814; font-weight: 600;}
#status .warning {border-left: 4px solid #ef6c00; padding: 6px 10px; background: #ef6c0014;}
#status .idle {border-left: 4px solid #888; padding: 6px 10px;}
#status p {margin: 0.3em 0;}
.radseg-legend table {border-collapse: collapse;}
#overlay img {padding-top: 40px; box-sizing: border-box;}
.radseg-legend td, .radseg-legend th {padding: 2px 10px; text-align: left;}
"""


def import_gradio():
    """gradio, with telemetry off; a clear error naming the extra when it is not installed."""
    os.environ.update(OFFLINE_ENV)
    try:
        import gradio
    except ImportError:
        raise MissingExtraError("gradio", "web") from None
    return gradio


def _status_html(text: str, kind: str, title: str | None = None) -> str:
    paragraphs = "".join(f"<p>{html.escape(p)}</p>" for p in text.split("\n\n") if p.strip())
    if title is None:
        title = "Could not use this upload:" if kind == "error" else ""
    heading = f"<p>{html.escape(title)}</p>" if title else ""
    return f'<div class="{kind}" data-kind="{kind}">{heading}{paragraphs}</div>'


def _intro(service: Service, models_source: str | Path | None, max_upload_mb: float) -> str:
    if service.models.names:
        where = f" from `{models_source}`" if models_source else ""
        models = (f"**Models**{where}: {', '.join(f'`{n}`' for n in service.models.names)}. "
                  f"Choose *{LABELS_CHOICE}* to measure a label map you already have.")
    else:
        models = ("**No model loaded** (start with `radseg serve --model BUNDLE_OR_FOLDER` to segment images): "
                  "upload a label map to see its overlay, legend and measurements.")
    return (
        "# radseg: segment and measure a radiograph or CT\n"
        f"{models}\n\n"
        f"Images: {accepted_text(False)}. Label maps: {accepted_text(True)}. "
        f"Uploads up to {max_upload_mb:g} MB. Everything runs on this machine: nothing is sent anywhere."
    )


def _forget(result: Analysis | None) -> None:
    if result is not None and result.folder is not None:
        shutil.rmtree(result.folder, ignore_errors=True)


def build_app(service: Service, *, models_source: str | Path | None = None):
    """The gradio Blocks of the page (not launched)."""
    gr = import_gradio()
    max_mb = service.max_upload_bytes / MB
    default_format = "nifti"

    def on_run(upload, model, tta, feature_set, output_type):
        name = Path(upload).name if upload else None
        result = service.analyse(upload, model, tta=bool(tta), feature_set=feature_set or "auto",
                                 output_type=output_type or default_format, display_name=name)
        if not result.ok:
            return (_status_html(result.status, "error"), None, "", result.table, None,
                    gr.update(visible=False), None)
        slider = gr.update(visible=result.slices > 1, minimum=1, maximum=max(result.slices, 2), step=1,
                           value=(result.slice_index or 0) + 1)
        return (_status_html(result.status, "warning" if result.warning else "ok"), str(result.overlay), result.legend_html, result.table,
                str(result.download) if result.download else None, slider, result)

    def on_format(output_type, result: Analysis | None):
        if result is None or result.labels is None:
            return None, ""
        try:
            return str(service.download(result, output_type)), ""
        except Exception as exc:  # noqa: BLE001 - shown on the page
            return None, _status_html(str(exc), "error", title="No download in this format:")

    def on_slice(index, result: Analysis | None):
        if result is None or result.labels is None or result.slices <= 1:
            return gr.update(), result
        try:
            service.render(result, slice_index=int(index) - 1)
        except Exception:  # noqa: BLE001
            return gr.update(), result
        return str(result.overlay), result

    with gr.Blocks(analytics_enabled=False, title="radseg serve", delete_cache=(3600, 3600)) as demo:
        gr.Markdown(_intro(service, models_source, max_mb), elem_id="intro")
        # Per browser session: the last result (image and labels, for other downloads and slices),
        # dropped with its files an hour after the session's last use.
        state = gr.State(None, time_to_live=3600, delete_callback=_forget)
        with gr.Row():
            with gr.Column(scale=1, min_width=300):
                upload = gr.File(label="Radiograph or CT (or a label map)", file_count="single", type="filepath",
                                 elem_id="upload")
                model = gr.Dropdown(service.choices, value=service.default_choice, label="Model", elem_id="model")
                tta = gr.Checkbox(service.models.tta_default(service.default_choice), elem_id="tta",
                                  label="Left-right flip test-time augmentation",
                                  info="ticked when the model's image-score threshold was chosen with it")
                feature_set = gr.Dropdown(list(FEATURE_CHOICES), value="auto", label="Measurements",
                                          info="auto: shape for radiographs, ct for volumes", elem_id="feature-set")
                output_type = gr.Dropdown([(label, key) for key, label in DOWNLOAD_FORMATS.items()],
                                          value=default_format, label="Download format", elem_id="format")
                run = gr.Button("Segment and measure", variant="primary", elem_id="run")
                download = gr.File(label="Download", interactive=False, elem_id="download")
                download_status = gr.HTML("", elem_id="download-status")
            with gr.Column(scale=2):
                status = gr.HTML(_status_html("Upload a file, then press 'Segment and measure'.", "idle"),
                                 elem_id="status")
                overlay = gr.Image(label="Overlay", type="filepath", interactive=False, format="png",
                                   elem_id="overlay", height=560, buttons=["download", "fullscreen"],
                                   placeholder="The image with its coloured labels appears here.")
                slice_index = gr.Slider(1, 2, value=1, step=1, label="Slice (volumes)", visible=False,
                                        elem_id="slice")
                legend = gr.HTML("", elem_id="legend")
        table = gr.Dataframe(empty_table(), label="Measurements", interactive=False, elem_id="measurements",
                             wrap=True, column_widths=["12%", "18%", "10%", "7%", "10%", "43%"])

        run.click(on_run, inputs=[upload, model, tta, feature_set, output_type],
                  outputs=[status, overlay, legend, table, download, slice_index, state], concurrency_limit=1)
        output_type.change(on_format, inputs=[output_type, state], outputs=[download, download_status])
        model.change(lambda name: gr.update(value=service.models.tta_default(name)), inputs=[model], outputs=[tta])
        slice_index.release(on_slice, inputs=[slice_index, state], outputs=[overlay, state])
    return demo


def serve(model: str | Path | None = None, *, host: str = "127.0.0.1", port: int = 7860, max_upload_mb: float = 512.0,
          device: str = "auto", threads: int | None = None, work_dir: str | Path | None = None,
          block: bool = True, quiet: bool = False, pixel_limits: PixelLimits | None = None):
    """Start the page. ``block=False`` returns ``(demo, url, service)`` with the server running in a thread.

    The work folder (uploads, unzipped DICOM, results) is removed on exit, on Ctrl-C and on
    SIGTERM/SIGHUP (a handler runs the same cleanup, then leaves as Ctrl-C does)."""
    import_gradio()
    cache = ModelCache(find_models(model), device=device, threads=threads)
    service = Service(cache, max_upload_mb=max_upload_mb, work_dir=work_dir, pixel_limits=pixel_limits)
    atexit.register(service.cleanup)
    clean_on_signals(service.cleanup)
    demo = build_app(service, models_source=model)
    demo.queue(default_concurrency_limit=1, max_size=64)
    # Results are written under the system temp folder, which gradio serves from its own cache
    # copy; no other folder is exposed. At most 64 sessions keep a result in memory.
    launch = dict(server_name=host, server_port=port, max_file_size=int(max_upload_mb * MB), ssr_mode=False,
                  share=False, inbrowser=False, show_error=False, quiet=quiet, state_session_capacity=64,
                  prevent_thread_lock=not block, footer_links=["settings"], css=CSS)
    if work_dir is not None:  # a chosen folder outside the temp folder must be allowed explicitly
        launch["allowed_paths"] = [str(service.work_dir)]
    try:
        _, url, _ = demo.launch(**launch)
    finally:
        if block:
            service.cleanup()
    return demo, url, service
