"""Logging: one JSON object per line on stdout, each naming its service, request and trace.

Every record gets ``service``, ``request_id``, ``grpc_method``, ``trace_id`` and ``span_id`` (when
known) from the request context and the current OpenTelemetry span, so a line can be joined to
its access-log line and its trace. ``console`` format prints the same fields for people.
"""

from __future__ import annotations

import logging
import sys
from typing import Literal

from opentelemetry import trace
from pythonjsonlogger.json import JsonFormatter

from vitalis_runtime.request_context import current_request

HANDLER_NAME = "vitalis"
CONSOLE_FORMAT = "%(asctime)s %(levelname)-7s %(name)s [%(request_label)s] %(message)s"


class ContextFilter(logging.Filter):
    """Adds the service name, the request's id and method, and the trace and span ids to a record."""

    def __init__(self, service_name: str) -> None:
        super().__init__()
        self._service_name = service_name

    def filter(self, record: logging.LogRecord) -> bool:
        """Annotate ``record``; never drops it."""
        record.service = self._service_name
        request = current_request()
        record.request_id = request.request_id if request else None
        record.grpc_method = getattr(record, "grpc_method", None) or (request.method if request else None)
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            record.trace_id = format(span_context.trace_id, "032x")
            record.span_id = format(span_context.span_id, "016x")
        else:
            record.trace_id = None
            record.span_id = None
        return True


class ConsoleFormatter(logging.Formatter):
    """One readable line per record, with the request id (or ``-``) in brackets."""

    def __init__(self) -> None:
        super().__init__(CONSOLE_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        """Format ``record`` for a person."""
        record.request_label = getattr(record, "request_id", None) or "-"
        return super().format(record)


def configure_logging(
    service_name: str, level: str = "INFO", fmt: Literal["json", "console"] | str = "json"
) -> logging.Handler:
    """Send every log record to stdout, as JSON or for the console; calling again replaces the setup."""
    handler = logging.StreamHandler(sys.stdout)
    handler.set_name(HANDLER_NAME)
    handler.addFilter(ContextFilter(service_name))
    if fmt == "json":
        handler.setFormatter(
            JsonFormatter(
                ["levelname", "name", "message"],
                rename_fields={"levelname": "level", "name": "logger"},
                timestamp="time",
            )
        )
    elif fmt == "console":
        handler.setFormatter(ConsoleFormatter())
    else:
        raise ValueError(f"unknown log format {fmt!r}; use json or console")
    root = logging.getLogger()
    for existing in list(root.handlers):
        if existing.get_name() == HANDLER_NAME:
            root.removeHandler(existing)
            existing.close()
    root.addHandler(handler)
    root.setLevel(level.upper())
    return handler
