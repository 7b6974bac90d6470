"""The server interceptors every Vitalis service runs, outermost first.

1. tracing — OpenTelemetry's server span, continuing the caller's trace;
2. :class:`RequestContextInterceptor` — binds the request id (the caller's ``x-request-id`` or a
   new one) and method for logs and downstream calls, and echoes the id back;
3. :class:`AccessInterceptor` — Prometheus metrics and one access-log line per call;
4. :class:`ErrorMappingInterceptor` — exceptions → ``google.rpc.Status`` (see :mod:`error_mapping`);
5. :class:`AuthenticationInterceptor` — every non-public method needs a valid bearer token, whose
   :class:`~vitalis_runtime.auth.Principal` is then bound for the handler.

The request id is echoed in the trailing metadata of a single-response call, where it travels in the
same batch as the response and the status (initial metadata of its own would cost the call a batch,
and a frame, more); a streaming call echoes it in the initial metadata just before the first response
(earlier, and the client could no longer retry an UNAVAILABLE call). Errors carry it in their
trailing metadata.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Collection
from contextlib import aclosing, suppress
from typing import Any, NoReturn

import grpc
import grpc.aio

from vitalis_runtime import errors
from vitalis_runtime.auth import Principal, bind_principal, unbind_principal
from vitalis_runtime.call_interceptor import (
    CallInterceptor,
    InvokeStream,
    InvokeUnary,
    RpcCall,
    ServicerContext,
)
from vitalis_runtime.error_mapping import classify, error_domain, grpc_status, internal_error, rpc_status
from vitalis_runtime.metrics import RpcMetrics, rpc_metrics, split_method
from vitalis_runtime.request_context import (
    REQUEST_ID_HEADER,
    accept_request_id,
    bound_request,
    current_request_id,
)
from vitalis_runtime.service_auth import CallerVerifier, require_service_caller
from vitalis_runtime.telemetry import server_tracing_interceptor

HEALTH_METHODS = frozenset(
    {
        "/grpc.health.v1.Health/Check",
        "/grpc.health.v1.Health/Watch",
        "/grpc.health.v1.Health/List",
    }
)
REFLECTION_METHODS = frozenset(
    {
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    }
)
ALWAYS_PUBLIC_METHODS = HEALTH_METHODS | REFLECTION_METHODS

NO_DEADLINE_SECONDS = 365 * 24 * 3600.0

access_logger = logging.getLogger("vitalis.access")
error_logger = logging.getLogger("vitalis.errors")


def server_interceptors(
    *,
    service_name: str,
    verifier: CallerVerifier | None,
    public_methods: Collection[str],
    metrics: RpcMetrics | None = None,
    tracing: bool = True,
) -> list[grpc.aio.ServerInterceptor]:
    """The interceptor chain of a service, outermost first.

    ``public_methods`` are full gRPC paths (``/vitalis.identity.v1.AuthService/SignUp``) callable
    without a token, besides health and reflection. With no ``verifier`` every other method is
    refused. ``metrics`` defaults to the process-wide registry's.
    """
    chain: list[grpc.aio.ServerInterceptor] = []
    if tracing:
        chain.append(server_tracing_interceptor())
    chain += [
        RequestContextInterceptor(),
        AccessInterceptor(metrics or rpc_metrics()),
        ErrorMappingInterceptor(service_name),
        AuthenticationInterceptor(verifier, public_methods),
    ]
    return chain


def _time_remaining(call: RpcCall) -> float | None:
    remaining = call.context.time_remaining()
    # gRPC reports "no deadline" as a huge number of seconds rather than None.
    return remaining if remaining is not None and remaining < NO_DEADLINE_SECONDS else None


class RequestContextInterceptor(CallInterceptor):
    """Binds the request id and method for the call and echoes the id to the caller."""

    async def unary(self, call: RpcCall, invoke: InvokeUnary) -> Any:
        """Serve a single-response call inside its request context."""
        with bound_request(
            accept_request_id(call.metadata_value(REQUEST_ID_HEADER)),
            call.method,
            time_remaining=_time_remaining(call),
        ) as request:
            response = await invoke()
            _echo_request_id_in_trailers(call.context, request.request_id)
            return response

    async def stream(self, call: RpcCall, invoke: InvokeStream) -> AsyncGenerator[Any, None]:
        """Serve a streaming call inside its request context."""
        with bound_request(
            accept_request_id(call.metadata_value(REQUEST_ID_HEADER)),
            call.method,
            time_remaining=_time_remaining(call),
        ) as request:
            echoed = False
            async with aclosing(invoke()) as responses:
                async for response in responses:
                    if not echoed:
                        await _echo_request_id(call.context, request.request_id)
                        echoed = True
                    yield response
            if not echoed:
                await _echo_request_id(call.context, request.request_id)


def _echo_request_id_in_trailers(context: ServicerContext, request_id: str) -> None:
    # Keep whatever trailing metadata the handler set itself.
    trailing = tuple(context.trailing_metadata() or ())
    context.set_trailing_metadata((*trailing, (REQUEST_ID_HEADER, request_id)))


async def _echo_request_id(context: ServicerContext, request_id: str) -> None:
    # A handler that wrote with context.write has sent its initial metadata already.
    with suppress(grpc.aio.UsageError):
        await context.send_initial_metadata(((REQUEST_ID_HEADER, request_id),))


class AccessInterceptor(CallInterceptor):
    """Records each call in the RPC metrics and writes one access-log line for it."""

    def __init__(self, metrics: RpcMetrics) -> None:
        super().__init__()
        self._metrics = metrics

    async def unary(self, call: RpcCall, invoke: InvokeUnary) -> Any:
        """Serve a single-response call, measured."""
        started = self._start(call)
        try:
            response = await invoke()
        except BaseException as error:
            self._finish(call, started, _code_of(call.context, error))
            raise
        self._finish(call, started, grpc.StatusCode.OK)
        return response

    async def stream(self, call: RpcCall, invoke: InvokeStream) -> AsyncGenerator[Any, None]:
        """Serve a streaming call, measured from its start to its status."""
        started = self._start(call)
        sent = 0
        try:
            async with aclosing(invoke()) as responses:
                async for response in responses:
                    sent += 1
                    yield response
        except BaseException as error:
            self._finish(call, started, _code_of(call.context, error), responses_sent=sent)
            raise
        self._finish(call, started, grpc.StatusCode.OK, responses_sent=sent)

    def _start(self, call: RpcCall) -> float:
        service, method = split_method(call.method)
        self._metrics.in_flight.labels(service, method).inc()
        return time.perf_counter()

    def _finish(
        self, call: RpcCall, started: float, code: grpc.StatusCode, *, responses_sent: int | None = None
    ) -> None:
        elapsed = time.perf_counter() - started
        service, method = split_method(call.method)
        self._metrics.in_flight.labels(service, method).dec()
        self._metrics.record(call.method, code.name, elapsed)
        level = logging.DEBUG if call.method in HEALTH_METHODS else logging.INFO
        fields: dict[str, Any] = {
            "grpc_method": call.method,
            "grpc_code": code.name,
            "duration_ms": round(elapsed * 1000, 3),
            "peer": call.context.peer(),
        }
        if responses_sent is not None:
            fields["responses_sent"] = responses_sent
        access_logger.log(level, "%s %s %.1fms", call.method, code.name, elapsed * 1000, extra=fields)


def _code_of(context: ServicerContext, error: BaseException) -> grpc.StatusCode:
    if isinstance(error, asyncio.CancelledError):
        return grpc.StatusCode.CANCELLED
    if isinstance(error, grpc.aio.AbortError):
        code = context.code()
        if isinstance(code, grpc.StatusCode):
            return code
    return grpc.StatusCode.INTERNAL


class ErrorMappingInterceptor(CallInterceptor):
    """Turns every exception a handler raises into a rich ``google.rpc.Status``; never UNKNOWN."""

    def __init__(self, service_name: str) -> None:
        super().__init__()
        self._domain = error_domain(service_name)

    async def unary(self, call: RpcCall, invoke: InvokeUnary) -> Any:
        """Serve a single-response call, mapping its failure."""
        try:
            return await invoke()
        except grpc.aio.AbortError:
            raise
        except Exception as error:
            await self._abort(call, error)

    async def stream(self, call: RpcCall, invoke: InvokeStream) -> AsyncGenerator[Any, None]:
        """Serve a streaming call, mapping a failure even after responses were sent."""
        try:
            async with aclosing(invoke()) as responses:
                async for response in responses:
                    yield response
        except grpc.aio.AbortError:
            raise
        except Exception as error:
            await self._abort(call, error)

    async def _abort(self, call: RpcCall, error: Exception) -> NoReturn:
        request_id = current_request_id()
        mapped = classify(error)
        if mapped is None:
            error_logger.error("unhandled exception in %s", call.method, exc_info=error)
            mapped = internal_error(request_id)
        elif not isinstance(error, errors.VitalisError):
            error_logger.warning("%s failed: %s", call.method, mapped.reason, exc_info=error)
        status = grpc_status(rpc_status(mapped, domain=self._domain, request_id=request_id))
        trailing = tuple(status.trailing_metadata or ())
        if request_id:
            trailing += ((REQUEST_ID_HEADER, request_id),)
        # abort() with the status' parts is what abort_with_status does; calling it directly lets
        # context wrappers (the tracing span) see the code.
        await call.context.abort(status.code, status.details, trailing)


class AuthenticationInterceptor(CallInterceptor):
    """Requires a verified bearer token on every method that is not public, and binds its principal."""

    def __init__(self, verifier: CallerVerifier | None, public_methods: Collection[str]) -> None:
        super().__init__()
        self._verifier = verifier
        self._public = ALWAYS_PUBLIC_METHODS | frozenset(public_methods)

    async def unary(self, call: RpcCall, invoke: InvokeUnary) -> Any:
        """Serve a single-response call as its verified caller."""
        token = bind_principal(await self._authenticate(call))
        try:
            return await invoke()
        finally:
            unbind_principal(token)

    async def stream(self, call: RpcCall, invoke: InvokeStream) -> AsyncGenerator[Any, None]:
        """Serve a streaming call as its verified caller."""
        token = bind_principal(await self._authenticate(call))
        try:
            async with aclosing(invoke()) as responses:
                async for response in responses:
                    yield response
        finally:
            unbind_principal(token)

    async def _authenticate(self, call: RpcCall) -> Principal | None:
        if call.method in self._public:
            return None
        if self._verifier is None:
            raise errors.Unauthenticated("this service accepts no credentials", reason="NO_VERIFIER")
        values = call.metadata_values("authorization")
        if not values:
            raise errors.Unauthenticated("a bearer token is required", reason="MISSING_TOKEN")
        if len(values) > 1:
            raise errors.Unauthenticated(
                "exactly one authorization header is allowed", reason="INVALID_TOKEN"
            )
        scheme, _, token = values[0].strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise errors.Unauthenticated(
                "the authorization header must read 'Bearer <token>'", reason="INVALID_TOKEN"
            )
        principal = await self._verifier.verify(token.strip())
        require_service_caller(call.method, principal)
        return principal
