"""Samples: the COPY-based idempotent write path, raw reads, deletes and bucketed aggregates."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import asyncpg

from vitalis_ingestion.domain.samples import SampleIdParts, SampleRow, distinct_months, epoch_micros
from vitalis_runtime.db import Database

_STAGING_COLUMNS: Final = (
    "metric",
    "hrv_method",
    "hrv_window_s",
    "source_id",
    "start_us",
    "end_us",
    "sample_uid",
    "value",
    "utc_offset_s",
    "device_id",
    "correlation_key",
    "metadata",
)
# One round trip: the table lives as long as the connection, and is emptied at every commit. The
# DELETE only finds rows when the same transaction staged a batch before (a rolled-back batch is
# invisible); unlike TRUNCATE it changes no catalog entry, so the merge keeps its cached plan.
_PREPARE_STAGING: Final = """
CREATE TEMP TABLE IF NOT EXISTS staged_samples (
    metric smallint, hrv_method smallint, hrv_window_s integer, source_id text,
    start_us bigint, end_us bigint, sample_uid uuid, value double precision,
    utc_offset_s integer, device_id text, correlation_key text, metadata text
) ON COMMIT DELETE ROWS;
DELETE FROM staged_samples"""
# The new rows per series; the UUIDs of the new rows are only sent back when some staged row was
# not new ($3 is how many were staged).
_MERGE_STAGING: Final = """
WITH inserted AS (
    INSERT INTO samples (user_id, metric, hrv_method, hrv_window_s, source_id, start_time, end_time,
                         sample_uid, value, utc_offset_s, device_id, correlation_key, metadata, import_job_id)
    SELECT $1, metric, hrv_method, hrv_window_s, source_id,
           timestamptz 'epoch' + start_us * interval '1 microsecond',
           timestamptz 'epoch' + end_us * interval '1 microsecond',
           sample_uid, value, utc_offset_s, device_id, correlation_key, metadata::jsonb, $2
    FROM staged_samples
    ON CONFLICT DO NOTHING
    RETURNING source_id, metric, hrv_method, start_time, end_time, sample_uid
), series AS (
    SELECT source_id, metric, hrv_method, min(start_time) AS first_start, max(end_time) AS last_end,
           count(*) AS sample_count, array_agg(sample_uid) AS uids
    FROM inserted GROUP BY source_id, metric, hrv_method
)
SELECT source_id, metric, hrv_method, first_start, last_end, sample_count,
       CASE WHEN sum(sample_count) OVER () < $3::bigint THEN uids END AS uids
FROM series"""
# $2 and $3 pair each source written to with a metric written to it. The index scan on
# (user_id, source_id) locks the rows in source order, the same in every writer.
_MARK_SOURCES_WRITTEN: Final = """
UPDATE sources SET last_write_time = now(),
       metric_types = ARRAY(
           SELECT DISTINCT m
           FROM unnest(metric_types || ARRAY(SELECT w.metric
                                             FROM unnest($2::text[], $3::smallint[]) AS w(source_id, metric)
                                             WHERE w.source_id = sources.source_id)) AS m
           ORDER BY m)
