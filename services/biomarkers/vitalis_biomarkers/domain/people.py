"""What the service needs to know about a person: sex and birth date, for ranges and scores."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date, datetime

DAYS_PER_YEAR = 365.2425


class Sex(enum.Enum):
    """A person's sex as identity records it; UNSPECIFIED also stands for every sex in ranges."""

    UNSPECIFIED = 0
    FEMALE = 1
    MALE = 2
    OTHER = 3


@dataclass(frozen=True)
class PersonProfile:
    """The facts about a person that ranges and formulas depend on."""

    sex: Sex = Sex.UNSPECIFIED
    birth_date: date | None = None

    def age_at(self, moment: datetime) -> float | None:
        """Age in years (fractional) at ``moment``, or None when the birth date is unknown."""
        if self.birth_date is None:
            return None
        return (moment.date() - self.birth_date).days / DAYS_PER_YEAR


UNKNOWN_PERSON = PersonProfile()
