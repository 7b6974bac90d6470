"""The sessions a user can list and revoke ("signed-in devices")."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from vitalis_identity import events
from vitalis_identity.domain.filters import Comparison
from vitalis_identity.domain.sessions import RevokeReason, Session
from vitalis_identity.listing import FilterField, ListQuery
from vitalis_identity.store import SessionStore
from vitalis_runtime.db import Database
from vitalis_runtime.errors import NotFound


def session_not_found(name: str) -> NotFound:
    """The answer for a session that does not exist or is not the caller's."""
    return NotFound(f"session {name!r} was not found", reason="SESSION_NOT_FOUND", metadata={"name": name})


class Sessions:
    """Lists, reads and revokes sessions."""

    def __init__(self, db: Database, *, store: SessionStore | None = None) -> None:
        self._db = db
        self._store = store or SessionStore()

    async def get(self, user_id: uuid.UUID, session_id: uuid.UUID) -> Session:
        """One session."""
        async with self._db.transaction(user_id=user_id, readonly=True) as conn:
            found = await self._store.get_session(conn, user_id, session_id)
        if found is None:
            raise session_not_found(f"users/{user_id}/sessions/{session_id}")
        return found

    async def revoke(self, user_id: uuid.UUID, session_id: uuid.UUID) -> Session:
        """Revoke a session; an ended one is returned unchanged."""
        async with self._db.transaction(user_id=user_id) as conn:
            found = await self._store.get_session(conn, user_id, session_id)
            if found is not None and found.state(datetime.now(UTC)) == "active":
                await self._store.revoke_session(conn, user_id, session_id, RevokeReason.USER_REVOKED.value)
                await events.session_revoked(conn, user_id, session_id, RevokeReason.USER_REVOKED.value)
                found = await self._store.get_session(conn, user_id, session_id)
        if found is None:
            raise session_not_found(f"users/{user_id}/sessions/{session_id}")
        return found

    async def list_page(
        self,
        user_id: uuid.UUID,
        comparisons: Sequence[Comparison],
        fields: Mapping[str, FilterField],
        cursor: Mapping[str, Any],
        limit: int,
    ) -> list[Session]:
        """A page of sessions, most recently refreshed first."""
        query = ListQuery()
        query.apply_filter(comparisons, fields)
        query.page_after(cursor, "coalesce(last_refresh_time, create_time)", "session_id", descending=True)
        async with self._db.transaction(user_id=user_id, readonly=True) as conn:
            return await self._store.list_sessions(conn, user_id, query, limit)
