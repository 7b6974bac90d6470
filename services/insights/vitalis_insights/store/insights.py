"""SQL of insights, their change log and alerts.

Storing a finding is one statement guarded by the ``(user_id, dedupe_key)`` unique key, so a
replayed event never creates a second insight. Every stored change of an insight appends to
``insight_changes`` and sends ``NOTIFY insight_changes`` with the user id, which PostgreSQL delivers
only when the transaction commits: a watch woken by it always finds the change.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Final

import asyncpg
from google.protobuf import json_format
from google.protobuf.timestamp_pb2 import Timestamp

from vitalis.insights.v1 import alert_pb2, common_pb2, events_pb2, insight_pb2, insight_service_pb2
from vitalis_insights.domain.rules import Finding
from vitalis_insights.domain.series import series_from_key
from vitalis_runtime.outbox import add_to_outbox

SCHEMA: Final = "insights"
PRODUCER: Final = "insights"
CHANGE_CHANNEL: Final = "insight_changes"
CREATED: Final = insight_service_pb2.WATCH_EVENT_TYPE_CREATED
UPDATED: Final = insight_service_pb2.WATCH_EVENT_TYPE_UPDATED


def _timestamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def _evidence_json(finding: Finding) -> list[dict[str, Any]]:
    items = []
    for item in finding.evidence:
        evidence = common_pb2.Evidence(resource=item.resource, description=item.description)
        if item.value is not None:
            evidence.value.CopyFrom(common_pb2.Quantity(value=item.value, unit=item.unit))
        if item.observe_time is not None:
            evidence.observe_time.CopyFrom(_timestamp(item.observe_time))
        items.append(json_format.MessageToDict(evidence))
    return items


async def record_change(
    conn: asyncpg.Connection, user_id: uuid.UUID, insight_id: uuid.UUID, kind: int
) -> None:
    """Append to the change log and wake the user's watches at commit."""
    await conn.execute(
        "INSERT INTO insight_changes (user_id, insight_id, change_kind) VALUES ($1, $2, $3)",
        user_id,
        insight_id,
        kind,
    )
    await conn.execute("SELECT pg_notify($1, $2)", CHANGE_CHANNEL, str(user_id))


async def record_finding(
    conn: asyncpg.Connection, user_id: uuid.UUID, finding: Finding
) -> asyncpg.Record | None:
    """Store ``finding`` as a new insight (with an alert when it raises one); None if already known."""
    series = (
        json_format.MessageToDict(series_from_key(finding.series_key))
        if finding.series_key is not None
        else None
    )
    observed = (
        {"value": finding.observed[0], "unit": finding.observed[1]} if finding.observed is not None else None
    )
    expected = None
    if finding.expected_range is not None:
        low, high, unit = finding.expected_range
        expected = {
            "unit": unit,
            **({"low": low} if low is not None else {}),
            **({"high": high} if high is not None else {}),
        }
    insight_id = uuid.uuid4()
    row = await conn.fetchrow(
        """INSERT INTO insights (user_id, insight_id, rule, rule_version, category, severity, title, summary,
                                 series, observed, expected_range, evidence, dedupe_key, period_start,
                                 period_end)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
           ON CONFLICT (user_id, dedupe_key) DO NOTHING
           RETURNING *""",
        user_id,
        insight_id,
        finding.rule.name,
        finding.rule.version,
        finding.rule.category,
        finding.severity,
        finding.title,
        finding.summary,
        series,
        observed,
        expected,
        _evidence_json(finding),
        finding.dedupe_key,
        finding.period[0] if finding.period else None,
        finding.period[1] if finding.period else None,
    )
    if row is None:
        return None
    user = f"users/{user_id}"
    name = f"{user}/insights/{insight_id}"
    await add_to_outbox(
        conn,
        schema=SCHEMA,
        producer=PRODUCER,
        user_id=user_id,
        message=events_pb2.InsightCreated(
            user=user,
            insight=name,
            rule=finding.rule.name,
            rule_version=finding.rule.version,
            severity=finding.severity,  # type: ignore[arg-type]
            category=finding.rule.category,  # type: ignore[arg-type]
            dedupe_key=finding.dedupe_key,
            evidence=[item.resource for item in finding.evidence],
            occur_time=_timestamp(row["create_time"]),
        ),
    )
    if finding.raise_alert or finding.severity == common_pb2.SEVERITY_CRITICAL:
        row = await _raise_alert(conn, user_id, row)
    await record_change(conn, user_id, insight_id, CREATED)
    return row


