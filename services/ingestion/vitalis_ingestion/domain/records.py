"""Timed records other than samples: sleep, workouts, strength sessions, nutrition logs, manual entries.

Each is stored with the columns its queries and natural key need (source, kind, start, end, UTC
offset) and a body in the protobuf JSON mapping of its message.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any, Final

SLEEP_SESSIONS: Final = "sleepSessions"
WORKOUTS: Final = "workouts"
STRENGTH_SESSIONS: Final = "strengthSessions"
NUTRITION_LOGS: Final = "nutritionLogs"
MANUAL_ENTRIES: Final = "manualEntries"
COLLECTIONS: Final = (SLEEP_SESSIONS, WORKOUTS, STRENGTH_SESSIONS, NUTRITION_LOGS, MANUAL_ENTRIES)


@dataclass(frozen=True)
class RecordDraft:
    """A record to store: where it belongs, its natural key, its times and its body."""

    collection: str
    source_id: str
    start_time: datetime
    end_time: datetime
    body: Mapping[str, Any]
    kind: int = 0
    utc_offset_s: int | None = None
    local_day: date | None = None

    def day(self) -> date:
        """The local date the record counts towards: the day a sleep session ends, else the day it starts."""
        if self.local_day is not None:
            return self.local_day
        moment = self.end_time if self.collection == SLEEP_SESSIONS else self.start_time
        return local_date(moment, self.utc_offset_s, UTC)

    @property
    def record_id(self) -> uuid.UUID:
        """An ID derived from the natural key, so an import of the same record finds the same row."""
        key = f"{self.collection}\x00{self.source_id}\x00{self.kind}\x00{self.start_time.isoformat()}"
        return uuid.UUID(bytes=hashlib.sha256(key.encode()).digest()[:16])


@dataclass(frozen=True)
class StoredRecord:
    """A record read back from the store."""

    user_id: uuid.UUID
    collection: str
    record_id: uuid.UUID
    source_id: str
    kind: int
    start_time: datetime
    end_time: datetime
    utc_offset_s: int | None
    local_date: date
    body: dict[str, Any]
    import_job_id: uuid.UUID | None
    version: int
    create_time: datetime
    update_time: datetime
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def etag(self) -> str:
        """Changes with every update."""
        return hashlib.sha256(f"{self.record_id}:{self.version}".encode()).hexdigest()[:20]

    @property
    def name(self) -> str:
        """``users/{user}/{collection}/{id}``."""
        return f"users/{self.user_id}/{self.collection}/{self.record_id}"


def local_date(moment: datetime, utc_offset_s: int | None, fallback_zone: Any) -> date:
    """The wall-clock date of ``moment``: in its recorded offset, else in ``fallback_zone`` (a tzinfo)."""
    if utc_offset_s is not None:
        return moment.astimezone(timezone(timedelta(seconds=utc_offset_s))).date()
    return moment.astimezone(fallback_zone).date()
