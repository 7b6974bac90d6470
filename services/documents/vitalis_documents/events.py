"""The events the documents service publishes, built from domain objects."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from vitalis.documents.v1 import events_pb2
from vitalis_documents.domain.model import Document


def _timestamp(moment: datetime | None = None) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment or datetime.now(UTC))
    return stamp


def document_uploaded(document: Document) -> events_pb2.DocumentUploaded:
    """A new document was stored."""
    return events_pb2.DocumentUploaded(
        user=f"users/{document.user_id}",
        document=document.name,
        kind=int(document.kind),  # type: ignore[arg-type]
        content_type=document.content_type,
        size_bytes=document.size_bytes,
        occur_time=_timestamp(document.create_time),
    )


def document_parsed(document: Document) -> events_pb2.DocumentParsed:
    """A parse finished."""
    return events_pb2.DocumentParsed(
        user=f"users/{document.user_id}",
        document=document.name,
        parse_state=int(document.parse_state),  # type: ignore[arg-type]
        parse_state_reason=int(document.parse_state_reason),  # type: ignore[arg-type]
        parser_version=document.parser_version,
        panel=document.panel,
        extracted_marker_count=document.extracted_marker_count,
        review_pending_count=document.review_pending_count,
        occur_time=_timestamp(),
    )


def document_reviewed(
    document: Document, *, confirmed: int, corrected: int, rejected: int
) -> events_pb2.DocumentReviewed:
    """A person reviewed extracted markers."""
    return events_pb2.DocumentReviewed(
        user=f"users/{document.user_id}",
        document=document.name,
        panel=document.panel,
        confirmed_count=confirmed,
        corrected_count=corrected,
        rejected_count=rejected,
        parse_state=int(document.parse_state),  # type: ignore[arg-type]
        occur_time=_timestamp(),
    )


def document_deleted(document: Document) -> events_pb2.DocumentDeleted:
    """A document was soft-deleted."""
    return events_pb2.DocumentDeleted(
        user=f"users/{document.user_id}",
        document=document.name,
        expire_time=_timestamp(document.expire_time),
        occur_time=_timestamp(document.delete_time),
    )


def document_undeleted(document: Document) -> events_pb2.DocumentUndeleted:
    """A document was restored."""
    return events_pb2.DocumentUndeleted(
        user=f"users/{document.user_id}", document=document.name, occur_time=_timestamp()
    )


def document_purged(document: Document) -> events_pb2.DocumentPurged:
    """A document and its bytes were purged."""
    return events_pb2.DocumentPurged(
        user=f"users/{document.user_id}", document=document.name, occur_time=_timestamp()
    )
