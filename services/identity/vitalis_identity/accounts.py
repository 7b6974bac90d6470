"""Accounts: read by members, changed, deleted and restored by the owner, tiered by billing."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from vitalis_identity import events
from vitalis_identity.audit import AuditTrail
from vitalis_identity.domain.accounts import Account, AccountTier, apply_account_update
from vitalis_identity.domain.audit import AuditAction
from vitalis_identity.profiles import schedule_erasure, stale_etag
from vitalis_identity.store import UserStore
from vitalis_identity.store_jobs import JobStore
from vitalis_identity.store_people import AccountStore
from vitalis_runtime.db import Database
from vitalis_runtime.errors import Aborted, FailedPrecondition, NotFound, PermissionDenied


def account_not_found(account_id: uuid.UUID | str) -> NotFound:
    """The one answer for an account that does not exist or that the caller does not belong to."""
    name = f"accounts/{account_id}"
    return NotFound(f"account {name!r} was not found", reason="ACCOUNT_NOT_FOUND", metadata={"name": name})


class Accounts:
    """The billing entity of users."""

    def __init__(
        self,
        db: Database,
        audit: AuditTrail,
        *,
        deletion_grace: timedelta = timedelta(days=30),
        store: AccountStore | None = None,
        users: UserStore | None = None,
    ) -> None:
        self._db = db
        self._audit = audit
        self._grace = deletion_grace
        self._store = store or AccountStore()
        self._users = users or UserStore()
        self._jobs = JobStore()

    async def get(self, caller: uuid.UUID, account_id: uuid.UUID) -> Account:
        """An account the caller belongs to."""
        async with self._db.transaction(user_id=caller, readonly=True) as conn:
            account = await self._store.get(conn, account_id)
        if account is None:
            raise account_not_found(account_id)
        return account

    async def update(
        self,
        caller: uuid.UUID,
        account_id: uuid.UUID,
        changes: Mapping[str, Any],
        paths: Iterable[str],
        *,
        etag: str,
    ) -> Account:
        """Change the display name or billing e-mail (owner only)."""
        async with self._db.transaction(user_id=caller) as conn:
            current = await self._owned(conn, caller, account_id, etag)
            updated = apply_account_update(current, changes, paths)
            return await self._save(conn, caller, updated, current.version, AuditAction.UPDATE)

    async def delete(self, caller: uuid.UUID, account_id: uuid.UUID, *, etag: str) -> Account:
        """Soft-delete the account and every user in it."""
        async with self._db.transaction(user_id=caller) as conn:
            current = await self._owned(conn, caller, account_id, etag)
            if current.delete_time is not None:
                raise FailedPrecondition("the account is already deleted", reason="ACCOUNT_ALREADY_DELETED")
            now = datetime.now(UTC)
            expire = now + self._grace
            await self._set_members_deleted(conn, caller, account_id, now, expire)
            return await self._save(
                conn,
                caller,
                replace(current, delete_time=now, expire_time=expire),
                current.version,
                AuditAction.DELETE,
            )

    async def undelete(self, caller: uuid.UUID, account_id: uuid.UUID, *, etag: str) -> Account:
        """Restore a soft-deleted account and the users deleted with it."""
        async with self._db.transaction(user_id=caller) as conn:
            current = await self._owned(conn, caller, account_id, etag)
            if current.delete_time is None:
                raise FailedPrecondition("the account is not deleted", reason="ACCOUNT_NOT_DELETED")
            await self._set_members_deleted(conn, caller, account_id, None, None)
            return await self._save(
                conn,
                caller,
                replace(current, delete_time=None, expire_time=None),
                current.version,
                AuditAction.UPDATE,
            )

    async def set_tier(
        self, acting_for: uuid.UUID, account_id: uuid.UUID, tier: AccountTier, *, etag: str
    ) -> Account:
        """Set the subscription tier (the billing system's call)."""
        async with self._db.transaction(user_id=acting_for) as conn:
            await self._store.reveal(conn, account_id)
            current = await self._store.get(conn, account_id)
            if current is None:
                raise account_not_found(account_id)
            if etag and etag != current.etag:
                raise stale_etag("account")
            saved = await self._store.save(
                conn, replace(current, tier=tier), expected_version=current.version
            )
            if saved is None:
                raise Aborted("the account was changed concurrently; retry", reason="CONCURRENT_UPDATE")
            if saved.tier is not current.tier:
                await events.tier_changed(conn, saved, current.tier)
            return saved

    async def _owned(
        self, conn: asyncpg.Connection, caller: uuid.UUID, account_id: uuid.UUID, etag: str
    ) -> Account:
        current = await self._store.get(conn, account_id)
        if current is None:
            raise account_not_found(account_id)
        if current.owner_user_id != caller:
            raise PermissionDenied("only the account's owner may change it", reason="NOT_ACCOUNT_OWNER")
        if etag and etag != current.etag:
            raise stale_etag("account")
        return current

    async def _set_members_deleted(
        self,
        conn: asyncpg.Connection,
        caller: uuid.UUID,
        account_id: uuid.UUID,
        when: datetime | None,
        expire: datetime | None,
    ) -> None:
        # Every member is changed acting as that member, so row-level security applies to each row.
        for member in await self._store.member_ids(conn, account_id):
            await conn.execute("SELECT set_config('app.current_user_id', $1, true)", str(member))
            user = await self._users.get_user(conn, member)
            if user is not None:
                await self._users.set_deleted(
                    conn, member, expected_version=user.version, delete_time=when, expire_time=expire
                )
                if expire is not None:
                    await schedule_erasure(self._jobs, conn, member, expire)
                else:
                    await self._jobs.cancel_scheduled_erasure(conn, member)
        await conn.execute("SELECT set_config('app.current_user_id', $1, true)", str(caller))

    async def _save(
        self, conn: asyncpg.Connection, caller: uuid.UUID, account: Account, version: int, action: AuditAction
    ) -> Account:
        saved = await self._store.save(conn, account, expected_version=version)
        if saved is None:
            raise Aborted("the account was changed concurrently; retry", reason="CONCURRENT_UPDATE")
        await self._audit.record(conn, caller, action, saved.name)
        return saved
