"""Share grants: created and revoked by owners, listed by both parties, checked by every service."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg

from vitalis_identity import events
from vitalis_identity.audit import AuditTrail
from vitalis_identity.domain.audit import AuditAction
from vitalis_identity.domain.filters import Comparison
from vitalis_identity.domain.grants import ShareGrant, ShareScope, validate_new_grant
from vitalis_identity.domain.users import User, normalize_email
from vitalis_identity.listing import FilterField, ListQuery
from vitalis_identity.profiles import stale_etag, user_not_found
from vitalis_identity.store import UserStore
from vitalis_identity.store_records import GrantStore
from vitalis_runtime.db import Database
from vitalis_runtime.errors import InvalidArgument, NotFound


def grant_not_found(name: str) -> NotFound:
    """The answer for a grant that does not exist or that the caller is no party to."""
    return NotFound(
        f"share grant {name!r} was not found", reason="SHARE_GRANT_NOT_FOUND", metadata={"name": name}
    )


class Sharing:
    """Share grants between users."""

    def __init__(
        self,
        db: Database,
        audit: AuditTrail,
        *,
        store: GrantStore | None = None,
        users: UserStore | None = None,
    ) -> None:
        self._db = db
        self._audit = audit
        self._store = store or GrantStore()
        self._users = users or UserStore()

    async def create(
        self,
        owner_id: uuid.UUID,
        *,
        grantee_id: uuid.UUID | None,
        grantee_email: str,
        scopes: Sequence[ShareScope],
        expire_time: datetime | None,
        note: str,
        request_id: str | None,
    ) -> ShareGrant:
        """Grant read access to ``scopes`` of the owner's data until ``expire_time``."""
        if (grantee_id is None) == (not grantee_email):
            raise InvalidArgument.for_field(
                "share_grant.grantee", "set exactly one of grantee and grantee_email"
            )
        now = datetime.now(UTC)
        scopes, expire_time, note = validate_new_grant(
            scopes=scopes, expire_time=expire_time, note=note, now=now
        )
        async with self._db.transaction(user_id=owner_id) as conn:
            if request_id:
                earlier = await self._store.by_request(conn, owner_id, request_id)
                if earlier is not None:
                    return earlier
            owner = await self._users.get_user(conn, owner_id)
            if owner is None:
                raise user_not_found(f"users/{owner_id}")
            if grantee_id is None:
                grantee_id = await self._users.find_user_id_by_email(conn, normalize_email(grantee_email))
                if grantee_id is None:
                    raise user_not_found(grantee_email)
            if grantee_id == owner_id:
                raise InvalidArgument.for_field("share_grant.grantee", "cannot be the owner of the data")
            grantee = await self._read_other_user(conn, owner_id, grantee_id)
            if grantee is None or grantee.deleted:
                raise user_not_found(f"users/{grantee_id}")
            grant = ShareGrant(
                owner_id=owner_id,
                grant_id=uuid.uuid4(),
                grantee_id=grantee_id,
                grantee_email=grantee.email,
                grantee_display_name=grantee.display_name,
                owner_display_name=owner.display_name,
                scopes=scopes,
                expire_time=expire_time,
                note=note,
                create_time=now,
                revoke_time=None,
                version=1,
            )
            saved = await self._store.create(conn, grant, request_id)
            await events.grant_created(conn, saved)
            await self._audit.record(conn, owner_id, AuditAction.PERMISSION_CHANGE, saved.name)
            return saved

    async def _read_other_user(
        self, conn: asyncpg.Connection, owner_id: uuid.UUID, other: uuid.UUID
    ) -> User | None:
        # The grantee's name is copied into the grant, read acting briefly as the grantee.
        await conn.execute("SELECT set_config('app.current_user_id', $1, true)", str(other))
        try:
            return await self._users.get_user(conn, other)
        finally:
            await conn.execute("SELECT set_config('app.current_user_id', $1, true)", str(owner_id))

    async def get(self, caller: uuid.UUID, owner_id: uuid.UUID, grant_id: uuid.UUID) -> ShareGrant:
        """A grant, to its owner or grantee."""
        async with self._db.transaction(user_id=caller, readonly=True) as conn:
            found = await self._store.get(conn, owner_id, grant_id)
        if found is None:
            raise grant_not_found(f"users/{owner_id}/shareGrants/{grant_id}")
        return found

    async def revoke(self, owner_id: uuid.UUID, grant_id: uuid.UUID, *, etag: str) -> ShareGrant:
        """Revoke a grant at once; an ended grant is returned unchanged."""
        async with self._db.transaction(user_id=owner_id) as conn:
            found = await self._store.get(conn, owner_id, grant_id)
            if found is None:
                raise grant_not_found(f"users/{owner_id}/shareGrants/{grant_id}")
            if etag and etag != found.etag:
                raise stale_etag("share grant")
            if found.revoke_time is not None or found.expire_time <= datetime.now(UTC):
                return found
            revoked = await self._store.revoke(conn, found)
            if revoked is None:
                raise stale_etag("share grant")
            await events.grant_revoked(conn, revoked)
            await self._audit.record(conn, owner_id, AuditAction.PERMISSION_CHANGE, revoked.name)
            return revoked

    async def list_page(
        self,
        caller: uuid.UUID,
        *,
        received: bool,
        comparisons: Sequence[Comparison],
        fields: Mapping[str, FilterField],
        cursor: Mapping[str, Any],
        limit: int,
    ) -> list[ShareGrant]:
        """A page of the grants the caller gave (or received), newest first."""
        query = ListQuery()
        query.where("grantee_id = {}" if received else "user_id = {}", caller)
        query.apply_filter(comparisons, fields)
        query.page_after(cursor, "create_time", "grant_id", descending=True)
        async with self._db.transaction(user_id=caller, readonly=True) as conn:
            return await self._store.list_page(conn, query, limit)

    async def check(self, owner_id: uuid.UUID, grantee_id: uuid.UUID, scope: ShareScope) -> ShareGrant | None:
        """The live grant letting ``grantee_id`` read ``scope`` of ``owner_id``'s data now, if any."""
        async with self._db.transaction(user_id=grantee_id, readonly=True) as conn:
            return await self._store.live_grant(conn, owner_id, grantee_id, scope)
