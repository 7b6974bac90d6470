"""Where a user's time zone comes from (their profile, owned by identity)."""

from __future__ import annotations

import uuid
from typing import Protocol


class TimeZoneLookup(Protocol):
    """Finds the IANA time zone of a user's profile."""

    async def time_zone_of(self, user_id: uuid.UUID) -> str:
        """The user's time zone, ``UTC`` when their profile has none."""
        ...


class FixedTimeZone:
    """Every user lives in one zone: for a deployment without identity, and for tests."""

    def __init__(self, zone: str = "UTC") -> None:
        self._zone = zone

    async def time_zone_of(self, user_id: uuid.UUID) -> str:  # noqa: ARG002 - same for every user
        """The configured zone."""
        return self._zone
