"""Each call runs inside its request context: request id and method bound, trace continued."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import grpc
import grpc.aio
import pytest
from google.protobuf import wrappers_pb2
from opentelemetry import trace

from vitalis_runtime import errors
from vitalis_runtime.request_context import current_request
from vitalis_runtime.testing_grpc import RunningServer, generic_service, running_server

S = wrappers_pb2.StringValue
SERVICE = "vitalis.test.v1.ContextService"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


async def describe(request: S, context: Any) -> S:
    served = current_request()
    assert served is not None
    return S(value=f"{served.request_id} {served.method}")


async def describe_twice(request: S, context: Any) -> AsyncIterator[S]:
    for _ in range(2):
        yield await describe(request, context)


async def fail(request: S, context: Any) -> S:
    raise errors.NotFound("gone")


async def annotate(request: S, context: Any) -> S:
    context.set_trailing_metadata((("x-annotation", "kept"),))
    return S(value="annotated")


async def trace_id(request: S, context: Any) -> S:
    return S(value=format(trace.get_current_span().get_span_context().trace_id, "032x"))


HANDLERS = {
    "Describe": grpc.unary_unary_rpc_method_handler(describe, S.FromString, S.SerializeToString),
    "DescribeTwice": grpc.unary_stream_rpc_method_handler(describe_twice, S.FromString, S.SerializeToString),
    "Fail": grpc.unary_unary_rpc_method_handler(fail, S.FromString, S.SerializeToString),
    "TraceId": grpc.unary_unary_rpc_method_handler(trace_id, S.FromString, S.SerializeToString),
    "Annotate": grpc.unary_unary_rpc_method_handler(annotate, S.FromString, S.SerializeToString),
}


@pytest.fixture
async def server() -> AsyncIterator[RunningServer]:
    async with running_server(
        service_name="context",
        register=generic_service(SERVICE, HANDLERS),
        service_names=[SERVICE],
        verifier=None,
        public_methods=[f"/{SERVICE}/{name}" for name in HANDLERS],
    ) as running:
        yield running


@pytest.fixture
async def channel(server: RunningServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(server.target) as channel:
        yield channel


def unary(channel: grpc.aio.Channel, name: str) -> grpc.aio.UnaryUnaryMultiCallable[S, S]:
    return channel.unary_unary(f"/{SERVICE}/{name}", S.SerializeToString, S.FromString)


async def test_the_callers_request_id_is_bound_and_echoed(channel: grpc.aio.Channel) -> None:
    call = unary(channel, "Describe")(S(), metadata=(("x-request-id", "req-42"),), timeout=5)

    response = await call

    assert response.value == f"req-42 /{SERVICE}/Describe"
    assert ("x-request-id", "req-42") in tuple(await call.trailing_metadata() or ())


async def test_each_call_sees_its_own_metadata(channel: grpc.aio.Channel) -> None:
    first = await unary(channel, "Describe")(S(), metadata=(("x-request-id", "req-a"),), timeout=5)
    second = await unary(channel, "Describe")(S(), metadata=(("x-request-id", "req-b"),), timeout=5)
    third = await unary(channel, "Describe")(S(), timeout=5)

    assert first.value.startswith("req-a ")
    assert second.value.startswith("req-b ")
    assert not third.value.startswith(("req-a ", "req-b "))


async def test_a_request_id_is_generated_when_the_caller_sends_none(channel: grpc.aio.Channel) -> None:
    call = unary(channel, "Describe")(S(), timeout=5)

    response = await call

    echoed = dict(await call.trailing_metadata() or ())["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", str(echoed))
    assert response.value.startswith(str(echoed))


async def test_the_request_id_joins_the_trailers_a_handler_set(channel: grpc.aio.Channel) -> None:
    call = unary(channel, "Annotate")(S(), metadata=(("x-request-id", "req-7"),), timeout=5)

    await call
    trailing = tuple(await call.trailing_metadata() or ())

    assert ("x-annotation", "kept") in trailing
    assert ("x-request-id", "req-7") in trailing


@pytest.mark.parametrize("unacceptable", ["x" * 200, "spaces are not allowed", "semi;colon"])
async def test_an_unacceptable_request_id_is_replaced(channel: grpc.aio.Channel, unacceptable: str) -> None:
    call = unary(channel, "Describe")(S(), metadata=(("x-request-id", unacceptable),), timeout=5)

    response = await call

    assert unacceptable not in response.value
    assert dict(await call.trailing_metadata() or ())["x-request-id"] != unacceptable


async def test_a_streaming_call_echoes_its_request_id_before_the_first_message(
    channel: grpc.aio.Channel,
) -> None:
    call = channel.unary_stream(f"/{SERVICE}/DescribeTwice", S.SerializeToString, S.FromString)(
        S(), metadata=(("x-request-id", "req-stream"),), timeout=5
    )

    initial = await call.initial_metadata()
    received = [message.value async for message in call]

    assert initial["x-request-id"] == "req-stream"
    assert received == [f"req-stream /{SERVICE}/DescribeTwice"] * 2


async def test_a_failed_call_returns_its_request_id_in_the_trailers(channel: grpc.aio.Channel) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await unary(channel, "Fail")(S(), metadata=(("x-request-id", "req-fail"),), timeout=5)

    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert ("x-request-id", "req-fail") in tuple(raised.value.trailing_metadata() or ())


async def test_the_callers_trace_is_continued(channel: grpc.aio.Channel) -> None:
    traceparent = f"00-{TRACE_ID}-00f067aa0ba902b7-01"

    response = await unary(channel, "TraceId")(S(), metadata=(("traceparent", traceparent),), timeout=5)

    assert response.value == TRACE_ID