WHERE user_id = $1 AND source_id = ANY($2::text[])"""
SAMPLE_COLUMNS: Final = """metric, hrv_method, hrv_window_s, source_id, start_time, end_time, sample_uid,
    value,
    utc_offset_s, device_id, correlation_key, metadata, import_job_id, create_time"""


@dataclass(frozen=True)
class IngestedSeries:
    """The new samples of one series written by one call: what a SamplesIngested event reports."""

    source_id: str
    metric: int
    hrv_method: int
    first_start: datetime
    last_end: datetime
    count: int


@dataclass(frozen=True)
class WriteResult:
    """What a write stored for the first time: per series, and which rows were new."""

    series: list[IngestedSeries]
    new_count: int
    # The natural-key UUIDs of the new rows; None when every row written was new.
    new_uids: frozenset[str] | None

    def is_new(self, sample_uid: str) -> bool:
        """Whether the row with this natural-key UUID was stored by this write."""
        return self.new_uids is None or sample_uid in self.new_uids


@dataclass(frozen=True)
class StoredSample:
    """A sample read back from the store."""

    row: SampleRow
    import_job_id: uuid.UUID | None
    create_time: datetime


@dataclass(frozen=True)
class SeriesFilter:
    """Which samples a read covers: one metric (and HRV series), a time range and sources."""

    metric: int
    hrv_method: int
    hrv_window_s: int | None
    start: datetime | None
    end: datetime | None
    source_ids: Sequence[str]


@dataclass(frozen=True)
class Bucket:
    """One aggregated time bucket."""

    start: datetime
    end: datetime
    count: int
    min: float
    avg: float
    max: float
    sum: float


def _sample(record: asyncpg.Record) -> StoredSample:
    metadata = record["metadata"]
    return StoredSample(
        row=SampleRow(
            source_id=record["source_id"],
            metric=record["metric"],
            hrv_method=record["hrv_method"],
            hrv_window_s=record["hrv_window_s"],
            start_time=record["start_time"],
            end_time=record["end_time"],
            value=record["value"],
            utc_offset_s=record["utc_offset_s"],
            device_id=record["device_id"],
            correlation_key=record["correlation_key"],
            metadata=metadata if isinstance(metadata, dict) else None,
            sample_uid=record["sample_uid"].hex,
        ),
        import_job_id=record["import_job_id"],
        create_time=record["create_time"],
    )


class SampleStore:
    """Reads and writes the ``samples`` table and its monthly partitions."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._known_months: set[datetime] = set()

    async def ensure_partitions(self, rows: Sequence[SampleRow]) -> None:
        """Create the monthly partitions the rows need, in a short transaction of their own.

        Creating a partition locks the parent table, so it never happens inside a long write.
        """
        missing = [month for month in distinct_months(rows) if month not in self._known_months]
        if not missing:
            return
        async with self._db.transaction(user_id=None) as conn:
            await conn.execute("SELECT ensure_sample_partitions($1::date[])", [m.date() for m in missing])
        self._known_months.update(missing)

    async def write(
        self,
        conn: asyncpg.Connection,
        user_id: uuid.UUID,
        rows: Sequence[SampleRow],
        *,
        import_job_id: uuid.UUID | None = None,
    ) -> WriteResult:
        """COPY ``rows`` into a staging table and merge them by natural key; return what was new.

        Must run in the caller's transaction, after :meth:`ensure_partitions`; the caller ends the
        transaction with :meth:`mark_sources_written`.
        """
        if not rows:
            return WriteResult([], 0, None)
        await conn.execute(_PREPARE_STAGING)
        # Times travel as microseconds since the epoch: the driver encodes an integer several times
        # faster than a datetime, and the conversion back in SQL is exact.
        await conn.copy_records_to_table(
            "staged_samples",
            records=[
                (
                    row.metric,
                    row.hrv_method,
                    row.hrv_window_s,
                    row.source_id,
                    start_us := epoch_micros(row.start_time),
                    start_us if row.end_time is row.start_time else epoch_micros(row.end_time),
                    row.sample_uid,
                    row.value,
                    row.utc_offset_s,
                    row.device_id,
                    row.correlation_key,
                    json.dumps(row.metadata) if row.metadata else None,
                )
                for row in rows
            ],
            columns=_STAGING_COLUMNS,
        )
        merged = await conn.fetch(_MERGE_STAGING, user_id, import_job_id, len(rows))
        series = [
            IngestedSeries(
                source_id=record["source_id"],
                metric=record["metric"],
                hrv_method=record["hrv_method"],
                first_start=record["first_start"],
                last_end=record["last_end"],
                count=record["sample_count"],
            )
            for record in merged
        ]
        new_count = sum(item.count for item in series)
        if new_count == len(rows):
            return WriteResult(series, new_count, None)
        return WriteResult(
            series, new_count, frozenset(uid.hex for record in merged for uid in record["uids"])
        )

    async def mark_sources_written(
        self, conn: asyncpg.Connection, user_id: uuid.UUID, series: Sequence[IngestedSeries]
    ) -> None:
        """Set the last write time and metric types of the sources ``series`` were written to.

        This locks those source rows, so it is the last statement before the commit: concurrent
        writers to one source then wait for a commit, not for a whole write.
        """
        if not series:
            return
        written = sorted({(item.source_id, item.metric) for item in series})
        await conn.execute(
            _MARK_SOURCES_WRITTEN,
            user_id,
            [source_id for source_id, _ in written],
            [metric for _, metric in written],
        )

    async def get(
        self, conn: asyncpg.Connection, user_id: uuid.UUID, parts: SampleIdParts
    ) -> StoredSample | None:
        """The sample an ID names, or ``None``."""
        record = await conn.fetchrow(
            f"""SELECT {SAMPLE_COLUMNS} FROM samples
                WHERE user_id = $1 AND metric = $2 AND hrv_method = $3 AND start_time = $4
                  AND sample_uid = $5""",
            user_id,
            parts.metric,
            parts.hrv_method,
            parts.start_time,
            parts.uid,
        )
        return None if record is None else _sample(record)

    async def delete(
        self, conn: asyncpg.Connection, user_id: uuid.UUID, parts: SampleIdParts
    ) -> StoredSample | None:
        """Delete the sample an ID names; return it, or ``None`` when there was none."""
        record = await conn.fetchrow(
            f"""DELETE FROM samples
                WHERE user_id = $1 AND metric = $2 AND hrv_method = $3 AND start_time = $4 AND sample_uid = $5
                RETURNING {SAMPLE_COLUMNS}""",
            user_id,
            parts.metric,
            parts.hrv_method,
            parts.start_time,
            parts.uid,
        )
        return None if record is None else _sample(record)

    async def find(
        self,
        conn: asyncpg.Connection,
        user_id: uuid.UUID,
        series: SeriesFilter,
        *,
        descending: bool,
        after: tuple[datetime, str] | None,
        limit: int,
    ) -> list[StoredSample]:
        """Raw samples of one series in start-time order, after a keyset cursor."""
        comparison, order = ("<", "DESC") if descending else (">", "ASC")
        records = await conn.fetch(
            f"""SELECT {SAMPLE_COLUMNS} FROM samples
                WHERE user_id = $1 AND metric = $2 AND hrv_method = $3
                  AND ($4::integer IS NULL OR hrv_window_s = $4)
                  AND ($5::timestamptz IS NULL OR start_time >= $5)
                  AND ($6::timestamptz IS NULL OR start_time < $6)
                  AND (cardinality($7::text[]) = 0 OR source_id = ANY($7))
                  AND ($8::timestamptz IS NULL OR (start_time, sample_uid) {comparison} ($8, $9::uuid))
                ORDER BY start_time {order}, sample_uid {order}
                LIMIT $10""",
            user_id,
            series.metric,
            series.hrv_method,
            series.hrv_window_s,
            series.start,
            series.end,
            list(series.source_ids),
            after[0] if after else None,
            after[1] if after else None,
            limit,
        )
        return [_sample(record) for record in records]

    async def buckets(
        self,
        conn: asyncpg.Connection,
        user_id: uuid.UUID,
        series: SeriesFilter,
        *,
        unit: str,
        time_zone: str,
        cumulative: bool,
        priority: Sequence[str] | None,
        after: datetime | None,
        limit: int,
    ) -> list[Bucket]:
        """Aggregate one series into buckets of ``unit`` aligned in ``time_zone``, in SQL.

        A cumulative sample spanning several buckets is split between them in proportion to its
        overlap with each. With ``priority`` (source ids, most trusted first), a sample is left out
        when a more trusted source has an overlapping sample of the same series; an instant
        reading counts as occupying the minute it starts.
        """
        step = {"minute": "1 minute", "hour": "1 hour", "day": "1 day", "week": "1 week"}[unit]
        records = await conn.fetch(
            _BUCKETS_SQL,
            user_id,
            series.metric,
            series.hrv_method,
            series.hrv_window_s,
            series.start,
            series.end,
            list(series.source_ids),
            unit,
            time_zone,
            timedelta_from(step),
            cumulative,
            priority is not None,
            list(priority or []),
            after,
            limit,
        )
        return [
            Bucket(
                start=record["bucket_start"],
                end=record["bucket_end"],
                count=record["n"],
                min=record["min_value"],
                avg=record["avg_value"],
                max=record["max_value"],
                sum=record["sum_value"],
            )
            for record in records
        ]

    async def count_for_user(self, conn: asyncpg.Connection, user_id: uuid.UUID) -> int:
        """How many samples the user has."""
        count: int = await conn.fetchval("SELECT count(*) FROM samples WHERE user_id = $1", user_id)
        return count

    async def rows_for_export(
        self, conn: asyncpg.Connection, user_id: uuid.UUID, *, after: tuple[Any, ...] | None, limit: int
    ) -> list[StoredSample]:
        """A page of every sample of the user, in primary-key order (for data export)."""
        records = await conn.fetch(
            f"""SELECT {SAMPLE_COLUMNS} FROM samples WHERE user_id = $1
                  AND ($2::smallint IS NULL
                       OR (metric, hrv_method, start_time, hrv_window_s, source_id, end_time)
                          > ($2, $3::smallint, $4::timestamptz, $5::integer, $6::text, $7::timestamptz))
                ORDER BY metric, hrv_method, start_time, hrv_window_s, source_id, end_time LIMIT $8""",
            user_id,
            *(after or (None,) * 6),
            limit,
        )
        return [_sample(record) for record in records]


