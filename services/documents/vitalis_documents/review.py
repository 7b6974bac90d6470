"""A person's review of extracted markers, and re-parsing: the write side of ExtractionService."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from vitalis_documents import events
from vitalis_documents.domain.extraction import document_outcome
from vitalis_documents.domain.model import (
    Document,
    DocumentKind,
    ExtractedMarker,
    ParseState,
    ParseStateReason,
    ReviewState,
)
from vitalis_documents.library import DocumentLibrary, not_found, not_found_name
from vitalis_documents.pipeline import ParsePipeline, collection_time, panel_marker
from vitalis_documents.ports import BiomarkerDirectory, PanelMerge
from vitalis_documents.store import Condition
from vitalis_runtime.errors import Aborted, FailedPrecondition, InvalidArgument, Unavailable
from vitalis_runtime.mailbox import advisory_lock

MAX_REVIEWS = 500
CORRECTABLE = ("biomarker", "value", "value_comparator", "unit", "flag", "reference_range", "collection_date")
BUSY_STATES = frozenset({ParseState.PENDING, ParseState.PARSING})


class Decision:
    """What a reviewer decided (the contract's ReviewDecision values)."""

    CONFIRM = 1
    CORRECT = 2
    REJECT = 3


@dataclass(frozen=True)
class MarkerReview:
    """One marker's review, already parsed from the request."""

    marker_id: uuid.UUID
    decision: int
    corrections: dict[str, Any]
    etag: str = ""


def _check_reviews(reviews: Sequence[MarkerReview]) -> None:
    if not reviews:
        raise InvalidArgument.for_field("reviews", "must name at least one extracted marker")
    if len(reviews) > MAX_REVIEWS:
        raise InvalidArgument.for_field("reviews", f"must hold at most {MAX_REVIEWS} reviews")
    seen: set[uuid.UUID] = set()
    for index, review in enumerate(reviews):
        if review.marker_id in seen:
            raise InvalidArgument.for_field(
                f"reviews[{index}].extracted_marker", "names a marker reviewed twice"
            )
        seen.add(review.marker_id)


def _reviewed(marker: ExtractedMarker, review: MarkerReview, index: int, now: datetime) -> ExtractedMarker:
    if review.decision == Decision.REJECT:
        return replace(marker, review_state=ReviewState.REJECTED, review_time=now, marker="")
    state = ReviewState.CONFIRMED
    if review.decision == Decision.CORRECT:
        if not review.corrections:
            raise InvalidArgument.for_field(
                f"reviews[{index}].correction_mask",
                f"must name the corrected fields among {', '.join(CORRECTABLE)}",
            )
        marker = replace(marker, **review.corrections)
        state = ReviewState.CORRECTED
    if not marker.biomarker:
        raise InvalidArgument.for_field(
            f"reviews[{index}].correction.biomarker",
            "the marker matched no biomarker; correct `biomarker` to accept it",
        )
    if marker.value is None:
        raise InvalidArgument.for_field(f"reviews[{index}].correction.value", "the marker has no value")
    return replace(marker, review_state=state, review_time=now)


class ReviewDesk:
    """Records reviews, keeps the panel in step, and requests re-parses."""

    def __init__(
        self, library: DocumentLibrary, pipeline: ParsePipeline, biomarkers: BiomarkerDirectory | None
    ) -> None:
        """Reviews of one document run through the pipeline's per-document mailbox."""
        self._library = library
        self._store = library.store
        self._pipeline = pipeline
        self._biomarkers = biomarkers

    async def list_markers(
        self,
        user_id: uuid.UUID,
        document_id: uuid.UUID,
        *,
        conditions: Sequence[Condition],
        after_position: int,
        limit: int,
    ) -> list[ExtractedMarker]:
        """A page of a document's markers in document order."""
        async with self._library.db.transaction(user_id=user_id, readonly=True) as conn:
            if await self._store.get_document(conn, user_id, document_id) is None:
                raise not_found(user_id, document_id)
            return await self._store.list_markers(
                conn, user_id, document_id, conditions=conditions, after_position=after_position, limit=limit
            )

    async def get_marker(
        self, user_id: uuid.UUID, document_id: uuid.UUID, marker_id: uuid.UUID
    ) -> ExtractedMarker:
        """One marker."""
        async with self._library.db.transaction(user_id=user_id, readonly=True) as conn:
            marker = await self._store.get_marker(conn, user_id, document_id, marker_id)
        if marker is None:
            raise not_found_name(f"users/{user_id}/documents/{document_id}/extractedMarkers/{marker_id}")
        return marker

    async def review(
        self,
        user_id: uuid.UUID,
        document_id: uuid.UUID,
        reviews: Sequence[MarkerReview],
        *,
        etag: str,
        request_id: uuid.UUID | None,
    ) -> tuple[Document, list[ExtractedMarker]]:
        """Apply ``reviews`` atomically; the panel follows."""
        _check_reviews(reviews)
        return await self._pipeline.mailbox.submit(
            document_id, lambda: self._review(user_id, document_id, reviews, etag, request_id)
        )

    async def _review(
        self,
        user_id: uuid.UUID,
        document_id: uuid.UUID,
        reviews: Sequence[MarkerReview],
        etag: str,
        request_id: uuid.UUID | None,
    ) -> tuple[Document, list[ExtractedMarker]]:
        if request_id is not None:
            earlier = await self._earlier_review(user_id, document_id, request_id)
            if earlier is not None:
                return earlier
        async with self._library.db.transaction(user_id=user_id, readonly=True) as conn:
            document = await self._checked_document(conn, user_id, document_id, etag)
            markers = await self._store.list_markers(conn, user_id, document_id)
        by_id = {m.extracted_marker_id: m for m in markers}
        now = datetime.now(UTC)
        changed: list[ExtractedMarker] = []
        for index, review in enumerate(reviews):
            marker = by_id.get(review.marker_id)
            if marker is None:
                raise not_found_name(
                    f"users/{user_id}/documents/{document_id}/extractedMarkers/{review.marker_id}"
                )
            if review.etag and review.etag != marker.etag:
                raise Aborted(
                    f"reviews[{index}]: the marker changed since it was read; read it again.",
                    reason="ETAG_MISMATCH",
                )
            changed.append(replace(_reviewed(marker, review, index, now), version=marker.version + 1))
        changed, panel = await self._merge(document, markers, changed)
        changed_ids = {m.extracted_marker_id for m in changed}
        after = [m for m in markers if m.extracted_marker_id not in changed_ids] + changed
        collection = document.collection_date or next(
            (m.collection_date for m in changed if m.collection_date), None
        )
        outcome = document_outcome(after, collection)
        async with self._library.db.transaction(user_id=user_id) as conn:
            current = await self._checked_document(conn, user_id, document_id, "", lock=True)
            if current.version != document.version:
                raise Aborted(
                    "The document changed during the review; review again.", reason="CONCURRENT_CHANGE"
                )
            await self._store.save_markers(conn, changed)
            updated = await self._store.update_document(
                conn,
                current,
                {
                    "parse_state": outcome.state,
                    "parse_state_reason": outcome.reason,
                    "parse_state_message": outcome.message,
                    "collection_date": collection,
                    "panel": panel if panel is not None else current.panel,
                    "review_pending_count": sum(m.review_state == ReviewState.NEEDS_REVIEW for m in after),
                },
            )
            counts = {state: sum(m.review_state == state for m in changed) for state in ReviewState}
            await self._library.emit(
                conn,
                user_id,
                events.document_reviewed(
                    updated,
                    confirmed=counts[ReviewState.CONFIRMED],
                    corrected=counts[ReviewState.CORRECTED],
                    rejected=counts[ReviewState.REJECTED],
                ),
            )
            if request_id is not None:
                ids = json.dumps([str(m.extracted_marker_id) for m in changed]).encode()
                await self._store.record_request(
                    conn, user_id, request_id, method="ReviewDocument", document_id=document_id, response=ids
                )
        return updated, changed

    async def _earlier_review(
        self, user_id: uuid.UUID, document_id: uuid.UUID, request_id: uuid.UUID
    ) -> tuple[Document, list[ExtractedMarker]] | None:
        async with self._library.db.transaction(user_id=user_id, readonly=True) as conn:
            found = await self._store.find_request(conn, user_id, request_id)
            if found is None:
                return None
            document = await self._store.get_document(conn, user_id, found[1])
            if document is None or found[1] != document_id:
                raise InvalidArgument.for_field("request_id", "was already used for another request")
            ids = [uuid.UUID(text) for text in json.loads(found[2] or b"[]")]
            markers = [
                await self._store.get_marker(conn, user_id, document_id, marker_id) for marker_id in ids
            ]
        return document, [m for m in markers if m is not None]

    async def _checked_document(
        self, conn: Any, user_id: uuid.UUID, document_id: uuid.UUID, etag: str, *, lock: bool = False
    ) -> Document:
        if lock:
            await advisory_lock(conn, f"documents.document:{document_id}")
        document = await self._store.get_document(conn, user_id, document_id, for_update=lock)
        if document is None:
            raise not_found(user_id, document_id)
        if etag and etag != document.etag:
            raise Aborted("The document changed since it was read; read it again.", reason="ETAG_MISMATCH")
        if document.deleted:
            raise FailedPrecondition("The document is deleted; undelete it first.", reason="DOCUMENT_DELETED")
        if document.parse_state in BUSY_STATES:
            raise FailedPrecondition(
                "The document is still being parsed; review it once parsing has finished.",
                reason="PARSE_IN_PROGRESS",
            )
        return document

    async def _merge(
        self, document: Document, markers: Sequence[ExtractedMarker], changed: list[ExtractedMarker]
    ) -> tuple[list[ExtractedMarker], str | None]:
        before = {m.extracted_marker_id: m for m in markers}
        accepted = [m for m in changed if m.review_state.in_panel]
        removals = [
            m
            for m in changed
            if not m.review_state.in_panel and before[m.extracted_marker_id].review_state.in_panel
        ]
        if not accepted and not removals:
            return changed, None
        day = document.collection_date or next(
            (m.collection_date for m in accepted if m.collection_date), None
        )
        if day is None:
            raise InvalidArgument.for_field(
                "reviews.correction.collection_date",
                "the report has no collection date; correct `collection_date` on the accepted markers",
            )
        if self._biomarkers is None:
            raise Unavailable("The biomarkers service is not configured.", reason="BIOMARKERS_UNAVAILABLE")
        result = await self._biomarkers.merge_markers(
            document.user_id,
            PanelMerge(
                document=document.name,
                collection_time=collection_time(day),
                lab_name=document.lab_name,
                upserts=[panel_marker(m, reviewed=True) for m in accepted],
                removals=[m.name for m in removals],
            ),
        )
        linked = [
            replace(m, marker=result.links.get(m.name, m.marker) if m.review_state.in_panel else "")
            for m in changed
        ]
        return linked, result.panel

    async def reparse(
        self, user_id: uuid.UUID, document_id: uuid.UUID, *, etag: str, request_id: uuid.UUID | None
    ) -> Document:
        """Queue the document for a new parse."""
        async with self._library.db.transaction(user_id=user_id) as conn:
            if request_id is not None:
                found = await self._store.find_request(conn, user_id, request_id)
                if found is not None:
                    earlier = await self._store.get_document(conn, user_id, found[1])
                    if earlier is None:
                        raise not_found(user_id, document_id)
                    return earlier
            await advisory_lock(conn, f"documents.document:{document_id}")
            document = await self._store.get_document(conn, user_id, document_id, for_update=True)
            if document is None:
                raise not_found(user_id, document_id)
            if etag and etag != document.etag:
                raise Aborted(
                    "The document changed since it was read; read it again.", reason="ETAG_MISMATCH"
                )
            if document.deleted:
                raise FailedPrecondition(
                    "The document is deleted; undelete it first.", reason="DOCUMENT_DELETED"
                )
            if document.parse_state in BUSY_STATES:
                raise FailedPrecondition(
                    "The document is already waiting for or in a parse.", reason="PARSE_IN_PROGRESS"
                )
            if document.kind != DocumentKind.LAB_REPORT:
                raise FailedPrecondition(
                    "Only lab reports are parsed; change the kind first.", reason="KIND_NOT_PARSED"
                )
            updated = await self._store.update_document(
                conn,
                document,
                {
                    "parse_state": ParseState.PENDING,
                    "parse_state_reason": ParseStateReason.UNSPECIFIED,
                    "parse_state_message": "",
                },
            )
            await self._store.enqueue_parse(conn, user_id, document_id)
            if request_id is not None:
                await self._store.record_request(
                    conn, user_id, request_id, method="ReparseDocument", document_id=document_id
                )
        self._pipeline.wake()
        return updated
