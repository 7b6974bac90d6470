"""Fixtures of the runtime tests: an application role, a migrated schema, pools and Redis clients.

Roles are cluster-wide, so each test creates its own uniquely named role and drops it (with the
privileges it holds in the test's database) before the database itself is dropped.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import redis.asyncio

from vitalis_runtime.db import Database
from vitalis_runtime.migrations import Migration, migrate

NOTES_MIGRATION = Migration.from_sql(
    1,
    "notes",
    """
    CREATE TABLE notes (
        user_id uuid NOT NULL,
        note_id uuid NOT NULL DEFAULT gen_random_uuid(),
        body text NOT NULL,
        details jsonb NOT NULL DEFAULT '{}'::jsonb,
        PRIMARY KEY (user_id, note_id)
    );
    ALTER TABLE notes ENABLE ROW LEVEL SECURITY;
    ALTER TABLE notes FORCE ROW LEVEL SECURITY;
    CREATE POLICY notes_owner ON notes
        USING (user_id = NULLIF(current_setting('app.current_user_id', true), '')::uuid)
        WITH CHECK (user_id = NULLIF(current_setting('app.current_user_id', true), '')::uuid);
    """,
)


@dataclass(frozen=True)
class MigratedSchema:
    """A schema migrated with the runtime's tables and ``notes`` (a user-owned table)."""

    admin_url: str
    schema: str
    app_role: str


@pytest.fixture
async def migrated(admin_database_url: str, app_role: str) -> MigratedSchema:
    """The ``app`` schema of the test's database, migrated."""
    await migrate(admin_database_url, schema="app", app_role=app_role, migrations=[NOTES_MIGRATION])
    return MigratedSchema(admin_url=admin_database_url, schema="app", app_role=app_role)


@pytest.fixture
async def app_db(migrated: MigratedSchema) -> AsyncIterator[Database]:
    """A pool working as the application role (superuser login, then ``SET ROLE``)."""
    db = await Database.connect(migrated.admin_url, role=migrated.app_role, max_size=4)
    yield db
    await db.close()


@pytest.fixture
async def redis_client(redis_url: str, key_prefix: str) -> AsyncIterator[redis.asyncio.Redis]:
    """A bytes-returning Redis client; the test's keys (under ``key_prefix``) are deleted afterwards."""
    client = redis.asyncio.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=2)
    yield client
    async for key in client.scan_iter(match=f"{key_prefix}:*"):
        await client.delete(key)
    await client.aclose()
