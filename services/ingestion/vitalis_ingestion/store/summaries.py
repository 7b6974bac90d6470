"""The SQL behind daily summaries: per local day, source and series aggregates of samples."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, datetime
from typing import Final

import asyncpg

from vitalis_ingestion.domain.summaries import DayAggregate

_DAY_SQL: Final = """
WITH chosen AS (
    SELECT source_id, metric, hrv_method, hrv_window_s, value, create_time,
           CASE WHEN utc_offset_s IS NULL THEN start_time AT TIME ZONE $4
                ELSE (start_time AT TIME ZONE 'UTC') + make_interval(secs => utc_offset_s) END AS local_start,
           CASE WHEN utc_offset_s IS NULL THEN end_time AT TIME ZONE $4
                ELSE (end_time AT TIME ZONE 'UTC') + make_interval(secs => utc_offset_s) END AS local_end,
           metric = ANY($5::smallint[]) AS cumulative
    FROM samples
    WHERE user_id = $1 AND start_time >= $2 AND start_time < $3
      AND ($8::text IS NULL OR source_id = $8)
), parts AS (
    SELECT c.source_id, c.metric, c.hrv_method, c.hrv_window_s, c.create_time, d.day::date AS day,
           CASE WHEN c.cumulative AND c.local_end > c.local_start
                THEN c.value * extract(epoch FROM least(c.local_end, d.day + interval '1 day')
                                                   - greatest(c.local_start, d.day))
                     / extract(epoch FROM c.local_end - c.local_start)
                ELSE c.value END AS part
    FROM chosen c
    CROSS JOIN LATERAL generate_series(
        date_trunc('day', c.local_start),
        CASE WHEN c.cumulative AND c.local_end > c.local_start
             THEN date_trunc('day', c.local_end - interval '1 microsecond')
             ELSE date_trunc('day', c.local_start) END,
        interval '1 day') AS d(day)
)
SELECT day, source_id, metric, hrv_method, hrv_window_s, count(*) AS n, min(part) AS min_value,
       avg(part) AS avg_value, max(part) AS max_value, sum(part) AS sum_value, max(create_time) AS last_write
FROM parts
WHERE day >= $6 AND day <= $7
GROUP BY day, source_id, metric, hrv_method, hrv_window_s
ORDER BY day, source_id, metric, hrv_method, hrv_window_s"""


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
        """Per (day, source, series) aggregates of samples attributed to days in [first_day, last_day]."""
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
