"""vitalis.insights.v1.UserDataService: export and erase everything insights holds about a user."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Final

import grpc
import redis.asyncio
from google.protobuf import json_format
from google.protobuf.message import Message

from vitalis.insights.v1 import user_data_service_pb2, user_data_service_pb2_grpc
from vitalis_insights.api.coach import conversation_to_proto, message_to_proto
from vitalis_insights.api.narratives import narrative_to_proto
from vitalis_insights.notifier import ChangeNotifier
from vitalis_insights.store.goals import goal_to_proto
from vitalis_insights.store.insights import alert_to_proto, insight_to_proto
from vitalis_runtime.db import Database
from vitalis_runtime.errors import InvalidArgument

CHUNK: Final = 1024 * 1024
ERASED_TABLES: Final = (
    "messages",
    "conversations",
    "narratives",
    "alerts",
    "insight_changes",
    "insights",
    "goals",
    "series_values",
)

Context = grpc.aio.ServicerContext[object, object]


def _user(name: str) -> uuid.UUID:
    prefix, _, ident = name.partition("/")
    invalid = InvalidArgument.for_field("user", "must be users/{user} with a user id (never users/me)")
    if prefix != "users":
        raise invalid
    try:
        return uuid.UUID(ident)
    except ValueError:
        raise invalid from None


class UserDataServicer(user_data_service_pb2_grpc.UserDataServiceServicer):
    """Data-subject rights on the insights service's data."""

    def __init__(self, db: Database, redis_client: redis.asyncio.Redis, notifier: ChangeNotifier) -> None:
        self._db = db
        self._redis = redis_client
        self._notifier = notifier

    async def ExportUserData(
        self, request: user_data_service_pb2.ExportUserDataRequest, context: Context
    ) -> AsyncIterator[user_data_service_pb2.ExportUserDataResponse]:
        """One JSON-lines entry per resource type."""
        user_id = _user(request.user)
        now = datetime.now(UTC)
        async with self._db.transaction(user_id=user_id, readonly=True) as conn:
            entries: dict[str, list[Message]] = {
                "insights.jsonl": [
                    insight_to_proto(row)
                    for row in await conn.fetch(
                        "SELECT * FROM insights WHERE user_id = $1 ORDER BY create_time", user_id
                    )
                ],
                "alerts.jsonl": [
                    alert_to_proto(row, now=now)
                    for row in await conn.fetch(
                        "SELECT * FROM alerts WHERE user_id = $1 ORDER BY create_time", user_id
                    )
                ],
                "goals.jsonl": [
                    goal_to_proto(row)
                    for row in await conn.fetch(
                        "SELECT * FROM goals WHERE user_id = $1 ORDER BY create_time", user_id
                    )
                ],
                "narratives.jsonl": [
                    narrative_to_proto(row)
                    for row in await conn.fetch(
                        "SELECT * FROM narratives WHERE user_id = $1 ORDER BY create_time", user_id
                    )
                ],
                "conversations.jsonl": [
                    conversation_to_proto(row)
                    for row in await conn.fetch(
                        "SELECT * FROM conversations WHERE user_id = $1 ORDER BY create_time", user_id
                    )
                ],
                "messages.jsonl": [
                    message_to_proto(row)
                    for row in await conn.fetch(
                        "SELECT * FROM messages WHERE user_id = $1 ORDER BY conversation_id, message_seq",
                        user_id,
                    )
                ],
            }
        for path, messages in entries.items():
            data = "".join(
                json.dumps(json_format.MessageToDict(message), separators=(",", ":")) + "\n"
                for message in messages
            ).encode()
            for offset in range(0, max(len(data), 1), CHUNK):
                yield user_data_service_pb2.ExportUserDataResponse(
                    entry_path=path, content_type="application/x-ndjson", data=data[offset : offset + CHUNK]
                )

    async def EraseUserData(
        self, request: user_data_service_pb2.EraseUserDataRequest, context: Context
    ) -> user_data_service_pb2.EraseUserDataResponse:
        """Delete every row of the user; wake and so end nothing else (watches find no more changes)."""
        user_id = _user(request.user)
        erased = 0
        async with self._db.transaction(user_id=user_id) as conn:
            for table in ERASED_TABLES:
                status: str = await conn.execute(f"DELETE FROM {table} WHERE user_id = $1", user_id)  # noqa: S608
                erased += int(status.rsplit(" ", 1)[-1])
            # Events about the user kept for replays, and any not yet published, go too.
            status = await conn.execute("DELETE FROM outbox WHERE event_user_id = $1", user_id)
            erased += int(status.rsplit(" ", 1)[-1])
        self._notifier.wake(user_id)
        return user_data_service_pb2.EraseUserDataResponse(erased_item_count=erased)
