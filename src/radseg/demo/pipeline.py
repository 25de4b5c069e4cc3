"""``radseg demo``: the whole radseg loop on phantoms it makes itself, ending in one report.

Stages (each timed, each with the CLI commands that do the same by hand):

1. synthesize a hip cohort: CT series (THA layout) and AP pelvis radiographs (HexAI layout),
   with a planted difficulty for one group (lower bone contrast for ``sex=F``);
2. annotation synthesis on the CTs (graph-cut bone extraction, acetabulum / femoral-head
   split), scored against the exact labels;
3. train a 2D U-Net on the training radiographs;
4. active-learning ranking of the training cases (1 / (Dice(prediction, label) + eps));
5. evaluate on held-out radiographs: metrics, bootstrap CIs and a fairness audit that should
   find the planted gap;
6. measurements against the generator's truth: femoral-head diameter on the predicted
   radiographs; head diameter and minimum joint-space width on the CT pseudo-labels;
7. export the test predictions as NIfTI and DICOM-SEG;
8. ``report.html``.
"""

from __future__ import annotations

import io
import json
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from radseg.case import Case
from radseg.demo.stages import StageLog
from radseg.io.atomic import write_text_atomic

SHIFT = "sex=F:contrast"
SHIFT_ATTRIBUTE = "sex"
AUDIT_BY = (SHIFT_ATTRIBUTE, "age_group")  # every attribute the audit compares, each shown in the report
VAL_DICE_AIM = 0.90  # the demo's own aim for the radiograph model's best validation Dice


@dataclass(frozen=True)
class DemoSize:
    ct_cases: int
    ct_shape: tuple[int, int, int]
    ct_spacing: tuple[float, float, float]
    xray_train: int
    xray_test: int
    train_seconds: float
    train_epochs: int
    bootstrap: int
    rank_k: int


# Training is bounded by epochs so a seed gives the same model on any machine; the time limit
# is only a safety net for a very slow or loaded machine (it then stops early, and says so).
FULL = DemoSize(ct_cases=4, ct_shape=(96, 192, 256), ct_spacing=(2.0, 1.4, 1.4), xray_train=60, xray_test=40,
                train_seconds=420.0, train_epochs=40, bootstrap=5000, rank_k=5)
