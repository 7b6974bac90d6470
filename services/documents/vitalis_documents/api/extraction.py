"""vitalis.documents.v1.ExtractionService."""

from __future__ import annotations

from typing import Any

import grpc

from vitalis.documents.v1 import (
    document_pb2,
    extracted_marker_pb2,
    extraction_service_pb2,
    extraction_service_pb2_grpc,
)
from vitalis_documents.api.convert import (
    comparator,
    date_value,
    document_to_proto,
    flag,
    marker_to_proto,
    reference_range,
)
from vitalis_documents.api.documents import request_uuid
from vitalis_documents.api.names import parse_document, parse_marker, require_owner, require_reader
from vitalis_documents.domain.filtering import enum_converter, parse_filter
from vitalis_documents.domain.model import ReviewState
from vitalis_documents.review import CORRECTABLE, MarkerReview, ReviewDesk
from vitalis_documents.store import Condition
from vitalis_runtime.auth import current_principal
from vitalis_runtime.errors import InvalidArgument
from vitalis_runtime.pagination import PageTokens, resolve_page_size
from vitalis_runtime.sharing import ShareGrantChecker

Context = grpc.aio.ServicerContext[object, object]
_DECISIONS = {1, 2, 3}


def _corrections(review: extraction_service_pb2.ExtractedMarkerReview, index: int) -> dict[str, Any]:
    prefix = f"reviews[{index}].correction"
    correction = review.correction
    changes: dict[str, Any] = {}
    for path in review.correction_mask.paths:
        if path not in CORRECTABLE:
            raise InvalidArgument.for_field(
                f"reviews[{index}].correction_mask",
                f"{path!r} cannot be corrected; correctable fields: {', '.join(CORRECTABLE)}",
            )
        if path == "biomarker":
            if correction.biomarker and not correction.biomarker.startswith("biomarkers/"):
                raise InvalidArgument.for_field(
                    f"{prefix}.biomarker", "must be a name like biomarkers/{biomarker}"
                )
            changes.update(biomarker=correction.biomarker, biomarker_display_name="", loinc_code="")
        elif path == "value":
            changes["value"] = correction.value
        elif path == "value_comparator":
            changes["value_comparator"] = comparator(
                correction.value_comparator, f"{prefix}.value_comparator"
            )
        elif path == "unit":
            changes["unit"] = correction.unit.strip()
        elif path == "flag":
            changes["flag"] = flag(correction.flag, f"{prefix}.flag")
        elif path == "reference_range":
            changes["reference_range"] = reference_range(correction.reference_range)
        elif path == "collection_date":
            changes["collection_date"] = date_value(correction.collection_date, f"{prefix}.collection_date")
    return changes


class ExtractionServicer(extraction_service_pb2_grpc.ExtractionServiceServicer):
    """Extracted markers, their review, and re-parsing."""

    def __init__(self, desk: ReviewDesk, pages: PageTokens, grants: ShareGrantChecker | None) -> None:
        self._desk = desk
        self._pages = pages
        self._grants = grants

    async def ListExtractedMarkers(
        self, request: extraction_service_pb2.ListExtractedMarkersRequest, context: Context
    ) -> extraction_service_pb2.ListExtractedMarkersResponse:
        """A page of a document's markers in document order."""
        ref = parse_document(request.parent, "parent")
        await require_reader(ref.user_id, request.parent, self._grants)
        page_size = resolve_page_size(request.page_size, default=100, maximum=1000)
        comparisons = parse_filter(
            request.filter,
            {
                "review_state": enum_converter({r.name: r.value for r in ReviewState}, "REVIEW_STATE_"),
                "biomarker": str,
                "page": int,
                "confidence.overall": float,
            },
            ordered=frozenset({"page", "confidence.overall"}),
        )
        bound = {
            "method": "ListExtractedMarkers",
            "parent": f"{ref.user_id}/{ref.document_id}",
            "caller": str(current_principal().user_id),
            "filter": request.filter,
        }
        cursor = self._pages.decode(request.page_token, request=bound)
        markers = await self._desk.list_markers(
            ref.user_id,
            ref.document_id,
            conditions=[
                Condition(c.field, "<>" if c.operator == "!=" else c.operator, c.value) for c in comparisons
            ],
            after_position=int(cursor.get("p", -1)),
            limit=page_size + 1,
        )
        next_token = ""
        if len(markers) > page_size:
            markers = markers[:page_size]
            next_token = self._pages.encode({"p": markers[-1].position}, request=bound)
        return extraction_service_pb2.ListExtractedMarkersResponse(
            extracted_markers=[marker_to_proto(m) for m in markers], next_page_token=next_token
        )

    async def GetExtractedMarker(
        self, request: extraction_service_pb2.GetExtractedMarkerRequest, context: Context
    ) -> extracted_marker_pb2.ExtractedMarker:
        """One marker."""
        ref, marker_id = parse_marker(request.name)
        await require_reader(ref.user_id, request.name, self._grants)
        return marker_to_proto(await self._desk.get_marker(ref.user_id, ref.document_id, marker_id))

    async def ReviewDocument(
        self, request: extraction_service_pb2.ReviewDocumentRequest, context: Context
    ) -> extraction_service_pb2.ReviewDocumentResponse:
        """Confirm, correct or reject markers."""
        ref = parse_document(request.name)
        require_owner(ref.user_id, request.name)
        reviews = []
        for index, review in enumerate(request.reviews):
            field = f"reviews[{index}].extracted_marker"
            marker_ref, marker_id = parse_marker(review.extracted_marker, field)
            if marker_ref != ref:
                raise InvalidArgument.for_field(field, "belongs to another document than `name`")
            if review.decision not in _DECISIONS:
                raise InvalidArgument.for_field(
                    f"reviews[{index}].decision", "must be CONFIRM, CORRECT or REJECT"
                )
            corrections = _corrections(review, index) if review.decision == 2 else {}
            reviews.append(MarkerReview(marker_id, review.decision, corrections, review.etag))
        document, markers = await self._desk.review(
            ref.user_id,
            ref.document_id,
            reviews,
            etag=request.etag,
            request_id=request_uuid(request.request_id, "request_id"),
        )
        return extraction_service_pb2.ReviewDocumentResponse(
            document=document_to_proto(document), extracted_markers=[marker_to_proto(m) for m in markers]
        )

    async def ReparseDocument(
        self, request: extraction_service_pb2.ReparseDocumentRequest, context: Context
    ) -> document_pb2.Document:
        """Queue a new parse."""
        ref = parse_document(request.name)
        require_owner(ref.user_id, request.name)
        document = await self._desk.reparse(
            ref.user_id,
            ref.document_id,
            etag=request.etag,
            request_id=request_uuid(request.request_id, "request_id"),
        )
        return document_to_proto(document)


__all__ = ["ExtractionServicer"]
