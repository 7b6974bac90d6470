"""PostgreSQL access: an asyncpg pool whose unit of work is a transaction that knows its user.

Every transaction starts with ``set_config('app.current_user_id', <user id>, true)`` (the same as
``SET LOCAL``), which the row-level security policies of user-owned tables read through
``NULLIF(current_setting('app.current_user_id', true), '')``. The setting ends with the transaction,
so a pooled connection never carries one user's identity into another user's work.

A transaction costs two round trips besides its own statements: ``BEGIN`` and the settings travel
together in one simple query, and ``COMMIT`` (or ``ROLLBACK``) ends it. A connection whose only use
was such a finished transaction goes back to the pool without asyncpg's session reset (advisory
unlock, ``CLOSE ALL``, ``UNLISTEN``, ``RESET ALL``): everything a transaction sets with ``SET LOCAL``
or takes as a transaction-scoped lock ends with it, so work inside a transaction must not change the
session itself (plain ``SET``, ``LISTEN``, session advisory locks). Connections taken from
:attr:`Database.pool` directly are reset in full when released.

Driver errors are translated once, here, into the runtime's error model (see
:func:`translate_database_errors`): an unreachable server is ``Unavailable``, a serialization
failure or deadlock is ``Aborted`` (retrying may succeed), a cancelled statement (statement timeout)
is ``DeadlineExceeded``.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from typing import Final

import asyncpg
import asyncpg.exceptions as pg_errors

from vitalis_runtime import errors
from vitalis_runtime.request_context import current_time_remaining

ISOLATION_LEVELS: Final = frozenset({"read_committed", "repeatable_read", "serializable"})
_BEGIN: Final = {
    (isolation, readonly): f"BEGIN ISOLATION LEVEL {isolation.replace('_', ' ').upper()}"
    + (" READ ONLY" if readonly else "")
    for isolation in ISOLATION_LEVELS
    for readonly in (False, True)
}
USER_ID_SETTING: Final = "app.current_user_id"
_PLAIN_IDENTIFIER: Final = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

_UNREACHABLE_ERRORS: Final = (
    pg_errors.PostgresConnectionError,
    pg_errors.CannotConnectNowError,
    pg_errors.TooManyConnectionsError,
    pg_errors.AdminShutdownError,
    pg_errors.CrashShutdownError,
    OSError,
)
_CONFLICT_ERRORS: Final = (pg_errors.SerializationError, pg_errors.DeadlockDetectedError)


def translate_error(error: BaseException) -> errors.VitalisError | None:
    """The runtime error a driver or network error stands for, or ``None`` if it is not one of them.

    A client-side timeout while waiting for the server counts as a missed deadline; any other
    ``OSError`` (refused, reset) as the server being unreachable.
    """
    if isinstance(error, errors.VitalisError):
        return None
    if isinstance(error, pg_errors.QueryCanceledError | TimeoutError):
        return errors.DeadlineExceeded("The database did not answer in time.")
    if isinstance(error, _CONFLICT_ERRORS):
        return errors.Aborted("The change conflicted with a concurrent one; retry it.", reason="CONFLICT")
    if isinstance(error, _UNREACHABLE_ERRORS):
        return errors.Unavailable("The database cannot be reached.", reason="DATABASE_UNAVAILABLE")
    if isinstance(error, asyncpg.InterfaceError) and "closed" in str(error):
        return errors.Unavailable("The database connection pool is closed.", reason="DATABASE_UNAVAILABLE")
    return _broken_connection(error)


def _broken_connection(error: BaseException) -> errors.VitalisError | None:
    if isinstance(error, pg_errors.InternalClientError):
        # asyncpg's protocol state broke: typically the server ended the session (a restart, a
        # terminated backend) and its farewell arrived while the connection was idle, before the
        # connection noticed it was closed. The connection is unusable; the pool discards it.
        return errors.Unavailable("The database connection broke.", reason="DATABASE_UNAVAILABLE")
    return None


@contextmanager
def translate_database_errors() -> Iterator[None]:
    """Re-raise driver errors raised inside the block as the runtime error they stand for."""
    try:
        yield
    except Exception as error:
        translated = translate_error(error)
        if translated is None:
            raise
        raise translated from error


async def _register_json_codecs(conn: asyncpg.Connection) -> None:
    for type_name in ("json", "jsonb"):
        await conn.set_type_codec(
            type_name, schema="pg_catalog", encoder=json.dumps, decoder=json.loads, format="text"
        )


def _quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def sql_identifier(name: str) -> str:
    """``name`` quoted for SQL, after checking it is a plain lower-case identifier (schema, role).

    Schema and role names come from configuration, never from requests; the check makes a typo
    fail loudly instead of producing a surprising statement.
    """
    if not _PLAIN_IDENTIFIER.match(name):
        raise ValueError(f"{name!r} is not a lower-case SQL identifier")
    return f'"{name}"'


def _user_setting(user_id: object) -> str:
    """The text of ``app.current_user_id`` for ``user_id``: its canonical form, or empty for none.

    Typed loosely on purpose: the text goes into a statement, so whatever a caller passed is checked.
    """
    if user_id is None:
        return ""
    if isinstance(user_id, uuid.UUID):
        return str(user_id)
    # Anything else must parse as a UUID; its canonical text is what goes into the statement.
    return str(uuid.UUID(str(user_id)))


async def _roll_back(conn: asyncpg.Connection) -> bool:
    """End the connection's open transaction after a failure; False when the connection cannot.

    A connection still busy with a cancelled statement, or broken, is left to the pool, which
    waits for the cancellation or discards the connection.
    """
    if conn.is_closed():
        return False
    if not conn.is_in_transaction():
        return True
    try:
        await conn.execute("ROLLBACK")
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
        return False
    return True


class _SettledConnections:
    """The pool's reset hook: connections whose only use was a finished transaction skip the reset.

    Keyed by the server process id of the connections being released; an id is only here between
    the end of a transaction and the end of that connection's release.
    """

    def __init__(self) -> None:
        self._server_pids: set[int] = set()

    def add(self, server_pid: int) -> None:
        """The connection of ``server_pid`` ended its transaction and has done nothing else."""
        self._server_pids.add(server_pid)

    def discard(self, server_pid: int) -> None:
        """The connection of ``server_pid`` has been released."""
        self._server_pids.discard(server_pid)

    async def reset(self, conn: asyncpg.Connection) -> None:
        """asyncpg's session reset, unless the connection only ran a finished transaction."""
        if conn.get_server_pid() in self._server_pids:
            return
        reset_query = conn.get_reset_query()
        if reset_query:
            await conn.execute(reset_query)


