"""A base for server interceptors that run code around each call, for all four kinds of RPC.

A ``grpc.aio`` server interceptor only sees the method handler; to act while the call runs it has
to wrap the handler's behaviour, and the behaviour's shape depends on the RPC kind (a coroutine for
unary responses; an async generator, or a coroutine writing with ``context.write``, for streamed
ones). :class:`CallInterceptor` does that wrapping once: subclasses implement :meth:`unary` and
:meth:`stream` and receive the call as an :class:`RpcCall` plus a zero-argument ``invoke``.
"""

from __future__ import annotations

import abc
import inspect
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

import grpc
import grpc.aio

ServicerContext = grpc.aio.ServicerContext[Any, Any]
InvokeUnary = Callable[[], Awaitable[Any]]
InvokeStream = Callable[[], AsyncGenerator[Any, None]]


@dataclass(frozen=True)
class RpcCall:
    """One call being served: its method, what the caller sent as metadata, and its context."""

    method: str
    metadata: tuple[tuple[str, str | bytes], ...]
    context: ServicerContext
    request_streaming: bool
    response_streaming: bool

    def metadata_values(self, key: str) -> list[str]:
        """Every text value the caller sent under ``key`` (keys are lower case on the wire)."""
        return [value for name, value in self.metadata if name == key and isinstance(value, str)]

    def metadata_value(self, key: str) -> str | None:
        """The first text value the caller sent under ``key``."""
        values = self.metadata_values(key)
        return values[0] if values else None


class CallInterceptor(grpc.aio.ServerInterceptor, abc.ABC):
    """Runs :meth:`unary` or :meth:`stream` around every call the server serves."""

    def __init__(self) -> None:
        # The handler a server finds for a method is the same object on every call (and so, through
        # this cache, is each interceptor's wrapping of it): wrap it once, not once per call.
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler[Any, Any], grpc.RpcMethodHandler[Any, Any]]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        """Wrap the behaviour of the handler serving this call."""
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        known = self._wrapped.get(method)
        if known is not None and known[0] is handler:
            return known[1]
        wrapped = self._wrap(handler, method)
        self._wrapped[method] = (handler, wrapped)
        return wrapped

    @abc.abstractmethod
    async def unary(self, call: RpcCall, invoke: InvokeUnary) -> Any:
        """Serve a call with a single response; ``await invoke()`` runs the handler."""

    @abc.abstractmethod
    def stream(self, call: RpcCall, invoke: InvokeStream) -> AsyncGenerator[Any, None]:
        """Serve a call with streamed responses (an async generator); iterate ``invoke()`` to run it.

        Iterate it inside ``contextlib.aclosing`` so an abandoned call closes the handler at once.
        """

    def _wrap(self, handler: grpc.RpcMethodHandler[Any, Any], method: str) -> grpc.RpcMethodHandler[Any, Any]:
        request_streaming = handler.request_streaming
        response_streaming = handler.response_streaming
        behavior: Any
        if request_streaming and response_streaming:
            behavior, factory = handler.stream_stream, grpc.stream_stream_rpc_method_handler
        elif request_streaming:
            behavior, factory = handler.stream_unary, grpc.stream_unary_rpc_method_handler
        elif response_streaming:
            behavior, factory = handler.unary_stream, grpc.unary_stream_rpc_method_handler
        else:
            behavior, factory = handler.unary_unary, grpc.unary_unary_rpc_method_handler

        def describe(context: ServicerContext) -> RpcCall:
            metadata = tuple(context.invocation_metadata() or ())
            return RpcCall(method, metadata, context, request_streaming, response_streaming)

        if response_streaming:

            async def streamed(request: Any, context: ServicerContext) -> AsyncGenerator[Any, None]:
                responses = self.stream(
                    describe(context), lambda: _stream_responses(behavior, request, context)
                )
                async with aclosing(responses):
                    async for response in responses:
                        yield response

            wrapped: Callable[..., Any] = streamed
        else:

            async def single(request: Any, context: ServicerContext) -> Any:
                return await self.unary(
                    describe(context), lambda: _unary_response(behavior, request, context)
                )

            wrapped = single
        return factory(
            wrapped,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


async def _unary_response(behavior: Callable[..., Any], request: Any, context: ServicerContext) -> Any:
    result = behavior(request, context)
    if inspect.isawaitable(result):
        return await result
    return result


async def _stream_responses(
    behavior: Callable[..., Any], request: Any, context: ServicerContext
) -> AsyncGenerator[Any, None]:
    result = behavior(request, context)
    if inspect.isawaitable(result):
        # A reader/writer handler sends its responses itself with context.write.
        await result
        return
    if hasattr(result, "aclose"):
        async with aclosing(result):
            async for response in result:
                yield response
    elif hasattr(result, "__aiter__"):
        async for response in result:
            yield response
    else:
        for response in result:
            yield response
