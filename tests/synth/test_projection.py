"""Radiograph projection: analytic chords against hand geometry and brute-force ray marching."""

from __future__ import annotations

import numpy as np
import pytest

from radseg.synth import projection as proj


def _grid(det):
    return np.meshgrid(det.u(), det.v())


def _march(inside, u, v, *, span=80.0, n=160001):
    """Length of the ray (u, v, t) inside a point-membership test, by dense sampling."""
    t = np.linspace(-span, span, n)
    points = np.stack([np.full_like(t, u), np.full_like(t, v), t], axis=1)
    return inside(points).sum() * (t[1] - t[0])


def test_sphere_chord_is_two_sqrt_r2_minus_d2():
    det = proj.Detector.centred((121, 121), 0.5)
    r, centre = 20.0, (3.0, -2.0, 17.0)
    chord = proj.chord_length(proj.Ellipsoid(centre, (r, r, r)), det)
    uu, vv = _grid(det)
    d2 = (uu - centre[0]) ** 2 + (vv - centre[1]) ** 2
    expected = 2 * np.sqrt(np.clip(r * r - d2, 0, None))
    np.testing.assert_allclose(chord, expected, atol=1e-9)
    # the hand value at one offset: d = 12 -> 2 sqrt(400 - 144) = 32
    row, col = det.to_pixel(centre[0] + 12.0, centre[1])
    assert chord[round(float(row)), round(float(col))] == pytest.approx(32.0, abs=1e-9)


def test_rotated_ellipsoid_chord_and_shadow_area_match_brute_force():
    det = proj.Detector.centred((161, 161), 0.5)
    rot = proj.rotation_matrix(about_u=30, about_v=20, about_w=10)
    ell = proj.Ellipsoid((1.0, 2.0, -4.0), (30.0, 10.0, 15.0), rot)
    chord = proj.chord_length(ell, det)
    metric = rot @ np.diag(1 / np.array(ell.radii) ** 2) @ rot.T
    centre = np.array(ell.centre)
    inside = lambda p: np.einsum("ni,ij,nj->n", p - centre, metric, p - centre) <= 1
    for row, col in [(80, 80), (70, 100), (95, 55)]:
        assert chord[row, col] == pytest.approx(_march(inside, det.u()[col], det.v()[row]), abs=0.01)
    area = (chord > 0).sum() * 0.25
    assert area == pytest.approx(ell.shadow_area(), rel=0.01)
    # shadow boundary: v_bounds at the centre column enclose exactly the footprint's rows there
    col = 80
    top, bottom = ell.v_bounds(det.u()[col])
    rows = np.flatnonzero(chord[:, col] > 0)
    assert det.v()[rows[0]] >= top and det.v()[rows[0] - 1] < top
    assert det.v()[rows[-1]] <= bottom and det.v()[rows[-1] + 1] > bottom


@pytest.mark.parametrize("shape", ["capsule", "cylinder"])
def test_capsule_and_cylinder_chords_match_brute_force(shape):
    det = proj.Detector.centred((161, 161), 0.5)
    p0, p1, r = np.array([0.0, -30.0, 5.0]), np.array([10.0, 30.0, -20.0]), 8.0
    solid = (proj.Capsule if shape == "capsule" else proj.Cylinder)(tuple(p0), tuple(p1), r)
    chord = proj.chord_length(solid, det)
    axis = p1 - p0

    def inside(points):
        s = (points - p0) @ axis / (axis @ axis)
        s_clamped = np.clip(s, 0, 1)
        dist = np.linalg.norm(points - (p0 + s_clamped[:, None] * axis), axis=1)
        return dist <= r if shape == "capsule" else (dist <= r) & (s >= 0) & (s <= 1)

    for row, col in [(80, 80), (20, 80), (140, 90), (80, 60), (18, 76)]:
        assert chord[row, col] == pytest.approx(_march(inside, det.u()[col], det.v()[row]), abs=0.01)


def test_union_of_overlapping_pieces_is_not_counted_twice():
    det = proj.Detector.centred((41, 41), 1.0)
    a = proj.Ellipsoid((0.0, 0.0, 0.0), (10.0, 10.0, 10.0))
    b = proj.Ellipsoid((0.0, 0.0, 5.0), (10.0, 10.0, 10.0))  # shifted 5 mm along the ray
    far = proj.Ellipsoid((0.0, 0.0, 40.0), (10.0, 10.0, 10.0))  # disjoint along the ray
    assert proj.chord_length([a, b], det)[20, 20] == pytest.approx(25.0)
    assert proj.chord_length([a, far], det)[20, 20] == pytest.approx(40.0)
    assert proj.chord_length([a, b, far], det)[20, 20] == pytest.approx(45.0)


