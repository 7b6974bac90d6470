"""Robust baselines, trends and correlations on a user's own series, with their uncertainty.

Everything here is plain arithmetic on numbers (numpy), so the results can be checked against
reference implementations (scipy) on the same data. Normal and Student-t tail probabilities are
computed with ``math.erfc`` and a continued fraction for the regularized incomplete beta function.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

MAD_TO_SD: Final = 1.4826
Z_95: Final = 1.959963984540054
MIN_TREND_POINTS: Final = 7
MIN_CORRELATION_PAIRS: Final = 10

FloatArray = npt.NDArray[np.float64]


class InsufficientDataError(ValueError):
    """Too few values for the statistic to mean anything."""

    def __init__(self, found: int, needed: int) -> None:
        super().__init__(f"{found} values found, at least {needed} needed")
        self.found = found
        self.needed = needed


class ConstantSeriesError(ValueError):
    """A series does not vary, so no correlation can be computed."""


@dataclass(frozen=True)
class RobustBaseline:
    """The median of a series and its spread (median absolute deviation scaled to a standard deviation)."""

    median: float
    spread: float
    count: int

    def band(self, multiplier: float, *, floor: float = 0.0) -> tuple[float, float]:
        """``median ± multiplier x max(spread, floor)``."""
        width = multiplier * max(self.spread, floor)
        return self.median - width, self.median + width


def robust_baseline(values: Sequence[float]) -> RobustBaseline:
    """Median and scaled MAD of ``values`` (at least one)."""
    if not values:
        raise InsufficientDataError(0, 1)
    data = np.asarray(values, dtype=np.float64)
    median = float(np.median(data))
    mad = float(np.median(np.abs(data - median)))
    return RobustBaseline(median=median, spread=MAD_TO_SD * mad, count=len(values))


@dataclass(frozen=True)
class TrendResult:
    """Baseline, Theil-Sen slope with its 95 % interval, and the Mann-Kendall p-value."""

    count: int
    baseline: float
    spread: float
    slope: float
    slope_low: float
    slope_high: float
    p_value: float

    @property
    def direction(self) -> int:
        """+1 rising, -1 falling, 0 when the slope's interval contains 0."""
        if self.slope_low > 0:
            return 1
        if self.slope_high < 0:
            return -1
        return 0


def _tie_counts(values: FloatArray) -> list[int]:
    _, counts = np.unique(values, return_counts=True)
    return [int(count) for count in counts if count > 1]


def _tie_term(counts: Sequence[int]) -> float:
    return float(sum(k * (k - 1) * (2 * k + 5) for k in counts))


def theil_sen(x: Sequence[float], y: Sequence[float]) -> tuple[float, float, float]:
    """The Theil-Sen slope and its 95 % interval after Sen (1968), equation 2.6."""
    xs = np.asarray(x, dtype=np.float64)
    ys = np.asarray(y, dtype=np.float64)
    dx = xs[:, np.newaxis] - xs
    dy = ys[:, np.newaxis] - ys
    slopes = np.sort(dy[dx > 0] / dx[dx > 0])
    if slopes.size == 0:
        raise InsufficientDataError(1, 2)
    median = float(np.median(slopes))
    n = len(ys)
    variance = (n * (n - 1) * (2 * n + 5) - _tie_term(_tie_counts(xs)) - _tie_term(_tie_counts(ys))) / 18.0
    sigma = math.sqrt(max(variance, 0.0))
    total = slopes.size
    upper = min(round((total + Z_95 * sigma) / 2.0), total - 1)
    lower = max(round((total - Z_95 * sigma) / 2.0) - 1, 0)
    return median, float(slopes[lower]), float(slopes[upper])


def mann_kendall_p(x: Sequence[float], y: Sequence[float]) -> float:
    """Two-sided p-value of the Mann-Kendall test (tie-corrected variance, continuity correction)."""
    order = np.argsort(np.asarray(x, dtype=np.float64), kind="stable")
    ys = np.asarray(y, dtype=np.float64)[order]
    n = len(ys)
    signs = np.sign(ys[np.newaxis, :] - ys[:, np.newaxis])
    s = float(np.triu(signs, k=1).sum())
    variance = (n * (n - 1) * (2 * n + 5) - _tie_term(_tie_counts(ys))) / 18.0
    if variance <= 0:
        return 1.0
    if s > 0:
        z = (s - 1) / math.sqrt(variance)
    elif s < 0:
        z = (s + 1) / math.sqrt(variance)
    else:
        z = 0.0
    return math.erfc(abs(z) / math.sqrt(2.0))


