"""Schema migrations and the row-level security posture, against the real PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from vitalis_runtime.migrations import (
    Migration,
    MigrationError,
    assert_rls_posture,
    load_migrations,
    migrate,
)

NOTES = Migration.from_sql(
    1,
    "notes",
    """
    CREATE TABLE notes (user_id uuid NOT NULL, note_id uuid NOT NULL, PRIMARY KEY (user_id, note_id));
    ALTER TABLE notes ENABLE ROW LEVEL SECURITY;
    ALTER TABLE notes FORCE ROW LEVEL SECURITY;
    CREATE POLICY notes_owner ON notes
        USING (user_id = NULLIF(current_setting('app.current_user_id', true), '')::uuid)
        WITH CHECK (user_id = NULLIF(current_setting('app.current_user_id', true), '')::uuid);
    """,
)
TAGS = Migration.from_sql(2, "tags", "CREATE TABLE tags (tag text PRIMARY KEY);")


async def history(admin_url: str) -> list[tuple[str, int, str]]:
    conn = await asyncpg.connect(admin_url)
    try:
        rows = await conn.fetch("SELECT component, version, name FROM app.schema_migrations ORDER BY 1, 2")
    finally:
        await conn.close()
    return [(row["component"], row["version"], row["name"]) for row in rows]


async def test_first_run_applies_runtime_then_service_migrations(
    admin_database_url: str, app_role: str
) -> None:
    applied = await migrate(admin_database_url, schema="app", app_role=app_role, migrations=[NOTES, TAGS])

    assert [(m.version, m.name) for m in applied] == [(1, "outbox"), (2, "inbox"), (1, "notes"), (2, "tags")]
    assert await history(admin_database_url) == [
        ("runtime", 1, "outbox"),
        ("runtime", 2, "inbox"),
        ("service", 1, "notes"),
        ("service", 2, "tags"),
    ]


async def test_second_run_applies_nothing(admin_database_url: str, app_role: str) -> None:
    await migrate(admin_database_url, schema="app", app_role=app_role, migrations=[NOTES])

    again = await migrate(admin_database_url, schema="app", app_role=app_role, migrations=[NOTES])
    later = await migrate(admin_database_url, schema="app", app_role=app_role, migrations=[NOTES, TAGS])

    assert again == []
    assert [m.name for m in later] == ["tags"]


async def test_concurrent_runners_apply_each_migration_once(admin_database_url: str, app_role: str) -> None:
    slow = Migration.from_sql(2, "slow", "SELECT pg_sleep(0.3); CREATE TABLE slow (id int PRIMARY KEY);")

    async with asyncio.timeout(30):
        results = await asyncio.gather(
            *(
                migrate(admin_database_url, schema="app", app_role=app_role, migrations=[NOTES, slow])
                for _ in range(3)
            )
        )

    assert sorted(len(applied) for applied in results) == [0, 0, 4]
    assert len(await history(admin_database_url)) == 4


async def test_changed_applied_migration_is_refused(admin_database_url: str, app_role: str) -> None:
    await migrate(admin_database_url, schema="app", app_role=app_role, migrations=[NOTES])
    edited = Migration.from_sql(1, "notes", NOTES.sql + "\nCREATE INDEX ON notes (note_id);")

    with pytest.raises(MigrationError, match="changed after being applied"):
        await migrate(admin_database_url, schema="app", app_role=app_role, migrations=[edited])


async def test_migration_older_than_the_applied_version_is_refused(
    admin_database_url: str, app_role: str
) -> None:
    await migrate(admin_database_url, schema="app", app_role=app_role, migrations=[TAGS])

    with pytest.raises(MigrationError, match="older than the applied"):
        await migrate(admin_database_url, schema="app", app_role=app_role, migrations=[NOTES, TAGS])


async def test_failed_migration_leaves_no_trace(admin_database_url: str, app_role: str) -> None:
    broken = Migration.from_sql(2, "broken", "CREATE TABLE half (id int); SELECT no_such_function();")

    with pytest.raises(asyncpg.UndefinedFunctionError):
        await migrate(admin_database_url, schema="app", app_role=app_role, migrations=[NOTES, broken])

    conn = await asyncpg.connect(admin_database_url)
    try:
        half_exists = await conn.fetchval("SELECT to_regclass('app.half') IS NOT NULL")
    finally:
        await conn.close()
    assert not half_exists
    assert ("service", 2, "broken") not in await history(admin_database_url)


async def test_app_role_is_created_powerless_and_owns_nothing(admin_database_url: str, app_role: str) -> None:
    await migrate(admin_database_url, schema="app", app_role=app_role, migrations=[NOTES])

    conn = await asyncpg.connect(admin_database_url)
    try:
        role = await conn.fetchrow(
            "SELECT rolsuper, rolbypassrls, rolcanlogin, rolcreaterole FROM pg_roles WHERE rolname = $1",
            app_role,
        )
        owned = await conn.fetchval(
            "SELECT count(*) FROM pg_class WHERE relowner = (SELECT oid FROM pg_roles WHERE rolname = $1)",
            app_role,
        )
        can = await conn.fetchrow(
            """SELECT has_table_privilege($1, 'app.notes', 'INSERT') AS notes_insert,
                      has_table_privilege($1, 'app.outbox', 'UPDATE') AS outbox_update,
                      has_table_privilege($1, 'app.inbox', 'DELETE') AS inbox_delete,
                      has_table_privilege($1, 'app.schema_migrations', 'SELECT') AS history_select,
                      has_table_privilege($1, 'app.schema_migrations', 'INSERT') AS history_insert,
                      has_table_privilege($1, 'app.notes', 'TRUNCATE') AS notes_truncate,
                      has_schema_privilege($1, 'app', 'CREATE') AS schema_create""",
            app_role,
        )
    finally:
        await conn.close()

    assert dict(role) == {
        "rolsuper": False,
        "rolbypassrls": False,
        "rolcanlogin": False,
        "rolcreaterole": False,
    }
    assert owned == 0
    assert dict(can) == {
        "notes_insert": True,
        "outbox_update": True,
        "inbox_delete": True,
        "history_select": True,
        "history_insert": False,
        "notes_truncate": False,
        "schema_create": False,
    }


async def test_app_role_that_bypasses_row_security_is_refused(admin_database_url: str, app_role: str) -> None:
    conn = await asyncpg.connect(admin_database_url)
    try:
        await conn.execute(f'CREATE ROLE "{app_role}" NOLOGIN BYPASSRLS')
    finally:
        await conn.close()

    with pytest.raises(MigrationError, match="bypass row-level security"):
        await migrate(admin_database_url, schema="app", app_role=app_role, migrations=[NOTES])


async def test_posture_of_a_conforming_schema_is_clean(admin_database_url: str, app_role: str) -> None:
    await migrate(admin_database_url, schema="app", app_role=app_role, migrations=[NOTES, TAGS])

    assert await assert_rls_posture(admin_database_url, schema="app", app_role=app_role) == []


async def test_posture_reports_every_weakness(admin_database_url: str, app_role: str) -> None:
    weak = Migration.from_sql(
        2,
        "weak",
        """
        CREATE TABLE unprotected (user_id uuid PRIMARY KEY);
        CREATE TABLE unforced (user_id uuid PRIMARY KEY);
        ALTER TABLE unforced ENABLE ROW LEVEL SECURITY;
        CREATE POLICY unforced_owner ON unforced
            USING (user_id = NULLIF(current_setting('app.current_user_id', true), '')::uuid);
        CREATE TABLE open_policy (id uuid PRIMARY KEY, user_id uuid NOT NULL);
        ALTER TABLE open_policy ENABLE ROW LEVEL SECURITY;
        ALTER TABLE open_policy FORCE ROW LEVEL SECURITY;
        CREATE POLICY open_policy_everyone ON open_policy USING (true);
        CREATE TABLE bare_setting (user_id uuid PRIMARY KEY);
        ALTER TABLE bare_setting ENABLE ROW LEVEL SECURITY;
        ALTER TABLE bare_setting FORCE ROW LEVEL SECURITY;
        CREATE POLICY bare_setting_owner ON bare_setting
            USING (user_id = current_setting('app.current_user_id', true)::uuid);
        CREATE TABLE readings (user_id uuid, day date, PRIMARY KEY (user_id, day)) PARTITION BY RANGE (day);
        ALTER TABLE readings ENABLE ROW LEVEL SECURITY;
        ALTER TABLE readings FORCE ROW LEVEL SECURITY;
        CREATE POLICY readings_owner ON readings
            USING (user_id = NULLIF(current_setting('app.current_user_id', true), '')::uuid);
        CREATE TABLE readings_2025 PARTITION OF readings FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
        CREATE TABLE readings_2026 PARTITION OF readings FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
        CREATE VIEW all_notes AS SELECT * FROM notes;
        """,
    )
    await migrate(admin_database_url, schema="app", app_role=app_role, migrations=[NOTES, weak])
    conn = await asyncpg.connect(admin_database_url)
    try:
        await conn.execute(
            f'CREATE TABLE app.owned_by_app (id int); ALTER TABLE app.owned_by_app OWNER TO "{app_role}"'
        )
        # readings_2025 is reachable only through its parent; readings_2026 is exposed directly.
        await conn.execute(f'REVOKE ALL ON app.readings_2025 FROM "{app_role}"')
    finally:
        await conn.close()

    problems = await assert_rls_posture(admin_database_url, schema="app", app_role=app_role)

    assert sorted(problems) == sorted(
        [
            f"role {app_role} can act as the owner of app.owned_by_app",
            "app.unprotected has a user_id column but row-level security is not enabled",
            "app.unprotected has a user_id column but row-level security is not forced",
            "app.unforced has a user_id column but row-level security is not forced",
            "app.open_policy has a primary key that does not start with user_id",
            "app.open_policy policy open_policy_everyone does not read app.current_user_id",
            "app.bare_setting policy bare_setting_owner reads current_setting without NULLIF(..., '')",
            "app.readings_2026 has a user_id column but row-level security is not enabled",
            "app.readings_2026 has a user_id column but row-level security is not forced",
            f"app.all_notes is a view readable by {app_role} that does not run with the invoker's rights",
        ]
    )


async def test_posture_of_a_missing_role_is_reported(admin_database_url: str, app_role: str) -> None:
    assert await assert_rls_posture(admin_database_url, schema="app", app_role=app_role) == [
        f"role {app_role} does not exist"
    ]


def test_runtime_migrations_are_loaded_in_version_order() -> None:
    assert [(m.version, m.name) for m in load_migrations("vitalis_runtime")] == [(1, "outbox"), (2, "inbox")]


def test_misnamed_migration_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "vitalis_misnamed_migrations"
    (package / "migrations").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "migrations" / "0001_first.sql").write_text("SELECT 1;")
    (package / "migrations" / "2_second.sql").write_text("SELECT 2;")
    monkeypatch.syspath_prepend(str(tmp_path))

    with pytest.raises(MigrationError, match=r"2_second\.sql"):
        load_migrations("vitalis_misnamed_migrations")


def test_checksum_follows_the_text() -> None:
    assert (
        Migration.from_sql(1, "a", "SELECT 1;").checksum != Migration.from_sql(1, "a", "SELECT 2;").checksum
    )
    assert Migration.from_sql(1, "a", "SELECT 1;") == Migration.from_sql(1, "a", "SELECT 1;")
