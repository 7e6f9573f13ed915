"""95% confidence intervals of a mean (Student's t), for the experiments' bands, error bars and tables.

The experiments average over few seeds (3) as well as over hundreds of workloads, so the interval
uses the t distribution's quantile, not the normal's 1.96 (with 3 seeds it is 4.30). The quantile
comes from the t distribution's closed-form CDF for whole degrees of freedom (Abramowitz & Stegun
26.7.3-4), inverted by bisection: no statistics library is a dependency of the project.
"""

from __future__ import annotations

import math

import numpy as np


def t_two_sided(t: float, df: int) -> float:
    """P(|T| <= t) for Student's t with `df` degrees of freedom (A&S 26.7.3 for odd df, 26.7.4 for even)."""
    theta = math.atan(t / math.sqrt(df))
    c2 = math.cos(theta) ** 2
    term = total = 1.0
    if df % 2:
        for k in range(1, (df - 1) // 2):
            term *= 2 * k / (2 * k + 1) * c2
            total += term
        series = math.sin(theta) * math.cos(theta) * total if df > 1 else 0.0
        return 2 / math.pi * (theta + series)
    for k in range(1, df // 2):
        term *= (2 * k - 1) / (2 * k) * c2
        total += term
    return math.sin(theta) * total


def t_quantile_two_sided(coverage: float, df: int) -> float:
    """The t with P(|T| <= t) = coverage: 12.706 for 95% and df 1, 4.303 for df 2, towards 1.960 as df grows."""
    if not 0 < coverage < 1 or df < 1:
        raise ValueError(f"coverage {coverage} must be in (0, 1) and df {df} at least 1")
    low, high = 0.0, 1.0
    while t_two_sided(high, df) < coverage:
        high *= 2
    for _ in range(100):  # bisection to float precision: each halving gains a bit
        mid = (low + high) / 2
        low, high = (mid, high) if t_two_sided(mid, df) < coverage else (low, mid)
    return (low + high) / 2


def mean_ci95(values: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Mean along `axis` and the half-width of its 95% confidence interval (NaN with a single value:
    one sample says nothing about the spread)."""
    values = np.asarray(values, dtype=float)
    n = values.shape[axis]
    mean = values.mean(axis=axis)
    if n < 2:
        return mean, np.full_like(mean, np.nan)
    half = t_quantile_two_sided(0.95, n - 1) * values.std(axis=axis, ddof=1) / math.sqrt(n)
    return mean, half
