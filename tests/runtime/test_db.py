"""The database unit of work against the real PostgreSQL: row-level security, errors, locks."""

from __future__ import annotations

import asyncio
import socket
import uuid
from typing import TYPE_CHECKING

import asyncpg
import pytest

from vitalis_runtime import errors
from vitalis_runtime.db import Database
from vitalis_runtime.mailbox import advisory_lock

if TYPE_CHECKING:
    from conftest import MigratedSchema


async def add_note(db: Database, user_id: uuid.UUID, body: str) -> None:
    async with db.transaction(user_id=user_id) as conn:
        await conn.execute("INSERT INTO app.notes (user_id, body) VALUES ($1, $2)", user_id, body)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_user_sees_only_their_own_rows(app_db: Database) -> None:
    alice, bob = uuid.uuid4(), uuid.uuid4()
    await add_note(app_db, alice, "alice's")
    await add_note(app_db, bob, "bob's")

    async with app_db.transaction(user_id=alice, readonly=True) as conn:
        alice_sees = await conn.fetch("SELECT user_id, body FROM app.notes")
    async with app_db.transaction(user_id=bob, readonly=True) as conn:
        bob_sees = await conn.fetch("SELECT user_id, body FROM app.notes WHERE user_id = $1", alice)

    assert [(row["user_id"], row["body"]) for row in alice_sees] == [(alice, "alice's")]
    assert bob_sees == []


async def test_transaction_without_user_sees_no_user_rows(app_db: Database) -> None:
    await add_note(app_db, uuid.uuid4(), "private")

    async with app_db.transaction(user_id=None) as conn:
        count = await conn.fetchval("SELECT count(*) FROM app.notes")

    assert count == 0


async def test_user_cannot_write_a_row_for_another_user(app_db: Database) -> None:
    alice, bob = uuid.uuid4(), uuid.uuid4()

    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        async with app_db.transaction(user_id=alice) as conn:
            await conn.execute("INSERT INTO app.notes (user_id, body) VALUES ($1, 'forged')", bob)


async def test_app_role_cannot_switch_off_or_disable_row_security(app_db: Database) -> None:
    await add_note(app_db, uuid.uuid4(), "private")

    async def run_as_app(*statements: str) -> None:
        async with app_db.transaction(user_id=None) as conn:
            for statement in statements:
                await conn.execute(statement)

    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await run_as_app("SET LOCAL row_security = off", "SELECT * FROM app.notes")
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await run_as_app("ALTER TABLE app.notes DISABLE ROW LEVEL SECURITY")


async def test_user_setting_and_role_do_not_leak_into_the_next_transaction(migrated: MigratedSchema) -> None:
    db = await Database.connect(migrated.admin_url, role=migrated.app_role, min_size=1, max_size=1)
    try:
        async with db.transaction(user_id=uuid.uuid4()) as conn:
            first_backend = await conn.fetchval("SELECT pg_backend_pid()")
        async with db.transaction(user_id=None) as conn:
            second_backend = await conn.fetchval("SELECT pg_backend_pid()")
            setting = await conn.fetchval("SELECT current_setting('app.current_user_id', true)")
            role = await conn.fetchval("SELECT current_user")
    finally:
        await db.close()

    assert first_backend == second_backend
    assert setting == ""
    assert role == migrated.app_role


async def test_exception_in_the_block_rolls_the_transaction_back(app_db: Database) -> None:
    alice = uuid.uuid4()

    async def insert_then_fail() -> None:
        async with app_db.transaction(user_id=alice) as conn:
            await conn.execute("INSERT INTO app.notes (user_id, body) VALUES ($1, 'lost')", alice)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await insert_then_fail()

    async with app_db.transaction(user_id=alice) as conn:
        assert await conn.fetchval("SELECT count(*) FROM app.notes") == 0


