"""One request of the web page, start to end, without any web framework.

:meth:`Service.analyse` takes the uploaded file and the page's options and returns an
:class:`Analysis`: the overlay PNG, the legend, the measurements table, the download and a
status line. It never raises: every problem (a bad upload, a model that does not fit the
image, a writer that cannot hold these labels) becomes the status message, so one bad
request leaves the server serving. The gradio page (:mod:`radseg.serve.app`) only wires
these functions to widgets.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from radseg.errors import RadsegError
from radseg.image import Image
from radseg.serve import render
from radseg.serve.models import LABELS_CHOICE, ModelCache
from radseg.serve.uploads import MB, PixelLimits, UploadError, ZipLimits, load_upload

__all__ = ["Analysis", "Service", "clean_on_signals"]

log = logging.getLogger("radseg.serve")


@dataclass
class Analysis:
    """What one request produced. ``ok`` False: only ``status`` (the reason) is meaningful."""

    ok: bool
    status: str
    overlay: Path | None = None
    legend: list[dict] = field(default_factory=list)
    legend_html: str = ""
    table: object = None  # pandas DataFrame
    feature_set: str | None = None
    download: Path | None = None
    image: Image | None = None
    labels: Image | None = None
    case: str = "case"
    slice_index: int | None = None
    slices: int = 1
    folder: Path | None = None
    warning: bool = False  # the model's quality check failed: shown as a warning, not a success
    score: float | None = None  # a detection-like model's image score (max window-averaged probability)
    card: list[str] = field(default_factory=list)  # the model's intended use and validation figures


def empty_table():
    import pandas as pd

    return pd.DataFrame(columns=render.MEASUREMENT_COLUMNS)


class Service:
    """The server's state: its models, limits and a work folder for uploads and results."""

    def __init__(self, models: ModelCache, *, max_upload_mb: float = 512.0, work_dir: str | Path | None = None,
                 zip_limits: ZipLimits | None = None, keep: int = 24,
                 pixel_limits: PixelLimits | None = None) -> None:
        self.models = models
        self.max_upload_bytes = int(max_upload_mb * MB)
        self.pixel_limits = pixel_limits or PixelLimits()
        self.zip_limits = zip_limits or ZipLimits(max_unpacked_bytes=8 * self.max_upload_bytes)
        self.owns_work_dir = work_dir is None  # only a folder it made itself is removed by cleanup()
        self.work_dir = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="radseg-serve-"))
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.keep = keep
        self._lock = threading.Lock()

    @property
    def choices(self) -> list[str]:
        return [*self.models.names, LABELS_CHOICE]

    @property
    def default_choice(self) -> str:
        return self.choices[0]

    # --- folders -------------------------------------------------------------------------
    def _new_folder(self) -> Path:
        folder = self.work_dir / uuid.uuid4().hex[:12]
        folder.mkdir(parents=True)
        with self._lock:  # keep the newest few requests (their downloads may still be clicked)
            folders = sorted((p for p in self.work_dir.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
            for old in folders[:-self.keep]:
                if old != folder:
                    shutil.rmtree(old, ignore_errors=True)
        return folder

    def cleanup(self) -> None:
        """Remove the work folder when the service made it (a folder given to it is left alone)."""
        if self.owns_work_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    # --- one request ---------------------------------------------------------------------
    def analyse(self, upload: str | Path | None, model: str | None = None, *, tta: bool = False,
                feature_set: str = "auto", output_type: str = "nifti", slice_index: int | None = None,
                display_name: str | None = None) -> Analysis:
        """Read ``upload``, segment it with ``model`` (or take it as labels), render, measure, write."""
        if not upload:
            return Analysis(False, "Upload a file first.", table=empty_table())
        model = model or self.default_choice
        folder = self._new_folder()
        try:
            return self._analyse(Path(upload), model, tta, feature_set, output_type, slice_index, folder, display_name)
        except (UploadError, RadsegError) as exc:
            return Analysis(False, str(exc), table=empty_table(), folder=folder)
        except MemoryError:
            return Analysis(False, "the server ran out of memory on this upload", table=empty_table(), folder=folder)
        except Exception as exc:  # a bug: say so on the page, log the trace, keep serving
            log.exception("request failed")
            return Analysis(False, f"internal error ({type(exc).__name__}: {exc}); the server is still running",
                            table=empty_table(), folder=folder)

    def _analyse(self, upload: Path, model: str, tta: bool, feature_set: str, output_type: str,
                 slice_index: int | None, folder: Path, display_name: str | None) -> Analysis:
        as_labels = model == LABELS_CHOICE
        loaded = load_upload(upload, max_bytes=self.max_upload_bytes, work_dir=folder / "upload", as_labels=as_labels,
                             zip_limits=self.zip_limits, display_name=display_name, pixel_limits=self.pixel_limits)
        shown_name = display_name or upload.name
        score, card = None, None
        if as_labels:
            labels, image = loaded.image, None
            what = f"label map {_describe(labels)}"
        else:
            image = loaded.image
            labels, score = self.models.predict_scored(model, image, tta=tta)
            card = self.models.card(model)
            what = f"{loaded.kind} {_describe(image)} segmented by {model}" + (" with flip TTA" if tta else "")
        result = Analysis(True, "", image=image, labels=labels, case=loaded.name, folder=folder, score=score,
                          card=card.lines() if card else [])
        warnings, notes = ([], []) if as_labels else self._model_notes(model, labels, tta=tta)
        result.warning = bool(warnings)
        result.slices = labels.shape[0] if labels.ndim == 3 else 1
        self.render(result, slice_index=slice_index)
        notes += list(loaded.notes)
        try:
            result.table, result.feature_set = render.measurements_table(labels, image, feature_set, source=shown_name)
        except RadsegError as exc:
            result.table = empty_table()
            notes.append(f"no measurements: {exc}")
        if labels.metadata.get("spacing_known", True) is False or (image is not None and image.metadata.get("spacing_known", True) is False):
            notes.append(f"no physical pixel size in {shown_name}: lengths are in pixels (px), areas in px², "
                         "volumes in voxels, never mm")
        try:
            result.download = self.download(result, output_type)
        except RadsegError as exc:
            notes.append(f"download: {exc}")
        shown = (f"; showing slice {result.slice_index + 1} of {result.slices}" if result.slices > 1 else "")
        names = ", ".join(r["name"] for r in result.legend) or "none"
        found = f"Labels found: {names}"
        if card is not None and card.detection and score is not None:
            side = "flagged: at or above" if score >= card.threshold else "not flagged: below"
            regions = f"candidate regions drawn: {names}" if result.legend else "no region drawn"
            found = (f"Image score {score:.3f} for {card.finding} ({side} the model's threshold {card.threshold:.3f}); "
                     f"{regions}")
        result.status = f"{shown_name}: {what}. {found}{shown}." + \
            "".join(f"\n\nWarning: {w}" for w in warnings) + "".join(f"\n\n{line}" for line in result.card) + \
            "".join(f"\n\nNote: {n}" for n in notes)
        return result

    def _model_notes(self, model: str, labels: Image, *, tta: bool) -> tuple[list[str], list[str]]:
        """(warnings, notes): a failed quality check of the model, or a TTA setting other than the one its
        image-score threshold was chosen with, is a warning; a passed quality check a note."""
        from radseg.evaluate.operating_point import model_operating_point, operating_point_mismatch
        from radseg.infer.quality import assess

        manifest = self.models.get(model).bundle.manifest or {}
        warnings, notes = [], []
        point = model_operating_point(manifest)
        mismatch = point and operating_point_mismatch(point, tta=tta)
        if mismatch:
            warnings.append(f"{mismatch}: the flag does not carry the sensitivity and specificity the threshold was "
                            f"chosen for ({'tick' if point.get('tta') else 'untick'} flip TTA)")
        quality = assess(labels, manifest.get("quality_check"))
        if quality is not None and not quality.ok:
            warnings.append("not plausible, do not trust these masks: " + "; ".join(quality.reasons))
        elif quality is not None:
            notes.append(f"quality check {quality.check}: plausible")
        return warnings, notes

    def render(self, result: Analysis, *, slice_index: int | None = None) -> Analysis:
        """(Re)draw the overlay and legend of ``result`` (another slice of a volume, for example)."""
        labels = result.labels
        image = result.image if result.image is not None else render.blank_like(labels)
        name = f"{result.case}_overlay" + (f"_{slice_index}" if slice_index is not None else "") + ".png"
        caption = list(result.card)
        if result.score is not None:
            caption.insert(0, f"Image score {result.score:.3f}")
        result.overlay, result.slice_index = render.overlay_png(image, labels, result.folder / name, index=slice_index,
                                                                caption=caption)
        result.legend = render.legend_rows(labels)
        result.legend_html = render.legend_html(result.legend, spacing_known=labels.metadata.get("spacing_known", True))
        return result

    def download(self, result: Analysis, output_type: str) -> Path:
        """The labels of ``result`` as ``output_type``, written into a fresh folder of the request."""
        if result.labels is None:
            raise RadsegError("nothing to download yet: upload and segment an image first")
        out = result.folder / f"download-{output_type}-{uuid.uuid4().hex[:6]}"
        return render.write_download(result.image, result.labels, out, result.case, output_type, caption=result.card)


def clean_on_signals(cleanup, signals: tuple[str, ...] = ("SIGTERM", "SIGHUP")):
    """Run ``cleanup`` (the service's, as Ctrl-C does) when the process gets one of ``signals``, then
    raise KeyboardInterrupt so the server takes the Ctrl-C path out. Main thread only (else a no-op).
    Returns a function that puts the previous handlers back."""
    import signal

    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {}

    def handler(signum, frame):
        try:
            cleanup()
        finally:
            raise KeyboardInterrupt(f"signal {signum}")

    for name in signals:
        number = getattr(signal, name, None)
        if number is not None:
            previous[number] = signal.signal(number, handler)

    def restore() -> None:
        for number, old in previous.items():
            signal.signal(number, old)

    return restore


def _describe(image: Image) -> str:
    shape = "×".join(str(s) for s in image.shape)
    unit = "px" if image.ndim == 2 else "voxels"
    if image.metadata.get("spacing_known", True) is False:
        return f"({image.ndim}D, {shape} {unit}, pixel size unknown)"
    spacing = "×".join(f"{s:.3g}" for s in image.spacing)
    return f"({image.ndim}D, {shape} {unit}, {spacing} mm)"
