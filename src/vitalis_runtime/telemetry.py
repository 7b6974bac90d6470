"""OpenTelemetry tracing: gateway → services → PostgreSQL, and across events.

:func:`configure_tracing` installs the SDK with an OTLP exporter when an endpoint is configured
(otherwise the API's default no-op provider stays, which still carries an incoming trace context
through to logs and outgoing calls) and instruments asyncpg. gRPC is traced by the interceptors
returned here, which the server and client packages put in their chains. Events carry the trace
context in their headers through :func:`inject_headers` and :func:`extract_context`.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterator, Mapping, Sequence
from contextlib import aclosing, contextmanager
from typing import Any

import grpc.aio
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.instrumentation.grpc import aio_client_interceptors, aio_server_interceptor, filters
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from vitalis_runtime.call_interceptor import CallInterceptor, InvokeStream, InvokeUnary, RpcCall

HEALTH_METHOD_PREFIX = "/grpc.health.v1.Health/"
_TRACE_HEADERS = frozenset({"traceparent", "tracestate", "baggage"})


def configure_tracing(service_name: str, otlp_endpoint: str | None) -> TracerProvider | None:
    """Export spans to ``otlp_endpoint`` (``http://collector:4317``) when set; None when not.

    Call once from an entry point; call ``shutdown()`` on the returned provider at exit to flush.
    """
    if not otlp_endpoint:
        return None
    provider = TracerProvider(
        resource=Resource.create({"service.name": service_name, "service.namespace": "vitalis"})
    )
    exporter = OTLPSpanExporter(endpoint=otlp_endpoint, insecure=otlp_endpoint.startswith("http://"))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    instrumentor = AsyncPGInstrumentor()  # type: ignore[no-untyped-call]
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument(tracer_provider=provider)
    return provider


def is_traced(details: grpc.HandlerCallDetails) -> bool:
    """Whether a server call gets a span: every call but health checks.

    The same test as ``filters.negate(filters.health_check())``, which runs on every call and pays
    for protocol ``isinstance`` checks and path normalisation there.
    """
    return not details.method.startswith(HEALTH_METHOD_PREFIX)


class TraceContextInterceptor(CallInterceptor):
    """Makes the caller's trace context current for the call, recording no span.

    What OpenTelemetry's server interceptor amounts to while no SDK is installed (the API's tracer
    then starts no span of its own and hands back the caller's), for a fraction of its per-call
    cost: logs still name the caller's trace and outgoing calls still carry it.
    """

    async def unary(self, call: RpcCall, invoke: InvokeUnary) -> Any:
        """Serve a single-response call in the caller's trace context."""
        with _callers_trace(call):
            return await invoke()

    async def stream(self, call: RpcCall, invoke: InvokeStream) -> AsyncGenerator[Any, None]:
        """Serve a streaming call in the caller's trace context."""
        with _callers_trace(call):
            async with aclosing(invoke()) as responses:
                async for response in responses:
                    yield response


@contextmanager
def _callers_trace(call: RpcCall) -> Iterator[None]:
    if not any(name in _TRACE_HEADERS for name, _ in call.metadata):
        yield
        return
    carrier = {name: value for name, value in call.metadata if isinstance(value, str)}
    token = otel_context.attach(propagate.extract(carrier))
    try:
        yield
    finally:
        otel_context.detach(token)


def server_tracing_interceptor() -> grpc.aio.ServerInterceptor:
    """A server span per call (health checks excluded), child of the caller's trace context.

    Without a tracer provider installed (:func:`configure_tracing` found no endpoint) spans would
    not be recorded, so the call only continues the caller's trace (:class:`TraceContextInterceptor`).
    """
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        return TraceContextInterceptor()
    interceptor: grpc.aio.ServerInterceptor = aio_server_interceptor(  # type: ignore[no-untyped-call]
        filter_=is_traced
    )
    return interceptor


def client_tracing_interceptors() -> Sequence[grpc.aio.ClientInterceptor]:
    """A client span per call that also propagates the trace context in the call's metadata."""
    interceptors: Sequence[grpc.aio.ClientInterceptor] = aio_client_interceptors(  # type: ignore[no-untyped-call]
        filter_=filters.negate(filters.health_check())
    )
    return interceptors


def inject_headers() -> dict[str, str]:
    """The current trace context as headers (``traceparent``, ``tracestate``) for an event."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def extract_context(headers: Mapping[str, str]) -> Context:
    """The trace context an event's headers carry; use it as the parent of the consumer's span."""
    return propagate.extract(dict(headers))
