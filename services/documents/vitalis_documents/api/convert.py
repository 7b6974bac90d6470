"""Conversions between documents domain objects and protobuf messages."""

from __future__ import annotations

from datetime import date, datetime

from google.protobuf.timestamp_pb2 import Timestamp
from google.type import date_pb2  # type: ignore[import-untyped]

from vitalis.documents.v1 import document_pb2, extracted_marker_pb2
from vitalis_documents.domain.model import (
    Document,
    DocumentKind,
    ExtractedMarker,
    ReferenceRange,
    ResultFlag,
    ValueComparator,
)
from vitalis_documents.library import DocumentFields
from vitalis_runtime.errors import InvalidArgument


def timestamp(value: datetime) -> Timestamp:
    """A protobuf Timestamp."""
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def date_message(value: date) -> date_pb2.Date:
    """A google.type.Date."""
    return date_pb2.Date(year=value.year, month=value.month, day=value.day)


def date_value(message: date_pb2.Date, field: str) -> date | None:
    """A calendar date from a google.type.Date; None when unset."""
    if not message.year and not message.month and not message.day:
        return None
    try:
        return date(message.year, message.month, message.day)
    except ValueError:
        raise InvalidArgument.for_field(field, "is not a valid calendar date") from None


def document_to_proto(document: Document) -> document_pb2.Document:
    """The public representation of a document."""
    message = document_pb2.Document(
        name=document.name,
        display_name=document.display_name,
        description=document.description,
        kind=int(document.kind),  # type: ignore[arg-type]
        content_type=document.content_type,
        size_bytes=document.size_bytes,
        sha256=document.sha256,
        page_count=document.page_count,
        parse_state=int(document.parse_state),  # type: ignore[arg-type]
        parse_state_reason=int(document.parse_state_reason),  # type: ignore[arg-type]
        parse_state_message=document.parse_state_message,
        parser_version=document.parser_version,
        ocr_used=document.ocr_used,
        lab_name=document.lab_name,
        panel=document.panel,
        extracted_marker_count=document.extracted_marker_count,
        review_pending_count=document.review_pending_count,
        create_time=timestamp(document.create_time),
        update_time=timestamp(document.update_time),
        etag=document.etag,
    )
    if document.parse_time is not None:
        message.parse_time.CopyFrom(timestamp(document.parse_time))
    if document.collection_date is not None:
        message.collection_date.CopyFrom(date_message(document.collection_date))
    if document.delete_time is not None:
        message.delete_time.CopyFrom(timestamp(document.delete_time))
    if document.expire_time is not None:
        message.expire_time.CopyFrom(timestamp(document.expire_time))
    return message


def document_fields(message: document_pb2.Document, prefix: str) -> DocumentFields:
    """The mutable fields of a Document message."""
    if message.kind not in DocumentKind._value2member_map_:
        raise InvalidArgument.for_field(f"{prefix}.kind", f"unknown value {message.kind}")
    return DocumentFields(
        display_name=message.display_name.strip(),
        description=message.description,
        kind=DocumentKind(message.kind),
    )


def marker_to_proto(marker: ExtractedMarker) -> extracted_marker_pb2.ExtractedMarker:
    """The public representation of an extracted marker."""
    confidence = marker.confidence
    message = extracted_marker_pb2.ExtractedMarker(
        name=marker.name,
        source_text=marker.source_text,
        printed_name=marker.printed_name,
        biomarker=marker.biomarker,
        biomarker_display_name=marker.biomarker_display_name,
        loinc_code=marker.loinc_code,
        value=marker.value or 0.0,
        value_comparator=int(marker.value_comparator),  # type: ignore[arg-type]
        value_text=marker.value_text,
        unit=marker.unit,
        unit_text=marker.unit_text,
        flag=int(marker.flag),  # type: ignore[arg-type]
        page=marker.page,
        bounding_box=extracted_marker_pb2.BoundingBox(
            left=marker.bounding_box.left,
            top=marker.bounding_box.top,
            width=marker.bounding_box.width,
            height=marker.bounding_box.height,
        ),
        confidence=extracted_marker_pb2.FieldConfidence(
            biomarker=confidence.biomarker,
            value=confidence.value,
            unit=confidence.unit,
            flag=confidence.flag,
            reference_range=confidence.reference_range,
            collection_date=confidence.collection_date,
            overall=confidence.overall,
        ),
        review_state=int(marker.review_state),  # type: ignore[arg-type]
        marker=marker.marker,
        parser_version=marker.parser_version,
        etag=marker.etag,
    )
    reference = marker.reference_range
    if reference.low is not None or reference.high is not None or reference.text:
        message.reference_range.text = reference.text
        if reference.low is not None:
            message.reference_range.low = reference.low
        if reference.high is not None:
            message.reference_range.high = reference.high
    if marker.collection_date is not None:
        message.collection_date.CopyFrom(date_message(marker.collection_date))
    if marker.review_time is not None:
        message.review_time.CopyFrom(timestamp(marker.review_time))
    if marker.create_time is not None:
        message.create_time.CopyFrom(timestamp(marker.create_time))
    return message


def reference_range(message: extracted_marker_pb2.ReferenceRange) -> ReferenceRange:
    """A domain reference range."""
    return ReferenceRange(
        low=message.low if message.HasField("low") else None,
        high=message.high if message.HasField("high") else None,
        text=message.text,
    )


def comparator(value: int, field: str) -> ValueComparator:
    """A domain comparator."""
    try:
        return ValueComparator(value)
    except ValueError:
        raise InvalidArgument.for_field(field, f"unknown value {value}") from None


def flag(value: int, field: str) -> ResultFlag:
    """A domain flag."""
    try:
        return ResultFlag(value)
    except ValueError:
        raise InvalidArgument.for_field(field, f"unknown value {value}") from None