def test_loft_with_constant_sections_is_an_elliptic_cylinder():
    det = proj.Detector.centred((81, 81), 0.5)
    loft = proj.Loft((0.0, -15.0, 3.0), (0.0, 15.0, 3.0), ((0.0, 8.0, 5.0), (30.0, 8.0, 5.0)))
    chord = proj.chord_length(loft, det)
    uu, vv = _grid(det)
    expected = np.where(np.abs(vv) <= 15.0, 2 * 5.0 * np.sqrt(np.clip(1 - (uu / 8.0) ** 2, 0, None)), 0.0)
    np.testing.assert_allclose(chord, expected, atol=1e-9)
    core = loft.shrunk(1.0)
    assert proj.chord_length(core, det)[40, 40] == pytest.approx(8.0)


def test_projected_area_of_a_sphere_is_pi_r2():
    spacing, r = 0.25, 12.0
    det = proj.Detector.centred((121, 121), spacing)
    area = proj.footprint(proj.Ellipsoid((0.3, -0.7, 50.0), (r, r, r)), det).sum() * spacing ** 2
    # pixel-centre sampling: error about perimeter x spacing / 4 at most
    assert abs(area - np.pi * r * r) < 2 * np.pi * r * spacing / 4


def test_beer_lambert_against_exp_by_hand():
    mu = proj.MU_PER_MM
    line = mu["soft_tissue"] * 100.0 + (mu["cortical"] - mu["soft_tissue"]) * 10.0
    assert proj.beer_lambert(line) == pytest.approx(np.exp(-(0.021 * 90 + 0.0551 * 10)))
    assert proj.beer_lambert(0.0, i0=3.0) == pytest.approx(3.0)
    # bone attenuates more than soft tissue, fat less; contrast scales bone over soft tissue only
    assert mu["cortical"] > mu["cancellous"] > mu["soft_tissue"] > mu["fat"] > mu["air"]
    half = proj.mu_table(contrast=0.5)
    assert half["cortical"] - half["soft_tissue"] == pytest.approx(0.5 * (mu["cortical"] - mu["soft_tissue"]))
    assert half["fat"] == mu["fat"] and half["soft_tissue"] == mu["soft_tissue"]


def test_film_curve_is_monotone_and_monochrome1_inverts():
    intensity = np.exp(-np.linspace(0.0, 4.0, 50))[None, :]
    mono2 = proj.film_curve(intensity, center=2.0, width=0.3, bits=12)
    mono1 = proj.film_curve(intensity, center=2.0, width=0.3, bits=12, invert=True)
    assert np.all(np.diff(mono2.astype(int)) >= 0) and mono2[0, 0] < 50 and mono2[0, -1] > 4000
    np.testing.assert_array_equal(mono1.astype(int), 4095 - mono2.astype(int))
    assert mono2.dtype == np.uint16 and proj.film_curve(intensity, center=2, width=0.3, bits=16).max() > 60000


def test_quantum_noise_sd_scales_with_the_factor_and_blur_has_its_sigma():
    flat = np.full((200, 200), 0.1)
    sd = [np.std(proj.quantum_noise(flat, np.random.default_rng(5), photons=10000, noise_factor=f)) for f in (1, 2)]
    assert sd[0] == pytest.approx(np.sqrt(0.1 * 10000 + 1) / 10000, rel=0.03)
    assert sd[1] / sd[0] == pytest.approx(2.0, rel=0.01)
    delta = np.zeros((101, 101))
    delta[50, 50] = 1.0
    blurred = proj.detector_blur(delta, sigma_mm=1.0, spacing_mm=0.25)
    cols = np.arange(101) - 50
    assert blurred.sum() == pytest.approx(1.0)
    assert np.sqrt((blurred.sum(axis=0) * cols ** 2).sum()) * 0.25 == pytest.approx(1.0, rel=0.02)


def test_render_noise_factor_zero_is_the_clean_image():
    line = np.tile(np.linspace(0, 3, 64), (32, 1))
    clean, _ = proj.render(line, np.random.default_rng(0), spacing_mm=0.5, center=2.0, width=0.3, noise_factor=0.0)
    again, _ = proj.render(line, np.random.default_rng(9), spacing_mm=0.5, center=2.0, width=0.3, noise_factor=0.0)
    noisy, _ = proj.render(line, np.random.default_rng(0), spacing_mm=0.5, center=2.0, width=0.3, noise_factor=1.0)
    np.testing.assert_array_equal(clean, again)
    assert not np.array_equal(clean, noisy)
    assert np.all(np.diff(clean[16].astype(int)) >= 0)  # brighter with more attenuation (MONOCHROME2)
