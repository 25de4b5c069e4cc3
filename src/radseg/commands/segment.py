"""``radseg segment`` (a trained model over files and folders, CXAS-style -i/-o/-ot) and ``radseg export-onnx``."""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Optional

import typer

from radseg.commands.common import (CatalogOpt, EngineOpt, PartOpt, Progress, QuietOpt, RayAddressOpt, WhereOpt,
                                   WorkersOpt, catalog_rows, choice, csv_words, fail, finish, input_or_catalog,
                                   follow_point_tta, listing, model_help, problems, scale_options)
from radseg.system import usable_cores

BACKENDS = ("auto", "torch", "onnx")  # as radseg.infer.predictor.BACKENDS (not imported: it loads numpy)
CLEANUPS = ("lcc", "fill", "none")


def _postprocess(text: Optional[str]) -> Optional[dict]:
    if text is None:
        return None
    words = set(csv_words(text))
    for word in words:
        choice(CLEANUPS, word, "clean-up (--postprocess)")
    return {"largest_component": "lcc" in words, "fill_holes": "fill" in words}


def _report(report, source: Path, output: Path, tta: bool = False) -> None:
    typer.echo(f"wrote {len(report.written)} file(s) to {output}"
               + (f"; kept {len(report.kept)} finished case(s) (use --overwrite to redo)" if report.kept else ""))
    for case, what in report.redone:
        typer.echo(f"redid {case}: changed since its last run: {what}", err=True)
    if report.scored:
        point = report.operating_point
        typer.echo(f"image scores of {report.scored} image(s) in {output}/image_scores.csv" + (
            f"; {report.screened_positive} at or above the model's operating point {point['threshold']:.4f} "
            f"(chosen for sensitivity {point.get('target_sensitivity', float('nan')):.2f} on training data)"
            if point else "; the model carries no operating point, so no image is flagged"))
    for case, why in report.flagged:
        typer.secho(f"not plausible: {case}: {why} (see {output}/quality.csv; do not trust these masks)",
                    fg=typer.colors.YELLOW, err=True)
    problems(report.failed, report.warnings)
    point = report.operating_point
    if report.scored and point and "tta" in point and bool(point["tta"]) != bool(tta):  # warned above; the remedy
        typer.secho(f"to flag as the operating point was chosen, {'leave out --no-tta' if point['tta'] else 'drop --tta'}",
                    err=True, fg="yellow")
    finish(report.failed, noun="item(s)", done=bool(report.written or report.kept), nothing=f"{source}: no readable image found")


