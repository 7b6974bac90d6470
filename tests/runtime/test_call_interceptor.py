"""Call interceptors wrap a method's handler once and run around every call of it."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, NamedTuple

import grpc
import grpc.aio
import pytest
from google.protobuf import wrappers_pb2

from vitalis_runtime.call_interceptor import CallInterceptor, InvokeStream, InvokeUnary, RpcCall

S = wrappers_pb2.StringValue
METHOD = "/vitalis.test.v1.EchoService/Echo"


class CallDetails(NamedTuple):
    method: str
    invocation_metadata: tuple[tuple[str, str], ...]


class CountingInterceptor(CallInterceptor):
    """Prefixes every response with the caller's ``x-tag`` and counts the handlers it wrapped."""

    def __init__(self) -> None:
        super().__init__()
        self.wrapped = 0

    def _wrap(self, handler: grpc.RpcMethodHandler[Any, Any], method: str) -> grpc.RpcMethodHandler[Any, Any]:
        self.wrapped += 1
        return super()._wrap(handler, method)

    async def unary(self, call: RpcCall, invoke: InvokeUnary) -> Any:
        response = await invoke()
        return S(value=f"{call.metadata_value('x-tag')}:{response.value}")

    async def stream(self, call: RpcCall, invoke: InvokeStream) -> AsyncGenerator[Any, None]:
        async for response in invoke():
            yield response


async def echo(request: S, context: Any) -> S:
    return S(value=request.value)


def echo_handler() -> grpc.RpcMethodHandler[Any, Any]:
    return grpc.unary_unary_rpc_method_handler(echo, S.FromString, S.SerializeToString)


@pytest.fixture
async def served() -> AsyncIterator[tuple[grpc.aio.Channel, CountingInterceptor]]:
    interceptor = CountingInterceptor()
    server = grpc.aio.server(interceptors=[interceptor])
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("vitalis.test.v1.EchoService", {"Echo": echo_handler()}),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield channel, interceptor
    finally:
        await server.stop(None)


async def test_a_methods_handler_is_wrapped_once_and_every_call_sees_its_own_metadata(
    served: tuple[grpc.aio.Channel, CountingInterceptor],
) -> None:
    channel, interceptor = served
    call = channel.unary_unary(METHOD, S.SerializeToString, S.FromString)

    responses = [
        await call(S(value=str(n)), metadata=(("x-tag", f"caller-{n}"),), timeout=5) for n in range(3)
    ]

    assert [response.value for response in responses] == ["caller-0:0", "caller-1:1", "caller-2:2"]
    assert interceptor.wrapped == 1


async def test_another_handler_for_the_same_method_is_wrapped_anew() -> None:
    interceptor = CountingInterceptor()
    first, second = echo_handler(), echo_handler()
    details = CallDetails(METHOD, ())

    async def finding(handler: grpc.RpcMethodHandler[Any, Any]) -> Any:
        async def continuation(_: Any) -> grpc.RpcMethodHandler[Any, Any]:
            return handler

        return await interceptor.intercept_service(continuation, details)  # type: ignore[arg-type]

    wrapped_first = await finding(first)
    again = await finding(first)
    wrapped_second = await finding(second)

    assert again is wrapped_first
    assert wrapped_second is not wrapped_first
    assert interceptor.wrapped == 2


async def test_an_unknown_method_is_left_to_the_server() -> None:
    interceptor = CountingInterceptor()

    async def continuation(_: Any) -> None:
        return None

    assert await interceptor.intercept_service(continuation, CallDetails(METHOD, ())) is None  # type: ignore[arg-type]
    assert interceptor.wrapped == 0
