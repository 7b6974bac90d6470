"""Pure domain rules: sniffing, reading printed values, confidences and review outcomes."""

from __future__ import annotations

import uuid
from datetime import date

import pytest

from vitalis_documents.domain.extraction import build_markers, document_outcome
from vitalis_documents.domain.filtering import enum_converter, parse_filter
from vitalis_documents.domain.model import (
    BoundingBox,
    ParseState,
    ParseStateReason,
    ReferenceRange,
    ResultFlag,
    ReviewState,
    ValueComparator,
)
from vitalis_documents.domain.sniffing import sniff_content_type
from vitalis_documents.parsing.lab_report import ExtractedRow, LabReport
from vitalis_documents.parsing.values import find_date, normalize_unit, parse_flag, parse_range, parse_value
from vitalis_documents.ports import BiomarkerCandidate
from vitalis_runtime.errors import InvalidArgument


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"%PDF-1.7\n...", "application/pdf"),
        (b"\x89PNG\r\n\x1a\n....", "image/png"),
        (b"\xff\xd8\xff\xe0..JFIF", "image/jpeg"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00", "image/heic"),
        (b"PK\x03\x04\x14\x00", "application/zip"),
        (b"\x0e\x10\x00\x00\x00\x00\x00\x00.FIT\x00\x00", "application/vnd.ant.fit"),
        (b'\xef\xbb\xbf<?xml version="1.0"?><HealthData/>', "application/xml"),
        (b"date;steps\n2025-01-01;900\n2025-01-02;100\n", "text/csv"),
        (b"MZ\x90\x00\x03", None),
        (b"just some words without any delimiter", None),
        (b"GIF89a", None),
        (b"", None),
    ],
)
def test_the_type_is_sniffed_from_the_bytes(head: bytes, expected: str | None) -> None:
    assert sniff_content_type(head) == expected


@pytest.mark.parametrize(
    ("text", "value", "comparator"),
    [
        ("5,4", 5.4, ValueComparator.EXACT),
        ("5.40", 5.4, ValueComparator.EXACT),
        ("<0.5", 0.5, ValueComparator.LESS_THAN),
        (">= 90", 90.0, ValueComparator.GREATER_THAN_OR_EQUAL),
        ("1.234,5", 1234.5, ValueComparator.EXACT),
        ("1,234.5", 1234.5, ValueComparator.EXACT),
        ("\u22123", -3.0, ValueComparator.EXACT),
    ],
)
def test_printed_values_are_read_with_decimal_commas_and_comparators(
    text: str, value: float, comparator: ValueComparator
) -> None:
    parsed = parse_value(text, decimal_comma=True)
    assert parsed is not None
    assert parsed.value == pytest.approx(value)
    assert parsed.comparator == comparator


def test_fields_that_are_not_values_are_not_read_as_values() -> None:
    assert parse_value("H") is None
    assert parse_value("mg/dL") is None
    assert parse_value("12a") is None


def test_units_flags_ranges_and_dates() -> None:
    assert normalize_unit("µmol/l") == ("umol/L", 0.95)
    assert normalize_unit("mg/dl")[0] == "mg/dL"
    assert normalize_unit("")[0] == ""
    assert parse_flag("hh") == ResultFlag.CRITICAL_HIGH
    assert parse_flag("-") == ResultFlag.LOW
    assert parse_range("3,5 - 5,1", decimal_comma=True) == (
        ReferenceRange(low=3.5, high=5.1, text="3,5 - 5,1"),
        0.95,
    )
    low_only = parse_range("> 40")
    assert low_only is not None
    assert low_only[0].low == 40
    assert low_only[0].high is None
    assert parse_range("9 - 3") is None
    assert find_date("Entnahme: 12.03.2025") == (date(2025, 3, 12), 0.95)
    assert find_date("Collected: 03/12/2025") == (date(2025, 3, 12), 0.75)
    assert find_date("Collected: 13/03/2025") == (date(2025, 3, 13), 0.9)
    assert find_date("Date Collected: March 4, 2025") == (date(2025, 3, 4), 0.95)
    assert find_date("no date 31.02.2025") is None


def _row(name: str, *, unit: str = "mg/dL") -> ExtractedRow:
    return ExtractedRow(
        page=1,
        source_text=f"{name} 1 {unit}",
        printed_name=name,
        value_text="1",
        value=1.0,
        comparator=ValueComparator.EXACT,
        unit_text=unit,
        unit=unit,
        flag_text="",
        flag=ResultFlag.UNSPECIFIED,
        reference_range=ReferenceRange(),
        bounding_box=BoundingBox(0.1, 0.2, 0.5, 0.01),
        value_confidence=0.98,
        unit_confidence=0.95,
        flag_confidence=0.0,
        range_confidence=0.0,
    )


def _candidate(name: str, *, accepted: bool = True, confidence: float = 0.95) -> BiomarkerCandidate:
    return BiomarkerCandidate(f"biomarkers/{name}", name, confidence, "mg/dL", accepted)


def test_confident_matches_are_accepted_and_the_rest_wait_for_review() -> None:
    report = LabReport(
        page_count=1,
        rows=[_row("Glucose"), _row("Odd"), _row("LDL"), _row("Glucose again"), _row("HDL")],
        collection_date=date(2025, 1, 2),
        collection_date_confidence=0.95,
    )
    candidates = [
        [_candidate("glucose")],
        [],
        [_candidate("ldl", accepted=False)],
        [_candidate("glucose")],
        [_candidate("hdl", confidence=0.5)],
    ]
    markers = build_markers(
        user_id=uuid.uuid4(),
        document_id=uuid.uuid4(),
        report=report,
        candidates=candidates,
        previous=[],
        threshold=0.8,
        parser_version="1",
    )
    states = [m.review_state for m in markers]
    assert states == [
        ReviewState.AUTO_ACCEPTED,
        ReviewState.NEEDS_REVIEW,  # no match
        ReviewState.NEEDS_REVIEW,  # unit not accepted
        ReviewState.NEEDS_REVIEW,  # the panel already has glucose
        ReviewState.NEEDS_REVIEW,  # weak name match
    ]
    assert markers[2].confidence.unit < 0.8
    outcome = document_outcome(markers, report.collection_date)
    assert (outcome.state, outcome.reason) == (ParseState.NEEDS_REVIEW, ParseStateReason.UNMATCHED_BIOMARKERS)


def test_without_a_collection_date_nothing_is_accepted() -> None:
    report = LabReport(page_count=1, rows=[_row("Glucose")])
    markers = build_markers(
        user_id=uuid.uuid4(),
        document_id=uuid.uuid4(),
        report=report,
        candidates=[[_candidate("glucose")]],
        previous=[],
        threshold=0.8,
        parser_version="1",
    )
    assert markers[0].review_state == ReviewState.NEEDS_REVIEW
    assert document_outcome(markers, None).reason == ParseStateReason.COLLECTION_DATE_MISSING


def test_filters_are_parsed_or_refused_precisely() -> None:
    fields = {"kind": enum_converter({"LAB_REPORT": 1}, "DOCUMENT_KIND_"), "page": int}
    parsed = parse_filter(
        "kind = DOCUMENT_KIND_LAB_REPORT AND page >= 2", fields, ordered=frozenset({"page"})
    )
    assert [(c.field, c.operator, c.value) for c in parsed] == [("kind", "=", 1), ("page", ">=", 2)]
    for bad in ("kind > 1", "colour = red", "kind = X", "page", "kind = 1 OR page = 2"):
        with pytest.raises(InvalidArgument):
            parse_filter(bad, fields, ordered=frozenset({"page"}))
