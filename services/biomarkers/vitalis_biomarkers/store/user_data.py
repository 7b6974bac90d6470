"""SQL for data-subject rights: erasing everything of one user."""

from __future__ import annotations

import uuid
from typing import Final

import asyncpg

# Children before parents; markers also go with their panels, but are counted on their own.
USER_TABLES: Final = (
    "markers",
    "panels",
    "scores",
    "body_composition_scans",
    "epigenetic_tests",
    "request_results",
)


class UserDataStore:
    """Deletes a user's rows inside the caller's transaction (acting as that user)."""

    async def erase(self, conn: asyncpg.Connection, user_id: uuid.UUID) -> int:
        """Delete every row of the user, and their unpublished events; return how many rows went."""
        erased = 0
        for table in USER_TABLES:
            status: str = await conn.execute(f"DELETE FROM {table} WHERE user_id = $1", user_id)
            erased += int(status.rsplit(" ", 1)[-1])
        status = await conn.execute(
            "DELETE FROM outbox WHERE event_user_id = $1 AND published_at IS NULL", user_id
        )
        return erased + int(status.rsplit(" ", 1)[-1])
