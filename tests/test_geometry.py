"""radseg.geometry against independent references: points on known spheres and circles, and
scipy's least squares run here with its own parametrisation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import optimize

from radseg.geometry import Sphere, ball_box, box_distances, circles_through, fit_sphere, sphere_directions


def _on_sphere(centre, radius, n, *, noise=0.0, seed=0, arc=None):
    """``n`` points on a sphere (3D) or circle (2D); ``arc`` (radians) keeps a circle's points on one arc."""
    rng = np.random.default_rng(seed)
    centre = np.asarray(centre, float)
    if len(centre) == 2:
        angles = rng.uniform(0, 2 * np.pi if arc is None else arc, n)
        units = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    else:
        units = rng.normal(size=(n, 3))
        units /= np.linalg.norm(units, axis=1, keepdims=True)
    return centre + radius * units + rng.normal(scale=noise, size=(n, len(centre)))


def _reference_fit(points, loss="linear", scale=1.0):
    """Geometric least squares, written independently: parameters (centre, log radius), start at
    the centroid and the mean distance to it."""
    start = points.mean(axis=0)
    guess = np.append(start, np.log(np.linalg.norm(points - start, axis=1).mean()))

    def residuals(p):
        return np.linalg.norm(points - p[:-1], axis=1) - np.exp(p[-1])

    result = optimize.least_squares(residuals, guess, loss=loss, f_scale=scale, xtol=1e-12, ftol=1e-12, gtol=1e-12)
    return result.x[:-1], float(np.exp(result.x[-1]))


@pytest.mark.parametrize("method", ["geometric", "algebraic"])
@pytest.mark.parametrize("centre,radius", [((3.0, -7.0, 12.5), 21.0), ((-40.0, 5.0), 8.5)])
def test_exact_points_give_the_sphere_back(method, centre, radius):
    fitted = fit_sphere(_on_sphere(centre, radius, 40), method=method)
    assert isinstance(fitted, Sphere)
    assert np.allclose(fitted.centre, centre, atol=1e-7)
    assert fitted.radius == pytest.approx(radius, abs=1e-7)
    assert fitted.diameter == pytest.approx(2 * radius, abs=1e-6)
    assert fitted.rms < 1e-7 and fitted.inliers.all()


@pytest.mark.parametrize("centre,radius,arc", [((1.0, 2.0, 3.0), 15.0, None), ((10.0, -4.0), 25.0, 1.2)])
def test_geometric_fit_matches_scipy_least_squares(centre, radius, arc):
    points = _on_sphere(centre, radius, 300, noise=0.8, seed=3, arc=arc)
    fitted = fit_sphere(points)
    ref_centre, ref_radius = _reference_fit(points)
    assert np.allclose(fitted.centre, ref_centre, atol=1e-4)
    assert fitted.radius == pytest.approx(ref_radius, abs=1e-4)
    residual = np.linalg.norm(points - fitted.centre, axis=1) - fitted.radius
    assert fitted.rms == pytest.approx(np.sqrt(np.mean(residual**2)))


def test_algebraic_fit_is_the_linear_least_squares_solution_and_biased_on_a_short_arc():
    points = _on_sphere((10.0, -4.0), 25.0, 300, noise=0.8, seed=4, arc=1.2)
    # x^2 + y^2 + D x + E y + F = 0 solved by the normal equations (an independent route)
    design = np.column_stack([points, np.ones(len(points))])
    d, e, f = np.linalg.solve(design.T @ design, design.T @ -np.sum(points**2, axis=1))
    centre = -np.array([d, e]) / 2
    algebraic = fit_sphere(points, method="algebraic")
    assert np.allclose(algebraic.centre, centre, atol=1e-8)
    assert algebraic.radius == pytest.approx(np.sqrt(centre @ centre - f), abs=1e-8)
    # on a short noisy arc the algebraic circle shrinks; the geometric one stays closer to the truth
    assert abs(fit_sphere(points).radius - 25.0) < abs(algebraic.radius - 25.0)


