"""Demo stage 6: femoral-head diameter measured on the predicted masks against the generator's truth.

Parallel projection keeps the head's radius, so the truth for the radiograph is twice the
3D phantom's ``{side}_head_radius_mm``. Measuring on the exact labels too separates the
measurement's own error from the model's.
"""

from __future__ import annotations

from typing import Any


def _diameters(labels, image) -> dict[str, float | None]:
    from radseg.features import measure

    out = {}
    for m in measure(labels, "hip", image=image):
        if m.name == "femoral_head_diameter":
            side = "right" if "right" in m.structure else "left"
            out[side] = m.value
    return out


def measure_heads(predictions: dict[str, tuple[Any, Any, Any]], rows) -> tuple[Any, dict[str, Any]]:
    import pandas as pd

    rows = rows.set_index("case_id")
    table = []
    for case, (image, prediction, truth) in predictions.items():
        on_prediction, on_truth = _diameters(prediction, image), _diameters(truth, image)
        for side in ("right", "left"):
            true_d = 2.0 * float(rows.loc[case, f"{side}_head_radius_mm"])
            table.append({"case": case, "side": side, "truth_mm": true_d,
                          "on_prediction_mm": on_prediction.get(side), "on_exact_labels_mm": on_truth.get(side)})
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
