"""Per-service schema migrations and the row-level security posture they must leave behind.

Each service owns one PostgreSQL schema. Its migrations are plain SQL files in
``<package>/migrations/NNNN_short_name.sql`` (four-digit version, applied in order, never edited
once applied: a changed checksum is refused). :func:`migrate` runs them as the migration role
(the owner of everything) and leaves the application role with data privileges only.

What :func:`migrate` does, under an advisory lock keyed on the schema so that concurrent runners
(one per replica, or a Kubernetes Job racing a developer) apply each migration once:

1. creates the application role if missing (``NOLOGIN NOSUPERUSER NOBYPASSRLS NOINHERIT``; giving it a
   login and password in production is the operator's business) and refuses one that is a
   superuser, may bypass row-level security, or is the migration role itself;
2. creates the schema and its history table ``<schema>.schema_migrations``;
3. applies the runtime's own migrations (component ``runtime``: the outbox and inbox tables),
   then the service's (component ``service``), each in its own transaction with
   ``search_path`` set to the schema, recording each in the history table;
4. grants the application role ``USAGE`` on the schema, ``SELECT, INSERT, UPDATE, DELETE`` on its
   tables (only ``SELECT`` on the history), ``USAGE`` on its sequences, and the same by default
   for objects created later by the migration role.

Convention for service migrations — every user-owned table (one with a ``user_id`` column):

* has a primary key whose first column is ``user_id`` (so the data can be distributed by user);
* has row-level security enabled **and** forced, and an owner policy reading the transaction's
  user, exactly::

      ALTER TABLE t ENABLE ROW LEVEL SECURITY;
      ALTER TABLE t FORCE ROW LEVEL SECURITY;
      CREATE POLICY t_owner ON t
          USING (user_id = NULLIF(current_setting('app.current_user_id', true), '')::uuid)
          WITH CHECK (user_id = NULLIF(current_setting('app.current_user_id', true), '')::uuid);

  (a partition is a table too: give each partition the same three statements);
* views are created ``WITH (security_invoker = true)`` so they do not read with the owner's rights.

Infrastructure tables that are not about one user (outbox, inbox, reference dictionaries) have no
``user_id`` column. :func:`assert_rls_posture` checks all of this and returns what is wrong.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Final

import asyncpg
import asyncpg.exceptions as pg_errors

from vitalis_runtime.db import sql_identifier, translate_database_errors

RUNTIME_COMPONENT: Final = "runtime"
SERVICE_COMPONENT: Final = "service"
HISTORY_TABLE: Final = "schema_migrations"

_FILE_NAME = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")

logger = logging.getLogger(__name__)


class MigrationError(RuntimeError):
    """The migrations cannot be applied safely: fix the files or the database, then run again."""


@dataclass(frozen=True)
class Migration:
    """One versioned SQL script; ``checksum`` is the SHA-256 of its text."""

    version: int
    name: str
    sql: str
    checksum: str

    @classmethod
    def from_sql(cls, version: int, name: str, sql: str) -> Migration:
        """A migration whose checksum is computed from ``sql``."""
        return cls(version=version, name=name, sql=sql, checksum=hashlib.sha256(sql.encode()).hexdigest())


def load_migrations(package: str) -> list[Migration]:
    """Read ``<package>/migrations/NNNN_name.sql`` in version order.

    A ``.sql`` file whose name does not follow the pattern, or two files with the same version,
    raise ``MigrationError`` rather than being skipped silently.
    """
    folder = resources.files(package).joinpath("migrations")
    if not folder.is_dir():
        return []
    found: dict[int, Migration] = {}
    for entry in folder.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _FILE_NAME.match(entry.name)
        if match is None:
            raise MigrationError(f"{package}: migration file {entry.name!r} is not named NNNN_name.sql")
        version = int(match["version"])
        if version in found:
            raise MigrationError(f"{package}: two migrations have version {version:04d}")
        found[version] = Migration.from_sql(version, match["name"], entry.read_text(encoding="utf-8"))
    return [found[version] for version in sorted(found)]


async def migrate(
    dsn: str,
    *,
    schema: str,
    app_role: str,
    migrations: Sequence[Migration],
    runtime_migrations: Sequence[Migration] | None = None,
) -> list[Migration]:
    """Bring ``schema`` up to date; return the migrations applied by this call (runtime ones first).

    ``dsn`` logs in as the migration role (it needs ``CREATEROLE`` the first time).
    ``runtime_migrations`` defaults to the runtime's own outbox and inbox tables.
    """
    quoted_schema = sql_identifier(schema)
    quoted_role = sql_identifier(app_role)
    runtime = load_migrations("vitalis_runtime") if runtime_migrations is None else runtime_migrations
    with translate_database_errors():
        conn = await asyncpg.connect(dsn, server_settings={"application_name": "vitalis-migrate"})
    try:
        await conn.execute("SELECT pg_advisory_lock(hashtextextended($1, 0))", f"vitalis.migrate.{schema}")
        await _ensure_app_role(conn, app_role, quoted_role)
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quoted_schema}")
        await conn.execute(
            f"""CREATE TABLE IF NOT EXISTS {quoted_schema}.{HISTORY_TABLE} (
                    component text NOT NULL,
                    version integer NOT NULL,
                    name text NOT NULL,
                    checksum text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now(),
                    PRIMARY KEY (component, version))"""
        )
        applied = await _apply_component(conn, quoted_schema, RUNTIME_COMPONENT, runtime)
        applied += await _apply_component(conn, quoted_schema, SERVICE_COMPONENT, migrations)
        await _grant_data_privileges(conn, quoted_schema, quoted_role)
        return applied
    finally:
        # Closing the session releases the advisory lock even when a migration failed.
        await conn.close()


async def _ensure_app_role(conn: asyncpg.Connection, app_role: str, quoted_role: str) -> None:
    row = await conn.fetchrow(
        "SELECT rolsuper, rolbypassrls, rolname = current_user AS is_self FROM pg_roles WHERE rolname = $1",
        app_role,
    )
    if row is None:
        try:
            await conn.execute(f"CREATE ROLE {quoted_role} NOLOGIN NOSUPERUSER NOBYPASSRLS NOINHERIT")
        except (pg_errors.DuplicateObjectError, pg_errors.UniqueViolationError):
            logger.info("role %s was created by a concurrent migration run", app_role)
        return
    if row["is_self"]:
        raise MigrationError(f"the application role {app_role!r} must not be the role that runs migrations")
    if row["rolsuper"] or row["rolbypassrls"]:
        raise MigrationError(
            f"the application role {app_role!r} is a superuser or may bypass row-level security"
        )


async def _apply_component(
    conn: asyncpg.Connection, quoted_schema: str, component: str, migrations: Sequence[Migration]
) -> list[Migration]:
    rows = await conn.fetch(
        f"SELECT version, checksum FROM {quoted_schema}.{HISTORY_TABLE} WHERE component = $1",  # noqa: S608
        component,
    )
    applied_checksums = {row["version"]: row["checksum"] for row in rows}
    for migration in migrations:
        recorded = applied_checksums.get(migration.version)
        if recorded is not None and recorded != migration.checksum:
            raise MigrationError(
                f"{component} migration {migration.version:04d}_{migration.name} was changed after being "
                "applied; add a new migration instead of editing an applied one"
            )
    pending = sorted(
        (migration for migration in migrations if migration.version not in applied_checksums),
        key=lambda migration: migration.version,
    )
    latest = max(applied_checksums, default=0)
    if pending and pending[0].version < latest:
        raise MigrationError(
            f"{component} migration {pending[0].version:04d}_{pending[0].name} is older than the applied "
            f"version {latest:04d}; give it a higher version"
        )
    for migration in pending:
        async with conn.transaction():
            await conn.execute(f"SET LOCAL search_path TO {quoted_schema}, public")
            await conn.execute(migration.sql)
            await conn.execute(
                f"INSERT INTO {quoted_schema}.{HISTORY_TABLE} (component, version, name, checksum) "  # noqa: S608
                "VALUES ($1, $2, $3, $4)",
                component,
                migration.version,
                migration.name,
                migration.checksum,
            )
        logger.info("applied %s migration %04d_%s", component, migration.version, migration.name)
    return pending


async def _grant_data_privileges(conn: asyncpg.Connection, quoted_schema: str, quoted_role: str) -> None:
    async with conn.transaction():
        await conn.execute(
            f"""
            GRANT USAGE ON SCHEMA {quoted_schema} TO {quoted_role};
            GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {quoted_schema} TO {quoted_role};
            REVOKE INSERT, UPDATE, DELETE ON {quoted_schema}.{HISTORY_TABLE} FROM {quoted_role};
            GRANT USAGE ON ALL SEQUENCES IN SCHEMA {quoted_schema} TO {quoted_role};
            ALTER DEFAULT PRIVILEGES IN SCHEMA {quoted_schema}
                GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {quoted_role};
            ALTER DEFAULT PRIVILEGES IN SCHEMA {quoted_schema} GRANT USAGE ON SEQUENCES TO {quoted_role};
            """
        )


async def assert_rls_posture(dsn: str, *, schema: str, app_role: str) -> list[str]:
    """Return every way ``schema`` and ``app_role`` break the row-level security contract.

    An empty list means: the role is neither superuser nor ``BYPASSRLS`` and cannot act as the
    owner of anything in the schema; every table with a ``user_id`` column has RLS enabled and
    forced, a primary key starting with ``user_id`` and only policies that read
    ``app.current_user_id``; no view or materialized view readable by the role bypasses RLS.
    """
    with translate_database_errors():
        conn = await asyncpg.connect(dsn)
    try:
        return await _posture_problems(conn, schema, app_role)
    finally:
        await conn.close()


async def _posture_problems(conn: asyncpg.Connection, schema: str, app_role: str) -> list[str]:
    role = await conn.fetchrow("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = $1", app_role)
    if role is None:
        return [f"role {app_role} does not exist"]
    problems: list[str] = []
    if role["rolsuper"]:
        problems.append(f"role {app_role} is a superuser")
    if role["rolbypassrls"]:
        problems.append(f"role {app_role} has BYPASSRLS")
    owned = await conn.fetch(
        """SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
             AND pg_has_role($2, c.relowner, 'MEMBER')
           ORDER BY c.relname""",
        schema,
        app_role,
    )
    problems += [f"role {app_role} can act as the owner of {schema}.{row['relname']}" for row in owned]
    if await conn.fetchval(
        "SELECT pg_has_role($2, nspowner, 'MEMBER') FROM pg_namespace WHERE nspname = $1", schema, app_role
    ):
        problems.append(f"role {app_role} can act as the owner of schema {schema}")
    problems += await _user_table_problems(conn, schema, app_role)
    problems += await _view_problems(conn, schema, app_role)
    return problems


async def _user_table_problems(conn: asyncpg.Connection, schema: str, app_role: str) -> list[str]:
    tables = await conn.fetch(
        """SELECT c.oid, c.relname, c.relrowsecurity, c.relforcerowsecurity,
                  (SELECT a.attname FROM pg_index i
                     JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
                    WHERE i.indrelid = c.oid AND i.indisprimary) AS first_key_column
           FROM pg_class c
           JOIN pg_namespace n ON n.oid = c.relnamespace
           JOIN pg_attribute u ON u.attrelid = c.oid AND u.attname = 'user_id' AND NOT u.attisdropped
           WHERE n.nspname = $1 AND c.relkind IN ('r', 'p')
             -- A partition the role cannot reach directly is guarded by its parent's policies.
             AND (NOT c.relispartition
                  OR has_table_privilege($2, c.oid, 'SELECT, INSERT, UPDATE, DELETE'))
           ORDER BY c.relname""",
        schema,
        app_role,
    )
    problems: list[str] = []
    for table in tables:
        name = f"{schema}.{table['relname']}"
        if not table["relrowsecurity"]:
            problems.append(f"{name} has a user_id column but row-level security is not enabled")
        if not table["relforcerowsecurity"]:
            problems.append(f"{name} has a user_id column but row-level security is not forced")
        if table["first_key_column"] != "user_id":
            problems.append(f"{name} has a primary key that does not start with user_id")
        policies = await conn.fetch(
            """SELECT polname, pg_get_expr(polqual, polrelid) AS using_expr,
                      pg_get_expr(polwithcheck, polrelid) AS check_expr
               FROM pg_policy WHERE polrelid = $1 ORDER BY polname""",
            table["oid"],
        )
        for policy in policies:
            expressions = [policy["using_expr"], policy["check_expr"]]
            if any(expr is not None and "app.current_user_id" not in expr for expr in expressions):
                problems.append(f"{name} policy {policy['polname']} does not read app.current_user_id")
            if any(expr is not None and _bare_current_setting(expr) for expr in expressions):
                problems.append(
                    f"{name} policy {policy['polname']} reads current_setting without NULLIF(..., '')"
                )
    return problems


def _bare_current_setting(expression: str) -> bool:
    """Whether a policy expression uses ``current_setting`` outside ``NULLIF(current_setting(...), '')``.

    Without NULLIF an unset user id reads as '' and a cast to uuid fails, or worse, matches.
    """
    lowered = expression.lower().replace(" ", "")
    return lowered.count("current_setting(") != lowered.count("nullif(current_setting(")


async def _view_problems(conn: asyncpg.Connection, schema: str, app_role: str) -> list[str]:
    views = await conn.fetch(
        """SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = $1 AND c.relkind IN ('v', 'm')
             AND has_table_privilege($2, c.oid, 'SELECT')
             AND NOT EXISTS (SELECT 1 FROM unnest(coalesce(c.reloptions, '{}')) AS option
                              WHERE lower(option) IN ('security_invoker=true', 'security_invoker=on',
                                                      'security_invoker=1', 'security_invoker=yes'))
           ORDER BY c.relname""",
        schema,
        app_role,
    )
    return [
        f"{schema}.{row['relname']} is a {'materialized view' if row['relkind'] == 'm' else 'view'} "
        f"readable by {app_role} that does not run with the invoker's rights"
        for row in views
    ]
