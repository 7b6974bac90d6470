"""Consents: granted and revoked with a kept history."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from vitalis_identity import events
from vitalis_identity.audit import AuditTrail
from vitalis_identity.domain.audit import AuditAction
from vitalis_identity.domain.consents import Consent, ConsentEvent, ConsentType, validate_version
from vitalis_identity.domain.filters import Comparison
from vitalis_identity.listing import FilterField, ListQuery
from vitalis_identity.profiles import stale_etag
from vitalis_identity.store_records import ConsentStore
from vitalis_runtime.db import Database
from vitalis_runtime.errors import NotFound


def consent_not_found(name: str) -> NotFound:
    """The answer for a consent never granted or not the caller's."""
    return NotFound(f"consent {name!r} was not found", reason="CONSENT_NOT_FOUND", metadata={"name": name})


class Consents:
    """A user's consents."""

    def __init__(self, db: Database, audit: AuditTrail, *, store: ConsentStore | None = None) -> None:
        self._db = db
        self._audit = audit
        self._store = store or ConsentStore()

    async def get(self, user_id: uuid.UUID, consent_type: ConsentType) -> Consent:
        """The current consent of one type."""
        async with self._db.transaction(user_id=user_id) as conn:
            found = await self._store.get(conn, user_id, consent_type)
        if found is None:
            raise consent_not_found(f"users/{user_id}/consents/{consent_type.value}")
        return found

    async def grant(
        self,
        user_id: uuid.UUID,
        consent_type: ConsentType,
        version: str,
        *,
        request_id: str | None,
        user_agent: str,
        client_ip: str,
    ) -> Consent:
        """Grant (or re-grant at a new version); the version already granted records nothing."""
        version = validate_version(version)
        async with self._db.transaction(user_id=user_id) as conn:
            current = await self._store.get(conn, user_id, consent_type)
            if request_id and await self._store.event_for_request(conn, user_id, request_id) and current:
                return current
            if current is not None and current.granted and current.version == version:
                return current
            now = datetime.now(UTC)
            consent = Consent(user_id, consent_type, True, version, now, None, now, 0)
            saved = await self._store.record(
                conn,
                consent,
                action="grant",
                user_agent=user_agent,
                client_ip=client_ip,
                request_id=request_id,
            )
            await events.consent_changed(conn, saved)
            await self._audit.record(conn, user_id, AuditAction.PERMISSION_CHANGE, saved.name)
            return saved

    async def revoke(
        self, user_id: uuid.UUID, consent_type: ConsentType, *, etag: str, user_agent: str, client_ip: str
    ) -> Consent:
        """Withdraw a consent; revoking a revoked one returns it unchanged."""
        async with self._db.transaction(user_id=user_id) as conn:
            current = await self._store.get(conn, user_id, consent_type)
            if current is None:
                raise consent_not_found(f"users/{user_id}/consents/{consent_type.value}")
            if etag and etag != current.etag:
                raise stale_etag("consent")
            if not current.granted:
                return current
            revoked = replace(current, granted=False, revoke_time=datetime.now(UTC))
            saved = await self._store.record(
                conn, revoked, action="revoke", user_agent=user_agent, client_ip=client_ip, request_id=None
            )
            await events.consent_changed(conn, saved)
            await self._audit.record(conn, user_id, AuditAction.PERMISSION_CHANGE, saved.name)
            return saved

    async def list_page(self, user_id: uuid.UUID, offset: int, limit: int) -> list[Consent]:
        """A page of current consents in the order of their types (at most one per type)."""
        async with self._db.transaction(user_id=user_id, readonly=True) as conn:
            every = await self._store.list_page(conn, user_id, ListQuery(), len(ConsentType))
        order = list(ConsentType)
        ranked = sorted(every, key=lambda consent: order.index(consent.type))
        return ranked[offset : offset + limit + 1]

    async def list_events(
        self,
        user_id: uuid.UUID,
        consent_type: ConsentType | None,
        *,
        comparisons: Sequence[Comparison],
        fields: Mapping[str, FilterField],
        cursor: Mapping[str, Any],
        limit: int,
    ) -> list[ConsentEvent]:
        """A page of the history, newest first, of one type or (``None``) every type."""
        query = ListQuery()
        if consent_type is not None:
            query.where("consent_type = {}", consent_type.value)
        query.apply_filter(comparisons, fields)
        query.page_after(cursor, "occur_time", "event_id", descending=True)
        async with self._db.transaction(user_id=user_id, readonly=True) as conn:
            return await self._store.list_events(conn, user_id, query, limit)
