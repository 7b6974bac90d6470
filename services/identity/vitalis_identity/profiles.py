"""A user's profile and preferences: reading, updating, soft delete and restore."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg

from vitalis_identity import events
from vitalis_identity.audit import AuditTrail
from vitalis_identity.domain.audit import AuditAction
from vitalis_identity.domain.jobs import ErasureTrigger
from vitalis_identity.domain.preferences import Preferences, apply_preferences_update
from vitalis_identity.domain.users import User, apply_profile_update
from vitalis_identity.store import UserStore
from vitalis_identity.store_jobs import JobStore
from vitalis_identity.store_people import AccountStore, PreferencesStore
from vitalis_runtime.db import Database
from vitalis_runtime.errors import Aborted, FailedPrecondition, NotFound


def user_not_found(name: str) -> NotFound:
    """The one answer for a user that does not exist or that the caller may not see."""
    return NotFound(f"user {name!r} was not found", reason="USER_NOT_FOUND", metadata={"name": name})


async def schedule_erasure(
    jobs: JobStore, conn: asyncpg.Connection, user_id: uuid.UUID, when: datetime
) -> None:
    """Queue the erasure that runs when a soft-deleted user's grace period ends."""
    await jobs.create(
        conn, "erasure", user_id, request_id=None, trigger=ErasureTrigger.DELETION_EXPIRED, run_after=when
    )


def stale_etag(what: str) -> Aborted:
    """The answer to a conditional change whose etag no longer matches."""
    return Aborted(
        f"the {what} was changed since it was read; fetch it again and retry", reason="ETAG_MISMATCH"
    )


class Profiles:
    """Profiles and preferences, read and written under the owner's row-level security."""

    def __init__(
        self,
        db: Database,
        audit: AuditTrail,
        *,
        deletion_grace: timedelta = timedelta(days=30),
        users: UserStore | None = None,
        preferences: PreferencesStore | None = None,
        accounts: AccountStore | None = None,
        today: Callable[[], date] = lambda: datetime.now(UTC).date(),
    ) -> None:
        self._db = db
        self._audit = audit
        self._grace = deletion_grace
        self._users = users or UserStore()
        self._preferences = preferences or PreferencesStore()
        self._accounts = accounts or AccountStore()
        self._jobs = JobStore()
        self._today = today

    async def get(self, user_id: uuid.UUID, *, share_grant: str = "") -> User:
        """The user's profile (``share_grant`` names the grant a grantee reads it under)."""
        async with self._db.transaction(user_id=user_id) as conn:
            user = await self._users.get_user(conn, user_id)
            if user is not None and share_grant:
                await self._audit.record(conn, user_id, AuditAction.READ, user.name, share_grant=share_grant)
        if user is None:
            raise user_not_found(f"users/{user_id}")
        return user

    async def update(
        self, user_id: uuid.UUID, changes: Mapping[str, Any], paths: Iterable[str], *, etag: str
    ) -> User:
        """Apply the masked fields; a stale ``etag`` is ABORTED."""
        paths = list(paths)
        async with self._db.transaction(user_id=user_id) as conn:
            current = await self._users.get_user(conn, user_id)
            if current is None or current.deleted:
                raise user_not_found(f"users/{user_id}")
            if etag and etag != current.etag:
                raise stale_etag("user")
            updated = apply_profile_update(current, changes, paths, today=self._today())
            saved = await self._users.save_profile(conn, updated, expected_version=current.version)
            if saved is None:
                raise Aborted("the user was changed concurrently; retry", reason="CONCURRENT_UPDATE")
            await events.user_updated(conn, saved, paths)
            await self._audit.record(conn, user_id, AuditAction.UPDATE, saved.name)
        return saved

    async def delete(self, user_id: uuid.UUID, *, etag: str) -> User:
        """Soft-delete the user; erased for good when the grace period ends."""
        async with self._db.transaction(user_id=user_id) as conn:
            current = await self._users.get_user(conn, user_id)
            if current is None:
                raise user_not_found(f"users/{user_id}")
            if etag and etag != current.etag:
                raise stale_etag("user")
            if current.deleted:
                raise FailedPrecondition("the user is already deleted", reason="USER_ALREADY_DELETED")
            account = await self._accounts.get(conn, current.account_id)
            if account is not None and account.owner_user_id == user_id and account.user_count > 1:
                raise FailedPrecondition(
                    "this user owns an account with other users; delete the account instead",
                    reason="OWNS_SHARED_ACCOUNT",
                )
            now = datetime.now(UTC)
            saved = await self._users.set_deleted(
                conn,
                user_id,
                expected_version=current.version,
                delete_time=now,
                expire_time=now + self._grace,
            )
            if saved is None:
                raise Aborted("the user was changed concurrently; retry", reason="CONCURRENT_UPDATE")
            await schedule_erasure(self._jobs, conn, user_id, now + self._grace)
            await events.user_deleted(conn, saved)
            await self._audit.record(conn, user_id, AuditAction.DELETE, saved.name)
        return saved

    async def undelete(self, user_id: uuid.UUID, *, etag: str) -> User:
        """Restore a soft-deleted user within the grace period."""
        async with self._db.transaction(user_id=user_id) as conn:
            current = await self._users.get_user(conn, user_id)
            if current is None:
                raise user_not_found(f"users/{user_id}")
            if etag and etag != current.etag:
                raise stale_etag("user")
            if not current.deleted:
                raise FailedPrecondition("the user is not deleted", reason="USER_NOT_DELETED")
            if current.expire_time is not None and current.expire_time <= datetime.now(UTC):
                raise user_not_found(f"users/{user_id}")
            saved = await self._users.set_deleted(
                conn, user_id, expected_version=current.version, delete_time=None, expire_time=None
            )
            if saved is None:
                raise Aborted("the user was changed concurrently; retry", reason="CONCURRENT_UPDATE")
            await self._jobs.cancel_scheduled_erasure(conn, user_id)
            await events.user_undeleted(conn, user_id)
            await self._audit.record(conn, user_id, AuditAction.UPDATE, saved.name)
        return saved

    async def get_preferences(self, user_id: uuid.UUID) -> Preferences:
        """The user's preferences."""
        async with self._db.transaction(user_id=user_id, readonly=True) as conn:
            found = await self._preferences.get(conn, user_id)
        if found is None:
            raise NotFound(f"'users/{user_id}/preferences' was not found", reason="USER_NOT_FOUND")
        return found

    async def update_preferences(
        self, user_id: uuid.UUID, changes: Mapping[str, Any], paths: Iterable[str], *, etag: str
    ) -> Preferences:
        """Apply the masked fields; a stale ``etag`` is ABORTED."""
        paths = list(paths)
        async with self._db.transaction(user_id=user_id) as conn:
            current = await self._preferences.get(conn, user_id)
            if current is None:
                raise NotFound(f"'users/{user_id}/preferences' was not found", reason="USER_NOT_FOUND")
            if etag and etag != current.etag:
                raise stale_etag("preferences")
            updated = apply_preferences_update(current, changes, paths)
            saved = await self._preferences.save(
                conn, replace(updated, user_id=user_id), expected_version=current.version
            )
            if saved is None:
                raise Aborted("the preferences were changed concurrently; retry", reason="CONCURRENT_UPDATE")
            await events.preferences_updated(conn, user_id, paths)
            await self._audit.record(conn, user_id, AuditAction.UPDATE, saved.name)
        return saved
