"""``radseg evaluate-detection``: a segmentation model as a detector and screener on a prepared split.

For every case of the split (a prepared dataset from ``radseg datasets prepare``, e.g.
FracAtlas with ``--option negatives=true``) the predictor gives the foreground probability
on the image grid; :func:`radseg.evaluate.detection_run.score_image` turns it into scored
instances, an image score and Dice, and :func:`~radseg.evaluate.detection_run.summarise`
into COCO mask/box AP, precision/recall, Dice and image-level AUC with bootstrap CIs,
overall and per ``--by`` subgroup. A case that cannot be read or predicted is reported in
``summary["failed"]`` and the rest are scored.

``split="holdout"`` scores the cases the model held out of the train split to pick its checkpoint
(``radseg train --holdout``; listed in its manifest): training data the weights never saw, where
an operating point may be chosen. On every split the image scores give the threshold that reaches
``sensitivity`` there (``summary["operating_point_here"]``) and, when the model carries an
operating point chosen on training data, the sensitivity and specificity it gives on this split
with bootstrap CIs (``summary["at_model_operating_point"]``; per_case.csv gains ``flagged``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from radseg.case import Case
from radseg.datasets.prepared import PreparedDataset, open_prepared
from radseg.errors import RadsegError, ReadError
from radseg.evaluate.detection_run import DetectionResult, ScoredImage, score_image, summarise

from radseg.evaluate.detection import IMAGE_SCORE_WINDOW, INSTANCE_SCORES

__all__ = ["evaluate_detection", "holdout_cases", "check_writable_model", "save_operating_point",
           "set_copies_aside"]


def evaluate_detection(predictor, prepared: str | Path, *, split: str = "val", by: Sequence[str] = (),
                       threshold: float = 0.5, min_pixels: int = 10, window: int | None = None,
                       instance_score: str | None = None, resamples: int = 2000,
                       seed: int = 0, sensitivity: float = 0.85, without_copies: bool = False,
                       on_case: Callable[[str], None] | None = None) -> DetectionResult:
    """Score ``predictor`` (a :class:`radseg.infer.predictor.Predictor`) on ``split`` of ``prepared``.

    ``window``: the image score's square in pixels (default: the predictor's, which is the one its
    model's operating point was chosen with, else :data:`~radseg.evaluate.detection.IMAGE_SCORE_WINDOW`).
    ``instance_score``: a detection's confidence, its highest (``"max"``) or mean (``"mean"``) probability
    (default: the one stored with the model's operating point, else ``"max"``).
    ``without_copies``: set aside the split's images whose pixels are those of an image the model trained on
    or held out, or of an earlier image of the split (:func:`set_copies_aside`); listed in the summary."""
    from radseg.evaluate.operating_point import model_operating_point, operating_point_mismatch

    model_point = model_operating_point(getattr(getattr(predictor, "bundle", None), "manifest", None))
    tta = bool(getattr(predictor, "tta", False))
    if window is None:
        window = int(getattr(predictor, "image_score_window", IMAGE_SCORE_WINDOW))
    if window < 1:
        raise RadsegError(f"image-score window {window}: a square of 1 pixel or more")
    if instance_score is None:
        instance_score = str((model_point or {}).get("instance_score", "max"))
    if instance_score not in INSTANCE_SCORES:  # checked here: in the case loop it would fail every image alone
        raise RadsegError(f"instance score {instance_score!r}: 'max' or 'mean' (a detection's highest or mean probability)")
    dataset = open_prepared(prepared)
    chosen = holdout_cases(predictor, dataset, prepared) if split == "holdout" else dataset.split(split)
    if not chosen:
        raise RadsegError(f"{prepared}: split {split!r} has no cases (splits: {', '.join(dataset.splits)})")
    if split not in ("holdout", "train"):
        _refuse_trained_on(predictor, chosen, split, prepared)
    copies: list[tuple[str, str]] = []
    if without_copies:
        chosen, copies, copies_note = set_copies_aside(predictor, dataset, chosen)
    options = {"threshold": threshold, "min_pixels": min_pixels, "window": window, "instance_score": instance_score}
    scored, failed = [], []
    for case in chosen:
        try:
            scored.append(_score_case(predictor, dataset, case, **options))
        except (RadsegError, ValueError, OSError) as exc:
            failed.append({"case": case.case_id, "error": str(exc)})
        finally:
            case.unload()
        if on_case:
            on_case(case.case_id)
    if not scored:
        raise RadsegError(f"{prepared}: no case of split {split!r} could be scored ({failed[0]['error']})")
    settings = {"split": split, **options, "resamples": resamples, "seed": seed, "sensitivity": sensitivity,
                "tta": tta, "without_copies": without_copies}
    result = summarise(scored, by=by, resamples=resamples, seed=seed, failed=failed, settings=settings)
    if without_copies:
        result.summary["copies_set_aside"] = [list(pair) for pair in copies]
        result.summary["copies_compared"] = copies_note
    mismatch = model_point and operating_point_mismatch(model_point, window=window, tta=tta)
    if mismatch:
        result.summary["operating_point_note"] = f"{mismatch}: not applied"
        model_point = None
    try:
        _operating_points(result, model_point, sensitivity=sensitivity, resamples=resamples, seed=seed)
    except ValueError as exc:  # a non-finite image score: a broken model or input
        raise RadsegError(f"{prepared}: no operating point on split {split!r}: {exc}") from None
    return result


def set_copies_aside(predictor, dataset: PreparedDataset, chosen: list[Case]
                     ) -> tuple[list[Case], list[tuple[str, str]], str]:
    """``(kept, set aside, what was compared)``: a scored image with the pixels of one the model trained on or held out (its
    manifest's cases, read from ``dataset``), or of an earlier image of ``chosen``, is set aside with why.
    Public datasets hold such copies under other ids (FracAtlas: :mod:`radseg.datasets.duplicates`)."""
    from radseg.datasets.duplicates import case_digest

    data = ((getattr(getattr(predictor, "bundle", None), "manifest", None) or {}).get("data") or {})
    roles = {**{c: "held out" for c in data.get("val_cases") or []}, **{c: "trained on" for c in data.get("train_cases") or []}}
    scored_ids = {case.case_id for case in chosen}
    seen: dict[str, str] = {}
    found = 0
    for case in dataset.cases:
        if case.case_id in roles and case.case_id not in scored_ids:
            try:
                seen.setdefault(case_digest(case), f"{case.case_id}, which the model {roles[case.case_id]}")
                found += 1
            except (ReadError, ValueError, OSError):
                pass  # an unreadable training image cannot be matched; the dataset reports it
    wanted = len(set(roles) - scored_ids)
    if not wanted:
        aside_note = "the model's manifest names no training cases: only repeats within the split were looked for"
    elif found < wanted:  # said, not hidden: only repeats within the split (and the found ones) can be set aside
        aside_note = (f"the model's manifest names {wanted} training or held-out cases; {found} of them were read "
                      f"from this dataset and compared")
    else:
        aside_note = f"compared with the {found} images the model trained on or held out"
    kept, aside = [], []
    for case in chosen:
        try:
            digest = case_digest(case)  # released: read again when scored, the split is not held whole
        except (ReadError, ValueError, OSError):
            kept.append(case)  # scoring reports it as failed
            continue
        if digest in seen:
            aside.append((case.case_id, f"the same pixels as {seen[digest]}"))
        else:
            seen[digest] = f"{case.case_id}, earlier in this split"
            kept.append(case)
    return kept, aside, aside_note


def _refuse_trained_on(predictor, chosen: list[Case], split: str, prepared) -> None:
    """A val or test split holding images the model was trained on (a dataset prepared another way than
    the one it learned from) would be scored as if unseen: refused, naming one."""
    manifest = getattr(getattr(predictor, "bundle", None), "manifest", None) or {}
    trained = set((manifest.get("data") or {}).get("train_cases") or [])
    seen = sorted(case.case_id for case in chosen if case.case_id in trained)
    if seen:
        raise RadsegError(f"{prepared}: {len(seen)} of split {split!r}'s {len(chosen)} cases were trained on by this model "
                          f"(e.g. {seen[0]}): this dataset is split otherwise than the one it learned from; score a "
                          "split it never saw, or prepare the data as it was trained")


def holdout_cases(predictor, dataset: PreparedDataset, prepared) -> list[Case]:
    """The train-split cases the predictor's model held out to pick its checkpoint (its manifest's
    ``val_cases``), checked to be in ``dataset``'s train split; refused for a model without them."""
    manifest = predictor.bundle.manifest or {}
    dropped = (manifest.get("data") or {}).get("holdout_dropped")
    if dropped:
        raise RadsegError(f"{predictor.bundle.path}: this ensemble has no held-out cases ({dropped}: some member "
                          "trained on each of them); score --split train, val or test")
    if not (manifest.get("config") or {}).get("holdout"):
        raise RadsegError(f"{predictor.bundle.path}: this model was not trained with --holdout, so it has no "
                          "held-out training cases; score --split train, val or test")
    wanted = set((manifest.get("data") or {}).get("val_cases") or [])
    chosen = [case for case in dataset.cases if case.case_id in wanted]
    missing = wanted - {case.case_id for case in chosen}
    if missing:
        raise RadsegError(f"{prepared}: {len(missing)} of the model's {len(wanted)} held-out cases are not in this "
                          f"dataset (e.g. {sorted(missing)[0]}): is it the dataset the model was trained on?")
    elsewhere = sorted(case.case_id for case in chosen if case.split not in (None, "train"))
    if elsewhere:  # a re-prepared dataset moved them: selecting on them would look at val or test
        raise RadsegError(f"{prepared}: {len(elsewhere)} of the model's held-out cases are not in this dataset's train "
                          f"split (e.g. {elsewhere[0]}, now {next(c.split for c in chosen if c.case_id == elsewhere[0])!r}); "
                          "re-prepare as the model was trained, or retrain")
    return chosen


def _operating_points(result: DetectionResult, model_point: dict | None, *, sensitivity: float, resamples: int,
                      seed: int) -> None:
    from radseg.evaluate.operating_point import choose_operating_point, flagged, rates_at

    table = result.per_case
    scores, truth = table["image_score"].to_numpy(float), table["finding"].to_numpy(bool)
    both = truth.any() and not truth.all()
    if both:
        result.summary["operating_point_here"] = choose_operating_point(scores, truth, sensitivity=sensitivity)
    if model_point is not None:
        table["flagged"] = flagged(scores, model_point["threshold"])
        if both:
            result.summary["at_model_operating_point"] = rates_at(scores, truth, model_point["threshold"],
                                                                  resamples=resamples, seed=seed)


def _score_case(predictor, dataset: PreparedDataset, case: Case, **options) -> ScoredImage:
    probs, grid = predictor.probabilities(case.image)
    probability = grid.restore_channel(probs[1] if probs.shape[0] > 1 else probs[0])
    instances = dataset.read_instances(case)
    truth_masks = [i.mask for i in instances] if instances else None
    return score_image(case.case_id, probability, case.label.array > 0, truth_masks, metadata=case.metadata, **options)


def check_writable_model(model_path: str | Path) -> Path:
    """The bundle path an operating point may be stored in: an existing folder or zip the user named,
    never a model shipped inside radseg (refused before any image is scored)."""
    from radseg.models.bundle import SHIPPED_DIR

    path = Path(model_path).expanduser()
    if not path.exists():
        raise RadsegError(f"{model_path}: give the model's folder or .zip to store an operating point in "
                          "(a shipped model's name is read-only)")
    if path.resolve().parent == SHIPPED_DIR.resolve():
        raise RadsegError(f"{model_path}: a model shipped inside radseg is read-only; copy it and store the "
                          "operating point in the copy")
    return path


def save_operating_point(model_path: str | Path, result: DetectionResult, *, data: str | Path) -> dict:
    """Store the operating point chosen on ``result``'s split in the model bundle's manifest.

    Only a choice made on the held-out training cases (``holdout``) is stored: chosen on images the
    weights were trained on, the threshold comes out too high (their scores are); chosen on the
    split that is reported, its sensitivity is met there by construction.
    """
    from radseg.models.bundle import load_bundle

    model_path = check_writable_model(model_path)
    split = result.settings.get("split")
    if split != "holdout":
        raise RadsegError(f"an operating point is chosen on the held-out training cases (--split holdout), not on "
                          f"{split!r}: on trained-on images the scores run high, and on the split you report its "
                          "sensitivity is met by construction")
    point = result.summary.get("operating_point_here")
    if point is None:
        raise RadsegError(f"split {split!r} needs images with and without the finding to choose an operating point")
    bundle = load_bundle(model_path, weights=False)  # the weights' bytes are kept as they are
    bundle.manifest = {**(bundle.manifest or {}), "operating_point": {
        **point, "chosen_on": f"{split} split of {Path(data).name} ({point['images_with_finding']} images with the "
                              f"finding, {point['images_without']} without"
                              + (f"; {len(result.summary.get('copies_set_aside') or [])} copies set aside"
                                 if result.settings.get("without_copies") else "") + ")",
        "score": "image score: the highest window-averaged foreground probability",
        "window": int(result.settings.get("window", IMAGE_SCORE_WINDOW)), "tta": bool(result.settings.get("tta", False)),
        # how detections were ranked on the holdout: evaluate-detection ranks them so by default
        "instance_score": str(result.settings.get("instance_score", "max"))}}
    bundle.save(model_path)
    return bundle.manifest["operating_point"]
