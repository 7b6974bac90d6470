"""SQL of the insight feed and alerts: listing with filters and keyset pages, state changes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Final

import asyncpg

from vitalis.insights.v1 import alert_pb2, common_pb2, insight_pb2
from vitalis_insights.filters import FilterField, filter_to_sql
from vitalis_insights.store.insights import UPDATED, record_change

INSIGHT_FILTERS: Final = {
    "state": FilterField("state", "enum", insight_pb2.InsightState.Value),
    "severity": FilterField("severity", "enum", common_pb2.Severity.Value),
    "category": FilterField("category", "enum", common_pb2.InsightCategory.Value),
    "rule": FilterField("rule", "text"),
    "create_time": FilterField("create_time", "time"),
}
ALERT_FILTERS: Final = {
    "state": FilterField(
        "(CASE WHEN state = 2 AND snooze_expire_time <= now() THEN 1 ELSE state END)",
        "enum",
        alert_pb2.AlertState.Value,
    ),
    "severity": FilterField("severity", "enum", common_pb2.Severity.Value),
    "rule": FilterField("rule", "text"),
    "create_time": FilterField("create_time", "time"),
}
DISMISSED: Final = insight_pb2.INSIGHT_STATE_DISMISSED


async def list_insights(
    conn: asyncpg.Connection,
    user_id: uuid.UUID,
    *,
    filter_text: str,
    order: str,
    cursor: dict[str, Any],
    limit: int,
) -> list[asyncpg.Record]:
    """One page of insights, ``limit + 1`` rows to tell whether another page follows."""
    condition, parameters = filter_to_sql(filter_text, INSIGHT_FILTERS, first_parameter=3)
    if "state" not in filter_text:
        condition += f" AND state <> {DISMISSED}"
    offset = int(cursor.get("offset", 0))
    order_sql = {
        "create_time desc": "create_time DESC, insight_id DESC",
        "create_time": "create_time ASC, insight_id ASC",
        "severity desc, create_time desc": "severity DESC, create_time DESC, insight_id DESC",
    }[order]
    rows = await conn.fetch(
        f"""SELECT * FROM insights WHERE user_id = $1 AND {condition}
            ORDER BY {order_sql} LIMIT $2 OFFSET {offset}""",
        user_id,
        limit + 1,
        *parameters,
    )
    return list(rows)


async def unread_count(conn: asyncpg.Connection, user_id: uuid.UUID) -> int:
    """How many insights of the user are unread."""
    count: int = await conn.fetchval(
        "SELECT count(*) FROM insights WHERE user_id = $1 AND state = $2",
        user_id,
        insight_pb2.INSIGHT_STATE_UNREAD,
    )
    return count


async def get_insight(
    conn: asyncpg.Connection, user_id: uuid.UUID, insight_id: uuid.UUID
) -> asyncpg.Record | None:
    """One insight."""
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT * FROM insights WHERE user_id = $1 AND insight_id = $2", user_id, insight_id
    )
    return row


async def change_state(
    conn: asyncpg.Connection, user_id: uuid.UUID, insight_id: uuid.UUID, *, dismiss: bool
) -> asyncpg.Record:
    """Mark read or dismissed; record the change for watches."""
    if dismiss:
        statement = """UPDATE insights SET state = 3, dismiss_time = now(),
                              read_time = coalesce(read_time, now()), update_time = now(),
                              version = version + 1
                       WHERE user_id = $1 AND insight_id = $2 RETURNING *"""
    else:
        statement = """UPDATE insights SET state = 2, read_time = now(), update_time = now(),
                              version = version + 1
                       WHERE user_id = $1 AND insight_id = $2 RETURNING *"""
    row: asyncpg.Record = await conn.fetchrow(statement, user_id, insight_id)
    await record_change(conn, user_id, insight_id, UPDATED)
    return row


async def latest_change(conn: asyncpg.Connection, user_id: uuid.UUID) -> int:
    """The sequence number of the user's latest change, 0 when none."""
    latest: int | None = await conn.fetchval(
        "SELECT max(change_seq) FROM insight_changes WHERE user_id = $1", user_id
    )
    return latest or 0


async def oldest_change(conn: asyncpg.Connection, user_id: uuid.UUID) -> int | None:
    """The sequence number of the user's oldest change still kept."""
    oldest: int | None = await conn.fetchval(
        "SELECT min(change_seq) FROM insight_changes WHERE user_id = $1", user_id
    )
    return oldest


async def changes_after(
    conn: asyncpg.Connection, user_id: uuid.UUID, after: int, *, limit: int = 100
) -> list[asyncpg.Record]:
    """Changes after ``after`` with the insight as it is now, in order."""
    return list(
        await conn.fetch(
            """SELECT c.change_seq, c.change_kind, c.change_time, i.*
               FROM insight_changes c JOIN insights i USING (user_id, insight_id)
               WHERE c.user_id = $1 AND c.change_seq > $2 ORDER BY c.change_seq LIMIT $3""",
            user_id,
            after,
            limit,
        )
    )


async def matching_insights(
    conn: asyncpg.Connection, insight_ids: list[uuid.UUID], condition: str, parameters: list[Any]
) -> set[uuid.UUID]:
    """Which of the insights match a watch's filter (``condition`` numbers its parameters from 1)."""
    if condition == "TRUE" or not insight_ids:
        return set(insight_ids)
    rows = await conn.fetch(
        f"SELECT insight_id FROM insights WHERE insight_id = ANY(${len(parameters) + 1}) AND {condition}",
        *parameters,
        insight_ids,
    )
    return {row["insight_id"] for row in rows}


async def list_alerts(
    conn: asyncpg.Connection, user_id: uuid.UUID, *, filter_text: str, offset: int, limit: int
) -> list[asyncpg.Record]:
    """One page of alerts, newest first, ``limit + 1`` rows."""
    condition, parameters = filter_to_sql(filter_text, ALERT_FILTERS, first_parameter=3)
    return list(
        await conn.fetch(
            f"""SELECT * FROM alerts WHERE user_id = $1 AND {condition}
                ORDER BY create_time DESC, alert_id DESC LIMIT $2 OFFSET {int(offset)}""",
            user_id,
            limit + 1,
            *parameters,
        )
    )


async def active_alert_count(conn: asyncpg.Connection, user_id: uuid.UUID) -> int:
    """How many alerts are active (snoozes that ran out count)."""
    count: int = await conn.fetchval(
        """SELECT count(*) FROM alerts WHERE user_id = $1
           AND (state = 1 OR (state = 2 AND snooze_expire_time <= now()))""",
        user_id,
    )
    return count


async def get_alert(
    conn: asyncpg.Connection, user_id: uuid.UUID, alert_id: uuid.UUID
) -> asyncpg.Record | None:
    """One alert."""
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT * FROM alerts WHERE user_id = $1 AND alert_id = $2", user_id, alert_id
    )
    return row


async def update_alert(
    conn: asyncpg.Connection,
    user_id: uuid.UUID,
    alert_id: uuid.UUID,
    *,
    state: int,
    snooze_until: datetime | None,
) -> asyncpg.Record:
    """Acknowledge or snooze an alert."""
    row: asyncpg.Record = await conn.fetchrow(
        """UPDATE alerts SET state = $3, snooze_expire_time = $4,
                  acknowledge_time = CASE WHEN $3 = 3 THEN now() ELSE acknowledge_time END,
                  update_time = now(), version = version + 1
           WHERE user_id = $1 AND alert_id = $2 RETURNING *""",
        user_id,
        alert_id,
        state,
        snooze_until,
    )
    return row
