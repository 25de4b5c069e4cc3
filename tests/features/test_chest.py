"""Cardio-thoracic ratio and spine-centre distance on a hand-built chest and ``chest-xray`` phantoms."""

from __future__ import annotations

import numpy as np
import pytest

from radseg.features import measure
from radseg.labels import make_multilabel
from tests.features.shapes import chest


def values(rows):
    return {m.name: m for m in rows}


def test_ctr_parts_in_mm():
    labels, truth = chest()
    got = values(measure(labels, "chest"))
    for name in ("mrd", "mld"):
        assert got[name].value == pytest.approx(truth[name], abs=0.5)  # one pixel
    assert got["thoracic_width"].value == pytest.approx(truth["id"], abs=0.5)
    assert got["ctr"].value == pytest.approx(truth["ctr"], abs=0.005)
    # the left lung goes on below the right dome; each lung's edge is taken at or above the dome
    assert got["thoracic_width_dome"].value == pytest.approx(270.0, abs=0.5)
    assert got["ctr_textbook"].value == pytest.approx(120.0 / 270.0, abs=0.005)


def test_mirrored_image_gives_the_same_ctr():
    labels, truth = chest()
    mirrored = labels.with_array(labels.array[:, ::-1])
    got = values(measure(mirrored, "chest"))
    assert got["mrd"].value == pytest.approx(truth["mrd"], abs=0.5)
    assert got["mld"].value == pytest.approx(truth["mld"], abs=0.5)
    # marks are drawn on the mirrored picture: the thoracic line spans the lungs where they are
    thorax = got["ctr"].marks[-1].points
    assert thorax[:, 1].min() == pytest.approx(600 * 0.5 - 290.0, abs=0.5)


def test_spine_centre_distance():
    # vertebra centres 2 mm left/right of a vertical line, symmetric so the fit is that line
    labels, _ = chest(vertebra_offsets=(2.0, -2.0, 0.0, -2.0, 2.0))
    assert values(measure(labels, "chest"))["scd"].value == pytest.approx(8.0 / 5.0, abs=1e-6)
    straight, _ = chest(vertebra_offsets=(0.0, 0.0, 0.0))
    assert values(measure(straight, "chest"))["scd"].value == pytest.approx(0.0, abs=1e-9)
    few, _ = chest(vertebra_offsets=(1.0, 2.0))
    scd = values(measure(few, "chest"))["scd"]
    assert scd.value is None and "3 labelled vertebrae" in scd.note


def test_missing_heart_is_reported():
    labels, _ = chest()
    names = labels.metadata["class_names"]
    keep = [k for k, n in enumerate(names) if n != "heart"]
    stack = np.moveaxis(labels.array[..., keep], -1, 0)
    rows = values(measure(make_multilabel(stack, [names[k] for k in keep], like=labels), "chest"))
    assert rows["ctr"].value is None and "heart" in rows["ctr"].note
    assert rows["ctr"].unit == "ratio"
    assert rows["scd"].value is not None


def test_chest_xray_phantoms_match_their_recorded_ctr():
    from radseg.synth import chest_xray
    from radseg.synth.cohort import make_subject

    for index in range(3):
        case = chest_xray.make_case(make_subject(index, seed=4, prefix=chest_xray.PREFIX))
        got = values(measure(case.labels, "chest"))
        spacing = float(case.labels.spacing[1])
        assert got["ctr"].value == pytest.approx(case.params["ctr"], abs=0.02)
        assert got["ctr"].value == pytest.approx(case.params["ctr"], abs=0.005)  # in fact much closer
        assert got["mrd"].value == pytest.approx(case.params["ctr_mrd_mm"], abs=spacing)
        assert got["mld"].value == pytest.approx(case.params["ctr_mld_mm"], abs=spacing)
        assert got["thoracic_width"].value == pytest.approx(case.params["ctr_id_mm"], abs=spacing)


def test_scr_classes_without_a_hemidiaphragm():
    """SCR labels heart, lungs and clavicles only: CTR still follows from the heart's extent and the
    widest lung row; the dome row is estimated from the right lung; areas in mm²."""
    labels, truth = chest()
    keep = [labels.metadata["class_names"].index(n) for n in ("heart", "right lung", "left lung")]
    scr = make_multilabel(np.moveaxis(labels.array[..., keep], -1, 0), ["heart", "right lung", "left lung"], like=labels)
    got = values(measure(scr, "chest"))
    assert got["ctr"].value == pytest.approx(truth["ctr"], abs=0.005)
    assert got["heart_width"].value == pytest.approx(120.0, abs=0.5)
    assert "between the lungs" in got["ctr"].note
    # dome estimated from the right lung's flat lower border (row 220 mm); lungs there span 20-290 mm
    assert got["ctr_textbook"].value == pytest.approx(120.0 / 270.0, abs=0.005)
    assert "estimated" in got["ctr_textbook"].note
    lungs_only = make_multilabel(np.moveaxis(labels.array[..., keep[:1]] | labels.array[..., keep[1:2]], -1, 0),
                                 ["heart"], like=labels)
    assert values(measure(lungs_only, "chest"))["ctr"].value is None  # a heart without lungs: not measured
    areas = {m.structure: m for m in measure(scr, "chest") if m.name == "area"}
    # the right lung is a 180 x 115 mm rectangle on 0.5 mm pixels
    assert areas["right lung"].value == pytest.approx(180 * 115, rel=0.01) and areas["right lung"].unit == "mm2"
    assert areas["heart"].value == pytest.approx(np.pi * 45 * 60, rel=0.01)


def test_unknown_pixel_size_reports_pixels():
    labels, _ = chest(spacing=(1.0, 1.0))
    labels.metadata["spacing_known"] = False
    rows = measure(labels, "chest")
    assert {m.unit for m in rows if m.name in ("mrd", "heart_width")} == {"px"}
    assert next(m for m in rows if m.name == "area" and m.structure == "heart").unit == "px2"
    assert next(m for m in rows if m.name == "ctr").unit == "ratio"