QUICK = DemoSize(ct_cases=1, ct_shape=(64, 112, 160), ct_spacing=(3.0, 2.2, 2.2), xray_train=8, xray_test=8,
                 train_seconds=60.0, train_epochs=2, bootstrap=500, rank_k=3)


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for name in ("radseg", "numpy", "scipy", "pydicom", "highdicom", "SimpleITK", "torch", "monai", "scikit-image",
                 "PyMaxflow"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return out


def run_demo(outdir: str | Path = "runs/demo", *, quick: bool = False, seed: int = 0, workers: int | None = None,
             echo: Callable[[str], None] = print) -> Path:
    """Run every stage into ``outdir``; returns the path of ``report.html``."""
    from radseg.demo.report import render

    outdir = Path(outdir)
    size = QUICK if quick else FULL
    log = StageLog(echo=echo)
    state: dict[str, Any] = {}
    stages = [
        ("synth", "Synthesize a hip cohort (CT and radiographs)", _stage_synth),
        ("annotate", "Annotation synthesis on the CTs", _stage_annotate),
        ("train", "Train a 2D U-Net on the radiographs", _stage_train),
        ("rank", "Active-learning ranking of the training cases", _stage_rank),
        ("evaluate", "Evaluate on held-out phantoms, with CIs and a fairness audit", _stage_evaluate),
        ("measure", "Measurements against the generator's truth", _stage_measure),
        ("export", "Export test predictions as NIfTI and DICOM-SEG", _stage_export),
    ]
    failed = None
    for name, title, function in stages:
        if failed:
            break
        try:
            with log.stage(name, title) as record:
                function(record, state, outdir=outdir, size=size, seed=seed, workers=workers)
        except Exception as exc:  # the report still shows what ran and where it stopped
            failed = f"{title}: {type(exc).__name__}: {exc}"
            echo(f"    failed: {failed}")
    settings = {"command": f"radseg demo -o {outdir}" + (" --quick" if quick else "") + f" --seed {seed}",
                "seed": seed, "mode": "quick" if quick else "full", "planted shift": SHIFT,
                **{f"version {k}": v for k, v in _versions().items()}}
    report = outdir / "report.html"
    write_text_atomic(report, render(log, settings))
    summary = {"settings": settings, "stages": [
        {"name": r.name, "status": r.status, "seconds": round(r.seconds, 3), "note": r.note,
         "numbers": r.results.get("numbers", {}), "warnings": r.results.get("warnings", [])} for r in log.records]}
    write_text_atomic(outdir / "demo_summary.json", json.dumps(summary, indent=2, default=float))
    if failed:
        raise RuntimeError(f"demo stopped at {failed}; partial report at {report}")
    return report


# -- stages ---------------------------------------------------------------------------------------

def _stage_synth(record, state, *, outdir: Path, size: DemoSize, seed: int, workers) -> None:
    import pandas as pd

    from radseg.synth.run import synthesize

    ct_dir, xray_dir = outdir / "data" / "hip-ct", outdir / "data" / "hip-xray"
    ct = synthesize("hip-ct", size.ct_cases, ct_dir, seed=seed, shift=SHIFT, workers=workers, preview=True,
                    options={"shape": size.ct_shape, "spacing": size.ct_spacing})
    n_xray = size.xray_train + size.xray_test
    xray = synthesize("hip-xray", n_xray, xray_dir, seed=seed + 1, shift=SHIFT, workers=workers, preview=True)
    for result in (ct, xray):
        if result.failed:
            raise RuntimeError(f"{len(result.failed)} phantom(s) failed: {result.failed[0]}")
    rows = pd.DataFrame(xray.rows)
    state.update(ct_dir=ct_dir, xray_dir=xray_dir, ct_rows=ct.rows, xray_rows=rows,
                 train_ids=list(rows["case_id"][:size.xray_train]), test_ids=list(rows["case_id"][size.xray_train:]))
    record.commands = [f"radseg synth hip-ct -n {size.ct_cases} -o {ct_dir} --seed {seed} --shift {SHIFT} --preview "
                       f"--spacing {','.join(f'{v:g}' for v in size.ct_spacing)} --shape {','.join(map(str, size.ct_shape))}",
                       f"radseg synth hip-xray -n {n_xray} -o {xray_dir} --seed {seed + 1} --shift {SHIFT} --preview"]
    cohort = rows.groupby(["sex", "race"]).size().rename("cases").reset_index()
    record.results["tables"] = {"Radiograph cohort by sex and race": cohort}
    record.results["numbers"] = {"ct_cases": len(ct.rows), "xray_cases": len(rows)}
    previews = sorted((xray_dir / "preview").glob("*.png"))[:2] + sorted((ct_dir / "preview").glob("*.png"))[:1]
    record.results["figures"] = {f"phantom {p.stem}": _thumbnail(p) for p in previews}


def _thumbnail(path: Path, width: int = 420) -> bytes:
    from PIL import Image as PILImage

    picture = PILImage.open(path)
    picture.thumbnail((width, width * 2))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def _read_xray(xray_dir: Path, case_id: str, row) -> Case:
    """One phantom radiograph as a Case: image, label map and the subject columns of the cohort table."""
    import radseg.io as rio
    from radseg.labels import make_label_map

    image = rio.read(xray_dir / row["image_path"], invert_monochrome1=True)
    labels = make_label_map(rio.read_labels(xray_dir / row["mask_path"]))
    subject = {k: row[k] for k in ("sex", "race", "age", "age_group", "shifted") if k in row}
    return Case(case_id, images={"image": image}, labels={"labels": labels}, subject=subject)


def _stage_annotate(record, state, *, outdir: Path, size: DemoSize, seed: int, workers) -> None:
    from radseg.demo.annotate_stage import AIMS, aim_warnings, annotate_cts

    table, numbers = annotate_cts(state["ct_dir"], state["ct_rows"], outdir / "annotate")
    state["split_reasons"] = {(row["case"], side): str(row[f"{side} split"]) for _, row in table.iterrows()
                              for side in ("right", "left") if str(row.get(f"{side} split", "found")) != "found"}
    record.results["tables"] = {"Pseudo-labels vs exact labels (per case)": table}
    record.results["numbers"] = numbers
    record.results["warnings"] = aim_warnings(table)
    if not record.results["warnings"]:
        record.results["findings"] = [
            f"bone extraction Dice {numbers['bone_dice']:.3f}, acetabulum Dice {numbers['acetabulum_dice']:.3f}, "
            f"femoral head Dice {numbers['femoral_head_dice']:.3f} (mean over {numbers['cases']} CT case(s)): "
            f"every structure meets its aim ({', '.join(f'{k} >= {v:.2f}' for k, v in AIMS.items())})"]
    record.commands = [f"radseg annotate bone CT.nii.gz -o {outdir / 'annotate'}/bone.nii.gz",
                       f"radseg annotate hip-joint CT.nii.gz --bone {outdir / 'annotate'}/bone.nii.gz -o {outdir / 'annotate'}/hip.nii.gz"]


def _stage_train(record, state, *, outdir: Path, size: DemoSize, seed: int, workers) -> None:
    from radseg.train.config import TrainConfig
    from radseg.train.data import from_pairs
    from radseg.train.loop import train

    import shutil

    shutil.rmtree(outdir / "train", ignore_errors=True)  # a rerun trains afresh (phantoms are kept: synth resumes)
    rows = state["xray_rows"].set_index("case_id")
    cases = [_read_xray(state["xray_dir"], case, rows.loc[case]) for case in state["train_ids"]]
    data = from_pairs(cases)
    config = TrainConfig(output=outdir / "train", preset="hip-xray", epochs=size.train_epochs,
                         time_limit=size.train_seconds, seed=seed, val_fraction=0.15)
    result = train(config, data)
    state.update(model_path=result.model_path, train_cases=cases)
    record.note = f"stopped: {result.stopped}; {result.epochs_done} epoch(s); best validation Dice " + (f"{result.best_dice:.3f}" if result.best_dice is not None else "n/a")
    if result.stopped == "time-limit":
        record.note += (f" (the {size.train_seconds:.0f} s safety limit cut training short on this machine, "
                        "so the model and later numbers are not reproducible by seed)")
    record.results["numbers"] = {"best_val_dice": result.best_dice, "epochs": result.epochs_done}
    if result.best_dice is None or result.best_dice < VAL_DICE_AIM:
        measured = "was not measured" if result.best_dice is None else f"is {result.best_dice:.3f}"
        record.results["warnings"] = [
            f"the best validation Dice {measured}, below the demo's aim of {VAL_DICE_AIM:.2f} "
            f"after {result.epochs_done} epoch(s)" + (": --quick trains too briefly for a usable model, so the "
                                                     "later numbers show the machinery, not a good model" if
                                                     size is QUICK else "")]
    curve = outdir / "train" / "learning_curve.png"
    if curve.exists():
        record.results["figures"] = {"learning curve": curve.read_bytes()}
    record.commands = [f"radseg train --data PREPARED --preset hip-xray -o {outdir / 'train'}"]


def _predictor(state):
    from radseg.infer.predictor import Predictor

    if "predictor" not in state:
        state["predictor"] = Predictor.load(state["model_path"], device="cpu")
    return state["predictor"]


def _stage_rank(record, state, *, outdir: Path, size: DemoSize, seed: int, workers) -> None:
    import pandas as pd

    from radseg.annotate.active_learning import uncertainty

    predictor = _predictor(state)
    rows = []
    for case in state["train_cases"]:
        prediction = predictor.predict(case.image)
        score, dice = uncertainty(prediction.array, case.label.array)
        rows.append({"case": case.case_id, "dice_vs_label": dice, "uncertainty": score})
    table = pd.DataFrame(rows).sort_values("uncertainty", ascending=False, kind="stable")
    write_text_atomic(outdir / "rank" / "ranking.csv", table.to_csv(index=False))
    record.results["tables"] = {f"Top {size.rank_k} cases to send for manual correction": table.head(size.rank_k)}
    record.results["files"] = [outdir / "rank" / "ranking.csv"]
    record.commands = [f"radseg annotate rank --pred PREDICTIONS --pseudo LABELS -k {size.rank_k} -o {outdir / 'rank'}"]


def _stage_evaluate(record, state, *, outdir: Path, size: DemoSize, seed: int, workers) -> None:
    import radseg.io as rio
    from radseg.evaluate.report import write_outputs
    from radseg.evaluate.run import evaluate_folders

    predictor = _predictor(state)
    rows = state["xray_rows"].set_index("case_id")
    pred_dir, truth_dir = outdir / "predictions" / "nifti", outdir / "evaluate" / "truth"
    predictions = {}
    for case in state["test_ids"]:
        loaded = _read_xray(state["xray_dir"], case, rows.loc[case])
        image, labels = loaded.image, loaded.label
        predictions[case] = (image, predictor.predict(image), labels)
        rio.write(predictions[case][1], pred_dir / f"{case}.nii.gz", kind="nifti")
        rio.write(labels, truth_dir / f"{case}.nii.gz", kind="nifti")
    state["predictions"] = predictions
    meta = rows.loc[state["test_ids"]].reset_index().rename(columns={"case_id": "case"})
    meta_path = outdir / "evaluate" / "metadata.csv"
    write_text_atomic(meta_path, meta[["case", "sex", "race", "age", "age_group", "shifted"]].to_csv(index=False))
    evaluation = evaluate_folders(pred_dir, truth_dir, metadata=meta_path, by=list(AUDIT_BY),
                                  resamples=size.bootstrap, seed=seed, workers=workers)
    write_outputs(evaluation, outdir / "evaluate")
    summary = evaluation.summary
    headline = summary[summary["metric"].isin(["dice", "hd95", "assd"])][
        ["label_name", "metric", "n", "mean", "ci_low", "ci_high"]]
    record.results["tables"] = {"Test set: mean and bootstrap 95% CI per label": headline}
    record.results["sources"] = {"Test set: mean and bootstrap 95% CI per label": "evaluate/summary.csv"}
    record.results["numbers"] = {"mean_dice": float(evaluation.per_case["dice"].mean())}
    for attribute in AUDIT_BY:
        audit = _macro_comparison(evaluation.groups, attribute)
        record.results["tables"][f"Mean Dice over labels by {attribute}"] = audit["table"]
        record.results["numbers"].update(audit["numbers"])
        record.results.setdefault("warnings" if audit["warn"] else "findings", []).append(audit["sentence"])
    record.results["files"] = [outdir / "evaluate" / "report.html", outdir / "evaluate" / "fairness.csv"]
    state["evaluation"] = evaluation
    record.commands = [f"radseg evaluate --pred {pred_dir} --truth {truth_dir} --metadata {meta_path} "
                       f"--by {','.join(AUDIT_BY)} --bootstrap {size.bootstrap} -o {outdir / 'evaluate'}"]


def _macro_comparison(groups, attribute: str) -> dict[str, Any]:
    """Per-case mean Dice over labels, compared across ``attribute`` (reference: its largest group)."""
    from radseg.evaluate.fairness import fairness_table
    from radseg.evaluate.report import finding_sentence

    per_case = groups.groupby("case").agg(dice=("dice", "mean"), group=(attribute, "first")).reset_index()
    per_case = per_case.rename(columns={"group": attribute})
    table, summary = fairness_table(per_case, metric="dice", by=attribute, resamples=2000, permutations=2000, seed=0)
    sentence = finding_sentence(summary, label="mean")
    found = summary["finding"] == "gap"
    planted = attribute == SHIFT_ATTRIBUTE
    if planted:
        hit = found and str(summary["worse_group"]) == "F"
        sentence += (" This is the planted difficulty (lower bone contrast for sex=F), which the audit is meant "
                     "to find." if hit else " The planted difficulty (lower bone contrast for sex=F) is not "
                     "established with this many cases.")
    numbers = {f"{attribute}_{key}": summary[key] for key in ("reference_group", "compared_group", "worse_group",
                                                            "difference", "p_value", "finding")}
    if planted:
        numbers.update(gap_found=bool(found and str(summary["worse_group"]) == "F"))
    return {"table": table, "sentence": sentence, "numbers": numbers,
            "warn": found or summary["finding"].startswith("not compared") or (planted and not numbers["gap_found"])}


def _stage_measure(record, state, *, outdir: Path, size: DemoSize, seed: int, workers) -> None:
    from radseg.demo.measure_stage import measure_ct_hips, measure_heads, with_reasons

    table, numbers = measure_heads(state["predictions"], state["xray_rows"])
    write_text_atomic(outdir / "measure" / "femoral_heads.csv", table.to_csv(index=False))
    ct_table, ct_numbers = measure_ct_hips(state["ct_dir"], outdir / "annotate" / "hip", state["ct_rows"],
                                           state.get("split_reasons"))
    write_text_atomic(outdir / "measure" / "ct_hips.csv", ct_table.to_csv(index=False))
    heads_title = "Radiographs: femoral-head diameter on predictions vs generator truth"
    ct_title = ("CT: femoral-head diameter and minimum joint-space width on the pseudo-labels "
                "and on the exact labels vs generator truth")
    record.results["tables"] = {heads_title: with_reasons(table, "on_prediction_mm", "prediction_note"),
                                ct_title: with_reasons(ct_table, "on_pseudo_labels_mm", "pseudo_note")}
    record.results["sources"] = {heads_title: "measure/femoral_heads.csv", ct_title: "measure/ct_hips.csv"}
    record.results["numbers"] = {**numbers, **ct_numbers}
    record.results["findings"] = [
        f"femoral-head diameter from the predicted radiograph masks: mean absolute error {numbers['head_mae_mm']:.2f} mm "
        f"over {numbers['heads']} heads (on the exact labels {numbers['head_mae_exact_labels_mm']:.2f} mm)",
        f"CT minimum joint-space width: mean absolute error {ct_numbers['ct_jsw_mae_pseudo_mm']:.2f} mm on the "
        f"pseudo-labels ({ct_numbers['ct_jsw_measured_pseudo']} hips measured), "
        f"{ct_numbers['ct_jsw_mae_exact_labels_mm']:.2f} mm on the exact labels; CT head diameter "
        f"{ct_numbers['ct_head_mae_pseudo_mm']:.2f} mm on the pseudo-labels"]
    record.commands = [f"radseg features {outdir / 'predictions' / 'nifti'} --set hip -o {outdir / 'measure'}/hip.csv",
                       f"radseg features {outdir / 'annotate' / 'hip'} --set ct -o {outdir / 'measure'}/ct.csv"]


def _stage_export(record, state, *, outdir: Path, size: DemoSize, seed: int, workers) -> None:
    import radseg.io as rio

    rows = state["xray_rows"].set_index("case_id")
    written = []
    for case, (image, prediction, _) in list(state["predictions"].items())[:3]:
        source = state["xray_dir"] / rows.loc[case, "image_path"]
        seg = rio.write(prediction, outdir / "predictions" / "dicom-seg" / f"{case}.seg.dcm", kind="dicom-seg",
                        source_files=[source])
        back = rio.read_labels(seg)
        if not np.array_equal(back.array, prediction.array):
            raise RuntimeError(f"{seg}: DICOM-SEG does not read back to the prediction")
        written.append(seg)
        overlay = rio.write(prediction, outdir / "predictions" / "overlay" / f"{case}.png", kind="overlay", image=image)
        record.results.setdefault("figures", {})[f"prediction {case}"] = _thumbnail(overlay)
    record.results["files"] = [outdir / "predictions" / "nifti", *written]
    record.results["numbers"] = {"dicom_seg_files": len(written)}
    record.note = "each DICOM-SEG read back with highdicom equals the predicted label map"
    record.commands = ["radseg segment -i RADIOGRAPH.dcm -m MODEL -ot dicom-seg -o OUT"]
