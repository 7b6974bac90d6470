"""Pure parts of the harness: the slower floor, HTTP request bytes, the synthetic export, the cell parser."""

from __future__ import annotations

from pathlib import Path

from lxml import etree

from bench.b2_import import COPY_FLOOR, PARSE_FLOOR, slower_floor
from bench.extraction import name_key, parse_number
from bench.http1 import http1_request
from bench.loads_ingestion import sample_times
from bench.loads_services import file_bytes
from bench.report import Measurement, Unmeasurable, summarize
from vitalis_ingestion.testing import write_export


def test_the_slower_floor_is_the_one_with_the_lower_rate_and_says_which() -> None:
    parse = summarize(PARSE_FLOOR, "record", [Measurement(PARSE_FLOOR, 300, 1.0)])
    copy = summarize(COPY_FLOOR, "record", [Measurement(COPY_FLOOR, 100, 1.0)])
    floor = slower_floor({PARSE_FLOOR: parse, COPY_FLOOR: copy})
    assert not isinstance(floor, Unmeasurable)
    assert floor.rate == 100
    assert "raw COPY floor" in floor.arm


def test_without_both_floors_there_is_no_slower_floor() -> None:
    parse = summarize(PARSE_FLOOR, "record", [Measurement(PARSE_FLOOR, 300, 1.0)])
    floor = slower_floor({PARSE_FLOOR: parse, COPY_FLOOR: Unmeasurable(COPY_FLOOR, "no table")})
    assert isinstance(floor, Unmeasurable)
    assert floor.reason == "no table"


def test_http1_request_bytes_carry_path_query_headers_and_length() -> None:
    host, port, request = http1_request(
        "POST",
        "http://127.0.0.1:8080/v1/users/x/samples:batchCreate?a=1",
        {"authorization": "Bearer t"},
        b"{}",
    )
    assert (host, port) == ("127.0.0.1", 8080)
    head, body = request.split(b"\r\n\r\n")
    assert head.startswith(b"POST /v1/users/x/samples:batchCreate?a=1 HTTP/1.1\r\n")
    assert b"content-length: 2" in head
    assert b"authorization: Bearer t" in head
    assert body == b"{}"


def test_rows_of_different_calls_never_share_a_start_time() -> None:
    spec = {"base_time": "2026-01-01T00:00:00+00:00"}
    first, second = sample_times(spec, 0, 100), sample_times(spec, 1, 100)
    assert len(set(first) | set(second)) == 200


def test_uploaded_files_are_distinct_and_of_the_cycled_sizes() -> None:
    buffer = bytes(2 * 2**20)
    one, two = file_bytes(buffer, 0, [1, 2]), file_bytes(buffer, 1, [1, 2])
    assert len(one) == 2**20
    assert len(two) == 2 * 2**20
    assert one[:8] == b"\x89PNG\r\n\x1a\n"
    assert one[:40] != file_bytes(buffer, 0, [1, 2])[:40]


def test_the_synthetic_export_parses_with_every_record(tmp_path: Path) -> None:
    path = tmp_path / "export.xml"
    write_export(path, 1234)
    records = [element.get("type") for _, element in etree.iterparse(str(path), tag="Record")]
    assert len(records) == 1234
    assert records[0] == "HKQuantityTypeIdentifierHeartRate"


def test_printed_numbers_and_names_are_normalised_alike() -> None:
    assert parse_number("5,4") == 5.4
    assert parse_number("< 200") == 200.0
    assert parse_number("H") is None
    assert name_key("LDL-Cholesterol (direct)") == name_key("ldl cholesterol direct")


def test_a_failed_benchmark_leaves_every_arm_of_its_targets_unmeasurable() -> None:
    from bench.__main__ import unmeasured_arms
    from bench.b1_ingest import TARGETS

    arms = unmeasured_arms(TARGETS, "B1 stopped: ingestion exited during the run")
    assert set(arms) == {"B1 raw COPY", "B1 grpc stream", "B1 rest batch + jwt"}
    assert all(isinstance(arm, Unmeasurable) and "ingestion exited" in arm.reason for arm in arms.values())
