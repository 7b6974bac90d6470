"""Log lines are JSON objects naming the service, the request and the trace they belong to."""

from __future__ import annotations

import io
import json
import logging
import time
import uuid
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from vitalis_runtime.logs import FLUSH_INTERVAL_SECONDS, BatchingStreamHandler, configure_logging
from vitalis_runtime.request_context import bound_request

TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736
SPAN_ID = 0x00F067AA0BA902B7


@pytest.fixture
def restored_root_logger() -> Iterator[logging.Logger]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield root
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


def emitted(capsys: pytest.CaptureFixture[str]) -> list[str]:
    for handler in logging.getLogger().handlers:
        handler.flush()
    return [line for line in capsys.readouterr().out.splitlines() if line]


def test_a_json_line_carries_service_request_and_trace(
    restored_root_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("biomarkers", "INFO", "json")
    span = NonRecordingSpan(SpanContext(TRACE_ID, SPAN_ID, is_remote=True, trace_flags=TraceFlags(1)))

    with bound_request("req-7", "/vitalis.biomarkers.v1.PanelService/GetPanel"), trace.use_span(span):
        logging.getLogger("vitalis_biomarkers.store").info("panel %s loaded", "p1", extra={"rows": 3})

    record = json.loads(emitted(capsys)[-1])
    assert record["message"] == "panel p1 loaded"
    assert record["level"] == "INFO"
    assert record["logger"] == "vitalis_biomarkers.store"
    assert record["service"] == "biomarkers"
    assert record["request_id"] == "req-7"
    assert record["grpc_method"] == "/vitalis.biomarkers.v1.PanelService/GetPanel"
    assert record["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert record["span_id"] == "00f067aa0ba902b7"
    assert record["rows"] == 3
    assert "time" in record


def test_a_line_outside_any_request_has_no_request_or_trace(
    restored_root_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("insights", "INFO", "json")

    logging.getLogger("vitalis_insights").warning("starting")

    record = json.loads(emitted(capsys)[-1])
    assert (record["service"], record["request_id"], record["trace_id"]) == ("insights", None, None)


def test_exceptions_are_logged_with_their_traceback(
    restored_root_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("documents", "INFO", "json")

    try:
        int("unreadable page")
    except ValueError:
        logging.getLogger("vitalis_documents").exception("parse failed")

    record = json.loads(emitted(capsys)[-1])
    assert "ValueError: invalid literal for int() with base 10: 'unreadable page'" in record["exc_info"]


def test_records_below_the_level_are_dropped(
    restored_root_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("identity", "warning", "json")

    logging.getLogger("vitalis_identity").info("noise")

    assert emitted(capsys) == []


def test_configuring_again_replaces_the_handler(
    restored_root_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("identity", "INFO", "json")
    configure_logging("identity", "INFO", "console")

    logging.getLogger("vitalis_identity").info("once")

    lines = emitted(capsys)
    assert len(lines) == 1
    assert lines[0].endswith("INFO    vitalis_identity [-] once")


def test_info_lines_are_written_within_the_flush_interval_without_being_asked(
    restored_root_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("biomarkers", "INFO", "json")

    logging.getLogger("vitalis.access").info("call %d", 1)
    logging.getLogger("vitalis.access").info("call %d", 2)
    written_at_once = capsys.readouterr().out
    time.sleep(FLUSH_INTERVAL_SECONDS * 5)
    written_later = capsys.readouterr().out

    assert written_at_once == ""
    assert [json.loads(line)["message"] for line in written_later.splitlines()] == ["call 1", "call 2"]


def test_a_warning_is_written_at_once_after_the_lines_before_it(
    restored_root_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("biomarkers", "INFO", "json")

    logging.getLogger("vitalis.access").info("served")
    logging.getLogger("vitalis.errors").warning("degraded")
    written = capsys.readouterr().out

    assert [json.loads(line)["message"] for line in written.splitlines()] == ["served", "degraded"]


def test_a_full_batch_is_written_without_waiting() -> None:
    stream = io.StringIO()
    handler = BatchingStreamHandler(stream, interval=60, max_pending=3)
    logger = logging.getLogger(f"vitalis.test.{uuid.uuid4().hex}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        logger.info("line 1")
        logger.info("line 2")
        before_the_batch_filled = stream.getvalue()
        logger.info("line 3")
        once_it_filled = stream.getvalue()
    finally:
        logger.removeHandler(handler)
        handler.close()

    assert before_the_batch_filled == ""
    assert once_it_filled == "line 1\nline 2\nline 3\n"


def test_closing_the_handler_writes_what_is_left() -> None:
    stream = io.StringIO()
    handler = BatchingStreamHandler(stream, interval=60)
    logger = logging.getLogger(f"vitalis.test.{uuid.uuid4().hex}")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)

    logger.info("last words")
    before_close = stream.getvalue()
    logger.removeHandler(handler)
    handler.close()

    assert before_close == ""
    assert stream.getvalue() == "last words\n"


def test_an_unknown_format_is_refused(restored_root_logger: logging.Logger) -> None:
    with pytest.raises(ValueError, match="unknown log format"):
        configure_logging("identity", "INFO", "xml")
