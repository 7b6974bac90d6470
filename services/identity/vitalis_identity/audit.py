"""The audit log: recorded by identity's own changes and by every service through the internal API."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg

from vitalis_identity.domain.audit import AuditAction, AuditEntry, new_entry_id
from vitalis_identity.domain.filters import Comparison
from vitalis_identity.listing import FilterField, ListQuery
from vitalis_identity.store_records import AuditStore
from vitalis_runtime.auth import optional_principal
from vitalis_runtime.db import Database
from vitalis_runtime.request_context import current_request

SERVICE_NAME = "identity"
MAX_BATCH = 1000


def actor_name() -> str:
    """Who acts in the current request: ``users/{user}``, ``services/{service}`` or ``services/identity``."""
    principal = optional_principal()
    if principal is None:
        return f"services/{SERVICE_NAME}"
    if principal.service is not None:
        return f"services/{principal.service}"
    return f"users/{principal.user_id}"


class AuditTrail:
    """Appends entries and lists a user's entries."""

    def __init__(self, db: Database, *, store: AuditStore | None = None) -> None:
        self._db = db
        self._store = store or AuditStore()

    async def record(
        self,
        conn: asyncpg.Connection,
        user_id: uuid.UUID,
        action: AuditAction,
        resource: str,
        *,
        share_grant: str = "",
        user_agent: str = "",
        client_ip: str = "",
        actor: str = "",
    ) -> None:
        """Append one entry about ``user_id`` in the caller's transaction (acting for that user).

        ``actor`` defaults to the verified caller; sign-in names the user who proved who they are.
        """
        request = current_request()
        now = datetime.now(UTC)
        entry = AuditEntry(
            user_id=user_id,
            occur_time=now,
            actor=actor or actor_name(),
            action=action,
            service=SERVICE_NAME,
            method=request.method if request else "",
            resource=resource,
            insert_id=uuid.uuid4().hex,
            share_grant=share_grant,
            request_id=request.request_id if request else "",
            user_agent=user_agent,
            client_ip=client_ip,
            entry_id=new_entry_id(now),
        )
        await self._store.append(conn, [entry])

    async def write(self, entries: Sequence[AuditEntry]) -> tuple[int, int]:
        """Append a batch about any users atomically; (written, duplicates)."""
        by_user: dict[uuid.UUID, list[AuditEntry]] = defaultdict(list)
        for entry in entries:
            by_user[entry.user_id].append(entry)
        written = 0
        async with self._db.transaction(user_id=None) as conn:
            for user_id, group in by_user.items():
                await self._store.act_for(conn, user_id)
                written += await self._store.append(conn, group)
        return written, len(entries) - written

    async def list_page(
        self,
        user_id: uuid.UUID,
        comparisons: Sequence[Comparison],
        fields: Mapping[str, FilterField],
        cursor: Mapping[str, Any],
        limit: int,
        *,
        descending: bool,
    ) -> list[AuditEntry]:
        """A page of the user's entries."""
        query = ListQuery()
        query.apply_filter(comparisons, fields)
        query.page_after(cursor, "occur_time", "entry_id", descending=descending)
        async with self._db.transaction(user_id=user_id, readonly=True) as conn:
            return await self._store.list_page(conn, user_id, query, limit, descending=descending)
