"""Hip measurements on hand-built hips with known head, joint space, LCEA and neck-shaft angle."""

from __future__ import annotations

import numpy as np
import pytest

from radseg.features import measure
from tests.features.shapes import hip

SPACING = 0.5


def values(rows):
    return {(m.structure, m.name): m.value for m in rows}


def close(value, truth, spacing=SPACING):
    return value is not None and abs(value - truth) <= max(0.02 * truth, spacing)


@pytest.mark.parametrize("lcea,nsa,tilt", [(30.0, 130.0, 8.0), (15.0, 120.0, 0.0), (38.0, 142.0, 12.0)])
def test_head_joint_space_and_angles(lcea, nsa, tilt):
    labels, truth = hip(lcea=lcea, nsa=nsa, tilt=tilt, radius=22.0, jsw=3.5)
    got = values(measure(labels, "hip"))
    for side in ("right", "left"):
        s = f"{side} hip"
        assert close(got[(s, "femoral_head_diameter")], 44.0)
        assert abs(got[(s, "femoral_head_centre_row_mm")] - truth[side]["centre_mm"][0]) <= SPACING
        assert abs(got[(s, "femoral_head_centre_col_mm")] - truth[side]["centre_mm"][1]) <= SPACING
        assert close(got[(s, "min_jsw")], 3.5)
        assert got[(s, "lcea")] == pytest.approx(lcea, abs=2.0)
        assert got[(s, "neck_shaft_angle")] == pytest.approx(nsa, abs=2.0)


def test_one_hip_uses_the_image_vertical():
    labels, _ = hip(sides=("left",), lcea=25.0)
    rows = measure(labels, "hip")
    got = values(rows)
    assert {m.structure for m in rows} == {"left hip"}
    assert got[("left hip", "lcea")] == pytest.approx(25.0, abs=2.0)
    assert "image vertical" in next(m.note for m in rows if m.name == "lcea")


def test_missing_acetabulum_and_short_shaft_are_not_measured():
    labels, _ = hip(shaft_length=5.0)
    array = labels.array.copy()
    array[array == 1] = 0  # no right acetabulum
    rows = {(m.structure, m.name): m for m in measure(labels.with_array(array), "hip")}
    assert rows[("right hip", "min_jsw")].value is None and "acetabulum" in rows[("right hip", "min_jsw")].note
    assert rows[("right hip", "lcea")].unit == "deg"
    assert rows[("left hip", "lcea")].value is not None
    for side in ("right", "left"):
        nsa = rows[(f"{side} hip", "neck_shaft_angle")]
        assert nsa.value is None and "shaft" in nsa.note
        assert close(rows[(f"{side} hip", "femoral_head_diameter")].value, 48.0)


def test_no_femur_at_all():
    labels, _ = hip()
    rows = measure(labels.with_array(np.zeros_like(labels.array)), "hip")
    assert rows and all(m.value is None for m in rows)
    assert "no femur" in rows[0].note


def _hip_xray_errors(indices):
    """Per hip: (diameter error, centre error mm, NSA error deg vs the phantom's own projected angle, spacing, row)."""
    from radseg.synth import hip_xray
    from radseg.features.geometry import angle_deg
    from radseg.synth.cohort import make_subject

    out = []
    for index in indices:
        case = hip_xray.make_case(make_subject(index, seed=2, prefix=hip_xray.PREFIX), shape=(320, 384))
        spacing = float(case.labels.spacing[0])
        rows = {(m.structure, m.name): m for m in measure(case.labels, "hip")}
        for side in ("right", "left"):
            s = f"{side} hip"
            geometry = case.extras["phantom"].side(side)
            neck, shaft = np.array(geometry.neck_axis), np.array(geometry.shaft_axis)
            # AP projection: image rows run along -z, columns along +x
            projected = angle_deg((-neck[2], neck[0]), (-shaft[2], shaft[0]))
            centre = np.array([case.params[f"{side}_head_v_mm"], case.params[f"{side}_head_u_mm"]])
            found = np.array([rows[(s, "femoral_head_centre_row_mm")].value, rows[(s, "femoral_head_centre_col_mm")].value])
            out.append((rows[(s, "femoral_head_diameter")].value - 2 * case.params[f"{side}_head_radius_mm"],
                        float(np.linalg.norm(found - centre)), rows[(s, "neck_shaft_angle")].value - projected,
                        spacing, rows[(s, "min_jsw")]))
    return out


def test_hip_xray_phantoms():
    errors = _hip_xray_errors(range(3))
    for diameter, centre, nsa, spacing, jsw in errors:
        assert abs(diameter) <= spacing and centre <= spacing
        # the phantom's acetabulum label is the slab around the head: it covers the joint in projection
        assert jsw.value is None and "borders the femoral head" in jsw.note
    # Projected necks are foreshortened (anteversion) and, in this phantom, often half hidden by
    # a high greater trochanter: a radiologist's axis is uncertain too. Mean error ~1 deg.
    nsa = np.abs([e[2] for e in errors])
    assert nsa.mean() <= 1.5 and nsa.max() <= 4.0


@pytest.mark.slow
def test_hip_xray_neck_shaft_sweep():
    errors = np.abs([e[2] for e in _hip_xray_errors(range(30))])
    assert errors.mean() <= 1.5 and np.median(errors) <= 1.0 and errors.max() <= 6.0
