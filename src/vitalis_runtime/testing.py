"""Test support: the PostgreSQL and Redis servers a test session runs against.

Configured servers are used when they answer; otherwise embedded ones (the same ones ``vitalis run``
starts) are started in a temporary folder and stopped at the end of the session.
"""

from __future__ import annotations

import socket
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from vitalis_runtime.db import sql_identifier
from vitalis_runtime.embedded import EmbeddedPostgres, EmbeddedRedis

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


@dataclass(frozen=True)
class TestServers:
    """Where the session's PostgreSQL (as a superuser) and Redis are."""

    database_url: str
    redis_url: str

    def database_url_for(self, database: str) -> str:
        """The same server and credentials, another database."""
        parts = urlsplit(self.database_url)
        return urlunsplit(parts._replace(path=f"/{database}"))

    @asynccontextmanager
    async def temporary_database(self, prefix: str = "vitalis_t") -> AsyncIterator[str]:
        """Create a database of the caller's own and yield its superuser URL; drop it on exit."""
        name = f"{prefix}_{uuid.uuid4().hex[:16]}"
        await self._admin_execute(f"CREATE DATABASE {sql_identifier(name)}")
        try:
            yield self.database_url_for(name)
        finally:
            await self._admin_execute(f"DROP DATABASE IF EXISTS {sql_identifier(name)} WITH (FORCE)")

    async def _admin_execute(self, statement: str) -> None:
        admin = await asyncpg.connect(self.database_url)
        try:
            await admin.execute(statement)
        finally:
            await admin.close()


def _answers(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=1):
            return True
    except OSError:
        return False


@contextmanager
def start_test_servers(*, database_url: str | None, redis_url: str | None) -> Iterator[TestServers]:
    """Yield reachable servers, starting embedded ones for any that does not answer."""
    database_url = database_url or DEFAULT_DATABASE_URL
    redis_url = redis_url or DEFAULT_REDIS_URL
    with tempfile.TemporaryDirectory(prefix="vitalis-test-") as scratch:
        postgres: EmbeddedPostgres | None = None
        redis: EmbeddedRedis | None = None
        try:
            if not _answers(database_url, 5432):
                postgres = EmbeddedPostgres(Path(scratch) / "postgres")
                database_url = postgres.start()
            if not _answers(redis_url, 6379):
                redis = EmbeddedRedis(Path(scratch) / "redis")
                redis_url = redis.start()
            yield TestServers(database_url=database_url, redis_url=redis_url)
        finally:
            if redis is not None:
                redis.stop()
            if postgres is not None:
                postgres.stop()
