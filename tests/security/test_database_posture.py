"""The database cannot leak another user's rows: the catalog says so, and so does a hostile load."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Callable

import asyncpg
import pytest

from vitalis_cli.platform import Platform
from vitalis_runtime.catalog import SERVICES, ServiceSpec
from vitalis_runtime.db import Database
from vitalis_runtime.migrations import Migration, assert_rls_posture, migrate

pytestmark = [pytest.mark.security, pytest.mark.timeout(300)]

USERS = 50
REQUESTS = 20_000
CONCURRENCY = 64
POOL_SIZE = 4
ROWS_PER_USER = 3

READINGS = Migration.from_sql(
    1,
    "readings",
    """
    CREATE TABLE readings (
        user_id uuid NOT NULL,
        reading_id int NOT NULL,
        PRIMARY KEY (user_id, reading_id)
    );
    ALTER TABLE readings ENABLE ROW LEVEL SECURITY;
    ALTER TABLE readings FORCE ROW LEVEL SECURITY;
    CREATE POLICY readings_owner ON readings
        USING (user_id = NULLIF(current_setting('app.current_user_id', true), '')::uuid)
        WITH CHECK (user_id = NULLIF(current_setting('app.current_user_id', true), '')::uuid);
    """,
)


@pytest.mark.parametrize("service", SERVICES, ids=lambda spec: spec.name)
async def test_every_user_owned_table_is_guarded_by_forced_row_level_security(
    platform: Platform, service: ServiceSpec, figure: Callable[[str, object, str, bool], None]
) -> None:
    problems = await assert_rls_posture(
        platform.config.database_url, schema=service.schema, app_role=service.app_role
    )
    figure(f"RLS posture problems in {service.name}", len(problems), "0", not problems)
    assert problems == []


async def test_the_application_roles_hold_no_dangerous_attributes(platform: Platform) -> None:
    conn = await asyncpg.connect(platform.config.database_url)
    try:
        rows = await conn.fetch(
            "SELECT rolname, rolsuper, rolbypassrls, rolcreaterole, rolcreatedb FROM pg_roles"
            " WHERE rolname = ANY($1::text[])",
            [spec.app_role for spec in SERVICES],
        )
    finally:
        await conn.close()
    assert {row["rolname"] for row in rows} == {spec.app_role for spec in SERVICES}
    for row in rows:
        for attribute in ("rolsuper", "rolbypassrls", "rolcreaterole", "rolcreatedb"):
            assert not row[attribute], (row["rolname"], attribute)


async def test_interleaved_cancelled_requests_over_a_small_pool_never_see_another_users_rows(
    admin_database_url: str, app_role: str, figure: Callable[[str, object, str, bool], None]
) -> None:
    await migrate(admin_database_url, schema="app", app_role=app_role, migrations=[READINGS])
    users = [uuid.uuid4() for _ in range(USERS)]
    admin = await asyncpg.connect(admin_database_url)
    try:
        await admin.copy_records_to_table(
            "readings",
            schema_name="app",
            records=[(user, n) for user in users for n in range(ROWS_PER_USER)],
        )
    finally:
        await admin.close()
    db = await Database.connect(admin_database_url, role=app_role, schema="app", max_size=POOL_SIZE)
    rng = random.Random(20_000)
    leaks = 0
    completed = 0
    cancelled = 0

    async def request(user: uuid.UUID | None) -> None:
        nonlocal leaks, completed
        async with db.transaction(user_id=user, readonly=True) as conn:
            if rng.random() < 0.3:
                await asyncio.sleep(0)
            owners = await conn.fetch("SELECT user_id FROM readings")
        expected = 0 if user is None else ROWS_PER_USER
        if len(owners) != expected or any(row["user_id"] != user for row in owners):
            leaks += 1
        completed += 1

    async def worker(share: int) -> None:
        nonlocal cancelled
        for _ in range(share):
            user = None if rng.random() < 0.02 else rng.choice(users)
            task = asyncio.create_task(request(user))
            if rng.random() < 0.1:
                await asyncio.sleep(0)
                task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                cancelled += 1

    try:
        await asyncio.gather(*(worker(REQUESTS // CONCURRENCY) for _ in range(CONCURRENCY)))
    finally:
        await db.close()
    attempted = (REQUESTS // CONCURRENCY) * CONCURRENCY
    figure(f"foreign rows seen in {attempted} requests", leaks, "0", leaks == 0)
    assert leaks == 0
    assert completed + cancelled == attempted
    assert cancelled > 0
