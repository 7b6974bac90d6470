"""Channels for internal callers: default deadlines, retries on UNAVAILABLE, identity propagation."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import grpc
import grpc.aio
import pytest
from google.protobuf import wrappers_pb2
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from vitalis_client import create_channel
from vitalis_runtime import errors
from vitalis_runtime.auth import bind_principal, current_principal, unbind_principal
from vitalis_runtime.request_context import bound_request, current_request_id
from vitalis_runtime.testing_auth import LocalSigningKey
from vitalis_runtime.testing_grpc import RunningServer, generic_service, running_server

S = wrappers_pb2.StringValue
SERVICE = "vitalis.test.v1.DownstreamService"
UPSTREAM = "vitalis.test.v1.UpstreamService"
TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C


class Attempts:
    def __init__(self) -> None:
        self.count = 0


@pytest.fixture
def key() -> LocalSigningKey:
    return LocalSigningKey.generate()


@pytest.fixture
def attempts() -> Attempts:
    return Attempts()


@pytest.fixture
async def downstream(key: LocalSigningKey, attempts: Attempts) -> AsyncIterator[RunningServer]:
    async def time_remaining(request: S, context: Any) -> S:
        return S(value=repr(context.time_remaining()))

    async def stream_time_remaining(request: S, context: Any) -> AsyncIterator[S]:
        yield S(value=repr(context.time_remaining()))

    async def flaky(request: S, context: Any) -> S:
        attempts.count += 1
        if attempts.count <= int(request.value):
            raise errors.Unavailable("the database restarts")
        return S(value=f"attempt {attempts.count}")

    async def missing(request: S, context: Any) -> S:
        attempts.count += 1
        raise errors.NotFound("no such panel")

    async def whoami(request: S, context: Any) -> S:
        trace_id = format(trace.get_current_span().get_span_context().trace_id, "032x")
        return S(value=f"{current_principal().user_id} {current_request_id()} {trace_id}")

    handlers = {
        "TimeRemaining": grpc.unary_unary_rpc_method_handler(
            time_remaining, S.FromString, S.SerializeToString
        ),
        "StreamTimeRemaining": grpc.unary_stream_rpc_method_handler(
            stream_time_remaining, S.FromString, S.SerializeToString
        ),
        "Flaky": grpc.unary_unary_rpc_method_handler(flaky, S.FromString, S.SerializeToString),
        "Missing": grpc.unary_unary_rpc_method_handler(missing, S.FromString, S.SerializeToString),
        "WhoAmI": grpc.unary_unary_rpc_method_handler(whoami, S.FromString, S.SerializeToString),
    }
    public = [f"/{SERVICE}/{name}" for name in handlers if name != "WhoAmI"]
    async with running_server(
        service_name="downstream",
        register=generic_service(SERVICE, handlers),
        service_names=[SERVICE],
        verifier=key.verifier(),
        public_methods=public,
    ) as running:
        yield running


@pytest.fixture
async def channel(downstream: RunningServer) -> AsyncIterator[grpc.aio.Channel]:
    async with create_channel(downstream.target) as channel:
        yield channel


def unary(channel: grpc.aio.Channel, name: str) -> grpc.aio.UnaryUnaryMultiCallable[S, S]:
    return channel.unary_unary(f"/{SERVICE}/{name}", S.SerializeToString, S.FromString)


async def test_a_unary_call_gets_a_five_second_deadline_by_default(channel: grpc.aio.Channel) -> None:
    remaining = float((await unary(channel, "TimeRemaining")(S())).value)

    assert 4.0 < remaining <= 5.1


async def test_a_deadline_the_caller_sets_wins(channel: grpc.aio.Channel) -> None:
    remaining = float((await unary(channel, "TimeRemaining")(S(), timeout=2.0)).value)

    assert 1.0 < remaining < 2.5


async def test_a_stream_gets_no_default_deadline(channel: grpc.aio.Channel) -> None:
    call = channel.unary_stream(f"/{SERVICE}/StreamTimeRemaining", S.SerializeToString, S.FromString)(S())

    message = await call.read()
    call.cancel()

    assert isinstance(message, S)
    assert message.value == "None"


async def test_unavailable_is_retried_until_the_call_succeeds(
    channel: grpc.aio.Channel, attempts: Attempts
) -> None:
    response = await unary(channel, "Flaky")(S(value="2"), timeout=10)

    assert response.value == "attempt 3"


async def test_retries_stop_after_four_attempts(channel: grpc.aio.Channel, attempts: Attempts) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await unary(channel, "Flaky")(S(value="100"), timeout=10)

    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    assert attempts.count == 4


async def test_other_errors_are_not_retried(channel: grpc.aio.Channel, attempts: Attempts) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await unary(channel, "Missing")(S(), timeout=10)

    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert attempts.count == 1


async def test_the_current_principals_token_request_id_and_trace_are_forwarded(
    channel: grpc.aio.Channel, key: LocalSigningKey
) -> None:
    user_id = uuid.uuid4()
    principal = await key.verifier().verify(key.mint(user_id))
    span = NonRecordingSpan(
        SpanContext(TRACE_ID, 0xB7AD6B7169203331, is_remote=True, trace_flags=TraceFlags(1))
    )

    binding = bind_principal(principal)
    try:
        with bound_request("req-upstream-1", f"/{UPSTREAM}/Call"), trace.use_span(span):
            response = await unary(channel, "WhoAmI")(S(), timeout=5)
    finally:
        unbind_principal(binding)

    assert response.value == f"{user_id} req-upstream-1 {format(TRACE_ID, '032x')}"


async def test_without_a_current_principal_no_token_is_sent(channel: grpc.aio.Channel) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await unary(channel, "WhoAmI")(S(), timeout=5)

    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_authorization_the_caller_sets_is_not_overwritten(
    channel: grpc.aio.Channel, key: LocalSigningKey
) -> None:
    caller, explicit = uuid.uuid4(), uuid.uuid4()
    principal = await key.verifier().verify(key.mint(caller))

    binding = bind_principal(principal)
    try:
        metadata = (("authorization", f"Bearer {key.mint(explicit)}"),)
        response = await unary(channel, "WhoAmI")(S(), metadata=metadata, timeout=5)
    finally:
        unbind_principal(binding)

    assert response.value.startswith(str(explicit))


async def test_a_service_calling_another_forwards_its_callers_identity(
    downstream: RunningServer, key: LocalSigningKey
) -> None:
    async with create_channel(downstream.target) as to_downstream:

        async def relay(request: S, context: Any) -> S:
            response: S = await unary(to_downstream, "WhoAmI")(S())
            return response

        handler = grpc.unary_unary_rpc_method_handler(relay, S.FromString, S.SerializeToString)
        async with (
            running_server(
                service_name="upstream",
                register=generic_service(UPSTREAM, {"Relay": handler}),
                service_names=[UPSTREAM],
                verifier=key.verifier(),
            ) as upstream,
            grpc.aio.insecure_channel(upstream.target) as client,
        ):
            user_id = uuid.uuid4()
            response = await client.unary_unary(f"/{UPSTREAM}/Relay", S.SerializeToString, S.FromString)(
                S(),
                metadata=(("authorization", f"Bearer {key.mint(user_id)}"), ("x-request-id", "req-hop")),
                timeout=5,
            )

    assert response.value.startswith(f"{user_id} req-hop ")
