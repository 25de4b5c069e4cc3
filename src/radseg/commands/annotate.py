"""``radseg annotate``: classical pseudo-labels for hip CT and the active-learning loop around them.

``bone`` (graph-cut bone extraction), ``hip-joint`` (acetabulum / femoral-head split),
``rank`` (cases by model disagreement, top K to correct) and ``merge`` (corrections back,
with provenance). The algorithms live in :mod:`radseg.annotate`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from radseg.commands.common import JsonOpt, Progress, QuietOpt, choice, fail, group, problems, warn


def _case_name(path: Path) -> str:
    from radseg.io.atomic import strip_suffix

    return strip_suffix(path.resolve()) if path.is_file() else path.resolve().name


def _outputs(inputs: List[Path], output: Path, suffix: str) -> list[Path]:
    """One output per input: ``output`` itself for a single input named .nii(.gz), else ``output/<case><suffix>``."""
    if len(inputs) == 1 and output.name.lower().endswith((".nii", ".nii.gz")):
        return [output]
    if output.exists() and not output.is_dir():
        fail(f"{output}: several inputs need an output folder, not a file")
    names = [_case_name(p) for p in inputs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        fail(f"several inputs share the case name {', '.join(duplicates)}; outputs would overwrite each other")
    return [output / f"{name}{suffix}" for name in names]


def _for_each_ct(cts: List[Path], targets: List[Path], what: str, overwrite: bool, quiet: bool, as_json: bool,
                 run, report) -> None:
    """``result = run(ct_path, target)`` per CT with a progress bar, then one JSON line of
    ``result.summary()`` (``as_json``) or ``report(ct_path, target, summary)``; existing outputs are
    kept unless ``overwrite`` (a rerun resumes); a bad CT is reported and the rest go on."""
    from radseg.errors import RadsegError

    failed = []
    with Progress(what, len(cts), quiet=quiet) as progress:
        for ct_path, target in zip(cts, targets):
            progress.describe(ct_path.name)
            if target.exists() and not overwrite:
                typer.echo(f"kept {target} (use --overwrite to redo)")
            else:
                try:
                    result = run(ct_path, target)
                except (RadsegError, ValueError) as exc:
                    message = str(exc) if str(ct_path) in str(exc) else f"{ct_path}: {exc}"
                    failed.append(message)
                    typer.secho(f"failed: {message}", fg=typer.colors.RED, err=True)
                else:
                    summary = result.summary()
                    if as_json:
                        typer.echo(json.dumps({"input": str(ct_path), "output": str(target), **summary}))
                    else:
                        report(ct_path, target, summary)
            progress.advance(ct_path.name)
    if failed:
        fail(f"{len(failed)} of {len(cts)} CT(s) failed")


def register(app: typer.Typer) -> None:
    annotate_app = group("Classical annotation synthesis on hip CT (bone, acetabulum / femoral head) and active-learning refinement.")
    app.add_typer(annotate_app, name="annotate")

    @annotate_app.command("bone")
    def bone(
        cts: List[Path] = typer.Argument(..., help="CT volumes in HU (NIfTI, MHA/NRRD or DICOM series folders)."),
        output: Path = typer.Option(..., "-o", "--output", help="Output .nii.gz for one CT, else a folder (<case>_bone.nii.gz each)."),
        mode: str = typer.Option("3d", "--mode", help="Graph cut over the whole volume (3d) or each axial slice (2d)."),
        sigma_mm: float = typer.Option(0.5, "--sigma-mm", help="Gaussian blur sigma in mm before thresholding and the cut."),
        threshold: Optional[float] = typer.Option(None, "--threshold", help="Bone threshold in HU (default: Otsu on tissue voxels)."),
        smoothness: float = typer.Option(2.0, "--smoothness", help="Weight of the boundary term (the paper's lambda)."),
        seed_margin: float = typer.Option(0.5, "--seed-margin", help="Hard seeds beyond this fraction of the way from the threshold to each class mean."),
        max_hole_mm2: float = typer.Option(2500.0, "--max-hole-mm2", help="Fill holes in axial slices up to this area (0: no filling)."),
        min_component_mm3: float = typer.Option(500.0, "--min-component-mm3", help="Drop 3D components smaller than this (0: keep all)."),
        whole: bool = typer.Option(True, "--whole/--cortex-only", help="The whole bone as annotators draw it (cancellous bone and marrow inside the cortex, radseg.annotate.bone_interior), or only the THA paper's cut and slice-hole filling."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Redo outputs that exist (default: keep them, so a rerun resumes)."),
        as_json: bool = JsonOpt,
        quiet: bool = QuietOpt,
    ) -> None:
        """Extract bone from CT: Gaussian blur, Otsu seeds, graph cut, hole filling, small-component removal."""
        from radseg.annotate.bone_extraction import MODES, extract_bone
        from radseg.io import read, write

        choice(MODES, mode, "graph-cut mode (--mode)")
        targets = _outputs(cts, output, "_bone.nii.gz")

        def run(ct_path: Path, target: Path):
            result = extract_bone(read(ct_path), mode=mode, sigma_mm=sigma_mm, threshold_hu=threshold, smoothness=smoothness,
                                  seed_margin=seed_margin, max_hole_mm2=max_hole_mm2, min_component_mm3=min_component_mm3,
                                  whole=whole)
            write(result.mask, target, kind="nifti")
            return result

        def report(ct_path: Path, target: Path, summary: dict) -> None:
            typer.echo(f"wrote {target}: bone {summary['bone_ml']} ml, threshold {summary['threshold_hu']} HU, "
                       f"{summary['graph_nodes']} graph nodes")

        _for_each_ct(cts, targets, "bone", overwrite, quiet, as_json, run, report)

    @annotate_app.command("hip-joint")
    def hip_joint(
        cts: List[Path] = typer.Argument(..., help="Hip CT volumes in HU (NIfTI, MHA/NRRD or DICOM series folders)."),
        output: Path = typer.Option(..., "-o", "--output", help="Output .nii.gz for one CT, else a folder (<case>_hip.nii.gz each)."),
        bone_mask: Optional[Path] = typer.Option(None, "--bone", help="Bone mask from `radseg annotate bone` (one CT only; default: extract it)."),
        fsg: bool = typer.Option(True, "--fsg/--no-fsg", help="First- and second-order gradient test for boundary candidates."),
        lnms: bool = typer.Option(True, "--lnms/--no-lnms", help="Line non-maximum suppression: keep the outermost candidate of each run along a ray."),
        ahs: bool = typer.Option(True, "--ahs/--no-ahs", help="Anatomy Hough selection: the circle whose radius is closest to the anatomy radius (else the strongest)."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Redo outputs that exist (default: keep them)."),
        as_json: bool = JsonOpt,
        quiet: bool = QuietOpt,
    ) -> None:
        """Split each hip into acetabulum and femoral head (labels as in the hip-ct phantom)."""
        from radseg.annotate.hip_joint import segment_hip_joint
        from radseg.errors import RadsegError
        from radseg.io import read, read_labels, write

        if bone_mask is not None and len(cts) != 1:
            fail("--bone goes with a single CT")
        targets = _outputs(cts, output, "_hip.nii.gz")

        def run(ct_path: Path, target: Path):
            ct = read(ct_path)
            bone = read_labels(bone_mask) if bone_mask is not None else None
            if bone is not None and not bone.same_geometry(ct, atol=1e-2):
                raise RadsegError(f"{bone_mask}: bone mask grid {bone.shape} differs from the CT's {ct.shape}")
            result = segment_hip_joint(ct, bone=bone, fsg=fsg, lnms=lnms, ahs=ahs)
            write(result.labels, target, kind="nifti")
            return result

        def report(ct_path: Path, target: Path, summary: dict) -> None:
            found = ", ".join(f"{side} head r={s['radius_mm']:.1f} mm" for side, s in summary["sides"].items() if s["found"])
            typer.echo(f"wrote {target}: {found or 'no hip joint found'}")
            for side, s in summary["sides"].items():
                if not s["found"]:
                    warn(f"{ct_path.name}: {side} hip not found ({s['reason']})")

        _for_each_ct(cts, targets, "hip-joint", overwrite, quiet, as_json, run, report)

    @annotate_app.command("rank")
    def rank(
        pred: Path = typer.Option(..., "--pred", help="Folder of model predictions (label maps; cases pair by file name)."),
        pseudo: Path = typer.Option(..., "--pseudo", help="Folder of pseudo-labels for the same cases."),
        k: int = typer.Option(..., "-k", help="Number of most uncertain cases to send for manual correction."),
        output: Path = typer.Option(..., "-o", "--output", help="Folder for ranking.csv, topk.csv, slices.csv and to_correct/."),
        images: Optional[Path] = typer.Option(None, "--images", help="Folder of the CTs: the top-K are copied to to_correct/images/."),
        labels: Optional[str] = typer.Option(None, "--labels", help="Label values to score, e.g. 1,2 (default: every label present)."),
        per_slice: bool = typer.Option(False, "--per-slice", help="Also score every axial slice (slices.csv)."),
        eps: float = typer.Option(1e-6, "--eps", help="The epsilon of 1 / (Dice + eps)."),
    ) -> None:
        """Rank cases by uncertainty 1 / (Dice(prediction, pseudo-label) + eps); copy the top K for correction."""
        from radseg.annotate.active_learning import rank_cases, write_ranking
        from radseg.errors import RadsegError

        if k < 1:
            fail(f"-k must be at least 1, got {k}")
        try:
            values = [int(v) for v in labels.split(",") if v.strip()] if labels else None
        except ValueError:
            fail(f"--labels {labels!r}: expected integers separated by commas, e.g. 1,2")
        try:
            result = rank_cases(pred, pseudo, labels=values, per_slice=per_slice, eps=eps)
            paths = write_ranking(result, output, k=k, images_dir=images)
        except (RadsegError, ValueError) as exc:
            fail(str(exc))
        problems(result.failed, [*(("prediction without pseudo-label", p) for p in result.only_prediction),
                                 *(("pseudo-label without prediction", p) for p in result.only_pseudo)])
        for row in result.top(k).itertuples():
            typer.echo(f"{row.rank:>4} {row.case:<30} dice {row.dice:.4f} uncertainty {row.uncertainty:.4f}")
        typer.echo(f"wrote {paths['ranking']}, {paths['topk']} and {min(k, len(result.cases))} case(s) to {paths['to_correct']}")
        if result.failed:
            fail(f"{len(result.failed)} case(s) could not be scored")
        if result.cases.empty:
            fail(f"no case is in both {pred} and {pseudo}")

    @annotate_app.command("merge")
    def merge(
        pseudo: Path = typer.Option(..., "--pseudo", help="Folder of pseudo-labels (every case)."),
        corrected: Path = typer.Option(..., "--corrected", help="Folder of manually corrected labels (some cases)."),
        output: Path = typer.Option(..., "-o", "--output", help="Folder for labels/, provenance.csv and history.csv (a rerun adds a version)."),
    ) -> None:
        """Merge corrected labels back over the pseudo-labels, recording which label came from where."""
        from radseg.annotate.active_learning import merge_labels
        from radseg.errors import RadsegError

        try:
            result = merge_labels(pseudo, corrected, output)
        except (RadsegError, ValueError) as exc:
            fail(str(exc))
        problems(result.failed)
        typer.echo(f"version {result.version}: {len(result.manual)} corrected, {len(result.pseudo)} pseudo-label(s) "
                   f"in {output / 'labels'}; provenance in {output / 'provenance.csv'}")
        if result.failed:
            fail(f"{len(result.failed)} correction(s) rejected")