def test_soft_l1_ignores_a_flat_cut_face():
    sphere = _on_sphere((0.0, 0.0, 0.0), 20.0, 400, noise=0.2, seed=5)
    sphere = sphere[sphere[:, 2] > -12.0]
    xs, ys = np.meshgrid(np.linspace(-15, 15, 8), np.linspace(-15, 15, 8))  # 44 points on the cut
    plane = np.column_stack([xs.ravel(), ys.ravel(), np.full(xs.size, -12.0)])
    plane = plane[np.hypot(plane[:, 0], plane[:, 1]) < 16.0]
    points = np.vstack([sphere, plane])
    robust = fit_sphere(points, loss="soft_l1", scale=0.5)
    ref_centre, ref_radius = _reference_fit(points, loss="soft_l1", scale=0.5)
    assert np.allclose(robust.centre, ref_centre, atol=1e-3) and robust.radius == pytest.approx(ref_radius, abs=1e-3)
    assert robust.radius == pytest.approx(20.0, abs=0.2)
    assert abs(fit_sphere(points).radius - 20.0) > 2 * abs(robust.radius - 20.0)
    assert robust.inliers[: len(sphere)].mean() > 0.95


def test_fit_sphere_refuses_too_few_points_and_unknown_methods():
    with pytest.raises(ValueError, match="at least 4 points"):
        fit_sphere(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="method"):
        fit_sphere(_on_sphere((0, 0), 1.0, 10), method="hough")


def test_circles_through_three_points_of_known_circles():
    rng = np.random.default_rng(6)
    centres = rng.uniform(-50, 50, size=(200, 2))
    radii = rng.uniform(1, 80, size=200)
    angles = rng.uniform(0, 2 * np.pi, size=(200, 3))
    a, b, c = (centres + radii[:, None] * np.stack([np.cos(angles[:, k]), np.sin(angles[:, k])], axis=1)
               for k in range(3))
    found, found_radii = circles_through(a, b, c)
    well_spread = np.min(np.abs(np.sin((angles[:, [0, 1, 2]] - angles[:, [1, 2, 0]]) / 2)), axis=1) > 0.05
    assert np.allclose(found[well_spread], centres[well_spread], atol=1e-6)
    assert np.allclose(found_radii[well_spread], radii[well_spread], atol=1e-6)


def test_circle_through_one_triple_and_collinear_points():
    centre, radius = circles_through((0.0, 5.0), (5.0, 0.0), (0.0, -5.0))
    assert centre.shape == (2,) and np.ndim(radius) == 0
    assert np.allclose(centre, 0.0) and radius == pytest.approx(5.0)
    centre, radius = circles_through((0, 0), (1, 1), (2, 2))
    assert np.isnan(radius) and np.isnan(centre).all()
    # nearly collinear: |det| = 4 * area = 4 * 0.5 * 2 * 1e-7 below min_det
    assert np.isnan(circles_through((0, 0), (1, 1e-7), (2, 0), min_det=1e-6)[1])
    assert np.isfinite(circles_through((0, 0), (1, 1e-7), (2, 0))[1])


def test_sphere_directions_are_unit_and_evenly_spread():
    directions = sphere_directions(500)
    assert directions.shape == (500, 3)
    assert np.allclose(np.linalg.norm(directions, axis=1), 1.0)
    assert np.linalg.norm(directions.mean(axis=0)) < 0.01  # no side favoured
    # every cap of 20 degrees around an arbitrary axis holds about its area's share (3 %)
    for axis in np.eye(3):
        share = np.mean(directions @ axis >= np.cos(np.radians(20)))
        assert share == pytest.approx((1 - np.cos(np.radians(20))) / 2, abs=0.005)


def test_ball_box_and_distances_match_brute_force():
    shape, spacing = (20, 30, 25), np.array([2.5, 0.8, 0.8])
    for centre in (np.array([10.2, 14.7, 12.0]), np.array([1.0, 28.5, 0.3])):  # inside, and cut by the array edge
        box = ball_box(shape, centre, 6.0, spacing)
        index = np.indices(shape).reshape(3, -1).T
        distance = np.linalg.norm((index - centre) * spacing, axis=1).reshape(shape)
        assert np.allclose(box_distances(box, centre, spacing), distance[box])
        inside = np.zeros(shape, bool)
        inside[box] = True
        assert not (distance <= 6.0)[~inside].any()  # the box holds the whole ball
        assert all(0 <= s.start < s.stop <= n for s, n in zip(box, shape))
