"""Power-law fits and parabola refinement."""

import numpy as np
import pytest

from scaling.fit import fit_exponent, fit_power_law, parabola_vertex


def test_fit_recovers_an_exact_power_law():
    x = np.array([2, 4, 8, 16])
    slope, intercept = fit_exponent(x, 3.0 * x**-1.5)
    assert slope == pytest.approx(-1.5) and np.exp(intercept) == pytest.approx(3.0)


def test_bootstrap_interval_contains_truth_and_shrinks_with_seeds():
    rng = np.random.default_rng(0)
    x = np.array([2.0, 4, 8, 16])
    noisy = lambda seeds: (x**-1.5)[:, None] * np.exp(rng.normal(0, 0.2, (4, seeds)))  # noqa: E731
    few, many = fit_power_law(x, noisy(3)), fit_power_law(x, noisy(30))
    assert many.ci[0] < -1.5 < many.ci[1]
    assert many.ci[1] - many.ci[0] < few.ci[1] - few.ci[0]


@pytest.mark.parametrize("x, y", [([4, 4], [1, 2]), ([4], [1]), ([1, 2], [1, -1])])
def test_fit_rejects_degenerate_input(x, y):
    with pytest.raises(ValueError):
        fit_exponent(x, y)


def test_parabola_vertex_finds_the_minimum_between_grid_points():
    logs = np.log([0.01, 0.02, 0.04, 0.08])
    losses = (logs - np.log(0.03)) ** 2
    best = int(np.argmin(losses))
    assert np.exp(parabola_vertex(logs, losses, best)) == pytest.approx(0.03, rel=1e-6)
    assert parabola_vertex(logs, losses, 0) == logs[0]  # at the edge, the grid point stands


def test_one_sample_per_size_gets_a_regression_interval():
    x = np.array([2.0, 4, 8, 16, 32])
    y = x**-1.0 * np.exp(np.array([0.05, -0.05, 0.02, -0.03, 0.01]))
    law = fit_power_law(x, y)
    assert law.ci[0] < law.exponent < law.ci[1] and law.ci[1] - law.ci[0] < 0.2
    assert np.isnan(fit_power_law([2, 4], [1.0, 0.5]).ci[0])
