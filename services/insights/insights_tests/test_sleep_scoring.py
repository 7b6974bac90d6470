"""Cole-Kripke agrees with pyActigraphy on the same counts; Sadeh follows the published equation."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest

from vitalis_insights.domain.sleep_scoring import (
    COLE_KRIPKE_SCALE,
    COLE_KRIPKE_WEIGHTS,
    cole_kripke,
    sadeh,
)


def night_of_counts(seed: int, epochs: int = 480) -> list[float]:
    """An evening awake, a quiet night with a few arousals, a morning awake."""
    rng = np.random.default_rng(seed)
    counts = rng.gamma(0.5, 1.0, epochs)
    counts[:40] = rng.gamma(3.0, 20.0, 40)
    counts[-30:] = rng.gamma(3.0, 20.0, 30)
    for start in rng.integers(60, epochs - 60, 6):
        counts[start : start + 4] = rng.gamma(2.0, 10.0, 4)
    return [round(float(value), 1) for value in counts]


def pyactigraphy_scoring() -> object:
    # pyActigraphy 1.0 still names numpy's removed `np.float` and `np.int` aliases at import time.
    np.float = float  # type: ignore[attr-defined]
    np.int = int  # type: ignore[attr-defined]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from pyActigraphy.sleep import scoring_base
    finally:
        del np.float, np.int  # type: ignore[attr-defined]
    return scoring_base


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_cole_kripke_matches_pyactigraphy(seed: int) -> None:
    counts = night_of_counts(seed)
    scoring_base = pyactigraphy_scoring()
    # pyActigraphy's window is centred: 4 epochs before, the epoch, 2 after, padded to 9.
    window = np.array([*COLE_KRIPKE_WEIGHTS, 0.0, 0.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = scoring_base._cole_kripke(  # type: ignore[attr-defined]
            pd.Series(counts), COLE_KRIPKE_SCALE, window, 1.0
        )

    ours = cole_kripke(counts)

    # pyActigraphy leaves the first 4 and last 4 epochs unscored (incomplete windows).
    interior = slice(4, len(counts) - 4)
    assert [int(value) for value in ours.asleep[interior]] == list(reference.to_numpy()[interior])
    assert 0.5 < ours.efficiency < 0.95


def test_cole_kripke_score_is_the_published_weighted_sum() -> None:
    counts = [0.0] * 4 + [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0] + [0.0] * 4
    scored = cole_kripke(counts)
    expected = 0.001 * (106 * 10 + 54 * 20 + 58 * 30 + 76 * 40 + 230 * 50 + 74 * 60 + 67 * 70)
    assert scored.scores[8] == pytest.approx(expected)
    assert scored.variant == "cole-kripke-1992-60s-mean"


def published_sadeh(counts: list[float], index: int) -> float:
    window = counts[max(0, index - 5) : index + 6]
    mean = sum(window) / len(window)
    nat = sum(1 for count in window if 50 <= count < 100)
    last6 = counts[max(0, index - 5) : index + 1]
    average = sum(last6) / len(last6)
    sd = math.sqrt(sum((count - average) ** 2 for count in last6) / (len(last6) - 1))
    return 7.601 - 0.065 * mean - 1.08 * nat - 0.056 * sd - 0.703 * math.log(counts[index] + 1)


@pytest.mark.parametrize("seed", [21, 22])
def test_sadeh_follows_the_published_equation(seed: int) -> None:
    counts = night_of_counts(seed)
    scored = sadeh(counts)
    for index in range(5, len(counts) - 5):
        assert scored.scores[index] == pytest.approx(published_sadeh(counts, index))
        assert scored.asleep[index] == (published_sadeh(counts, index) > 0)
    assert scored.variant == "sadeh-1994-threshold-0"


def test_summary_measures_of_a_scored_night() -> None:
    scored = cole_kripke([500.0] * 20 + [0.0] * 60 + [500.0] * 5 + [0.0] * 30 + [500.0] * 20)
    assert scored.onset_index is not None
    assert scored.final_wake_index is not None
    assert scored.total_sleep_epochs + scored.wake_after_onset_epochs == (
        scored.final_wake_index - scored.onset_index
    )
    assert scored.wake_after_onset_epochs > 0
