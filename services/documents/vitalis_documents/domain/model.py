"""Documents and extracted markers as the service reasons about them.

Enum values carry the numbers of the contract's enums so that conversions stay one-to-one.
"""

from __future__ import annotations

import enum
import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime


class DocumentKind(enum.IntEnum):
    """What a document is."""

    UNSPECIFIED = 0
    LAB_REPORT = 1
    BODY_COMPOSITION_SCAN = 2
    EPIGENETIC_REPORT = 3
    WEARABLE_EXPORT = 4
    OTHER = 5


class ParseState(enum.IntEnum):
    """Where a document is in the parse pipeline."""

    UNSPECIFIED = 0
    PENDING = 1
    PARSING = 2
    PARSED = 3
    NEEDS_REVIEW = 4
    FAILED = 5
    SKIPPED = 6


class ParseStateReason(enum.IntEnum):
    """Why a document needs review, failed or was skipped."""

    UNSPECIFIED = 0
    LOW_CONFIDENCE = 1
    UNMATCHED_BIOMARKERS = 2
    COLLECTION_DATE_MISSING = 3
    NO_TEXT_LAYER = 4
    NO_RESULTS_FOUND = 5
    ENCRYPTED = 6
    MALFORMED = 7
    RESOURCE_LIMIT_EXCEEDED = 8
    TIME_LIMIT_EXCEEDED = 9
    INTERNAL_ERROR = 10
    KIND_NOT_PARSED = 11
    UNSUPPORTED_CONTENT_TYPE = 12


class ValueComparator(enum.IntEnum):
    """Whether a value is exact or a bound."""

    EXACT = 0
    LESS_THAN = 1
    LESS_THAN_OR_EQUAL = 2
    GREATER_THAN = 3
    GREATER_THAN_OR_EQUAL = 4


class ResultFlag(enum.IntEnum):
    """The flag a laboratory printed next to a result."""

    UNSPECIFIED = 0
    NORMAL = 1
    LOW = 2
    HIGH = 3
    CRITICAL_LOW = 4
    CRITICAL_HIGH = 5
    ABNORMAL = 6


class ReviewState(enum.IntEnum):
    """Whether an extracted result was accepted, waits for review, or how it was reviewed."""

    UNSPECIFIED = 0
    AUTO_ACCEPTED = 1
    NEEDS_REVIEW = 2
    CONFIRMED = 3
    CORRECTED = 4
    REJECTED = 5

    @property
    def in_panel(self) -> bool:
        """Whether a result in this state belongs in the document's panel."""
        return self in {ReviewState.AUTO_ACCEPTED, ReviewState.CONFIRMED, ReviewState.CORRECTED}

    @property
    def reviewed(self) -> bool:
        """Whether a person decided about the result (a re-parse keeps it)."""
        return self in {ReviewState.CONFIRMED, ReviewState.CORRECTED, ReviewState.REJECTED}


PARSEABLE_CONTENT_TYPES = frozenset({"application/pdf"})
LAB_REPORT_CONTENT_TYPES = frozenset({"application/pdf", "image/png", "image/jpeg", "image/heic"})


def default_kind(content_type: str) -> DocumentKind:
    """Lab report for PDFs and images, other for everything else."""
    return DocumentKind.LAB_REPORT if content_type in LAB_REPORT_CONTENT_TYPES else DocumentKind.OTHER


@dataclass(frozen=True)
class Document:
    """One stored file of one user."""

    user_id: uuid.UUID
    document_id: uuid.UUID
    display_name: str
    description: str
    kind: DocumentKind
    content_type: str
    size_bytes: int
    sha256: str
    storage_key: str
    page_count: int
    parse_state: ParseState
    parse_state_reason: ParseStateReason
    parse_state_message: str
    parser_version: str
    parse_time: datetime | None
    ocr_used: bool
    lab_name: str
    collection_date: date | None
    panel: str
    extracted_marker_count: int
    review_pending_count: int
    create_time: datetime
    update_time: datetime
    delete_time: datetime | None
    expire_time: datetime | None
    version: int

    @property
    def name(self) -> str:
        """``users/{user}/documents/{document}``."""
        return document_name(self.user_id, self.document_id)

    @property
    def etag(self) -> str:
        """An opaque tag of this state of the document."""
        return make_etag(self.name, self.version)

    @property
    def deleted(self) -> bool:
        """Whether the document is soft-deleted."""
        return self.delete_time is not None


@dataclass(frozen=True)
class BoundingBox:
    """A rectangle on a page, in fractions of the page from its top left corner."""

    left: float = 0.0
    top: float = 0.0
    width: float = 0.0
    height: float = 0.0


@dataclass(frozen=True)
class FieldConfidence:
    """How confident the parser is of each field, 0 to 1."""

    biomarker: float = 0.0
    value: float = 0.0
    unit: float = 0.0
    flag: float = 0.0
    reference_range: float = 0.0
    collection_date: float = 0.0

    @property
    def overall(self) -> float:
        """The lowest of the biomarker, value and unit confidences."""
        return min(self.biomarker, self.value, self.unit)


@dataclass(frozen=True)
class ReferenceRange:
    """A laboratory's reference range."""

    low: float | None = None
    high: float | None = None
    text: str = ""


@dataclass(frozen=True)
class ExtractedMarker:
    """One lab result read from a document."""

    user_id: uuid.UUID
    document_id: uuid.UUID
    extracted_marker_id: uuid.UUID
    position: int
    source_text: str
    printed_name: str
    biomarker: str
    biomarker_display_name: str
    loinc_code: str
    value: float | None
    value_comparator: ValueComparator
    value_text: str
    unit: str
    unit_text: str
    flag: ResultFlag
    reference_range: ReferenceRange
    collection_date: date | None
    page: int
    bounding_box: BoundingBox
    confidence: FieldConfidence
    review_state: ReviewState
    marker: str = ""
    review_time: datetime | None = None
    parser_version: str = ""
    create_time: datetime | None = None
    version: int = 1
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """``users/{user}/documents/{document}/extractedMarkers/{extracted_marker}``."""
        return extracted_marker_name(self.user_id, self.document_id, self.extracted_marker_id)

    @property
    def etag(self) -> str:
        """An opaque tag of this state of the result."""
        return make_etag(self.name, self.version)


def document_name(user_id: uuid.UUID, document_id: uuid.UUID) -> str:
    """``users/{user}/documents/{document}``."""
    return f"users/{user_id}/documents/{document_id}"


def extracted_marker_name(user_id: uuid.UUID, document_id: uuid.UUID, marker_id: uuid.UUID) -> str:
    """``users/{user}/documents/{document}/extractedMarkers/{extracted_marker}``."""
    return f"{document_name(user_id, document_id)}/extractedMarkers/{marker_id}"


def make_etag(name: str, version: int) -> str:
    """A weak-looking, opaque tag derived from a resource's name and version."""
    return hashlib.sha256(f"{name}#{version}".encode()).hexdigest()[:16]