class Database:
    """A connection pool; use :meth:`transaction` for every unit of work."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        acquire_timeout: float,
        statement_timeout_ms: int = 15000,
        settled: _SettledConnections | None = None,
    ) -> None:
        """Wrap an open pool; prefer :meth:`connect`, which also configures its connections.

        ``settled`` is the pool's reset hook (see :meth:`connect`); without it, connections are
        simply reset by the pool as usual.
        """
        self._pool = pool
        self._acquire_timeout = acquire_timeout
        self._statement_timeout_ms = statement_timeout_ms
        self._settled = settled or _SettledConnections()

    @classmethod
    async def connect(
        cls,
        dsn: str,
        *,
        role: str | None = None,
        schema: str | None = None,
        min_size: int = 1,
        max_size: int = 10,
        statement_timeout_ms: int = 15000,
        application_name: str = "vitalis",
        acquire_timeout: float = 10.0,
    ) -> Database:
        """Open a pool; raise ``errors.Unavailable`` when the server cannot be reached.

        ``role``, when given, is assumed with ``SET ROLE`` on every new connection: a superuser
        DSN (development, tests) then works with exactly the privileges of the application role.
        In production leave it ``None`` and log in as the application role. ``schema``, when
        given, is put first on the ``search_path`` so a service's SQL names its own tables plainly.
        """
        settings = {"application_name": application_name, "statement_timeout": str(statement_timeout_ms)}
        if schema is not None:
            settings["search_path"] = f"{sql_identifier(schema)}, public"

        async def init(conn: asyncpg.Connection) -> None:
            if role is not None:
                await conn.execute(f"SET ROLE {_quote_identifier(role)}")
            await _register_json_codecs(conn)

        settled = _SettledConnections()
        with translate_database_errors():
            pool = await asyncpg.create_pool(
                dsn,
                min_size=min_size,
                max_size=max_size,
                init=init,
                reset=settled.reset,
                timeout=acquire_timeout,
                server_settings=settings,
            )
        return cls(
            pool,
            acquire_timeout=acquire_timeout,
            statement_timeout_ms=statement_timeout_ms,
            settled=settled,
        )

    @property
    def pool(self) -> asyncpg.Pool:
        """The underlying asyncpg pool (for LISTEN connections or COPY outside the unit of work)."""
        return self._pool

    def transaction(
        self,
        *,
        user_id: uuid.UUID | None,
        readonly: bool = False,
        isolation: str = "read_committed",
    ) -> AbstractAsyncContextManager[asyncpg.Connection]:
        """A transaction acting for ``user_id``; commits on normal exit, rolls back on an exception.

        With ``user_id=None`` the setting stays empty, so row-level security shows no user's
        rows: that is for system work on infrastructure tables (outbox, inbox).
        """
        if isolation not in ISOLATION_LEVELS:
            raise ValueError(f"isolation must be one of {sorted(ISOLATION_LEVELS)}, not {isolation!r}")
        return self._transaction(user_id=user_id, readonly=readonly, isolation=isolation)

    @asynccontextmanager
    async def _transaction(
        self, *, user_id: uuid.UUID | None, readonly: bool, isolation: str
    ) -> AsyncIterator[asyncpg.Connection]:
        if self._pool.is_closing():
            raise errors.Unavailable("The database connection pool is closed.", reason="DATABASE_UNAVAILABLE")
        user = _user_setting(user_id)
        with translate_database_errors():
            try:
                conn: asyncpg.Connection = await self._pool.acquire(timeout=self._acquire_timeout)
            except TimeoutError as error:
                raise errors.Unavailable(
                    "No database connection became free in time.", reason="DATABASE_UNAVAILABLE"
                ) from error
            server_pid = conn.get_server_pid()
            try:
                try:
                    await conn.execute(self._start_statement(user, readonly=readonly, isolation=isolation))
                    yield conn
                except BaseException:
                    if await _roll_back(conn):
                        self._settled.add(server_pid)
                    raise
                await conn.execute("COMMIT")
                self._settled.add(server_pid)
            finally:
                try:
                    await self._pool.release(conn)
                finally:
                    self._settled.discard(server_pid)

    def _start_statement(self, user: str, *, readonly: bool, isolation: str) -> str:
        """``BEGIN`` and the transaction's settings as one simple query (one round trip).

        The values are written into the text because a simple query takes no parameters; both are
        made from typed values (a UUID's canonical text, a number of milliseconds), never from a
        caller's string.
        """
        return (
            f"{_BEGIN[isolation, readonly]}; SELECT set_config('{USER_ID_SETTING}', '{user}', true), "
            f"set_config('statement_timeout', '{self._statement_timeout_for_request()}', true)"
        )

    def _statement_timeout_for_request(self) -> str:
        """The session's statement timeout, cut to what is left of the caller's deadline."""
        remaining = current_time_remaining()
        if remaining is None:
            return f"{self._statement_timeout_ms}ms"
        if remaining <= 0:
            raise errors.DeadlineExceeded("The caller's deadline passed before the work started.")
        return f"{min(self._statement_timeout_ms, max(1, int(remaining * 1000)))}ms"

    async def ping(self, *, max_wait: float = 2.0) -> None:
        """Check that the server answers ``SELECT 1`` quickly; raise ``errors.Unavailable`` if not."""
        try:
            async with self._pool.acquire(timeout=max_wait) as conn:
                await conn.fetchval("SELECT 1", timeout=max_wait)
        except Exception as error:
            raise errors.Unavailable(
                "The database does not answer.", reason="DATABASE_UNAVAILABLE"
            ) from error

    async def close(self) -> None:
        """Close every connection, waiting for the ones in use to be released."""
        await self._pool.close()
