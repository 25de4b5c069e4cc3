"""Demo stage 6: measurements against the generator's truth.

Radiographs: femoral-head diameter on the predicted masks. Parallel projection keeps the
head's radius, so the truth is twice the 3D phantom's ``{side}_head_radius_mm``.
CT: femoral-head diameter and minimum joint-space width on the annotation pseudo-labels,
against ``{side}_head_radius_mm`` and ``{side}_jsw_min_mm``. (The radiograph labels have no
joint space: the acetabulum label covers the head in projection.)
Measuring on the exact labels too separates the measurement's own error from the model's or
the annotation's.
"""

from __future__ import annotations

from typing import Any


def _diameters(labels, image, notes: dict | None = None) -> dict[str, float | None]:
    from radseg.features import measure

    out = {}
    for m in measure(labels, "hip", image=image):
        if m.name == "femoral_head_diameter":
            side = "right" if "right" in m.structure else "left"
            out[side] = m.value
            if notes is not None and m.value is None:
                notes[side] = m.note
    return out


def measure_heads(predictions: dict[str, tuple[Any, Any, Any]], rows) -> tuple[Any, dict[str, Any]]:
    import pandas as pd

    rows = rows.set_index("case_id")
    table = []
    for case, (image, prediction, truth) in predictions.items():
        notes: dict = {}
        on_prediction, on_truth = _diameters(prediction, image, notes), _diameters(truth, image)
        for side in ("right", "left"):
            true_d = 2.0 * float(rows.loc[case, f"{side}_head_radius_mm"])
            value = on_prediction.get(side)
            why = "" if value is not None else f"not measured: {notes.get(side) or f'no {side} femoral head predicted'}"
            table.append({"case": case, "side": side, "truth_mm": true_d, "on_prediction_mm": value,
                          "on_exact_labels_mm": on_truth.get(side), "prediction_note": why})
    frame = pd.DataFrame(table)
    measured = frame.dropna(subset=["on_prediction_mm"])
    errors = (measured["on_prediction_mm"] - measured["truth_mm"]).abs()
    exact = frame.dropna(subset=["on_exact_labels_mm"])
    numbers = {"heads": int(len(measured)), "not_measured": int(len(frame) - len(measured)),
               "head_mae_mm": float(errors.mean()) if len(errors) else float("nan"),
               "head_mae_exact_labels_mm": float((exact["on_exact_labels_mm"] - exact["truth_mm"]).abs().mean())
               if len(exact) else float("nan")}
    frame["error_mm"] = frame["on_prediction_mm"] - frame["truth_mm"]
    return frame, numbers


def _ct_values(labels, notes: dict | None = None) -> dict[tuple[str, str], float | None]:
    from radseg.features import measure

    out = {}
    for m in measure(labels, "ct"):
        if m.name in ("femoral_head_diameter", "min_jsw"):
            side = "right" if "right" in m.structure.lower() else "left"
            out[(side, m.name)] = m.value
            if notes is not None and m.value is None:
                notes[(side, m.name)] = m.note
    return out


def _why(case, side, name, notes, split_reasons, pseudo_exists: bool) -> str:
    """Why a pseudo-label measurement is missing, in a few words."""
    if not pseudo_exists:
        return "not measured: no pseudo-label file"
    reason = (split_reasons or {}).get((case, side), "")
    if reason.startswith("hip implant"):
        return "not measured: a hip implant (the femoral head was resected)"
    if reason:
        return f"not measured: side could not be split ({reason.removeprefix('not split: ')})"
    note = notes.get((side, name), "")
    return f"not measured: {note}" if note else "not measured: structure missing from the pseudo-labels"


def measure_ct_hips(ct_dir, pseudo_dir, rows, split_reasons: dict | None = None) -> tuple[Any, dict[str, Any]]:
    """Head diameter and minimum JSW on each CT's pseudo-labels and exact labels vs truth.

    ``split_reasons`` maps ``(case, side)`` to why the annotation could not split that side; the
    table's ``pseudo_note`` column says why each missing pseudo-label value is missing.
    """
    import pandas as pd

    import radseg.io as rio

    table = []
    for row in rows:
        case = row["case_id"]
        pseudo_path = pseudo_dir / f"{case}.nii.gz"
        notes: dict = {}
        on_pseudo = _ct_values(rio.read_labels(pseudo_path), notes) if pseudo_path.exists() else {}
        on_exact = _ct_values(rio.read_labels(ct_dir / row["labels"]))
        for side in ("right", "left"):
            truths = {"femoral_head_diameter": 2.0 * float(row[f"{side}_head_radius_mm"]),
                      "min_jsw": float(row[f"{side}_jsw_min_mm"])}
            for name, truth in truths.items():
                value = on_pseudo.get((side, name))
                table.append({"case": case, "side": side, "measurement": name, "truth_mm": truth,
                              "on_pseudo_labels_mm": value, "on_exact_labels_mm": on_exact.get((side, name)),
                              "pseudo_note": "" if value is not None else
                              _why(case, side, name, notes, split_reasons, pseudo_path.exists())})
    frame = pd.DataFrame(table)
    numbers = {}
    for name, short in (("femoral_head_diameter", "ct_head"), ("min_jsw", "ct_jsw")):
        part = frame[frame["measurement"] == name]
        for column, tag in (("on_pseudo_labels_mm", "pseudo"), ("on_exact_labels_mm", "exact_labels")):
            values = part.dropna(subset=[column])
            errors = (values[column].astype(float) - values["truth_mm"]).abs()
            numbers[f"{short}_mae_{tag}_mm"] = float(errors.mean()) if len(errors) else float("nan")
        numbers[f"{short}_measured_pseudo"] = int(part["on_pseudo_labels_mm"].notna().sum())
    frame["error_pseudo_mm"] = frame["on_pseudo_labels_mm"].astype(float) - frame["truth_mm"]
    frame["error_exact_mm"] = frame["on_exact_labels_mm"].astype(float) - frame["truth_mm"]
    return frame, numbers


def with_reasons(frame, column: str, note: str, digits: int = 3):
    """A copy for display: numbers rounded, and each missing ``column`` cell replaced by its ``note``."""
    import pandas as pd

    shown = frame.drop(columns=[note]).astype(object)
    for name in shown.columns:
        if frame[name].dtype.kind == "f":
            shown[name] = pd.Series([round(float(v), digits) if v == v else None for v in frame[name]],
                                    index=frame.index, dtype=object)
    missing = frame[column].isna()
    shown.loc[missing, column] = frame.loc[missing, note].replace("", "not measured")
    return shown
