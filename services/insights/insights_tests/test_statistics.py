"""Trends and correlations agree with scipy on the same data, and refuse too little data."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from vitalis_insights.domain.statistics import (
    ConstantSeriesError,
    InsufficientDataError,
    correlation,
    regularized_incomplete_beta,
    robust_baseline,
    trend,
)

FISHER_Z_95 = 1.959963984540054


def mann_kendall_with_continuity_correction(values: np.ndarray) -> float:
    n = len(values)
    s = sum(np.sign(values[j] - values[i]) for i in range(n) for j in range(i + 1, n))
    _, ties = np.unique(values, return_counts=True)
    variance = (n * (n - 1) * (2 * n + 5) - sum(t * (t - 1) * (2 * t + 5) for t in ties)) / 18
    z = (abs(s) - 1) / np.sqrt(variance)
    return float(2 * stats.norm.sf(z))


def fisher_interval(r: float, se: float) -> tuple[float, float]:
    z = np.arctanh(r)
    return float(np.tanh(z - FISHER_Z_95 * se)), float(np.tanh(z + FISHER_Z_95 * se))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_correlation_matches_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(60, 5, 40)
    y = 0.4 * x + rng.normal(0, 3, 40)
    y[5] = y[6]  # a tie in the ranks

    result = correlation(list(x), list(y))

    pearson = stats.pearsonr(x, y)
    spearman = stats.spearmanr(x, y)
    assert result.count == 40
    assert result.pearson.r == pytest.approx(pearson.statistic, abs=1e-12)
    assert result.pearson.p_value == pytest.approx(pearson.pvalue, rel=1e-9)
    low, high = pearson.confidence_interval(0.95)
    assert (result.pearson.low, result.pearson.high) == pytest.approx((low, high), abs=1e-12)
    assert result.spearman.r == pytest.approx(spearman.statistic, abs=1e-12)
    assert result.spearman.p_value == pytest.approx(spearman.pvalue, rel=1e-9)
    rho = float(spearman.statistic)
    expected = fisher_interval(rho, float(np.sqrt((1 + rho**2 / 2) / (40 - 3))))
    assert (result.spearman.low, result.spearman.high) == pytest.approx(expected, abs=1e-12)


def test_correlation_refuses_below_the_minimum_number_of_pairs() -> None:
    with pytest.raises(InsufficientDataError) as refused:
        correlation(
            [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0], [2.0, 1.0, 4.0, 3.0, 6.0, 5.0, 8.0, 7.0, 9.0]
        )
    assert (refused.value.found, refused.value.needed) == (9, 10)


def test_correlation_of_a_constant_series_is_refused() -> None:
    with pytest.raises(ConstantSeriesError):
        correlation([1.0] * 12, [float(i) for i in range(12)])


@pytest.mark.parametrize("seed", [4, 5])
def test_trend_matches_scipy_theil_sen_and_kendall(seed: int) -> None:
    rng = np.random.default_rng(seed)
    days = np.arange(30, dtype=float)
    values = 55 + 0.2 * days + rng.normal(0, 2, 30)
    values[3] = values[4]

    result = trend(list(days), list(values))

    reference = stats.theilslopes(values, days, alpha=0.95)
    assert result.slope == pytest.approx(reference.slope)
    assert result.slope_low == pytest.approx(reference.low_slope)
    assert result.slope_high == pytest.approx(reference.high_slope)
    assert result.baseline == pytest.approx(float(np.median(values)))
    assert result.spread == pytest.approx(float(stats.median_abs_deviation(values, scale="normal")), rel=1e-4)
    assert result.p_value == pytest.approx(mann_kendall_with_continuity_correction(values), rel=1e-9)
    assert result.direction == 1


def test_trend_refuses_fewer_than_seven_values() -> None:
    with pytest.raises(InsufficientDataError):
        trend([0.0, 1.0, 2.0, 3.0, 4.0, 5.0], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0])


def test_incomplete_beta_matches_scipy() -> None:
    from scipy import special

    for a, b, x in [(0.5, 0.5, 0.3), (10.0, 0.5, 0.9), (19.0, 0.5, 0.99), (2.5, 3.0, 0.1)]:
        assert regularized_incomplete_beta(a, b, x) == pytest.approx(special.betainc(a, b, x), rel=1e-10)


def test_robust_baseline_ignores_an_outlier() -> None:
    baseline = robust_baseline([60.0, 61.0, 59.0, 60.0, 62.0, 58.0, 140.0])
    assert baseline.median == 60.0
    assert baseline.spread == pytest.approx(1.4826)
