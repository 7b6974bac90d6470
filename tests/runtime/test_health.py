"""Readiness follows the dependency checks; liveness does not; shutdown turns everything off."""

from __future__ import annotations

import asyncio

import pytest
from grpc_health.v1 import health_pb2
from grpc_health.v1.health import aio as health_aio

from vitalis_runtime.health import LIVENESS_SERVICE, HealthReporter

SERVICE = "vitalis.test.v1.ThingService"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class Dependency:
    def __init__(self) -> None:
        self.up = True
        self.hangs = False

    async def check(self) -> None:
        if self.hangs:
            await asyncio.sleep(60)
        if not self.up:
            raise ConnectionError("down")


class StatusProbe:
    """Reads statuses through the servicer's Check, as a probe would."""

    def __init__(self, servicer: health_aio.HealthServicer) -> None:
        self.servicer = servicer

    async def status(self, service: str) -> int:
        response = await asyncio.wait_for(
            self.servicer.Check(health_pb2.HealthCheckRequest(service=service), None), timeout=5
        )
        return int(response.status)

    async def becomes(self, service: str, status: int, *, within_seconds: float = 5) -> bool:
        for _ in range(int(within_seconds / 0.01)):
            if await self.status(service) == status:
                return True
            await asyncio.sleep(0.01)
        return False


@pytest.fixture
def database() -> Dependency:
    return Dependency()


@pytest.fixture
def cache() -> Dependency:
    return Dependency()


@pytest.fixture
def reporter(database: Dependency, cache: Dependency) -> HealthReporter:
    return HealthReporter(
        health_aio.HealthServicer(),
        [SERVICE],
        {"postgresql": database.check, "redis": cache.check},
        interval_seconds=0.05,
        check_timeout_seconds=0.2,
    )


async def test_everything_serves_while_every_check_passes(reporter: HealthReporter) -> None:
    probe = StatusProbe(reporter.servicer)

    await asyncio.wait_for(reporter.start(), timeout=5)

    assert [await probe.status(name) for name in ("", SERVICE, LIVENESS_SERVICE)] == [SERVING] * 3
    assert reporter.ready


async def test_one_failing_check_makes_the_service_not_ready_but_still_live(
    reporter: HealthReporter, cache: Dependency
) -> None:
    probe = StatusProbe(reporter.servicer)
    cache.up = False

    await asyncio.wait_for(reporter.start(), timeout=5)

    assert await probe.status("") == NOT_SERVING
    assert await probe.status(SERVICE) == NOT_SERVING
    assert await probe.status(LIVENESS_SERVICE) == SERVING


async def test_a_hanging_check_counts_as_failing(reporter: HealthReporter, database: Dependency) -> None:
    database.hangs = True

    ready = await asyncio.wait_for(reporter.check_once(), timeout=5)

    assert not ready


async def test_the_loop_notices_recovery_and_stops_when_asked(
    reporter: HealthReporter, database: Dependency
) -> None:
    probe = StatusProbe(reporter.servicer)
    database.up = False
    stop = asyncio.Event()
    loop = asyncio.create_task(reporter.run(stop))
    try:
        assert await probe.becomes("", NOT_SERVING)
        database.up = True
        assert await probe.becomes("", SERVING)
    finally:
        stop.set()
        await asyncio.wait_for(loop, timeout=5)


async def test_after_shutdown_nothing_serves_even_if_checks_pass(reporter: HealthReporter) -> None:
    probe = StatusProbe(reporter.servicer)
    await asyncio.wait_for(reporter.start(), timeout=5)

    await asyncio.wait_for(reporter.shutdown(), timeout=5)
    await asyncio.wait_for(reporter.check_once(), timeout=5)

    assert [await probe.status(name) for name in ("", SERVICE, LIVENESS_SERVICE)] == [NOT_SERVING] * 3
