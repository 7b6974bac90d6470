"""SQL of goals, and the conversion between a goal row and the Goal message."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

import asyncpg
from google.protobuf import json_format
from google.protobuf.timestamp_pb2 import Timestamp
from google.type import date_pb2  # type: ignore[import-untyped]

from vitalis.insights.v1 import common_pb2, goal_pb2
from vitalis_insights.domain.goals import GoalTarget, Progress

GOAL_COLUMNS = (
    "display_name",
    "series",
    "series_key",
    "direction",
    "target_value",
    "target_low",
    "target_high",
    "unit",
    "evaluation_window_days",
    "start_date",
    "deadline",
)


def _timestamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def _date(day: date) -> date_pb2.Date:
    return date_pb2.Date(year=day.year, month=day.month, day=day.day)


def target_of(row: asyncpg.Record | dict[str, Any]) -> GoalTarget:
    """The domain view of a goal row, its target in the series' canonical unit."""
    canonical = row["canonical_target"]
    return GoalTarget(
        goal=f"users/{row['user_id']}/goals/{row['goal_id']}",
        display_name=row["display_name"],
        direction=row["direction"],
        target_value=canonical.get("target_value") if canonical else row["target_value"],
        target_low=canonical.get("target_low") if canonical else row["target_low"],
        target_high=canonical.get("target_high") if canonical else row["target_high"],
        unit=canonical["unit"] if canonical else row["unit"],
        window_days=row["evaluation_window_days"],
        start_date=row["start_date"],
        deadline=row["deadline"],
        daily=not str(row["series_key"]).startswith(("biomarker:", "score:")),
    )


def reached_milestones(row: asyncpg.Record) -> dict[float, datetime]:
    """Milestones already reached, from the stored progress."""
    reached: dict[float, datetime] = {}
    for milestone in row["progress"].get("milestones", []):
        if "reachTime" in milestone:
            reached[float(milestone["fraction"])] = datetime.fromisoformat(
                milestone["reachTime"].replace("Z", "+00:00")
            )
    return reached


def progress_json(target: GoalTarget, progress: Progress, now: datetime) -> dict[str, Any]:
    """The GoalProgress message of ``progress`` as stored JSON."""
    message = goal_pb2.GoalProgress(
        fraction_complete=progress.fraction,
        on_track=progress.on_track,
        data_point_count=progress.count,
    )
    if progress.baseline is not None:
        message.baseline.CopyFrom(common_pb2.Quantity(value=progress.baseline, unit=target.unit))
    if progress.current is not None:
        message.current.CopyFrom(common_pb2.Quantity(value=progress.current, unit=target.unit))
    if progress.projected is not None:
        message.projected_completion_date.CopyFrom(_date(progress.projected))
    for fraction in (0.25, 0.5, 0.75, 1.0):
        milestone = message.milestones.add(fraction=fraction)
        if fraction in progress.milestones:
            milestone.reach_time.CopyFrom(_timestamp(progress.milestones[fraction]))
    message.compute_time.CopyFrom(_timestamp(now))
    return json_format.MessageToDict(message)


async def save_progress(
    conn: asyncpg.Connection, user_id: uuid.UUID, goal_id: str, state: int, progress: dict[str, Any]
) -> asyncpg.Record:
    """Store computed progress and state."""
    row: asyncpg.Record = await conn.fetchrow(
        """UPDATE goals SET progress = $3, state = $4, update_time = now(), version = version + 1
           WHERE user_id = $1 AND goal_id = $2 RETURNING *""",
        user_id,
        goal_id,
        progress,
        state,
    )
    return row


async def goals_of_series(
    conn: asyncpg.Connection, user_id: uuid.UUID, keys: list[str]
) -> list[asyncpg.Record]:
    """The user's goals about any of these series."""
    return list(
        await conn.fetch("SELECT * FROM goals WHERE user_id = $1 AND series_key = ANY($2)", user_id, keys)
    )


async def get(conn: asyncpg.Connection, user_id: uuid.UUID, goal_id: str) -> asyncpg.Record | None:
    """One goal."""
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT * FROM goals WHERE user_id = $1 AND goal_id = $2", user_id, goal_id
    )
    return row


def goal_to_proto(row: asyncpg.Record) -> goal_pb2.Goal:
    """The Goal message of a stored row."""
    goal = goal_pb2.Goal(
        name=f"users/{row['user_id']}/goals/{row['goal_id']}",
        display_name=row["display_name"],
        direction=row["direction"],
        unit=row["unit"],
        state=row["state"],
        etag=str(row["version"]),
    )
    if row["target_value"] is not None:
        goal.target_value = row["target_value"]
    if row["target_low"] is not None or row["target_high"] is not None:
        goal.target_range.unit = row["unit"]
        if row["target_low"] is not None:
            goal.target_range.low = row["target_low"]
        if row["target_high"] is not None:
            goal.target_range.high = row["target_high"]
    json_format.ParseDict(row["series"], goal.series)
    goal.evaluation_window.FromSeconds(row["evaluation_window_days"] * 86400)
    goal.start_date.CopyFrom(_date(row["start_date"]))
    if row["deadline"] is not None:
        goal.deadline.CopyFrom(_date(row["deadline"]))
    if row["progress"]:
        json_format.ParseDict(row["progress"], goal.progress)
    goal.create_time.CopyFrom(_timestamp(row["create_time"]))
    goal.update_time.CopyFrom(_timestamp(row["update_time"].astimezone(UTC)))
    return goal
