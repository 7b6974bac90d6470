"""The ingestion service's events, written to the outbox in the transaction of the change."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime

import asyncpg
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from google.type import date_pb2  # type: ignore[import-untyped]

from vitalis.ingestion.v1 import events_pb2, workout_pb2
from vitalis_ingestion.domain.records import (
    MANUAL_ENTRIES,
    SLEEP_SESSIONS,
    STRENGTH_SESSIONS,
    WORKOUTS,
    StoredRecord,
)
from vitalis_ingestion.domain.samples import SampleRow
from vitalis_ingestion.store.samples import IngestedSeries
from vitalis_runtime.outbox import add_to_outbox

SCHEMA = "ingestion"
PRODUCER = "ingestion"


def _ts(moment: datetime | None = None) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment or datetime.now(UTC))
    return stamp


async def emit(conn: asyncpg.Connection, user_id: uuid.UUID, message: Message) -> None:
    """Add one event about ``user_id`` to the outbox, inside the caller's transaction."""
    await add_to_outbox(conn, schema=SCHEMA, producer=PRODUCER, message=message, user_id=user_id)


async def samples_ingested(
    conn: asyncpg.Connection, user_id: uuid.UUID, series: Sequence[IngestedSeries], *, import_job: str = ""
) -> None:
    """One SamplesIngested per series with new samples, then DailySummaryUpdated for the days touched."""
    user = f"users/{user_id}"
    for item in series:
        await emit(
            conn,
            user_id,
            events_pb2.SamplesIngested(
                user=user,
                source=f"{user}/sources/{item.source_id}",
                metric_type=item.metric,  # type: ignore[arg-type]
                hrv_method=item.hrv_method,  # type: ignore[arg-type]
                start_time=_ts(item.first_start),
                end_time=_ts(item.last_end),
                sample_count=item.count,
                import_job=import_job,
                occur_time=_ts(),
            ),
        )
    days: dict[date, set[int]] = {}
    for item in series:
        first, last = item.first_start.astimezone(UTC).date(), item.last_end.astimezone(UTC).date()
        # Days are approximate in UTC here; one day either side covers every local offset.
        span = (last - first).days + 2
        if span > 62:
            continue
        for index in range(-1, span):
            days.setdefault(date.fromordinal(first.toordinal() + index), set()).add(item.metric)
    for day, metrics in sorted(days.items()):
        await daily_summary_updated(conn, user_id, day, sorted(metrics), sleep_changed=False)


async def daily_summary_updated(
    conn: asyncpg.Connection, user_id: uuid.UUID, day: date, metrics: Sequence[int], *, sleep_changed: bool
) -> None:
    """Announce that the merged summary of ``day`` may have changed."""
    user = f"users/{user_id}"
    await emit(
        conn,
        user_id,
        events_pb2.DailySummaryUpdated(
            user=user,
            daily_summary=f"{user}/dailySummaries/{day.isoformat()}",
            date=date_pb2.Date(year=day.year, month=day.month, day=day.day),
            changed_metric_types=list(metrics),  # type: ignore[arg-type]
            sleep_changed=sleep_changed,
            occur_time=_ts(),
        ),
    )


async def sample_deleted(conn: asyncpg.Connection, user_id: uuid.UUID, row: SampleRow) -> None:
    """Announce a deleted sample, and the change to its day's summary."""
    user = f"users/{user_id}"
    await emit(
        conn,
        user_id,
        events_pb2.SamplesDeleted(
            user=user,
            source=f"{user}/sources/{row.source_id}",
            metric_types=[row.metric],  # type: ignore[list-item]
            start_time=_ts(row.start_time),
            end_time=_ts(row.end_time),
            sample_count=1,
            occur_time=_ts(),
        ),
    )
    await daily_summary_updated(
        conn, user_id, row.start_time.astimezone(UTC).date(), [row.metric], sleep_changed=False
    )


async def record_changed(conn: asyncpg.Connection, record: StoredRecord, change: str) -> None:
    """Events for a created, updated or deleted sleep session, workout, strength session or manual entry."""
    user = f"users/{record.user_id}"
    day = record.local_date
    created = change == "created"
    if record.collection == SLEEP_SESSIONS:
        if change == "deleted":
            message: Message = events_pb2.SleepSessionDeleted(
                user=user, sleep_session=record.name, sleep_date=_date(day), occur_time=_ts()
            )
        else:
            message = events_pb2.SleepSessionRecorded(
                user=user, sleep_session=record.name, sleep_date=_date(day), created=created, occur_time=_ts()
            )
        await emit(conn, record.user_id, message)
        await daily_summary_updated(conn, record.user_id, day, [], sleep_changed=True)
    elif record.collection == WORKOUTS:
        if change == "deleted":
            message = events_pb2.WorkoutDeleted(user=user, workout=record.name, occur_time=_ts())
        else:
            message = events_pb2.WorkoutRecorded(
                user=user,
                workout=record.name,
                activity_type=workout_pb2.ActivityType.Value(
                    record.body.get("activityType", "ACTIVITY_TYPE_OTHER")
                ),
                start_time=_ts(record.start_time),
                end_time=_ts(record.end_time),
                created=created,
                occur_time=_ts(),
            )
        await emit(conn, record.user_id, message)
        await daily_summary_updated(conn, record.user_id, day, [], sleep_changed=False)
    elif record.collection == STRENGTH_SESSIONS:
        await daily_summary_updated(conn, record.user_id, day, [], sleep_changed=False)
    elif record.collection == MANUAL_ENTRIES and change != "deleted":
        await emit(
            conn,
            record.user_id,
            events_pb2.ManualEntryRecorded(
                user=user,
                manual_entry=record.name,
                kind=record.kind,  # type: ignore[arg-type]
                created=created,
                occur_time=_ts(),
            ),
        )


def _date(day: date) -> date_pb2.Date:
    return date_pb2.Date(year=day.year, month=day.month, day=day.day)
