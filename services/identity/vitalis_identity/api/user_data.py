"""Identity's own part of data-subject rights: its UserDataService and the in-process equivalent."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime

from google.protobuf import json_format
from google.protobuf.message import Message

from vitalis.identity.v1 import user_data_service_pb2, user_data_service_pb2_grpc
from vitalis_identity.api.context import Context
from vitalis_identity.api.convert import user_to_proto
from vitalis_identity.api.messages import (
    audit_entry_to_proto,
    consent_event_to_proto,
    consent_to_proto,
    grant_to_proto,
    preferences_to_proto,
    session_to_proto,
)
from vitalis_identity.data_rights import ArchiveEntry
from vitalis_identity.listing import ListQuery
from vitalis_identity.profiles import user_not_found
from vitalis_identity.store import SessionStore, UserStore
from vitalis_identity.store_people import PreferencesStore
from vitalis_identity.store_records import AuditStore, ConsentStore, GrantStore
from vitalis_identity.throttle import RedisSignInThrottle
from vitalis_runtime.db import Database
from vitalis_runtime.errors import InvalidArgument

CHUNK_BYTES = 1024 * 1024
EVERYTHING = 1_000_000


def _json(message: Message) -> bytes:
    return json_format.MessageToJson(message, indent=2).encode()


def _jsonl(messages: Sequence[Message]) -> bytes:
    return b"".join(json_format.MessageToJson(m, indent=None).encode() + b"\n" for m in messages)


class IdentityUserData:
    """Everything identity holds about a user, as archive entries; and its erasure."""

    def __init__(self, db: Database, *, throttle: RedisSignInThrottle | None = None) -> None:
        self._db = db
        self._throttle = throttle
        self._users = UserStore()
        self._preferences = PreferencesStore()
        self._consents = ConsentStore()
        self._sessions = SessionStore()
        self._grants = GrantStore()
        self._audit = AuditStore()

    async def export(self, user_id: uuid.UUID) -> list[ArchiveEntry]:
        """``profile.json``, ``preferences.json`` and one ``.jsonl`` per collection."""
        now = datetime.now(UTC)
        async with self._db.transaction(user_id=user_id, readonly=True) as conn:
            user = await self._users.get_user(conn, user_id)
            if user is None:
                raise user_not_found(f"users/{user_id}")
            preferences = await self._preferences.get(conn, user_id)
            consents = await self._consents.list_page(conn, user_id, ListQuery(), EVERYTHING)
            events = await self._consents.list_events(conn, user_id, ListQuery(), EVERYTHING)
            sessions = await self._sessions.list_sessions(conn, user_id, ListQuery(), EVERYTHING)
            grants = await self._grants.all_for(conn, user_id)
            audit = await self._audit.list_page(conn, user_id, ListQuery(), EVERYTHING, descending=False)
        entries = [ArchiveEntry("profile.json", "application/json", _json(user_to_proto(user)))]
        if preferences is not None:
            entries.append(
                ArchiveEntry("preferences.json", "application/json", _json(preferences_to_proto(preferences)))
            )
        ndjson = "application/x-ndjson"
        entries += [
            ArchiveEntry("consents.jsonl", ndjson, _jsonl([consent_to_proto(c) for c in consents])),
            ArchiveEntry("consent_events.jsonl", ndjson, _jsonl([consent_event_to_proto(e) for e in events])),
            ArchiveEntry(
                "sessions.jsonl",
                ndjson,
                _jsonl([session_to_proto(s, now=now, current=None) for s in sessions]),
            ),
            ArchiveEntry("share_grants.jsonl", ndjson, _jsonl([grant_to_proto(g, now=now) for g in grants])),
            ArchiveEntry("audit_log.jsonl", ndjson, _jsonl([audit_entry_to_proto(a) for a in audit])),
        ]
        return entries

    async def erase(self, user_id: uuid.UUID) -> int:
        """Erase the user, their account if they were its only member, and everything below them.

        The user's failed sign-in count in Redis goes too.
        """
        async with self._db.transaction(user_id=user_id) as conn:
            user = await self._users.get_user(conn, user_id)
            erased = await self._users.erase_user(conn, user_id)
        if user is not None and self._throttle is not None and await self._throttle.forget(user.email):
            erased += 1
        return erased


def _user_of(name: str) -> uuid.UUID:
    prefix, _, ident = name.partition("/")
    try:
        if prefix == "users":
            return uuid.UUID(ident)
    except ValueError:
        pass
    raise InvalidArgument.for_field("user", f"{name!r} must name a user by UUID, users/{{uuid}}")


class UserDataServicer(user_data_service_pb2_grpc.UserDataServiceServicer):
    """Identity's UserDataService (service callers only)."""

    def __init__(self, data: IdentityUserData) -> None:
        self._data = data

    async def ExportUserData(
        self, request: user_data_service_pb2.ExportUserDataRequest, context: Context
    ) -> AsyncIterator[user_data_service_pb2.ExportUserDataResponse]:
        """Stream every entry in chunks of at most 1 MiB."""
        for entry in await self._data.export(_user_of(request.user)):
            for start in range(0, max(len(entry.data), 1), CHUNK_BYTES):
                yield user_data_service_pb2.ExportUserDataResponse(
                    entry_path=entry.path,
                    content_type=entry.content_type,
                    data=entry.data[start : start + CHUNK_BYTES],
                )

    async def EraseUserData(
        self, request: user_data_service_pb2.EraseUserDataRequest, context: Context
    ) -> user_data_service_pb2.EraseUserDataResponse:
        """Erase identity's data of the user (idempotent)."""
        erased = await self._data.erase(_user_of(request.user))
        return user_data_service_pb2.EraseUserDataResponse(erased_item_count=erased)
