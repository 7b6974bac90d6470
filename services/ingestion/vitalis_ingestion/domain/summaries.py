"""Daily summaries: one source's day, and the merged day taking each metric from the most trusted source."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from vitalis_ingestion.domain.records import SLEEP_SESSIONS, STRENGTH_SESSIONS, WORKOUTS, StoredRecord
from vitalis_ingestion.domain.sources import SourcePriority

ASLEEP = {
    "SLEEP_STAGE_TYPE_ASLEEP",
    "SLEEP_STAGE_TYPE_LIGHT",
    "SLEEP_STAGE_TYPE_DEEP",
    "SLEEP_STAGE_TYPE_REM",
}


@dataclass(frozen=True)
class DayAggregate:
    """The samples of one series from one source on one local day."""

    day: date
    source_id: str
    metric: int
    hrv_method: int
    hrv_window_s: int
    count: int
    min: float
    avg: float
    max: float
    sum: float
    last_write: datetime


@dataclass
class SleepTotals:
    """Sleep attributed to one day."""

    source_id: str
    sessions: int = 0
    in_bed: float = 0.0
    asleep: float = 0.0
    stages: dict[str, float] = field(default_factory=dict)


@dataclass
class DaySummary:
    """One day of one source (``source_id``) or merged (``source_id`` None)."""

    day: date
    source_id: str | None
    metrics: list[DayAggregate] = field(default_factory=list)
    sleep: SleepTotals | None = None
    workouts: int = 0
    workout_seconds: float = 0.0
    strength_sessions: int = 0
    update_time: datetime | None = None

    def touch(self, moment: datetime) -> None:
        """Remember the latest change that went into the summary."""
        if self.update_time is None or moment > self.update_time:
            self.update_time = moment

    @property
    def empty(self) -> bool:
        """Whether nothing is attributed to the day."""
        return not self.metrics and self.sleep is None and not self.workouts and not self.strength_sessions

    def fingerprint(self) -> str:
        """A value that changes whenever the summary's content changes (the etag)."""
        parts: list[Any] = [
            self.day,
            self.source_id,
            self.workouts,
            self.workout_seconds,
            self.strength_sessions,
        ]
        parts += [
            (m.source_id, m.metric, m.hrv_method, m.hrv_window_s, m.count, m.min, m.max, m.sum)
            for m in self.metrics
        ]
        if self.sleep:
            parts.append(
                (
                    self.sleep.source_id,
                    self.sleep.sessions,
                    self.sleep.in_bed,
                    sorted(self.sleep.stages.items()),
                )
            )
        return hashlib.sha256(repr(parts).encode()).hexdigest()[:20]


def _sleep_of(records: Iterable[StoredRecord]) -> dict[tuple[date, str], SleepTotals]:
    totals: dict[tuple[date, str], SleepTotals] = {}
    for record in records:
        if record.collection != SLEEP_SESSIONS:
            continue
        entry = totals.setdefault((record.local_date, record.source_id), SleepTotals(record.source_id))
        entry.sessions += 1
        entry.in_bed += (record.end_time - record.start_time).total_seconds()
        for stage in record.body.get("stages", []):
            seconds = (
                datetime.fromisoformat(stage["endTime"].replace("Z", "+00:00"))
                - datetime.fromisoformat(stage["startTime"].replace("Z", "+00:00"))
            ).total_seconds()
            entry.stages[stage["stage"]] = entry.stages.get(stage["stage"], 0.0) + seconds
            if stage["stage"] in ASLEEP:
                entry.asleep += seconds
    return totals


def per_source(
    aggregates: Sequence[DayAggregate], records: Sequence[StoredRecord]
) -> dict[tuple[date, str], DaySummary]:
    """Summaries per (day, source)."""
    days: dict[tuple[date, str], DaySummary] = {}
    for aggregate in aggregates:
        summary = days.setdefault(
            (aggregate.day, aggregate.source_id), DaySummary(aggregate.day, aggregate.source_id)
        )
        summary.metrics.append(aggregate)
        summary.touch(aggregate.last_write)
    for (day, source_id), sleep in _sleep_of(records).items():
        summary = days.setdefault((day, source_id), DaySummary(day, source_id))
        summary.sleep = sleep
    for record in records:
        if record.collection in (WORKOUTS, STRENGTH_SESSIONS, SLEEP_SESSIONS):
            summary = days.setdefault(
                (record.local_date, record.source_id), DaySummary(record.local_date, record.source_id)
            )
            summary.touch(record.update_time)
            if record.collection == WORKOUTS:
                summary.workouts += 1
                summary.workout_seconds += (record.end_time - record.start_time).total_seconds()
            elif record.collection == STRENGTH_SESSIONS:
                summary.strength_sessions += 1
    return days


def merged(days: dict[tuple[date, str], DaySummary], priority: SourcePriority) -> dict[date, DaySummary]:
    """One summary per day: each series and the sleep from the most trusted source that has them."""
    result: dict[date, DaySummary] = {}
    for (day, _source), summary in sorted(days.items()):
        target = result.setdefault(day, DaySummary(day, None))
        if summary.update_time:
            target.touch(summary.update_time)
        target.workouts += summary.workouts
        target.workout_seconds += summary.workout_seconds
        target.strength_sessions += summary.strength_sessions
        for aggregate in summary.metrics:
            key = (aggregate.metric, aggregate.hrv_method, aggregate.hrv_window_s)
            existing = next(
                (m for m in target.metrics if (m.metric, m.hrv_method, m.hrv_window_s) == key), None
            )
            rank = (priority.rank(aggregate.metric, aggregate.source_id), aggregate.source_id)
            if existing is None:
                target.metrics.append(aggregate)
            elif rank < (priority.rank(existing.metric, existing.source_id), existing.source_id):
                target.metrics[target.metrics.index(existing)] = aggregate
        if summary.sleep is not None:
            current = target.sleep
            rank = (priority.rank(0, summary.sleep.source_id), summary.sleep.source_id)
            if current is None or rank < (priority.rank(0, current.source_id), current.source_id):
                target.sleep = summary.sleep
    for summary in result.values():
        summary.metrics.sort(key=lambda m: (m.metric, m.hrv_method, m.hrv_window_s))
    return result
