"""The keyed mailbox: per-key order, concurrency across keys, back-pressure, shutdown (no servers)."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable

import pytest

from vitalis_runtime import errors
from vitalis_runtime.mailbox import KeyedMailbox, lock_id


async def test_items_of_one_key_run_one_at_a_time_in_order() -> None:
    mailbox: KeyedMailbox[str] = KeyedMailbox()
    log: list[str] = []
    running = 0

    async def step(index: int) -> int:
        nonlocal running
        running += 1
        assert running == 1
        log.append(f"start {index}")
        await asyncio.sleep(0.001 * (5 - index % 5))
        log.append(f"end {index}")
        running -= 1
        return index

    async with asyncio.timeout(5):
        results = await asyncio.gather(*(mailbox.submit("user-1", lambda i=i: step(i)) for i in range(20)))
        await mailbox.close()

    assert results == list(range(20))
    assert log == [entry for i in range(20) for entry in (f"start {i}", f"end {i}")]


async def test_different_keys_run_concurrently() -> None:
    mailbox: KeyedMailbox[int] = KeyedMailbox()
    both_started = asyncio.Barrier(2)

    async def wait_for_the_other() -> str:
        await both_started.wait()
        return "met"

    async with asyncio.timeout(5):
        results = await asyncio.gather(
            mailbox.submit(1, wait_for_the_other), mailbox.submit(2, wait_for_the_other)
        )
        await mailbox.close()

    assert results == ["met", "met"]


async def test_exception_goes_to_its_submitter_and_the_key_keeps_working() -> None:
    mailbox: KeyedMailbox[str] = KeyedMailbox()

    async def fail() -> None:
        raise LookupError("no such panel")

    async def succeed() -> str:
        return "ok"

    async with asyncio.timeout(5):
        with pytest.raises(LookupError, match="no such panel"):
            await mailbox.submit("k", fail)
        assert await mailbox.submit("k", succeed) == "ok"
        await mailbox.close()


async def test_full_queue_is_resource_exhausted() -> None:
    mailbox: KeyedMailbox[str] = KeyedMailbox(max_queue=2)
    release = asyncio.Event()

    async def blocked() -> None:
        await release.wait()

    async with asyncio.timeout(5):
        first = asyncio.create_task(mailbox.submit("hot", blocked))
        await asyncio.sleep(0)
        queued = [asyncio.create_task(mailbox.submit("hot", blocked)) for _ in range(2)]
        await asyncio.sleep(0)
        with pytest.raises(errors.ResourceExhausted):
            await mailbox.submit("hot", blocked)
        release.set()
        await asyncio.gather(first, *queued)
        await mailbox.close()


async def test_idle_worker_exits_and_a_new_one_serves_the_key_later() -> None:
    mailbox: KeyedMailbox[str] = KeyedMailbox(idle_timeout=0.05)

    async def value() -> int:
        return 1

    async with asyncio.timeout(5):
        assert await mailbox.submit("k", value) == 1
        assert len(mailbox) == 1
        await asyncio.sleep(0.2)
        assert len(mailbox) == 0
        assert await mailbox.submit("k", value) == 1
        await mailbox.close()


async def test_close_finishes_queued_work_then_refuses_new_work() -> None:
    mailbox: KeyedMailbox[str] = KeyedMailbox()
    done: list[int] = []

    async def record(index: int) -> None:
        await asyncio.sleep(0.01)
        done.append(index)

    async with asyncio.timeout(5):
        pending = [asyncio.create_task(mailbox.submit("k", lambda i=i: record(i))) for i in range(5)]
        await asyncio.sleep(0)
        await mailbox.close()
        await asyncio.gather(*pending)

    assert done == [0, 1, 2, 3, 4]
    with pytest.raises(errors.Unavailable):
        await mailbox.submit("k", lambda: record(9))


async def test_cancelled_submitter_item_does_not_run() -> None:
    mailbox: KeyedMailbox[str] = KeyedMailbox()
    release = asyncio.Event()
    ran: list[str] = []

    async def blocked() -> None:
        await release.wait()

    async def never() -> None:
        ran.append("never")

    async with asyncio.timeout(5):
        first = asyncio.create_task(mailbox.submit("k", blocked))
        await asyncio.sleep(0)
        second = asyncio.create_task(mailbox.submit("k", never))
        await asyncio.sleep(0)
        second.cancel()
        release.set()
        await first
        await mailbox.close()

    assert ran == []


def test_lock_ids_are_stable_signed_64_bit_numbers() -> None:
    assert lock_id("ingestion.import:42") == lock_id("ingestion.import:42")
    assert lock_id("ingestion.import:42") != lock_id("ingestion.import:43")
    assert all(-(2**63) <= lock_id(str(i)) < 2**63 for i in range(1000))
    assert any(lock_id(str(i)) < 0 for i in range(1000))


async def test_each_item_runs_in_its_submitters_context() -> None:
    request: contextvars.ContextVar[str] = contextvars.ContextVar("request", default="none")
    mailbox: KeyedMailbox[str] = KeyedMailbox()
    release = asyncio.Event()

    async def first() -> str:
        await release.wait()
        return request.get()

    async def later() -> str:
        return request.get()

    async def submit_as(name: str, work: Callable[[], Awaitable[str]]) -> str:
        request.set(name)
        return await mailbox.submit("user-1", work)

    try:
        running = asyncio.create_task(submit_as("request-a", first))
        await asyncio.sleep(0)
        queued = asyncio.create_task(submit_as("request-b", later))
        await asyncio.sleep(0)
        release.set()
        assert await running == "request-a"
        assert await queued == "request-b"
    finally:
        await mailbox.close()
