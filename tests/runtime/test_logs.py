"""Log lines are JSON objects naming the service, the request and the trace they belong to."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from vitalis_runtime.logs import configure_logging
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


def test_an_unknown_format_is_refused(restored_root_logger: logging.Logger) -> None:
    with pytest.raises(ValueError, match="unknown log format"):
        configure_logging("identity", "INFO", "xml")
