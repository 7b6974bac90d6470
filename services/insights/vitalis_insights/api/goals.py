"""vitalis.insights.v1.GoalService: a user's goals, with progress recomputed on every change."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

import asyncpg
import grpc
from google.protobuf import empty_pb2, json_format

from vitalis.insights.v1 import events_pb2, goal_pb2, goal_service_pb2, goal_service_pb2_grpc
from vitalis_insights.api.names import ReadAccess, not_found, parse_request_id, resolve_child, resolve_parent
from vitalis_insights.domain.series import series_key
from vitalis_insights.engine import InsightsEngine, user_lock_key
from vitalis_insights.filters import FilterField, filter_to_sql
from vitalis_insights.store import goals as goal_store
from vitalis_insights.store import series as series_store
from vitalis_insights.store.insights import PRODUCER, SCHEMA
from vitalis_runtime.db import Database
from vitalis_runtime.errors import Aborted, AlreadyExists, InvalidArgument, ResourceExhausted
from vitalis_runtime.mailbox import advisory_lock
from vitalis_runtime.outbox import add_to_outbox
from vitalis_runtime.pagination import PageTokens, resolve_page_size

GOAL_ID: Final = re.compile(r"^[a-z][a-z0-9-]{2,61}[a-z0-9]$")
MUTABLE: Final = (
    "display_name",
    "direction",
    "target_value",
    "target_range",
    "unit",
    "evaluation_window",
    "start_date",
    "deadline",
)
MAX_ACTIVE_GOALS: Final = 50
TARGET_COLUMNS: Final = ("target_value", "target_low", "target_high")
GOAL_FILTERS: Final = {
    "state": FilterField("state", "enum", goal_pb2.GoalState.Value),
    "direction": FilterField("direction", "enum", goal_pb2.GoalDirection.Value),
    "deadline": FilterField("deadline::timestamptz", "time"),
    "progress.on_track": FilterField("coalesce((progress->>'onTrack')::boolean, false)", "bool"),
}

Context = grpc.aio.ServicerContext[object, object]


def _day(message: Any) -> date | None:
    return date(message.year, message.month, message.day) if message.year else None


def goal_columns(goal: goal_pb2.Goal, key: str, today: date) -> dict[str, Any]:
    """Validated column values of a goal message."""
    unit = goal.unit or goal.target_range.unit
    if not unit:
        raise InvalidArgument.for_field("goal.unit", "is required (the UCUM unit of the target)")
    if goal.direction == goal_pb2.GOAL_DIRECTION_UNSPECIFIED:
        raise InvalidArgument.for_field("goal.direction", "is required")
    low = high = value = None
    if goal.direction == goal_pb2.GOAL_DIRECTION_WITHIN_RANGE:
        if not (goal.target_range.HasField("low") and goal.target_range.HasField("high")):
            raise InvalidArgument.for_field("goal.target_range", "needs both bounds for WITHIN_RANGE")
        if goal.target_range.unit and goal.target_range.unit != unit:
            raise InvalidArgument.for_field("goal.target_range.unit", "must equal goal.unit")
        low, high = goal.target_range.low, goal.target_range.high
        if low > high:
            raise InvalidArgument.for_field("goal.target_range", "low must not exceed high")
    else:
        value = goal.target_value
    window_days = 7
    if goal.HasField("evaluation_window"):
        seconds = goal.evaluation_window.ToSeconds()
        if seconds <= 0 or seconds % 86400:
            raise InvalidArgument.for_field(
                "goal.evaluation_window", "must be a positive whole number of days"
            )
        window_days = seconds // 86400
    start = _day(goal.start_date) or today
    deadline = _day(goal.deadline)
    if deadline is not None and deadline < start:
        raise InvalidArgument.for_field("goal.deadline", "must not be before the start date")
    name = goal.display_name or f"{key.split(':', 1)[1]} target"
    if len(name) > 200:
        raise InvalidArgument.for_field("goal.display_name", "must be at most 200 characters")
    return {
        "display_name": name,
        "series_key": key,
        "direction": goal.direction,
        "target_value": value,
        "target_low": low,
        "target_high": high,
        "unit": unit,
        "evaluation_window_days": window_days,
        "start_date": start,
        "deadline": deadline,
    }


class GoalServicer(goal_service_pb2_grpc.GoalServiceServicer):
    """Goals with their progress."""

    def __init__(self, db: Database, tokens: PageTokens, engine: InsightsEngine, access: ReadAccess) -> None:
        self._db = db
        self._access = access
        self._tokens = tokens
        self._engine = engine

    async def CreateGoal(
        self, request: goal_service_pb2.CreateGoalRequest, context: Context
    ) -> goal_pb2.Goal:
        """Create a goal and compute its progress at once."""
        user_id = resolve_parent(request.parent)
        if not request.HasField("goal"):
            raise InvalidArgument.for_field("goal", "is required")
        if not request.goal.HasField("series"):
            raise InvalidArgument.for_field("goal.series", "is required")
        key = series_key(request.goal.series, field="goal.series")
        goal_id = request.goal_id or str(uuid.uuid4())
        if request.goal_id and not GOAL_ID.match(request.goal_id):
            raise InvalidArgument.for_field("goal_id", "must be 4-63 lower-case letters, digits or hyphens")
        request_id = parse_request_id(request.request_id)
        today = datetime.now(UTC).date()
        columns = goal_columns(request.goal, key, today)
        start = min(columns["start_date"], today) - timedelta(days=columns["evaluation_window_days"])
        history = await self._engine.history(user_id, key, start, today)
        canonical = await self._engine.canonical_target(
            user_id, key, {name: columns[name] for name in TARGET_COLUMNS}, columns["unit"]
        )
        async with self._db.transaction(user_id=user_id) as conn:
            await advisory_lock(conn, user_lock_key(user_id))
            await series_store.upsert_values(conn, user_id, history)
            if request_id is not None:
                earlier = await conn.fetchrow(
                    "SELECT * FROM goals WHERE user_id = $1 AND request_id = $2", user_id, request_id
                )
                if earlier is not None:
                    return goal_store.goal_to_proto(earlier)
            active = await conn.fetchval(
                "SELECT count(*) FROM goals WHERE user_id = $1 AND state = 1", user_id
            )
            if active >= MAX_ACTIVE_GOALS:
                raise ResourceExhausted("at most 50 goals can be active at once", reason="TOO_MANY_GOALS")
            try:
                row = await conn.fetchrow(
                    """INSERT INTO goals (user_id, goal_id, series, request_id, display_name, series_key,
                                          direction, target_value, target_low, target_high, unit,
                                          evaluation_window_days, start_date, deadline, canonical_target)
                       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
                       RETURNING *""",
                    user_id,
                    goal_id,
                    json_format.MessageToDict(request.goal.series),
                    request_id,
                    *(columns[name] for name in goal_store.GOAL_COLUMNS if name != "series"),
                    canonical,
                )
            except asyncpg.UniqueViolationError:
                raise AlreadyExists(f"goal {goal_id!r} already exists", reason="GOAL_EXISTS") from None
            row = await self._engine.refresh_goal(conn, user_id, row, now=datetime.now(UTC))
            event = events_pb2.GoalCreated(
                user=f"users/{user_id}", goal=f"users/{user_id}/goals/{goal_id}", series=request.goal.series
            )
            event.occur_time.FromDatetime(row["create_time"])
            await add_to_outbox(conn, schema=SCHEMA, producer=PRODUCER, user_id=user_id, message=event)
        return goal_store.goal_to_proto(row)

    async def GetGoal(self, request: goal_service_pb2.GetGoalRequest, context: Context) -> goal_pb2.Goal:
        """One goal."""
        user_id, goal_id = await self._access.child_text(request.name, "goals")
        async with self._db.transaction(user_id=user_id, readonly=True) as conn:
            row = await goal_store.get(conn, user_id, goal_id)
        if row is None:
            raise not_found(request.name)
        return goal_store.goal_to_proto(row)

    async def ListGoals(
        self, request: goal_service_pb2.ListGoalsRequest, context: Context
    ) -> goal_service_pb2.ListGoalsResponse:
        """Goals, newest first."""
        user_id = await self._access.parent(request.parent)
        size = resolve_page_size(request.page_size)
        fingerprint = {"parent": str(user_id), "filter": request.filter}
        offset = int(self._tokens.decode(request.page_token, request=fingerprint).get("offset", 0))
        condition, parameters = filter_to_sql(request.filter, GOAL_FILTERS, first_parameter=3)
        async with self._db.transaction(user_id=user_id, readonly=True) as conn:
            rows = await conn.fetch(
                f"""SELECT * FROM goals WHERE user_id = $1 AND {condition}
                    ORDER BY create_time DESC, goal_id LIMIT $2 OFFSET {offset}""",  # noqa: S608
                user_id,
                size + 1,
                *parameters,
            )
        response = goal_service_pb2.ListGoalsResponse(
            goals=[goal_store.goal_to_proto(row) for row in rows[:size]]
        )
        if len(rows) > size:
            response.next_page_token = self._tokens.encode({"offset": offset + size}, request=fingerprint)
        return response

    async def UpdateGoal(
        self, request: goal_service_pb2.UpdateGoalRequest, context: Context
    ) -> goal_pb2.Goal:
        """Change the masked fields; progress is recomputed."""
        user_id, goal_id = resolve_child(request.goal.name, "goals", field="goal.name")
        paths = list(request.update_mask.paths) if request.HasField("update_mask") else []
        if paths == ["*"]:
            paths = list(MUTABLE)
        elif not paths:
            paths = [field.name for field, _ in request.goal.ListFields() if field.name in MUTABLE]
        for path in paths:
            if path not in MUTABLE:
                raise InvalidArgument.for_field("update_mask", f"{path!r} cannot be changed")
        async with self._db.transaction(user_id=user_id) as conn:
            await advisory_lock(conn, user_lock_key(user_id))
            row = await goal_store.get(conn, user_id, goal_id)
            if row is None:
                raise not_found(request.goal.name)
            if request.goal.etag and request.goal.etag != str(row["version"]):
                raise Aborted("the goal changed since it was read; fetch it again", reason="ETAG_MISMATCH")
            merged = goal_store.goal_to_proto(row)
            for path in paths:
                merged.ClearField(path)  # type: ignore[arg-type]
                setattr_from(merged, request.goal, path)
            columns = goal_columns(merged, row["series_key"], row["start_date"])
            row = await conn.fetchrow(
                """UPDATE goals SET display_name = $3, direction = $4, target_value = $5, target_low = $6,
                          target_high = $7, unit = $8, evaluation_window_days = $9, start_date = $10,
                          deadline = $11, canonical_target = $12, update_time = now(), version = version + 1
                   WHERE user_id = $1 AND goal_id = $2 RETURNING *""",
                user_id,
                goal_id,
                columns["display_name"],
                columns["direction"],
                columns["target_value"],
                columns["target_low"],
                columns["target_high"],
                columns["unit"],
                columns["evaluation_window_days"],
                columns["start_date"],
                columns["deadline"],
                await self._engine.canonical_target(
                    user_id,
                    row["series_key"],
                    {name: columns[name] for name in TARGET_COLUMNS},
                    columns["unit"],
                ),
            )
            row = await self._engine.refresh_goal(conn, user_id, row, now=datetime.now(UTC))
            event = events_pb2.GoalUpdated(
                user=f"users/{user_id}", goal=request.goal.name, changed_fields=paths
            )
            event.goal = f"users/{user_id}/goals/{goal_id}"
            event.occur_time.FromDatetime(row["update_time"])
            await add_to_outbox(conn, schema=SCHEMA, producer=PRODUCER, user_id=user_id, message=event)
        return goal_store.goal_to_proto(row)

    async def DeleteGoal(
        self, request: goal_service_pb2.DeleteGoalRequest, context: Context
    ) -> empty_pb2.Empty:
        """Delete a goal; its insights stay."""
        user_id, goal_id = resolve_child(request.name, "goals")
        async with self._db.transaction(user_id=user_id) as conn:
            row = await goal_store.get(conn, user_id, goal_id)
            if row is None:
                raise not_found(request.name)
            if request.etag and request.etag != str(row["version"]):
                raise Aborted("the goal changed since it was read; fetch it again", reason="ETAG_MISMATCH")
            await conn.execute("DELETE FROM goals WHERE user_id = $1 AND goal_id = $2", user_id, goal_id)
            event = events_pb2.GoalDeleted(user=f"users/{user_id}", goal=f"users/{user_id}/goals/{goal_id}")
            event.occur_time.FromDatetime(datetime.now(UTC))
            await add_to_outbox(conn, schema=SCHEMA, producer=PRODUCER, user_id=user_id, message=event)
        return empty_pb2.Empty()


def setattr_from(target: goal_pb2.Goal, source: goal_pb2.Goal, path: str) -> None:
    """Copy one top-level field of ``source`` into ``target``."""
    value = getattr(source, path)
    if hasattr(value, "CopyFrom"):
        getattr(target, path).CopyFrom(value)
    else:
        setattr(target, path, value)
