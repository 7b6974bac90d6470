"""Body-composition scans and epigenetic tests: documents with a time, etags and events."""

from __future__ import annotations

import asyncio
import contextvars
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import asyncpg
from google.protobuf.message import Message

from vitalis_biomarkers.app import events
from vitalis_biomarkers.store.panels import TimeInterval, lock_user
from vitalis_biomarkers.store.records import Record, RecordStore, RecordTable
from vitalis_biomarkers.store.requests import RequestStore
from vitalis_runtime.db import Database
from vitalis_runtime.errors import Aborted, NotFound
from vitalis_runtime.mailbox import KeyedMailbox

RecordEvent = Callable[[Record, bool, datetime], Message]
T = TypeVar("T")
Change = Callable[[Record], tuple[datetime, dict[str, Any]]]


class RecordBook:
    """The use cases of one kind of record."""

    def __init__(self, db: Database, table: RecordTable, *, noun: str, event: RecordEvent) -> None:
        """Keep records in ``table``; ``noun`` names them in errors; ``event`` announces changes."""
        self._db = db
        self._store = RecordStore(table)
        self._requests = RequestStore()
        self._noun = noun
        self._event = event
        self._method = f"Create:{table.table}"
        self._mailbox: KeyedMailbox[uuid.UUID] = KeyedMailbox()

    def _not_found(self) -> NotFound:
        return NotFound(
            f"the {self._noun} does not exist", reason=f"{self._noun.upper().replace(' ', '_')}_NOT_FOUND"
        )

    async def create(
        self, user_id: uuid.UUID, time: datetime, document: dict[str, Any], *, request_id: str
    ) -> Record:
        """Store a new record, or return the one an earlier call with ``request_id`` created."""
        now = datetime.now(UTC)

        async def work(conn: asyncpg.Connection) -> Record:
            if request_id:
                earlier = await self._requests.find(conn, user_id, self._method, request_id)
                if earlier is not None:
                    found = await self._store.get(conn, user_id, uuid.UUID(earlier.resource))
                    if found is not None:
                        return found
            record = Record(user_id, uuid.uuid4(), time, document, now, now, 1)
            await self._store.insert(conn, record)
            await events.publish(conn, user_id, self._event(record, True, now))
            if request_id:
                await self._requests.remember(
                    conn, user_id, self._method, request_id, resource=str(record.id)
                )
            return record

        return await self._write(user_id, work)

    async def get(self, user_id: uuid.UUID, record_id: uuid.UUID) -> Record:
        """One record; NotFound when it does not exist."""
        async with self._db.transaction(user_id=user_id, readonly=True) as conn:
            record = await self._store.get(conn, user_id, record_id)
        if record is None:
            raise self._not_found()
        return record

    async def list_records(
        self,
        user_id: uuid.UUID,
        *,
        interval: TimeInterval,
        ascending: bool,
        after: tuple[datetime, uuid.UUID] | None,
        limit: int,
    ) -> list[Record]:
        """Records in time order."""
        async with self._db.transaction(user_id=user_id, readonly=True) as conn:
            return await self._store.list_records(
                conn, user_id, interval=interval, ascending=ascending, after=after, limit=limit
            )

    async def update(self, user_id: uuid.UUID, record_id: uuid.UUID, change: Change, *, etag: str) -> Record:
        """Apply ``change`` to the stored record; a stale ``etag`` is ABORTED."""
        now = datetime.now(UTC)

        async def work(conn: asyncpg.Connection) -> Record:
            current = await self._store.get(conn, user_id, record_id, for_update=True)
            if current is None:
                raise self._not_found()
            if etag and etag != current.etag:
                raise Aborted(
                    f"the {self._noun} changed since it was read; read it again and retry",
                    reason="STALE_ETAG",
                )
            time, document = change(current)
            updated = Record(
                user_id, record_id, time, document, current.create_time, now, current.version + 1
            )
            await self._store.update(conn, updated)
            await events.publish(conn, user_id, self._event(updated, False, now))
            return updated

        return await self._write(user_id, work)

    async def delete(self, user_id: uuid.UUID, record_id: uuid.UUID, *, etag: str) -> None:
        """Delete a record; a stale ``etag`` is ABORTED."""

        async def work(conn: asyncpg.Connection) -> None:
            current = await self._store.get(conn, user_id, record_id, for_update=True)
            if current is None:
                raise self._not_found()
            if etag and etag != current.etag:
                raise Aborted(
                    f"the {self._noun} changed since it was read; read it again and retry",
                    reason="STALE_ETAG",
                )
            await self._store.delete(conn, user_id, record_id)

        await self._write(user_id, work)

    async def _write(self, user_id: uuid.UUID, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        async def transact() -> T:
            async with self._db.transaction(user_id=user_id) as conn:
                await lock_user(conn, user_id)
                return await work(conn)

        # The mailbox's worker outlives one request; the work keeps its own request's context
        # (request id, trace) so that its logs and events name the right request.
        context = contextvars.copy_context()

        async def run() -> T:
            return await asyncio.create_task(transact(), context=context)

        return await self._mailbox.submit(user_id, run)

    async def close(self) -> None:
        """Finish queued writes and stop taking new ones."""
        await self._mailbox.close()