async def test_jsonb_values_round_trip_as_python_objects(app_db: Database) -> None:
    alice = uuid.uuid4()
    details = {"tags": ["sleep", "hrv"], "score": 7.5, "nested": {"ok": True}}

    async with app_db.transaction(user_id=alice) as conn:
        await conn.execute(
            "INSERT INTO app.notes (user_id, body, details) VALUES ($1, 'x', $2)", alice, details
        )
        stored = await conn.fetchval("SELECT details FROM app.notes")

    assert stored == details


async def test_concurrent_update_conflict_is_aborted(app_db: Database) -> None:
    alice = uuid.uuid4()
    await add_note(app_db, alice, "v1")

    async def update_after_a_concurrent_update() -> None:
        async with app_db.transaction(user_id=alice, isolation="repeatable_read") as late:
            await late.fetch("SELECT body FROM app.notes")
            async with app_db.transaction(user_id=alice) as early:
                await early.execute("UPDATE app.notes SET body = 'v2'")
            await late.execute("UPDATE app.notes SET body = 'v3'")

    with pytest.raises(errors.Aborted):
        await update_after_a_concurrent_update()


async def test_statement_over_the_timeout_is_deadline_exceeded(migrated: MigratedSchema) -> None:
    db = await Database.connect(migrated.admin_url, role=migrated.app_role, statement_timeout_ms=100)
    try:
        with pytest.raises(errors.DeadlineExceeded):
            async with db.transaction(user_id=None) as conn:
                await conn.execute("SELECT pg_sleep(2)")
    finally:
        await db.close()


async def test_unreachable_server_is_unavailable() -> None:
    with pytest.raises(errors.Unavailable):
        await Database.connect(f"postgresql://postgres@127.0.0.1:{closed_port()}/postgres", acquire_timeout=2)


async def test_closed_pool_is_unavailable(migrated: MigratedSchema) -> None:
    db = await Database.connect(migrated.admin_url, role=migrated.app_role)
    await db.ping()
    await db.close()

    with pytest.raises(errors.Unavailable):
        async with db.transaction(user_id=None):
            pass
    with pytest.raises(errors.Unavailable):
        await db.ping()


async def test_unknown_isolation_level_is_refused(app_db: Database) -> None:
    with pytest.raises(ValueError, match="isolation"):
        app_db.transaction(user_id=None, isolation="chaos")


async def test_advisory_lock_serialises_transactions_on_the_same_key(app_db: Database) -> None:
    key = f"test.lock:{uuid.uuid4()}"
    second_has_lock = asyncio.Event()

    async def second() -> None:
        async with app_db.transaction(user_id=None) as conn:
            await advisory_lock(conn, key)
            second_has_lock.set()

    async with app_db.transaction(user_id=None) as conn:
        await advisory_lock(conn, key)
        waiter = asyncio.create_task(second())
        await asyncio.sleep(0.3)
        assert not second_has_lock.is_set()
        async with app_db.transaction(user_id=None) as other:
            await advisory_lock(other, f"{key}:unrelated")

    async with asyncio.timeout(5):
        await waiter
    assert second_has_lock.is_set()


async def test_advisory_lock_outside_a_transaction_is_refused(app_db: Database) -> None:
    async with app_db.pool.acquire() as conn:
        with pytest.raises(RuntimeError, match="inside a transaction"):
            await advisory_lock(conn, "anything")


async def test_a_transaction_has_the_isolation_and_access_mode_asked_for(app_db: Database) -> None:
    async with app_db.transaction(user_id=None, isolation="repeatable_read", readonly=True) as conn:
        isolation = await conn.fetchval("SELECT current_setting('transaction_isolation')")
        read_only = await conn.fetchval("SELECT current_setting('transaction_read_only')")
    async with app_db.transaction(user_id=None) as conn:
        default_isolation = await conn.fetchval("SELECT current_setting('transaction_isolation')")
        default_read_only = await conn.fetchval("SELECT current_setting('transaction_read_only')")

    assert (isolation, read_only) == ("repeatable read", "on")
    assert (default_isolation, default_read_only) == ("read committed", "off")


