"""The server factory and the serve loop: binding, health, reflection, limits and shutdown order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import grpc.aio
import pytest
from google.protobuf import wrappers_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from vitalis_runtime.server import create_server, serve
from vitalis_runtime.testing_grpc import generic_service

S = wrappers_pb2.StringValue
SERVICE = "vitalis.test.v1.EchoService"
ECHO = f"/{SERVICE}/Echo"


async def echo(request: S, context: Any) -> S:
    await asyncio.sleep(float(request.value or 0))
    return request


def register(server: grpc.aio.Server) -> None:
    handler = grpc.unary_unary_rpc_method_handler(echo, S.FromString, S.SerializeToString)
    generic_service(SERVICE, {"Echo": handler})(server)


async def bound(**options: Any) -> tuple[grpc.aio.Server, int, Any]:
    return await create_server(
        "127.0.0.1:0",
        service_name="echo",
        register=register,
        service_names=[SERVICE],
        verifier=None,
        public_methods=[ECHO],
        **options,
    )


@pytest.fixture
async def started() -> AsyncIterator[tuple[grpc.aio.Channel, Any]]:
    server, port, health = await bound(max_message_bytes=1024)
    await server.start()
    await health.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield channel, health
    finally:
        await server.stop(None)


async def test_port_zero_binds_a_free_port_and_returns_it() -> None:
    first, first_port, _ = await bound()
    second, second_port, _ = await bound()
    try:
        assert first_port > 0
        assert second_port > 0
        assert first_port != second_port
    finally:
        await first.stop(None)
        await second.stop(None)


async def test_health_is_not_serving_until_the_first_checks_pass() -> None:
    server, port, health = await bound()
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            before = await stub.Check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=5)
            await asyncio.wait_for(health.start(), timeout=5)
            after = await stub.Check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=5)
    finally:
        await server.stop(None)

    assert before.status == health_pb2.HealthCheckResponse.NOT_SERVING
    assert after.status == health_pb2.HealthCheckResponse.SERVING


async def test_reflection_lists_the_service_and_health(started: tuple[grpc.aio.Channel, Any]) -> None:
    channel, _ = started
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)

    async def one_request() -> AsyncIterator[reflection_pb2.ServerReflectionRequest]:
        yield reflection_pb2.ServerReflectionRequest(list_services="")

    responses = [response async for response in stub.ServerReflectionInfo(one_request(), timeout=5)]

    names = {service.name for service in responses[0].list_services_response.service}
    assert {SERVICE, "grpc.health.v1.Health"} <= names


async def test_a_message_over_the_size_limit_is_refused(started: tuple[grpc.aio.Channel, Any]) -> None:
    channel, _ = started
    call = channel.unary_unary(ECHO, S.SerializeToString, S.FromString)

    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call(S(value="0" * 2048), timeout=5)

    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_serve_stops_in_order_when_the_stop_event_is_set() -> None:
    events: list[str] = []
    stop = asyncio.Event()

    async def slow_echo(request: S, context: Any) -> S:
        await asyncio.sleep(0.5)
        events.append("in-flight call finished")
        return request

    async def relay(background_stop: asyncio.Event) -> None:
        await background_stop.wait()
        events.append("background stopped")

    async def close_pool() -> None:
        events.append("pool closed")

    handler = grpc.unary_unary_rpc_method_handler(slow_echo, S.FromString, S.SerializeToString)
    server, port, health = await create_server(
        "127.0.0.1:0",
        service_name="echo",
        register=generic_service(SERVICE, {"Echo": handler}),
        service_names=[SERVICE],
        verifier=None,
        public_methods=[ECHO],
    )
    serving = asyncio.create_task(
        serve(server, health, grace_seconds=5, background=[relay], on_stop=[close_pool], stop=stop)
    )
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        slow = channel.unary_unary(ECHO, S.SerializeToString, S.FromString)(S(value="kept"), timeout=10)
        await asyncio.sleep(0.2)
        stop.set()
        response = await asyncio.wait_for(slow, timeout=10)
        await asyncio.wait_for(serving, timeout=10)

    assert response.value == "kept"
    assert events == ["in-flight call finished", "background stopped", "pool closed"]


async def test_a_failing_background_task_stops_the_server_and_is_raised() -> None:
    server, _, health = await bound()
    closed = asyncio.Event()

    async def broken_consumer(background_stop: asyncio.Event) -> None:
        raise RuntimeError("consumer crashed")

    async def close_pool() -> None:
        closed.set()

    with pytest.raises(RuntimeError, match="consumer crashed"):
        await asyncio.wait_for(
            serve(server, health, grace_seconds=1, background=[broken_consumer], on_stop=[close_pool]),
            timeout=10,
        )
    assert closed.is_set()


async def test_a_background_task_ignoring_the_stop_event_is_cancelled() -> None:
    server, _, health = await bound()
    stop = asyncio.Event()
    cancelled = asyncio.Event()

    async def stubborn(background_stop: asyncio.Event) -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    serving = asyncio.create_task(serve(server, health, grace_seconds=0.2, background=[stubborn], stop=stop))
    await asyncio.sleep(0.1)
    stop.set()
    await asyncio.wait_for(serving, timeout=10)

    assert cancelled.is_set()
