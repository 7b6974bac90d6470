"""Turning read rows into extracted markers: dictionary matches, confidences, review decisions."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime

from vitalis_documents.domain.model import (
    ExtractedMarker,
    FieldConfidence,
    ParseState,
    ParseStateReason,
    ReviewState,
)
from vitalis_documents.parsing.lab_report import ExtractedRow, LabReport
from vitalis_documents.ports import BiomarkerCandidate

UNACCEPTED_UNIT_CONFIDENCE = 0.4


@dataclass(frozen=True)
class Outcome:
    """The document's state after a parse or review."""

    state: ParseState
    reason: ParseStateReason
    message: str


def _key(page: int, printed_name: str) -> tuple[int, str]:
    return page, " ".join(printed_name.lower().split())


def build_markers(
    *,
    user_id: uuid.UUID,
    document_id: uuid.UUID,
    report: LabReport,
    candidates: Sequence[Sequence[BiomarkerCandidate]],
    previous: Sequence[ExtractedMarker],
    threshold: float,
    parser_version: str,
) -> list[ExtractedMarker]:
    """New markers for the rows of ``report``; reviewed ``previous`` markers win over re-read rows.

    An unreviewed previous marker read again (same page and printed name) keeps its id, so its
    panel marker is replaced rather than duplicated. A biomarker already held by an accepted or
    reviewed marker sends a second row of it to review.
    """
    reviewed = {_key(m.page, m.printed_name) for m in previous if m.review_state.reviewed}
    reusable = {
        _key(m.page, m.printed_name): m.extracted_marker_id for m in previous if not m.review_state.reviewed
    }
    taken = {
        m.biomarker for m in previous if m.review_state.in_panel and m.review_state.reviewed and m.biomarker
    }
    now = datetime.now(UTC)
    markers: list[ExtractedMarker] = []
    date_confidence = report.collection_date_confidence if report.collection_date else 0.0
    rows = sorted(
        zip(report.rows, candidates, strict=True), key=lambda pair: (pair[0].page, pair[0].bounding_box.top)
    )
    for position, (row, found) in enumerate(rows):
        key = _key(row.page, row.printed_name)
        if key in reviewed:
            continue
        best = found[0] if found else None
        confidence = _confidence(row, best, date_confidence)
        state = ReviewState.NEEDS_REVIEW
        if (
            best is not None
            and confidence.overall >= threshold
            and date_confidence >= threshold
            and best.biomarker not in taken
        ):
            state = ReviewState.AUTO_ACCEPTED
            taken.add(best.biomarker)
        markers.append(
            ExtractedMarker(
                user_id=user_id,
                document_id=document_id,
                extracted_marker_id=reusable.pop(key) if key in reusable else uuid.uuid4(),
                position=position,
                source_text=row.source_text,
                printed_name=row.printed_name,
                biomarker=best.biomarker if best else "",
                biomarker_display_name=best.matched_text if best else "",
                loinc_code=best.loinc_code if best else "",
                value=row.value,
                value_comparator=row.comparator,
                value_text=row.value_text,
                unit=(best.normalized_unit if best and best.normalized_unit else row.unit),
                unit_text=row.unit_text,
                flag=row.flag,
                reference_range=row.reference_range,
                collection_date=report.collection_date,
                page=row.page,
                bounding_box=row.bounding_box,
                confidence=confidence,
                review_state=state,
                parser_version=parser_version,
                create_time=now,
            )
        )
    return markers


def _confidence(
    row: ExtractedRow, best: BiomarkerCandidate | None, date_confidence: float
) -> FieldConfidence:
    unit_confidence = row.unit_confidence
    if best is not None and row.unit_text:
        unit_confidence = (
            max(unit_confidence, 0.95)
            if best.unit_accepted
            else min(unit_confidence, UNACCEPTED_UNIT_CONFIDENCE)
        )
    elif not row.unit_text:
        # A unitless result is fine when the dictionary accepts no unit for it.
        unit_confidence = 0.9 if best is not None and best.unit_accepted else 0.3
    return FieldConfidence(
        biomarker=best.confidence if best else 0.0,
        value=row.value_confidence,
        unit=unit_confidence,
        flag=row.flag_confidence,
        reference_range=row.range_confidence,
        collection_date=date_confidence,
    )


def document_outcome(markers: Sequence[ExtractedMarker], collection_date: date | None) -> Outcome:
    """PARSED when nothing waits for review; otherwise NEEDS_REVIEW with the most pressing reason."""
    pending = [m for m in markers if m.review_state == ReviewState.NEEDS_REVIEW]
    if not pending:
        return Outcome(ParseState.PARSED, ParseStateReason.UNSPECIFIED, "")
    if collection_date is None and all(m.collection_date is None for m in pending):
        return Outcome(
            ParseState.NEEDS_REVIEW,
            ParseStateReason.COLLECTION_DATE_MISSING,
            "No collection date was found on the report; confirm the results with the date the sample was"
            " taken.",
        )
    if any(not m.biomarker for m in pending):
        return Outcome(
            ParseState.NEEDS_REVIEW,
            ParseStateReason.UNMATCHED_BIOMARKERS,
            f"{sum(not m.biomarker for m in pending)} result names matched no known biomarker; choose the"
            " biomarker or reject them.",
        )
    return Outcome(
        ParseState.NEEDS_REVIEW,
        ParseStateReason.LOW_CONFIDENCE,
        f"{len(pending)} results were read with low confidence; confirm or correct them.",
    )


def unreviewed_removals(
    previous: Sequence[ExtractedMarker], kept_ids: set[uuid.UUID]
) -> list[ExtractedMarker]:
    """Previously accepted, unreviewed markers that the new parse no longer has."""
    return [
        m
        for m in previous
        if m.review_state == ReviewState.AUTO_ACCEPTED and m.extracted_marker_id not in kept_ids
    ]


def with_links(markers: Sequence[ExtractedMarker], links: Mapping[str, str]) -> list[ExtractedMarker]:
    """Markers with the panel marker each one went to."""
    return [
        replace(m, marker=links.get(m.name, m.marker if m.review_state.in_panel else "")) for m in markers
    ]
