"""Trace context travels through event headers; tracing exports over OTLP only when configured."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from typing import NamedTuple

from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from vitalis_runtime.telemetry import configure_tracing, extract_context, inject_headers, is_traced

TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C
SPAN_ID = 0xB7AD6B7169203331


def test_headers_carry_the_current_trace_to_a_consumer() -> None:
    producer_span = NonRecordingSpan(
        SpanContext(TRACE_ID, SPAN_ID, is_remote=False, trace_flags=TraceFlags(1))
    )

    with trace.use_span(producer_span):
        headers = inject_headers()
    consumer_parent = trace.get_current_span(extract_context(headers)).get_span_context()

    assert headers["traceparent"] == "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    assert (consumer_parent.trace_id, consumer_parent.span_id) == (TRACE_ID, SPAN_ID)
    assert consumer_parent.is_remote


def test_without_a_current_trace_no_headers_are_added() -> None:
    assert inject_headers() == {}


def test_headers_without_a_trace_give_an_empty_context() -> None:
    assert not trace.get_current_span(extract_context({"content-type": "json"})).get_span_context().is_valid


def test_without_an_endpoint_tracing_stays_a_no_op() -> None:
    assert configure_tracing("identity", None) is None


async def test_with_an_endpoint_spans_are_exported_and_asyncpg_is_instrumented() -> None:
    # Installing a tracer provider is once per process, so it is checked in a process of its own.
    program = textwrap.dedent(
        """
        from opentelemetry import trace
        from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
        from opentelemetry.sdk.trace import TracerProvider
        from vitalis_runtime.telemetry import (
            TraceContextInterceptor,
            configure_tracing,
            server_tracing_interceptor,
        )

        assert isinstance(server_tracing_interceptor(), TraceContextInterceptor)
        provider = configure_tracing("identity", "http://127.0.0.1:4317")
        assert not isinstance(server_tracing_interceptor(), TraceContextInterceptor)
        assert isinstance(provider, TracerProvider)
        assert trace.get_tracer_provider() is provider
        assert provider.resource.attributes["service.name"] == "identity"
        assert AsyncPGInstrumentor().is_instrumented_by_opentelemetry
        provider.shutdown()
        print("ok")
        """
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", program, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)

    assert process.returncode == 0, stderr.decode()
    assert stdout.decode().strip() == "ok"


class CallDetails(NamedTuple):
    method: str
    invocation_metadata: tuple[tuple[str, str], ...] = ()


def test_every_server_call_but_health_checks_is_traced() -> None:
    assert is_traced(CallDetails("/vitalis.biomarkers.v1.PanelService/ListMarkers"))  # type: ignore[arg-type]
    assert is_traced(CallDetails("/grpc.health.v1.HealthService/Check"))  # type: ignore[arg-type]
    assert not is_traced(CallDetails("/grpc.health.v1.Health/Check"))  # type: ignore[arg-type]
    assert not is_traced(CallDetails("/grpc.health.v1.Health/Watch"))  # type: ignore[arg-type]
