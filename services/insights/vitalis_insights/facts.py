"""Facts for texts: numbers computed from the user's series over a period, each with its evidence."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Final

import asyncpg
from google.protobuf.timestamp_pb2 import Timestamp

from vitalis.insights.v1 import common_pb2, narrative_pb2
from vitalis_insights.domain.series import HRV_RMSSD, RESTING_HEART_RATE, TOTAL_SLEEP_TIME, series_from_key
from vitalis_insights.store import series as series_store

SUMMARISED: Final = (
    (RESTING_HEART_RATE, "Average resting heart rate"),
    (HRV_RMSSD, "Average heart-rate variability (RMSSD)"),
    (TOTAL_SLEEP_TIME, "Average time asleep"),
    ("metric:steps", "Average daily steps"),
)


async def gather_facts(
    conn: asyncpg.Connection, user_id: uuid.UUID, start: datetime, end: datetime
) -> list[narrative_pb2.GroundedFact]:
    """The period's averages of the summarised series that have data."""
    facts = []
    for key, label in SUMMARISED:
        values = await series_store.values_of(conn, user_id, key, start=start, end=end)
        if not values:
            continue
        mean = sum(value.value for value in values) / len(values)
        fact = narrative_pb2.GroundedFact(
            label=label,
            value=common_pb2.Quantity(value=round(mean, 1), unit=values[-1].unit),
            series=series_from_key(key),
        )
        for value in values:
            stamp = Timestamp()
            stamp.FromDatetime(value.observe_time)
            fact.evidence.add(
                resource=value.evidence,
                description=f"{label.lower()}: {value.value:g} {value.unit}",
                value=common_pb2.Quantity(value=value.value, unit=value.unit),
                observe_time=stamp,
            )
        facts.append(fact)
    return facts


async def gather_panel_facts(
    conn: asyncpg.Connection, user_id: uuid.UUID, panel: str
) -> list[narrative_pb2.GroundedFact]:
    """One fact per marker of the panel whose value the engine has read."""
    rows = await conn.fetch(
        """SELECT series_key, observe_time, value, unit, evidence FROM series_values
           WHERE user_id = $1 AND evidence LIKE $2 || '/markers/%' ORDER BY series_key""",
        user_id,
        panel,
    )
    facts = []
    for row in rows:
        biomarker = row["series_key"].removeprefix("biomarker:")
        label = biomarker.removeprefix("biomarkers/").replace("-", " ").capitalize()
        stamp = Timestamp()
        stamp.FromDatetime(row["observe_time"])
        quantity = common_pb2.Quantity(value=row["value"], unit=row["unit"])
        fact = narrative_pb2.GroundedFact(
            label=label, value=quantity, series=series_from_key(row["series_key"])
        )
        fact.evidence.add(
            resource=row["evidence"],
            description=f"{label} {row['value']:g} {row['unit']}",
            value=quantity,
            observe_time=stamp,
        )
        facts.append(fact)
    return facts


def facts_text(facts: list[narrative_pb2.GroundedFact]) -> str:
    """The facts as Markdown bullet lines, the template texts' body and the models' grounding."""
    return "".join(
        f"- {fact.label}: {fact.value.value:g} {fact.value.unit} ({len(fact.evidence)} days of data)\n"
        for fact in facts
    )