def timedelta_from(step: str) -> timedelta:
    """``'1 hour'`` as a timedelta (the bucket widths are fixed strings)."""
    amount, unit = step.split()
    return timedelta(**{f"{unit}s": int(amount)})


_BUCKETS_SQL: Final = """
WITH selected AS (
    SELECT s.value, s.start_time, s.end_time
    FROM samples s
    WHERE s.user_id = $1 AND s.metric = $2 AND s.hrv_method = $3
      AND ($4::integer IS NULL OR s.hrv_window_s = $4)
      AND s.start_time >= $5 AND s.start_time < $6
      AND (cardinality($7::text[]) = 0 OR s.source_id = ANY($7))
      AND (NOT $12::boolean OR NOT EXISTS (
            SELECT 1 FROM samples o
            WHERE o.user_id = s.user_id AND o.metric = s.metric AND o.hrv_method = s.hrv_method
              AND o.hrv_window_s = s.hrv_window_s AND o.source_id <> s.source_id
              AND o.start_time > s.start_time - interval '31 days'
              AND o.start_time < greatest(s.end_time, s.start_time + interval '1 minute')
              AND greatest(o.end_time, o.start_time + interval '1 minute') > s.start_time
              AND coalesce(array_position($13::text[], o.source_id), 1000000)
                  < coalesce(array_position($13::text[], s.source_id), 1000000)))
), parts AS (
    SELECT (b.local_start AT TIME ZONE $9) AS bucket_start,
           ((b.local_start + $10::interval) AT TIME ZONE $9) AS bucket_end,
           sel.value, sel.start_time, sel.end_time
    FROM selected sel
    CROSS JOIN LATERAL generate_series(
        date_trunc($8, sel.start_time AT TIME ZONE $9),
        CASE WHEN $11::boolean AND sel.end_time > sel.start_time
             THEN date_trunc($8, (sel.end_time - interval '1 microsecond') AT TIME ZONE $9)
             ELSE date_trunc($8, sel.start_time AT TIME ZONE $9) END,
        $10::interval) AS b(local_start)
), weighted AS (
    SELECT bucket_start, bucket_end,
           CASE WHEN $11::boolean AND end_time > start_time
                THEN value
                     * extract(epoch FROM least(end_time, bucket_end) - greatest(start_time, bucket_start))
                     / extract(epoch FROM end_time - start_time)
                ELSE value END AS part
    FROM parts
)
SELECT bucket_start, bucket_end, count(*) AS n, min(part) AS min_value, avg(part) AS avg_value,
       max(part) AS max_value, sum(part) AS sum_value
FROM weighted
WHERE ($14::timestamptz IS NULL OR bucket_start > $14) AND bucket_start < $6
GROUP BY bucket_start, bucket_end
ORDER BY bucket_start
LIMIT $15"""
