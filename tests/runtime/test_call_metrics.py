"""Every call is counted, timed and logged once; the metrics are served for Prometheus."""

from __future__ import annotations

import asyncio
import logging
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import grpc
import grpc.aio
import pytest
from google.protobuf import wrappers_pb2
from prometheus_client import CollectorRegistry

from vitalis_runtime import errors
from vitalis_runtime.metrics import rpc_metrics, start_metrics_server
from vitalis_runtime.testing_grpc import RunningServer, generic_service, running_server

S = wrappers_pb2.StringValue
SERVICE = "vitalis.test.v1.CountedService"


@pytest.fixture
async def server() -> AsyncIterator[RunningServer]:
    registry_holder: dict[str, CollectorRegistry] = {}
    release = asyncio.Event()

    async def ok(request: S, context: Any) -> S:
        return S(value="ok")

    async def missing(request: S, context: Any) -> S:
        raise errors.NotFound("no such thing")

    async def in_flight(request: S, context: Any) -> S:
        value = registry_holder["registry"].get_sample_value(
            "grpc_server_in_flight", {"grpc_service": SERVICE, "grpc_method": "InFlight"}
        )
        return S(value=str(value))

    async def hangs(request: S, context: Any) -> S:
        await release.wait()
        return S()

    handlers = {
        name: grpc.unary_unary_rpc_method_handler(behavior, S.FromString, S.SerializeToString)
        for name, behavior in {"Ok": ok, "Missing": missing, "InFlight": in_flight, "Hangs": hangs}.items()
    }
    async with running_server(
        service_name="counted",
        register=generic_service(SERVICE, handlers),
        service_names=[SERVICE],
        verifier=None,
        public_methods=[f"/{SERVICE}/{name}" for name in handlers],
    ) as running:
        registry_holder["registry"] = running.registry
        yield running
        release.set()


@pytest.fixture
async def channel(server: RunningServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(server.target) as channel:
        yield channel


def unary(channel: grpc.aio.Channel, name: str) -> grpc.aio.UnaryUnaryMultiCallable[S, S]:
    return channel.unary_unary(f"/{SERVICE}/{name}", S.SerializeToString, S.FromString)


def handled(server: RunningServer, method: str, code: str) -> float:
    labels = {"grpc_service": SERVICE, "grpc_method": method, "grpc_code": code}
    return server.registry.get_sample_value("grpc_server_handled_total", labels) or 0.0


async def test_calls_are_counted_by_method_and_status_code(
    server: RunningServer, channel: grpc.aio.Channel
) -> None:
    for _ in range(3):
        await unary(channel, "Ok")(S(), timeout=5)
    with pytest.raises(grpc.aio.AioRpcError):
        await unary(channel, "Missing")(S(), timeout=5)

    assert handled(server, "Ok", "OK") == 3
    assert handled(server, "Missing", "NOT_FOUND") == 1
    latency_count = server.registry.get_sample_value(
        "grpc_server_handling_seconds_count", {"grpc_service": SERVICE, "grpc_method": "Ok"}
    )
    assert latency_count == 3


async def test_a_call_is_in_flight_only_while_it_runs(
    server: RunningServer, channel: grpc.aio.Channel
) -> None:
    during = await unary(channel, "InFlight")(S(), timeout=5)

    after = server.registry.get_sample_value(
        "grpc_server_in_flight", {"grpc_service": SERVICE, "grpc_method": "InFlight"}
    )
    assert during.value == "1.0"
    assert after == 0


async def test_a_call_the_client_cancels_is_counted_as_cancelled(
    server: RunningServer, channel: grpc.aio.Channel
) -> None:
    call = unary(channel, "Hangs")(S(), timeout=5)
    await asyncio.sleep(0.2)
    call.cancel()

    for _ in range(250):
        if handled(server, "Hangs", "CANCELLED"):
            break
        await asyncio.sleep(0.02)
    assert handled(server, "Hangs", "CANCELLED") == 1


async def test_each_call_writes_one_access_log_line(
    channel: grpc.aio.Channel, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="vitalis.access"):
        with pytest.raises(grpc.aio.AioRpcError):
            await unary(channel, "Missing")(S(), timeout=5)
        await unary(channel, "Ok")(S(), timeout=5)

    lines = [record for record in caplog.records if record.name == "vitalis.access"]
    assert [(r.grpc_method, r.grpc_code) for r in lines] == [  # type: ignore[attr-defined]
        (f"/{SERVICE}/Missing", "NOT_FOUND"),
        (f"/{SERVICE}/Ok", "OK"),
    ]
    assert all(r.duration_ms >= 0 for r in lines)  # type: ignore[attr-defined]


async def test_the_metrics_endpoint_serves_the_registry() -> None:
    registry = CollectorRegistry()
    rpc_metrics(registry).record(f"/{SERVICE}/Ok", "OK", 0.004)
    endpoint = start_metrics_server(0, host="127.0.0.1", registry=registry)
    try:
        url = f"http://127.0.0.1:{endpoint.port}/metrics"
        body = await asyncio.wait_for(
            asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=5).read()), 10
        )
    finally:
        endpoint.close()

    assert f'grpc_server_handled_total{{grpc_code="OK",grpc_method="Ok",grpc_service="{SERVICE}"}} 1.0' in (
        body.decode()
    )
