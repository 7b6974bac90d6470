"""Flagging a marker against the lab's range, the dictionary's range and the optimal range."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from vitalis_biomarkers.dictionary.model import BiomarkerDefinition
from vitalis_biomarkers.domain.people import Sex


class Flag(enum.Enum):
    """How a value compares with its range (values match the contract's MarkerFlag)."""

    UNSPECIFIED = 0
    NORMAL = 1
    LOW = 2
    HIGH = 3
    CRITICAL_LOW = 4
    CRITICAL_HIGH = 5

    @property
    def is_abnormal(self) -> bool:
        """Low, high or critical."""
        return self not in (Flag.UNSPECIFIED, Flag.NORMAL)


class FlagBasis(enum.Enum):
    """Which range decided a flag (values match the contract's FlagBasis)."""

    UNSPECIFIED = 0
    LAB_RANGE = 1
    DICTIONARY_RANGE = 2


class OptimalStatus(enum.Enum):
    """How a value compares with the optimal range (values match the contract's OptimalStatus)."""

    UNSPECIFIED = 0
    BELOW_OPTIMAL = 1
    OPTIMAL = 2
    ABOVE_OPTIMAL = 3


@dataclass(frozen=True)
class LabRange:
    """The range a laboratory printed, in the reported unit."""

    low: float | None = None
    high: float | None = None
    text: str = ""

    @property
    def is_set(self) -> bool:
        """Whether the lab gave a bound."""
        return self.low is not None or self.high is not None


def _compare(value: float, low: float | None, high: float | None) -> Flag:
    if low is not None and value < low:
        return Flag.LOW
    if high is not None and value > high:
        return Flag.HIGH
    return Flag.NORMAL


def flag_value(
    definition: BiomarkerDefinition,
    *,
    reported_value: float,
    canonical_value: float | None,
    lab_range: LabRange | None,
    sex: Sex,
    age: float | None,
) -> tuple[Flag, FlagBasis]:
    """The flag of a value and the range it was decided with.

    The lab's range (in the reported unit) decides low/normal/high when given; otherwise the
    dictionary's range for the person's sex and age does. Critical flags come from the dictionary's
    critical limits in either case, which needs a canonical value.
    """
    band = definition.reference_range(sex, age)
    if canonical_value is not None and band is not None:
        if band.critical_low is not None and canonical_value < band.critical_low:
            basis = (
                FlagBasis.LAB_RANGE
                if lab_range is not None and lab_range.is_set
                else FlagBasis.DICTIONARY_RANGE
            )
            return Flag.CRITICAL_LOW, basis
        if band.critical_high is not None and canonical_value > band.critical_high:
            basis = (
                FlagBasis.LAB_RANGE
                if lab_range is not None and lab_range.is_set
                else FlagBasis.DICTIONARY_RANGE
            )
            return Flag.CRITICAL_HIGH, basis
    if lab_range is not None and lab_range.is_set:
        return _compare(reported_value, lab_range.low, lab_range.high), FlagBasis.LAB_RANGE
    if canonical_value is None or band is None or (band.low is None and band.high is None):
        return Flag.UNSPECIFIED, FlagBasis.UNSPECIFIED
    return _compare(canonical_value, band.low, band.high), FlagBasis.DICTIONARY_RANGE


def optimal_status(
    definition: BiomarkerDefinition, canonical_value: float | None, *, sex: Sex, age: float | None
) -> OptimalStatus:
    """Where a canonical value lies against the dictionary's optimal range."""
    band = definition.optimal_range(sex, age)
    if canonical_value is None or band is None:
        return OptimalStatus.UNSPECIFIED
    if band.low is not None and canonical_value < band.low:
        return OptimalStatus.BELOW_OPTIMAL
    if band.high is not None and canonical_value > band.high:
        return OptimalStatus.ABOVE_OPTIMAL
    return OptimalStatus.OPTIMAL
