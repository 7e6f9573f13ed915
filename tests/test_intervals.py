"""The 95% intervals of the experiments: Student's t quantiles against published tables, and the interval of a mean."""

from __future__ import annotations

import math

import numpy as np
import pytest

from controller.intervals import mean_ci95, t_quantile_two_sided, t_two_sided

T_TABLE_95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 9: 2.262, 10: 2.228, 29: 2.045, 120: 1.980}
"""Two-sided 95% quantiles of Student's t (any statistics textbook's table, to 3 decimals)."""


@pytest.mark.parametrize(("df", "expected"), sorted(T_TABLE_95.items()))
def test_t_quantiles_match_the_table(df: int, expected: float):
    assert t_quantile_two_sided(0.95, df) == pytest.approx(expected, abs=5e-4)


def test_many_degrees_of_freedom_approach_the_normal():
    assert t_quantile_two_sided(0.95, 5000) == pytest.approx(1.95996, abs=1e-3)
    assert t_two_sided(0.0, 7) == 0.0 and t_two_sided(50.0, 8) == pytest.approx(1.0)


def test_the_interval_of_a_mean():
    mean, half = mean_ci95(np.array([[1.0, 10.0], [2.0, 10.0], [3.0, 10.0]]))
    assert list(mean) == [2.0, 10.0]
    assert half[0] == pytest.approx(4.303 * 1.0 / math.sqrt(3), abs=1e-3) and half[1] == 0.0
    single_mean, single_half = mean_ci95(np.array([[4.0, 5.0]]))
    assert list(single_mean) == [4.0, 5.0] and np.isnan(single_half).all()
