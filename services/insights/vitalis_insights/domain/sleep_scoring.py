"""Sleep/wake scoring of wrist actigraphy counts with published algorithms, 60-second epochs.

* Cole, Kripke, Gruen, Mullaney & Gillin (1992), *Sleep* 15(5):461-469, the 1-minute equation for
  mean activity per minute: ``D = 0.001 x (106·A₋₄ + 54·A₋₃ + 58·A₋₂ + 76·A₋₁ + 230·A₀ + 74·A₊₁ +
  67·A₊₂)``; an epoch is asleep when ``D < 1``. Epochs beyond either end count as 0.
* Sadeh, Sharkey & Carskadon (1994), *Sleep* 17(3):201-207: ``PS = 7.601 - 0.065·MEAN - 1.08·NAT -
  0.056·SD - 0.703·LG`` where MEAN is the mean count of the 11-epoch window centred on the epoch,
  NAT the number of its epochs with 50 ≤ count < 100, SD the sample standard deviation of the
  epoch and the 5 before it, and LG ``ln(count + 1)``; asleep when ``PS > 0``. Windows are cut at
  the ends of the recording.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np

COLE_KRIPKE_VARIANT: Final = "cole-kripke-1992-60s-mean"
COLE_KRIPKE_SCALE: Final = 0.001
COLE_KRIPKE_WEIGHTS: Final = (106.0, 54.0, 58.0, 76.0, 230.0, 74.0, 67.0)
COLE_KRIPKE_BEFORE: Final = 4

SADEH_VARIANT: Final = "sadeh-1994-threshold-0"
SADEH_INTERCEPT: Final = 7.601
SADEH_THRESHOLD: Final = 0.0
SADEH_HALF_WINDOW: Final = 5
SADEH_SD_EPOCHS: Final = 6

EPOCH_SECONDS: Final = 60
MIN_EPOCHS: Final = 10
MAX_EPOCHS: Final = 100_000


@dataclass(frozen=True)
class ScoredEpochs:
    """The score of each epoch, whether it is asleep, and the summary measures in epochs."""

    variant: str
    scores: list[float]
    asleep: list[bool]

    @property
    def total_sleep_epochs(self) -> int:
        """How many epochs are asleep."""
        return sum(self.asleep)

    @property
    def onset_index(self) -> int | None:
        """The first asleep epoch, if any."""
        return next((index for index, value in enumerate(self.asleep) if value), None)

    @property
    def final_wake_index(self) -> int | None:
        """The epoch after the last asleep one, if any epoch is asleep."""
        last = next((index for index in range(len(self.asleep) - 1, -1, -1) if self.asleep[index]), None)
        return None if last is None else last + 1

    @property
    def wake_after_onset_epochs(self) -> int:
        """Awake epochs between sleep onset and final wake."""
        onset, final = self.onset_index, self.final_wake_index
        if onset is None or final is None:
            return 0
        return (final - onset) - sum(self.asleep[onset:final])

    @property
    def efficiency(self) -> float:
        """Asleep epochs over all epochs."""
        return self.total_sleep_epochs / len(self.asleep) if self.asleep else 0.0


def cole_kripke(counts: Sequence[float]) -> ScoredEpochs:
    """Score ``counts`` (one per minute) with Cole-Kripke 1992."""
    data = np.asarray(counts, dtype=np.float64)
    padded = np.concatenate([np.zeros(COLE_KRIPKE_BEFORE), data, np.zeros(2)])
    weights = np.asarray(COLE_KRIPKE_WEIGHTS)
    scores = [
        COLE_KRIPKE_SCALE * float(np.dot(weights, padded[index : index + len(weights)]))
        for index in range(len(data))
    ]
    return ScoredEpochs(COLE_KRIPKE_VARIANT, scores, [score < 1.0 for score in scores])


def sadeh(counts: Sequence[float]) -> ScoredEpochs:
    """Score ``counts`` (one per minute) with Sadeh 1994."""
    data = np.asarray(counts, dtype=np.float64)
    scores: list[float] = []
    for index in range(len(data)):
        window = data[max(0, index - SADEH_HALF_WINDOW) : index + SADEH_HALF_WINDOW + 1]
        mean = float(window.mean())
        nat = int(np.count_nonzero((window >= 50) & (window < 100)))
        recent = data[max(0, index - SADEH_SD_EPOCHS + 1) : index + 1]
        sd = float(recent.std(ddof=1)) if len(recent) > 1 else 0.0
        lg = math.log(data[index] + 1.0)
        scores.append(SADEH_INTERCEPT - 0.065 * mean - 1.08 * nat - 0.056 * sd - 0.703 * lg)
    return ScoredEpochs(SADEH_VARIANT, scores, [score > SADEH_THRESHOLD for score in scores])
