"""The SQL behind daily summaries: per local day, source and series aggregates of samples."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Final

import asyncpg

from vitalis_ingestion.domain.metrics import METRICS, HrvMethod
from vitalis_ingestion.domain.summaries import DayAggregate

_LOCAL_TIMES: Final = """
    SELECT source_id, metric, hrv_method, hrv_window_s, value, create_time,
           CASE WHEN utc_offset_s IS NULL THEN start_time AT TIME ZONE $4
                ELSE (start_time AT TIME ZONE 'UTC') + make_interval(secs => utc_offset_s) END AS local_start,
           CASE WHEN utc_offset_s IS NULL THEN end_time AT TIME ZONE $4
                ELSE (end_time AT TIME ZONE 'UTC') + make_interval(secs => utc_offset_s) END AS local_end,
           metric = ANY($5::smallint[]) AS cumulative
    FROM samples"""
_SOURCE_AND_SERIES: Final = """
    user_id = $1 AND hrv_method = ANY($10::smallint[]) AND ($8::text IS NULL OR source_id = $8)"""
# A sample on one local day is counted on that day; only a cumulative one on several days is spread
# over them. Samples that start from two days before the first day ($11) may fall on the days asked
# for; earlier ones only when cumulative and ending after that. Naming the metrics ($9 all of them,
# $5 the cumulative ones) and HRV methods ($10) lets each index scan start at the time range
# instead of reading all the user's samples.
_DAY_SQL: Final = f"""
WITH one_day AS (
    SELECT *, date_trunc('day', local_start) AS day
    FROM ({_LOCAL_TIMES}
          WHERE {_SOURCE_AND_SERIES} AND metric = ANY($9::smallint[])
            AND start_time >= $11 AND start_time < $3
    ) AS recent
    WHERE local_start >= $6::date AND local_start < $7::date + 1
      AND NOT (cumulative AND local_end > local_start
               AND date_trunc('day', local_end - interval '1 microsecond') > date_trunc('day', local_start))
), several_days AS (
    SELECT c.*, d.day
    FROM ({_LOCAL_TIMES}
          WHERE {_SOURCE_AND_SERIES} AND metric = ANY($5::smallint[])
            AND start_time >= $11 AND start_time < $3
          UNION ALL
          {_LOCAL_TIMES}
          WHERE {_SOURCE_AND_SERIES} AND metric = ANY($5::smallint[])
            AND start_time >= $2 AND start_time < $11 AND end_time > $11
    ) AS c
    CROSS JOIN LATERAL generate_series(
        date_trunc('day', c.local_start),
        date_trunc('day', c.local_end - interval '1 microsecond'),
        interval '1 day') AS d(day)
    WHERE c.local_end > c.local_start AND c.local_start < $7::date + 1 AND c.local_end > $6::date
      AND date_trunc('day', c.local_end - interval '1 microsecond') > date_trunc('day', c.local_start)
), parts AS (
    SELECT source_id, metric, hrv_method, hrv_window_s, create_time, day::date AS day,
           CASE WHEN cumulative AND local_end > local_start
                THEN value * extract(epoch FROM least(local_end, day + interval '1 day')
                                                 - greatest(local_start, day))
                     / extract(epoch FROM local_end - local_start)
                ELSE value END AS part
    FROM (SELECT * FROM one_day UNION ALL SELECT * FROM several_days) AS spread
)
SELECT day, source_id, metric, hrv_method, hrv_window_s, count(*) AS n, min(part) AS min_value,
       avg(part) AS avg_value, max(part) AS max_value, sum(part) AS sum_value, max(create_time) AS last_write
FROM parts
WHERE day >= $6 AND day <= $7
GROUP BY day, source_id, metric, hrv_method, hrv_window_s
ORDER BY day, source_id, metric, hrv_method, hrv_window_s"""
_ALL_METRICS: Final = [metric.number for metric in METRICS]
_ALL_HRV_METHODS: Final = [int(method) for method in HrvMethod]
# Wider than any UTC offset a local day can have, so the split above never loses a sample.
_OFFSET_MARGIN: Final = timedelta(days=2)


class SummaryStore:
    """Aggregates for daily summaries, computed in PostgreSQL."""

    async def day_aggregates(
        self,
        conn: asyncpg.Connection,
        user_id: uuid.UUID,
        *,
        first_day: date,
        last_day: date,
        window: tuple[datetime, datetime],
        time_zone: str,
        cumulative_metrics: Sequence[int],
        source_id: str | None,
    ) -> list[DayAggregate]:
        """Per (day, source, series) aggregates of samples attributed to days in [first_day, last_day].

        Runs in the caller's transaction.
        """
        recent = max(window[0], datetime.combine(first_day, time(), UTC) - _OFFSET_MARGIN)
        # A day's samples are enough rows for the planner to compile the query to machine code, which
        # takes longer than running it; the setting ends with the caller's transaction.
        await conn.execute("SET LOCAL jit = off")
        rows = await conn.fetch(
            _DAY_SQL,
            user_id,
            window[0],
            window[1],
            time_zone,
            list(cumulative_metrics),
            first_day,
            last_day,
            source_id,
            _ALL_METRICS,
            _ALL_HRV_METHODS,
            recent,
        )
        return [
            DayAggregate(
                day=row["day"],
                source_id=row["source_id"],
                metric=row["metric"],
                hrv_method=row["hrv_method"],
                hrv_window_s=row["hrv_window_s"],
                count=row["n"],
                min=row["min_value"],
                avg=row["avg_value"],
                max=row["max_value"],
                sum=row["sum_value"],
                last_write=row["last_write"],
            )
            for row in rows
        ]

    async def data_span(
        self, conn: asyncpg.Connection, user_id: uuid.UUID
    ) -> tuple[datetime, datetime] | None:
        """The first and last start time of any sample or record of the user."""
        row = await conn.fetchrow(
            """SELECT least((SELECT min(start_time) FROM samples WHERE user_id = $1),
                            (SELECT min(start_time) FROM records WHERE user_id = $1)) AS first,
                      greatest((SELECT max(end_time) FROM samples WHERE user_id = $1),
                               (SELECT max(end_time) FROM records WHERE user_id = $1)) AS last""",
            user_id,
        )
        if row is None or row["first"] is None:
            return None
        return row["first"], row["last"]
