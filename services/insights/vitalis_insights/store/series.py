"""SQL of the derived series the rules and analyses read (``series_values``)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

import asyncpg

from vitalis_insights.domain.series import SeriesValue


async def upsert_values(conn: asyncpg.Connection, user_id: uuid.UUID, values: Sequence[SeriesValue]) -> None:
    """Insert or replace values, one statement for the whole batch."""
    if not values:
        return
    await conn.execute(
        """INSERT INTO series_values (user_id, series_key, observe_time, value, unit, evidence)
           SELECT $1, * FROM unnest($2::text[], $3::timestamptz[], $4::float8[], $5::text[], $6::text[])
           ON CONFLICT (user_id, series_key, observe_time) DO UPDATE
               SET value = EXCLUDED.value, unit = EXCLUDED.unit, evidence = EXCLUDED.evidence,
                   update_time = now()""",
        user_id,
        [value.series_key for value in values],
        [value.observe_time for value in values],
        [value.value for value in values],
        [value.unit for value in values],
        [value.evidence for value in values],
    )


async def values_of(
    conn: asyncpg.Connection,
    user_id: uuid.UUID,
    series_key: str,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
) -> list[SeriesValue]:
    """The values of one series in time order, optionally within ``[start, end)``."""
    rows = await conn.fetch(
        """SELECT series_key, observe_time, value, unit, evidence FROM series_values
           WHERE user_id = $1 AND series_key = $2
             AND ($3::timestamptz IS NULL OR observe_time >= $3)
             AND ($4::timestamptz IS NULL OR observe_time < $4)
           ORDER BY observe_time""",
        user_id,
        series_key,
        start,
        end,
    )
    return [SeriesValue(row[0], row[1], row[2], row[3], row[4]) for row in rows]


async def delete_from_resource(conn: asyncpg.Connection, user_id: uuid.UUID, resource: str) -> None:
    """Forget the values that came from a resource (and its children), e.g. a deleted panel."""
    await conn.execute(
        "DELETE FROM series_values WHERE user_id = $1 AND (evidence = $2 OR evidence LIKE $2 || '/%')",
        user_id,
        resource,
    )
