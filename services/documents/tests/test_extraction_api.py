"""ExtractionService reads, and reads by a grantee: markers in document order, pages, filters."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from google.api import httpbody_pb2

from services.documents.tests.fakes import FakeBiomarkers
from vitalis.documents.v1 import document_service_pb2, extraction_service_pb2
from vitalis_documents.extraction_bench.corpus import generate_report
from vitalis_documents.storage.base import ObjectStorage


@dataclass
class Grants:
    """Share grants as identity would answer: (owner, grantee, scope) triples that are live."""

    live: set[tuple[uuid.UUID, uuid.UUID, str]] = field(default_factory=set)

    async def allows(self, *, owner_id: uuid.UUID, grantee_id: uuid.UUID, scope: str) -> bool:
        """Whether the grant is live."""
        return (owner_id, grantee_id, scope) in self.live


async def parsed_document(client: Any, user: uuid.UUID, layout: str = "multi_page") -> Any:
    """Upload a generated report and parse it."""
    report = generate_report(layout, 3)
    document = await client.documents.CreateDocument(
        document_service_pb2.CreateDocumentRequest(
            parent="users/me", http_body=httpbody_pb2.HttpBody(data=report.pdf)
        ),
        metadata=client.auth(user),
    )
    await client.app.pipeline.drain()
    return document, report


async def test_markers_are_listed_in_document_order_page_by_page(
    disk_storage: ObjectStorage, start_client: Callable[..., Any]
) -> None:
    async with start_client(disk_storage, biomarkers=FakeBiomarkers()) as client:
        user = uuid.uuid4()
        document, report = await parsed_document(client, user)
        seen: list[Any] = []
        token = ""
        while True:
            page = await client.extraction.ListExtractedMarkers(
                extraction_service_pb2.ListExtractedMarkersRequest(
                    parent=document.name, page_size=5, page_token=token
                ),
                metadata=client.auth(user),
            )
            seen += page.extracted_markers
            token = page.next_page_token
            if not token:
                break
        assert [m.printed_name for m in seen] == [row.printed_name for row in report.rows]
        assert [m.page for m in seen] == sorted(m.page for m in seen)
        on_page_two = await client.extraction.ListExtractedMarkers(
            extraction_service_pb2.ListExtractedMarkersRequest(parent=document.name, filter="page = 2"),
            metadata=client.auth(user),
        )
        assert {m.page for m in on_page_two.extracted_markers} == {2}
        confident = await client.extraction.ListExtractedMarkers(
            extraction_service_pb2.ListExtractedMarkersRequest(
                parent=document.name, filter="confidence.overall >= 0.99"
            ),
            metadata=client.auth(user),
        )
        assert all(m.confidence.overall >= 0.99 for m in confident.extracted_markers)
        one = await client.extraction.GetExtractedMarker(
            extraction_service_pb2.GetExtractedMarkerRequest(name=seen[3].name), metadata=client.auth(user)
        )
        assert one == seen[3]
        for request in (
            extraction_service_pb2.ListExtractedMarkersRequest(parent=document.name, filter="value = 3"),
            extraction_service_pb2.ListExtractedMarkersRequest(parent=document.name, page_size=-2),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await client.extraction.ListExtractedMarkers(request, metadata=client.auth(user))
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_grantee_reads_documents_and_markers_but_cannot_change_them(
    disk_storage: ObjectStorage, start_client: Callable[..., Any]
) -> None:
    grants = Grants()
    async with start_client(disk_storage, biomarkers=FakeBiomarkers(), grants=grants) as client:
        owner, clinician = uuid.uuid4(), uuid.uuid4()
        document, _ = await parsed_document(client, owner, "table")
        read = client.documents.GetDocument(
            document_service_pb2.GetDocumentRequest(name=document.name), metadata=client.auth(clinician)
        )
        with pytest.raises(grpc.aio.AioRpcError) as before:
            await read
        assert before.value.code() == grpc.StatusCode.NOT_FOUND
        grants.live.add((owner, clinician, "documents"))
        shared = await client.documents.GetDocument(
            document_service_pb2.GetDocumentRequest(name=document.name), metadata=client.auth(clinician)
        )
        assert shared.name == document.name
        listed = await client.documents.ListDocuments(
            document_service_pb2.ListDocumentsRequest(parent=f"users/{owner}"),
            metadata=client.auth(clinician),
        )
        assert [d.name for d in listed.documents] == [document.name]
        markers = await client.extraction.ListExtractedMarkers(
            extraction_service_pb2.ListExtractedMarkersRequest(parent=document.name),
            metadata=client.auth(clinician),
        )
        assert markers.extracted_markers
        content = [
            body.data
            async for body in client.documents.DownloadDocument(
                document_service_pb2.DownloadDocumentRequest(name=document.name),
                metadata=client.auth(clinician),
            )
        ]
        assert b"".join(content).startswith(b"%PDF")
        with pytest.raises(grpc.aio.AioRpcError) as write:
            await client.documents.DeleteDocument(
                document_service_pb2.DeleteDocumentRequest(name=document.name),
                metadata=client.auth(clinician),
            )
        assert write.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.aio.AioRpcError) as reparse:
            await client.extraction.ReparseDocument(
                extraction_service_pb2.ReparseDocumentRequest(name=document.name),
                metadata=client.auth(clinician),
            )
        assert reparse.value.code() == grpc.StatusCode.NOT_FOUND
