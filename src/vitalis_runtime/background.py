"""Long-running background loops that outlive outages of the servers they depend on."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable

from vitalis_runtime import errors

logger = logging.getLogger(__name__)


async def sleep_unless_stopped(stop: asyncio.Event, seconds: float) -> None:
    """Wait ``seconds``, returning early as soon as ``stop`` is set."""
    if seconds <= 0 or stop.is_set():
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


async def run_until_stopped(
    step: Callable[[], Awaitable[bool]],
    stop: asyncio.Event,
    *,
    name: str,
    idle_delay: float,
    max_backoff: float = 5.0,
    housekeeping: Callable[[], Awaitable[object]] | None = None,
    housekeeping_interval: float = 3600.0,
) -> None:
    """Call ``step`` until ``stop`` is set; never let a failure end the loop.

    ``step`` returns whether more work is waiting (call again at once) or not (wait
    ``idle_delay``). ``housekeeping`` (purging old rows, say) runs after the first step and then
    at most once per ``housekeeping_interval`` seconds. A failing step is retried with exponential
    backoff (with jitter, capped at ``max_backoff``); the first failure of an outage is logged as a
    warning and the recovery as information, so a long outage does not flood the log.
    """
    loop = asyncio.get_running_loop()
    next_housekeeping = loop.time()
    failures = 0
    while not stop.is_set():
        try:
            more = await step()
            if housekeeping is not None and loop.time() >= next_housekeeping:
                await housekeeping()
                next_housekeeping = loop.time() + housekeeping_interval
        except Exception as error:
            failures += 1
            if failures == 1:
                if isinstance(error, errors.VitalisError):
                    logger.warning("%s: %s; retrying with backoff", name, error.message)
                else:
                    logger.exception("%s failed; retrying with backoff", name)
            backoff = min(max_backoff, max(idle_delay, 0.05) * 2 ** min(failures, 16))
            await sleep_unless_stopped(stop, backoff * random.uniform(0.5, 1.0))  # noqa: S311
            continue
        if failures:
            logger.info("%s recovered after %d failed attempts", name, failures)
            failures = 0
        if not more:
            await sleep_unless_stopped(stop, idle_delay)
