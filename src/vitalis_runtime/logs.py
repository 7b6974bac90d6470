"""Logging: one JSON object per line on stdout, each naming its service, request and trace.

Every record gets ``service``, ``request_id``, ``grpc_method``, ``trace_id`` and ``span_id`` (when
known) from the request context and the current OpenTelemetry span, so a line can be joined to
its access-log line and its trace. ``console`` format prints the same fields for people.

Lines are formatted when they are logged and written in batches (:class:`BatchingStreamHandler`):
a busy service logs a line per call, and a write per line cost every call a system call that wakes
whatever reads the log. A warning or an error is written at once, after the lines before it.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import traceback
from typing import Literal, TextIO

from opentelemetry import trace
from pythonjsonlogger.json import JsonFormatter

from vitalis_runtime.request_context import current_request

HANDLER_NAME = "vitalis"
FLUSH_INTERVAL_SECONDS = 0.1
MAX_PENDING_LINES = 1000
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


class BatchingStreamHandler(logging.StreamHandler[TextIO]):
    """A stream handler that writes lines in batches, at most ``interval`` seconds after they were logged.

    Records are formatted at once (their request and trace are those of the code logging them) and
    kept until a background thread writes them all in one go; a record at WARNING or above, or the
    ``max_pending``-th waiting line, writes everything at once instead. Closing the handler, and
    ``logging.shutdown`` at exit, write what is left.
    """

    def __init__(
        self,
        stream: TextIO,
        *,
        interval: float = FLUSH_INTERVAL_SECONDS,
        max_pending: int = MAX_PENDING_LINES,
    ) -> None:
        """Write to ``stream`` every ``interval`` seconds while lines wait, or at ``max_pending`` lines."""
        super().__init__(stream)
        self._interval = interval
        self._max_pending = max_pending
        self._pending: list[str] = []
        self._waiting = threading.Event()
        self._stopping = threading.Event()
        self._writer = threading.Thread(target=self._write_periodically, name="log-writer", daemon=True)
        self._writer.start()

    def emit(self, record: logging.LogRecord) -> None:
        """Keep the formatted record; write everything now for a warning or a full batch."""
        try:
            line = self.format(record) + self.terminator
        except Exception:
            self.handleError(record)
            return
        # Handler.handle holds the handler's lock around emit, so pending lines and writes are in order.
        self._pending.append(line)
        if record.levelno >= logging.WARNING or len(self._pending) >= self._max_pending:
            try:
                self._write_pending()
            except Exception:
                self.handleError(record)
        elif not self._waiting.is_set():
            self._waiting.set()

    def flush(self) -> None:
        """Write every waiting line and flush the stream."""
        self.acquire()
        try:
            self._write_pending()
        finally:
            self.release()

    def close(self) -> None:
        """Write what is left and stop the background writer."""
        self._stopping.set()
        self._waiting.set()
        if self._writer is not threading.current_thread():
            self._writer.join(timeout=max(1.0, 10 * self._interval))
        # As logging.shutdown does: a stream already closed (a test's capture, a dead pipe) is no error.
        with contextlib.suppress(OSError, ValueError):
            self.flush()
        super().close()

    def _write_pending(self) -> None:
        lines, self._pending = self._pending, []
        self._waiting.clear()
        if lines:
            self.stream.write("".join(lines))
            if hasattr(self.stream, "flush"):
                self.stream.flush()

    def _write_periodically(self) -> None:
        while not self._stopping.is_set():
            self._waiting.wait()
            if self._stopping.wait(self._interval):
                return
            try:
                self.flush()
            except Exception:
                # The stream failed (a closed pipe): say so on stderr, as StreamHandler does, and go on.
                if logging.raiseExceptions:
                    traceback.print_exc(file=sys.stderr)


def configure_logging(
    service_name: str, level: str = "INFO", fmt: Literal["json", "console"] | str = "json"
) -> logging.Handler:
    """Send every log record to stdout, as JSON or for the console; calling again replaces the setup."""
    handler = BatchingStreamHandler(sys.stdout)
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