def register(app: typer.Typer) -> None:
    from radseg.infer.segment import OUTPUT_TYPES

    @app.command()
    def segment(
        input: Optional[Path] = typer.Option(None, "-i", "--input", help="A file, a DICOM series folder, or a folder of "
                                             "images/series (or --catalog)."),
        output: Path = typer.Option(..., "-o", "--output", help="Output folder."),
        model: Optional[Path] = typer.Option(None, "-m", "--model", envvar="RADSEG_MODEL",
                                             help=model_help("A trained model bundle (folder or .zip; default: $RADSEG_MODEL)")),
        output_type: str = typer.Option("png", "-ot", "--output-type",
                                        help=f"Output type: {listing(OUTPUT_TYPES)}. A multi-label model (CXAS-like) writes "
                                        "png/jpg as one image per class: <out>/<case>/<class>.png."),
        device: str = typer.Option("auto", "--device", help="cpu, cuda or auto."),
        backend: str = typer.Option("auto", "--backend", help="torch, onnx (ONNX Runtime; no torch needed; the model needs "
                                    "an ONNX graph: shipped models have one, others get it from `radseg export-onnx MODEL`) "
                                    "or auto (onnx when the model has a graph, onnxruntime is installed and no GPU is "
                                    "used, else torch)."),
        tta: Optional[bool] = typer.Option(None, "--tta/--no-tta", help="Left-right flip test-time augmentation (right/left "
                                           "labels swapped back). Default: as the model's operating point was chosen "
                                           "(so its image-score threshold applies), else off."),
        overlap: float = typer.Option(0.5, "--overlap", help="Sliding-window overlap (3D / tiled images)."),
        postprocess: Optional[str] = typer.Option(None, "--postprocess", help="Clean-ups: 'lcc' (largest component per label), 'fill' (holes), both 'lcc,fill', or 'none' (default: the model's)."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Redo finished cases (default: a rerun resumes)."),
        threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads (default: the cores this process may use; with --engine ray: "
                                              "per worker, default cores / workers)."),
        engine: str = EngineOpt,
        workers: Optional[int] = WorkersOpt,
        ray_address: Optional[str] = RayAddressOpt,
        part: Optional[str] = PartOpt,
        catalog: Optional[str] = CatalogOpt,
        where: Optional[str] = WhereOpt,
        allow_gaps: bool = typer.Option(False, "--allow-gaps", help="Interpolate missing slices / uneven spacing of a "
                                        "CT series instead of failing it."),
        quiet: bool = QuietOpt,
    ) -> None:
        """Segment a file or every image/series of a folder with a trained model (CXAS-style -i/-o/-ot).

        The local engine runs every item in this process (the model loaded once, --threads threads);
        --engine ray reads images on Ray's CPU workers and predicts in --workers actors.
        """
        from radseg.errors import RadsegError
        from radseg.infer.predictor import Predictor
        from radseg.infer.segment import segment as run_segment

        source = input_or_catalog(input, catalog, where)
        if model is None:
            fail("no model: pass -m MODEL (a bundle folder or .zip from `radseg train`) or set RADSEG_MODEL")
        choice(OUTPUT_TYPES, output_type)
        choice(BACKENDS, backend, "backend")
        clean = _postprocess(postprocess)
        engine_options, shard = scale_options(engine, workers, ray_address, part)
        options = dict(device=device, backend=backend, tta=bool(tta), overlap=overlap, postprocess=clean, threads=threads)
        try:
            predictor = Predictor.load(model, **options)
        except RadsegError as exc:
            fail(str(exc))
        if tta is None:  # the variant the stored operating point was chosen on, so its threshold applies
            tta = options["tta"] = follow_point_tta(predictor, None)
            if tta and not quiet:
                typer.echo("flip TTA on: the model's operating point was chosen with it (--no-tta to run without)",
                           err=True)
        if engine_options.engine != "local":
            options["threads"] = threads or max(1, usable_cores() // engine_options.worker_count())
            engine_options = replace(engine_options, threads=options["threads"])
        read_options = {"on_gap": "resample"} if allow_gaps else None
        with Progress("segmenting", quiet=quiet) as progress:
            try:
                items, report = None, None
                if catalog:
                    from radseg.infer.segment import SegmentReport, catalog_items

                    report = SegmentReport()
                    items = catalog_items(catalog_rows(catalog, where), report, read_options)
                done = run_segment(input, output, predictor=predictor, output_type=output_type, overwrite=overwrite,
                                     read_options=read_options, items=items,
                                     jobs_total=progress.set_total, on_progress=progress.advance, part=shard,
                                     engine=engine_options, load_predictor=partial(Predictor.load, model, **options))
            except RadsegError as exc:
                fail(str(exc))
        if report is not None:  # the catalog's unreadable rows first, as a folder's unreadable files are
            done.failed[:0] = report.failed
        _report(done, source, output, tta)

    @app.command("export-onnx")
    def export_onnx_cmd(
        model: Path = typer.Argument(..., help="Model bundle folder or .zip; model.onnx is added to it."),
    ) -> None:
        """Export a model's network to ONNX (stored in the bundle) and check it against torch."""
        import numpy as np
        import torch

        from radseg.errors import RadsegError
        from radseg.infer.onnx import OnnxForward, export_onnx
        from radseg.models.bundle import load_bundle

        try:
            bundle = load_bundle(model)
            export_onnx(bundle)
            x = torch.from_numpy(np.random.default_rng(0).normal(size=(2, bundle.in_channels, *bundle.preprocessing.patch_size)).astype(np.float32))
            with torch.inference_mode():
                expected = bundle.build_network()(x)
            got = OnnxForward(bundle.onnx_bytes, weights=bundle.weights_bytes)(x)
        except RadsegError as exc:
            fail(str(exc))
        diff = float((expected - got).abs().max())
        agree = float((expected.argmax(1) == got.argmax(1)).float().mean())
        typer.echo(f"wrote {bundle.path} (model.onnx); max logit difference vs torch {diff:.2e}, same argmax on {agree:.4%} of pixels")