def trend(
    days: Sequence[float], values: Sequence[float], *, min_count: int = MIN_TREND_POINTS
) -> TrendResult:
    """Baseline and trend of ``values`` observed at ``days`` (days since any origin)."""
    if len(values) < min_count:
        raise InsufficientDataError(len(values), min_count)
    baseline = robust_baseline(values)
    slope, low, high = theil_sen(days, values)
    return TrendResult(
        count=len(values),
        baseline=baseline.median,
        spread=baseline.spread,
        slope=slope,
        slope_low=low,
        slope_high=high,
        p_value=mann_kendall_p(days, values),
    )


@dataclass(frozen=True)
class Coefficient:
    """A correlation coefficient with its 95 % interval and two-sided p-value."""

    r: float
    low: float
    high: float
    p_value: float


@dataclass(frozen=True)
class CorrelationResult:
    """Pearson's and Spearman's correlation of paired values."""

    count: int
    pearson: Coefficient
    spearman: Coefficient


def average_ranks(values: Sequence[float]) -> FloatArray:
    """Ranks from 1, ties sharing the average of their ranks."""
    data = np.asarray(values, dtype=np.float64)
    order = np.argsort(data, kind="mergesort")
    ranks = np.empty(len(data), dtype=np.float64)
    sorted_values = data[order]
    start = 0
    while start < len(data):
        end = start
        while end + 1 < len(data) and sorted_values[end + 1] == sorted_values[start]:
            end += 1
        ranks[order[start : end + 1]] = (start + end) / 2.0 + 1.0
        start = end + 1
    return ranks


def _pearson_r(x: FloatArray, y: FloatArray) -> float:
    dx = x - x.mean()
    dy = y - y.mean()
    denominator = math.sqrt(float(np.dot(dx, dx)) * float(np.dot(dy, dy)))
    if denominator == 0:
        raise ConstantSeriesError("a series does not vary")
    return max(-1.0, min(1.0, float(np.dot(dx, dy)) / denominator))


def _fisher_interval(r: float, standard_error: float) -> tuple[float, float]:
    if abs(r) >= 1.0:
        return r, r
    z = math.atanh(r)
    return math.tanh(z - Z_95 * standard_error), math.tanh(z + Z_95 * standard_error)


def _t_test_p(r: float, n: int) -> float:
    """Two-sided p-value of r under no correlation (Student's t with n - 2 degrees of freedom)."""
    if abs(r) >= 1.0:
        return 0.0
    df = n - 2
    t_squared = r * r * df / (1.0 - r * r)
    return regularized_incomplete_beta(df / 2.0, 0.5, df / (df + t_squared))


def correlation(
    x: Sequence[float], y: Sequence[float], *, min_count: int = MIN_CORRELATION_PAIRS
) -> CorrelationResult:
    """Pearson (Fisher z interval) and Spearman (Fisher z with the Bonett-Wright error) of the pairs."""
    if len(x) != len(y):
        raise ValueError("x and y must have the same length")
    n = len(x)
    if n < min_count:
        raise InsufficientDataError(n, min_count)
    xs = np.asarray(x, dtype=np.float64)
    ys = np.asarray(y, dtype=np.float64)
    r = _pearson_r(xs, ys)
    rho = _pearson_r(average_ranks(x), average_ranks(y))
    pearson_low, pearson_high = _fisher_interval(r, 1.0 / math.sqrt(n - 3))
    spearman_low, spearman_high = _fisher_interval(rho, math.sqrt((1.0 + rho * rho / 2.0) / (n - 3)))
    return CorrelationResult(
        count=n,
        pearson=Coefficient(r, pearson_low, pearson_high, _t_test_p(r, n)),
        spearman=Coefficient(rho, spearman_low, spearman_high, _t_test_p(rho, n)),
    )


def regularized_incomplete_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b) by Lentz's continued fraction (Numerical Recipes, 6.4)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_fraction(b, a, 1.0 - x) / b


def _beta_fraction(a: float, b: float, x: float) -> float:
    tiny = 1e-300
    c = 1.0
    d = 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    result = d
    for m in range(1, 500):
        m2 = 2 * m
        numerator = m * (b - m) * x / ((a + m2 - 1.0) * (a + m2))
        d = 1.0 + numerator * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + numerator / c
        c = c if abs(c) > tiny else tiny
        result *= d * c
        numerator = -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1.0))
        d = 1.0 + numerator * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + numerator / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        result *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return result