async def _raise_alert(
    conn: asyncpg.Connection, user_id: uuid.UUID, insight: asyncpg.Record
) -> asyncpg.Record:
    alert_id = uuid.uuid4()
    alert = await conn.fetchrow(
        """INSERT INTO alerts (user_id, alert_id, insight_id, rule, severity, title, summary)
           VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING create_time""",
        user_id,
        alert_id,
        insight["insight_id"],
        insight["rule"],
        insight["severity"],
        insight["title"],
        insight["summary"],
    )
    user = f"users/{user_id}"
    await add_to_outbox(
        conn,
        schema=SCHEMA,
        producer=PRODUCER,
        user_id=user_id,
        message=events_pb2.AlertRaised(
            user=user,
            alert=f"{user}/alerts/{alert_id}",
            insight=f"{user}/insights/{insight['insight_id']}",
            severity=insight["severity"],
            occur_time=_timestamp(alert["create_time"]),
        ),
    )
    updated: asyncpg.Record = await conn.fetchrow(
        "UPDATE insights SET alert_id = $3 WHERE user_id = $1 AND insight_id = $2 RETURNING *",
        user_id,
        insight["insight_id"],
        alert_id,
    )
    return updated


def insight_to_proto(row: asyncpg.Record) -> insight_pb2.Insight:
    """The Insight message of a stored row."""
    user = f"users/{row['user_id']}"
    insight = insight_pb2.Insight(
        name=f"{user}/insights/{row['insight_id']}",
        rule=row["rule"],
        rule_version=row["rule_version"],
        category=row["category"],
        severity=row["severity"],
        title=row["title"],
        summary=row["summary"],
        dedupe_key=row["dedupe_key"],
        state=row["state"],
        alert=f"{user}/alerts/{row['alert_id']}" if row["alert_id"] else "",
        etag=str(row["version"]),
    )
    if row["series"]:
        json_format.ParseDict(row["series"], insight.series)
    if row["observed"]:
        json_format.ParseDict(row["observed"], insight.observed)
    if row["expected_range"]:
        json_format.ParseDict(row["expected_range"], insight.expected_range)
    for item in row["evidence"]:
        json_format.ParseDict(item, insight.evidence.add())
    if row["period_start"] is not None:
        insight.period.start_time.CopyFrom(_timestamp(row["period_start"]))
    if row["period_end"] is not None:
        insight.period.end_time.CopyFrom(_timestamp(row["period_end"]))
    insight.create_time.CopyFrom(_timestamp(row["create_time"]))
    insight.update_time.CopyFrom(_timestamp(row["update_time"]))
    if row["read_time"] is not None:
        insight.read_time.CopyFrom(_timestamp(row["read_time"]))
    if row["dismiss_time"] is not None:
        insight.dismiss_time.CopyFrom(_timestamp(row["dismiss_time"]))
    return insight


def alert_to_proto(row: asyncpg.Record, *, now: datetime) -> alert_pb2.Alert:
    """The Alert message of a stored row; a snooze that has run out reads as active."""
    user = f"users/{row['user_id']}"
    state = row["state"]
    snoozed_until = row["snooze_expire_time"]
    if state == alert_pb2.ALERT_STATE_SNOOZED and snoozed_until is not None and snoozed_until <= now:
        state = alert_pb2.ALERT_STATE_ACTIVE
    alert = alert_pb2.Alert(
        name=f"{user}/alerts/{row['alert_id']}",
        insight=f"{user}/insights/{row['insight_id']}",
        rule=row["rule"],
        severity=row["severity"],
        title=row["title"],
        summary=row["summary"],
        state=state,
        etag=str(row["version"]),
    )
    alert.create_time.CopyFrom(_timestamp(row["create_time"]))
    alert.update_time.CopyFrom(_timestamp(row["update_time"]))
    if row["acknowledge_time"] is not None:
        alert.acknowledge_time.CopyFrom(_timestamp(row["acknowledge_time"]))
    if state == alert_pb2.ALERT_STATE_SNOOZED and snoozed_until is not None:
        alert.snooze_expire_time.CopyFrom(_timestamp(snoozed_until))
    return alert
