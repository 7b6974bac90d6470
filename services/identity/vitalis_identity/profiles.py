"""Reading and updating a user's profile."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime
from typing import Any

from vitalis_identity.domain.users import User, apply_profile_update
from vitalis_identity.store import UserStore
from vitalis_runtime.db import Database
from vitalis_runtime.errors import Aborted, NotFound


def user_not_found(name: str) -> NotFound:
    """The one answer for a user that does not exist or that the caller may not see."""
    return NotFound(f"user {name!r} was not found", reason="USER_NOT_FOUND", metadata={"name": name})


class Profiles:
    """Profiles, read and written under the owner's row-level security."""

    def __init__(
        self,
        db: Database,
        *,
        users: UserStore | None = None,
        today: Callable[[], date] = lambda: datetime.now(UTC).date(),
    ) -> None:
        self._db = db
        self._users = users or UserStore()
        self._today = today

    async def get(self, user_id: uuid.UUID) -> User:
        """The user's profile."""
        async with self._db.transaction(user_id=user_id, readonly=True) as conn:
            user = await self._users.get_user(conn, user_id)
        if user is None:
            raise user_not_found(f"users/{user_id}")
        return user

    async def update(
        self, user_id: uuid.UUID, changes: Mapping[str, Any], paths: Iterable[str], *, etag: str
    ) -> User:
        """Apply the masked fields; a stale ``etag`` is ABORTED."""
        async with self._db.transaction(user_id=user_id) as conn:
            current = await self._users.get_user(conn, user_id)
            if current is None:
                raise user_not_found(f"users/{user_id}")
            if etag and etag != current.etag:
                raise Aborted(
                    "the user was changed since it was read; fetch it again and retry",
                    reason="ETAG_MISMATCH",
                )
            updated = apply_profile_update(current, changes, paths, today=self._today())
            saved = await self._users.save_profile(conn, updated, expected_version=current.version)
        if saved is None:
            raise Aborted("the user was changed concurrently; retry", reason="CONCURRENT_UPDATE")
        return saved
