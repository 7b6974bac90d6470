"""Actor-style serialisation: the work for one key (a user, a document, an import job) runs in order.

In one process, :class:`KeyedMailbox` gives every key a queue and a worker task: work items for
the same key run strictly one at a time in submission order, items for different keys run
concurrently. Across replicas, :func:`advisory_lock` serialises transactions on the same key in
PostgreSQL. A service typically uses both: the mailbox avoids piling up waiting transactions for
a hot key in one process, the lock makes the guarantee hold for the whole deployment.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import hashlib
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import asyncpg

from vitalis_runtime import errors

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")

_Work = tuple[Callable[[], Awaitable[Any]], asyncio.Future[Any], contextvars.Context]


@dataclass
class _Worker:
    queue: asyncio.Queue[_Work | None]
    task: asyncio.Task[None] | None = field(default=None)


class KeyedMailbox(Generic[K]):
    """Per-key queues, each drained by its own worker task that exits when idle."""

    def __init__(self, *, max_queue: int = 1000, idle_timeout: float = 30.0) -> None:
        """``max_queue`` bounds the items waiting per key; a worker idle ``idle_timeout`` seconds exits."""
        if max_queue < 1:
            raise ValueError("max_queue must be at least 1")
        self._max_queue = max_queue
        self._idle_timeout = idle_timeout
        self._workers: dict[K, _Worker] = {}
        self._closed = False

    def __len__(self) -> int:
        """How many keys have a live worker."""
        return len(self._workers)

    async def submit(self, key: K, work: Callable[[], Awaitable[T]]) -> T:
        """Run ``work()`` after every earlier item of ``key``; return its result or raise its exception.

        Raises ``errors.ResourceExhausted`` when ``max_queue`` items of this key already wait,
        and ``errors.Unavailable`` once the mailbox is closing. If the caller is cancelled before its
        item starts, the item never runs; once started, it runs to completion. The item runs in a copy
        of the submitter's context, so its request id, caller and trace are the submitter's.
        """
        if self._closed:
            raise errors.Unavailable("The service is shutting down.", reason="SHUTTING_DOWN")
        worker = self._workers.get(key)
        if worker is None:
            worker = _Worker(queue=asyncio.Queue(maxsize=self._max_queue))
            self._workers[key] = worker
            worker.task = asyncio.create_task(self._drain(key, worker), name=f"mailbox {key!r}")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        try:
            worker.queue.put_nowait((work, future, contextvars.copy_context()))
        except asyncio.QueueFull:
            raise errors.ResourceExhausted(
                "Too many requests for the same resource are waiting; retry later.", reason="MAILBOX_FULL"
            ) from None
        return await future

    async def _drain(self, key: K, worker: _Worker) -> None:
        try:
            while True:
                try:
                    async with asyncio.timeout(self._idle_timeout):
                        item = await worker.queue.get()
                except TimeoutError:
                    # No await between the emptiness check and the removal: a submit cannot slip in.
                    if worker.queue.empty():
                        return
                    continue
                if item is None:
                    return
                await _run(*item)
        finally:
            if self._workers.get(key) is worker:
                del self._workers[key]
            _refuse_leftovers(worker.queue)

    async def close(self) -> None:
        """Refuse new work, let every queued item finish, and stop the workers."""
        self._closed = True
        workers = list(self._workers.values())
        for worker in workers:
            await worker.queue.put(None)
        tasks = [worker.task for worker in workers if worker.task is not None]
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks)


async def _run(
    work: Callable[[], Awaitable[Any]], future: asyncio.Future[Any], context: contextvars.Context
) -> None:
    if future.cancelled():
        return

    async def call() -> Any:
        return await work()

    try:
        result = await asyncio.create_task(call(), context=context)
    except asyncio.CancelledError:
        future.cancel()
        raise
    except Exception as error:
        if not future.done():
            future.set_exception(error)
    else:
        if not future.done():
            future.set_result(result)


def _refuse_leftovers(queue: asyncio.Queue[_Work | None]) -> None:
    while not queue.empty():
        leftover = queue.get_nowait()
        if leftover is not None and not leftover[1].done():
            leftover[1].set_exception(
                errors.Unavailable("The service is shutting down.", reason="SHUTTING_DOWN")
            )


def lock_id(key: str) -> int:
    """A stable signed 64-bit number for ``key``, as PostgreSQL advisory locks take."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big", signed=True)


async def advisory_lock(conn: asyncpg.Connection, key: str) -> None:
    """Wait for the transaction-scoped advisory lock of ``key``; it is released at commit or rollback.

    Use a key that names the thing serialised (``"ingestion.import:<job id>"``) so unrelated
    locks do not collide. Must run inside a transaction.
    """
    if not conn.is_in_transaction():
        raise RuntimeError("advisory_lock must run inside a transaction")
    await conn.execute("SELECT pg_advisory_xact_lock($1)", lock_id(key))
