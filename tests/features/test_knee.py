"""Knee joint-space width on hand-built knees (known gaps) and on ``knee-xray`` phantoms."""

from __future__ import annotations

import pytest

from radseg.features import measure
from radseg.image import Image
from radseg.labels import make_label_map
from tests.features.shapes import knee


def values(rows):
    return {(m.structure, m.name): m.value for m in rows}


def close(value, truth, spacing):
    """The acceptance rule: within 2% or one pixel spacing."""
    return value is not None and abs(value - truth) <= max(0.02 * truth, spacing)


@pytest.mark.parametrize("mirror", [False, True])
@pytest.mark.parametrize("fibula", [True, False])
def test_min_and_fixed_jsw_per_compartment(mirror, fibula):
    labels, truth = knee(mirror=mirror, fibula=fibula)
    got = values(measure(labels, "knee"))
    for side in ("right", "left"):
        for compartment in ("medial", "lateral"):
            gap = truth[side][compartment]
            assert close(got[(f"{side} knee", f"min_jsw_{compartment}")], gap, 0.4), (side, compartment)
            # the condyles sit at x = 0.25 and 0.75 of the plateau: the fixed-location JSW is the same gap
            x = "0.25" if compartment == "medial" else "0.75"
            assert close(got[(f"{side} knee", f"fjsw_{compartment}_x{x}")], gap, 0.4), (side, compartment)


def test_names_instead_of_values_and_notes_say_how_sides_were_decided():
    labels, truth = knee(names=True, fibula=False)
    rows = measure(labels, "knee")
    assert close(values(rows)[("right knee", "min_jsw_medial")], truth["right"]["medial"], 0.4)
    assert "towards the midline" in rows[0].note


def test_one_knee_alone_uses_the_display_convention():
    labels, truth = knee(fibula=False)
    array = labels.array.copy()
    array[array >= 5] = 0  # the right knee only: no anatomy to compare sides with
    got = values(measure(labels.with_array(array), "knee"))
    assert {s for s, _ in got} == {"right knee"}
    assert close(got[("right knee", "min_jsw_medial")], truth["right"]["medial"], 0.4)
    assert close(got[("right knee", "min_jsw_lateral")], truth["right"]["lateral"], 0.4)


def test_missing_tibia_is_reported_not_measured():
    labels, _ = knee()
    array = labels.array.copy()
    array[array == 7] = 0
    rows = [m for m in measure(labels.with_array(array), "knee") if m.structure == "left knee"]
    assert rows and all(m.value is None and m.status == "not measured" for m in rows)
    assert "no left tibia" in rows[0].note


def test_single_slice_volume_is_measured_as_a_radiograph():
    labels, truth = knee()
    volume = make_label_map(Image(labels.array[None], spacing=(1.0, 0.4, 0.4)))
    got = values(measure(volume, "knee"))
    assert close(got[("left knee", "min_jsw_lateral")], truth["left"]["lateral"], 0.4)


def test_knee_xray_phantoms_match_their_recorded_jsw():
    from radseg.synth import knee_xray
    from radseg.synth.cohort import make_subject

    for index in range(3):
        case = knee_xray.make_case(make_subject(index, seed=11, prefix=knee_xray.PREFIX), shape=(384, 480))
        spacing = float(case.labels.spacing[0])
        got = values(measure(case.labels, "knee"))
        for side in ("right", "left"):
            for compartment in ("medial", "lateral"):
                truth = case.params[f"{side}_{compartment}_jsw_mm"]
                value = got[(f"{side} knee", f"min_jsw_{compartment}")]
                assert close(value, truth, spacing), (index, side, compartment, value, truth)
