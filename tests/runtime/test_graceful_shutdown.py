"""SIGTERM to a real service process: health goes NOT_SERVING first, in-flight calls still finish."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import grpc.aio
import pytest
from google.protobuf import wrappers_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

SERVER_SCRIPT = Path(__file__).with_name("shutdown_probe_server.py")
SLOW_METHOD = "/vitalis.test.v1.SlowService/Slow"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class ServiceProcess:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.seen: list[str] = []

    async def next_line(self) -> str:
        assert self.process.stdout is not None
        line = (await asyncio.wait_for(self.process.stdout.readline(), timeout=15)).decode().strip()
        assert line, f"the service exited early after {self.seen}"
        self.seen.append(line)
        return line

    async def wait_for_line(self, expected: str) -> None:
        while (await self.next_line()) != expected:
            pass


@pytest.fixture
async def service() -> AsyncIterator[ServiceProcess]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(SERVER_SCRIPT), stdout=asyncio.subprocess.PIPE
    )
    try:
        yield ServiceProcess(process)
    finally:
        if process.returncode is None:
            process.kill()
            await asyncio.wait_for(process.wait(), timeout=10)


async def test_sigterm_reports_not_serving_first_and_lets_the_in_flight_call_finish(
    service: ServiceProcess,
) -> None:
    port = int((await service.next_line()).removeprefix("PORT "))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        await asyncio.wait_for(channel.channel_ready(), timeout=10)
        watch = health_pb2_grpc.HealthStub(channel).Watch(
            health_pb2.HealthCheckRequest(service=""), timeout=30
        )
        while (await asyncio.wait_for(watch.read(), timeout=10)).status != SERVING:
            pass
        slow = channel.unary_unary(
            SLOW_METHOD,
            wrappers_pb2.StringValue.SerializeToString,
            wrappers_pb2.StringValue.FromString,
        )(wrappers_pb2.StringValue(value="in flight"), timeout=30)
        await service.wait_for_line("SLOW_STARTED")

        service.process.send_signal(signal.SIGTERM)
        health_after_signal = await asyncio.wait_for(watch.read(), timeout=10)
        slow_done_when_not_serving = slow.done()
        watch.cancel()
        response = await asyncio.wait_for(slow, timeout=15)

    assert health_after_signal.status == NOT_SERVING
    assert not slow_done_when_not_serving
    assert response.value == "done: in flight"
    assert await asyncio.wait_for(service.process.wait(), timeout=15) == 0
    assert service.process.stdout is not None
    rest = (await asyncio.wait_for(service.process.stdout.read(), timeout=5)).decode().split()
    assert rest == ["SLOW_FINISHED", "BACKGROUND_STOPPED", "ON_STOP"]