async def test_a_read_only_transaction_cannot_write(app_db: Database) -> None:
    alice = uuid.uuid4()

    with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
        async with app_db.transaction(user_id=alice, readonly=True) as conn:
            await conn.execute("INSERT INTO app.notes (user_id, body) VALUES ($1, 'x')", alice)


async def test_a_user_id_given_as_text_is_used_only_in_its_canonical_form(app_db: Database) -> None:
    alice = uuid.uuid4()

    async with app_db.transaction(user_id=str(alice).upper()) as conn:  # type: ignore[arg-type]
        setting = await conn.fetchval("SELECT current_setting('app.current_user_id')")
    with pytest.raises(ValueError, match="hexadecimal UUID"):
        async with app_db.transaction(user_id="x', true); DROP TABLE app.notes; --"):  # type: ignore[arg-type]
            pass

    assert setting == str(alice)


async def test_a_finished_transaction_returns_its_connection_without_a_session_reset(
    migrated: MigratedSchema,
) -> None:
    db = await Database.connect(migrated.admin_url, role=migrated.app_role, min_size=1, max_size=1)
    admin = await asyncpg.connect(migrated.admin_url)
    try:
        async with db.transaction(user_id=uuid.uuid4(), readonly=True) as conn:
            backend = await conn.fetchval("SELECT pg_backend_pid()")
        last_after_commit = await admin.fetchval("SELECT query FROM pg_stat_activity WHERE pid = $1", backend)
        with pytest.raises(RuntimeError):
            async with db.transaction(user_id=uuid.uuid4()) as conn:
                raise RuntimeError("boom")
        last_after_rollback = await admin.fetchval(
            "SELECT query FROM pg_stat_activity WHERE pid = $1", backend
        )
    finally:
        await admin.close()
        await db.close()

    assert last_after_commit == "COMMIT"
    assert last_after_rollback == "ROLLBACK"


async def test_a_connection_used_outside_a_transaction_is_reset_when_released(
    migrated: MigratedSchema,
) -> None:
    db = await Database.connect(migrated.admin_url, role=migrated.app_role, min_size=1, max_size=1)
    try:
        async with db.pool.acquire() as conn:
            first_backend = await conn.fetchval("SELECT pg_backend_pid()")
            await conn.execute("SET app.current_user_id = 'left-behind'")
            await conn.execute("LISTEN left_behind")
        async with db.transaction(user_id=None) as conn:
            second_backend = await conn.fetchval("SELECT pg_backend_pid()")
            setting = await conn.fetchval("SELECT current_setting('app.current_user_id', true)")
            channels = await conn.fetch("SELECT pg_listening_channels()")
        async with db.transaction(user_id=None) as conn:
            after_transaction = await conn.fetchval("SELECT current_setting('app.current_user_id', true)")
    finally:
        await db.close()

    assert first_backend == second_backend
    assert setting == ""
    assert channels == []
    assert after_transaction == ""


@pytest.mark.parametrize("pause", [0.0, 0.05])
async def test_a_session_the_server_ends_mid_transaction_is_unavailable(
    migrated: MigratedSchema, pause: float
) -> None:
    # The server's farewell can reach the idle connection before or after the connection notices
    # the socket closing; either way the next statement is Unavailable, and the pool recovers.
    db = await Database.connect(migrated.admin_url, role=migrated.app_role, min_size=1, max_size=1)
    admin = await asyncpg.connect(migrated.admin_url)

    async def update_after_the_server_ends_the_session() -> None:
        async with db.transaction(user_id=uuid.uuid4()) as conn:
            backend = await conn.fetchval("SELECT pg_backend_pid()")
            await admin.execute("SELECT pg_terminate_backend($1)", backend)
            await asyncio.sleep(pause)
            await conn.execute("UPDATE app.notes SET body = body")

    try:
        for _ in range(5):
            with pytest.raises(errors.Unavailable):
                await update_after_the_server_ends_the_session()
        async with db.transaction(user_id=None) as conn:
            assert await conn.fetchval("SELECT 1") == 1
    finally:
        await admin.close()
        await db.close()
