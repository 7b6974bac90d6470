"""Waking watches: one LISTEN connection per process fans ``insight_changes`` notifications out.

The store sends ``NOTIFY insight_changes, '<user id>'`` inside the transaction that stores a change,
and PostgreSQL delivers it only at commit, to every replica: a woken watch always finds the change
in the database, whichever replica stored it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from vitalis_insights.store.insights import CHANGE_CHANNEL
from vitalis_runtime.background import sleep_unless_stopped
from vitalis_runtime.db import Database

RECONNECT_SECONDS = 1.0

logger = logging.getLogger(__name__)


def _lost(connection: asyncpg.Connection) -> bool:
    """Whether the listening connection is gone (the pool detaches a proxy whose connection died)."""
    try:
        return bool(connection.is_closed())
    except asyncpg.InterfaceError:
        return True


class ChangeNotifier:
    """Per-user wake-up events for open watches."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._connection: asyncpg.Connection | None = None
        self._waiters: dict[uuid.UUID, set[asyncio.Event]] = {}

    async def start(self) -> None:
        """Hold a connection listening on the channel."""
        self._connection = await self._db.pool.acquire()
        await self._connection.add_listener(CHANGE_CHANNEL, self._notified)

    async def run(self, stop: asyncio.Event) -> None:
        """Listen again whenever the connection is lost (a database restart); wake every watch then,
        so none waits for a change announced while nobody listened."""
        while not stop.is_set():
            connection = self._connection
            if connection is None or _lost(connection):
                try:
                    if connection is not None:
                        self._connection = None
                        with contextlib.suppress(Exception):
                            await self._db.pool.release(connection)
                    await self.start()
                except Exception:
                    logger.warning("cannot listen for insight changes yet; retrying", exc_info=True)
                else:
                    logger.info("listening for insight changes again")
                    for waiters in self._waiters.values():
                        for waiter in waiters:
                            waiter.set()
            await sleep_unless_stopped(stop, RECONNECT_SECONDS)

    async def stop(self) -> None:
        """Stop listening and give the connection back."""
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.remove_listener(CHANGE_CHANNEL, self._notified)
            await self._db.pool.release(connection)
        for waiters in self._waiters.values():
            for waiter in waiters:
                waiter.set()

    def _notified(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            user_id = uuid.UUID(payload)
        except ValueError:
            return
        for waiter in self._waiters.get(user_id, ()):
            waiter.set()

    def wake(self, user_id: uuid.UUID) -> None:
        """Wake the user's watches in this process (after erasure, for example)."""
        for waiter in self._waiters.get(user_id, ()):
            waiter.set()

    @contextlib.asynccontextmanager
    async def subscribe(self, user_id: uuid.UUID) -> AsyncIterator[asyncio.Event]:
        """An event set whenever the user's insights change, until the block exits."""
        waiter = asyncio.Event()
        self._waiters.setdefault(user_id, set()).add(waiter)
        try:
            yield waiter
        finally:
            waiters = self._waiters.get(user_id)
            if waiters is not None:
                waiters.discard(waiter)
                if not waiters:
                    del self._waiters[user_id]
