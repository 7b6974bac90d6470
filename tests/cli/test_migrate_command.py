"""``vitalis migrate`` against the real PostgreSQL: what it applies, and that it applies it once."""

from __future__ import annotations

import asyncio
import io

import asyncpg

from vitalis_cli.migrate_command import migration_url, run_migrate


def test_the_migration_url_prefers_the_dedicated_variable() -> None:
    assert migration_url({"DATABASE_URL": "a", "VITALIS_MIGRATE_DATABASE_URL": "b"}) == "b"
    assert migration_url({"DATABASE_URL": "a"}) == "a"
    assert migration_url({}) is None


async def test_migrating_a_service_prints_what_was_applied_and_then_that_it_is_up_to_date(
    admin_database_url: str,
) -> None:
    environ = {"DATABASE_URL": admin_database_url}
    first, second = io.StringIO(), io.StringIO()

    assert await asyncio.wait_for(run_migrate(["identity"], environ=environ, out=first), timeout=60) == 0
    assert await asyncio.wait_for(run_migrate(["identity"], environ=environ, out=second), timeout=60) == 0

    assert first.getvalue().startswith("identity: applied 0001_outbox, 0002_inbox, 0001_")
    assert second.getvalue() == "identity: up to date\n"
    conn = await asyncpg.connect(admin_database_url)
    try:
        schemas = {row["nspname"] for row in await conn.fetch("SELECT nspname FROM pg_namespace")}
    finally:
        await conn.close()
    assert "identity" in schemas
    assert "ingestion" not in schemas


async def test_migrating_without_a_database_url_is_a_usage_error() -> None:
    err = io.StringIO()

    assert await run_migrate(None, environ={}, out=io.StringIO(), err=err) == 2
    assert "DATABASE_URL" in err.getvalue()


async def test_an_unreachable_database_fails_with_the_services_name() -> None:
    err = io.StringIO()
    environ = {"DATABASE_URL": "postgresql://postgres@127.0.0.1:1/none"}

    code = await asyncio.wait_for(
        run_migrate(["insights"], environ=environ, out=io.StringIO(), err=err), timeout=60
    )

    assert code == 1
    assert err.getvalue().startswith("insights: ")
