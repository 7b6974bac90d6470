"""DocumentInternalService and UserDataService: service tokens only; export and erasure of a user."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from google.api import httpbody_pb2

from services.documents.tests.conftest import SERVICE_SECRET
from services.documents.tests.fakes import FakeBiomarkers
from vitalis.documents.v1 import (
    document_internal_service_pb2,
    document_internal_service_pb2_grpc,
    document_pb2,
    document_service_pb2,
    user_data_service_pb2,
    user_data_service_pb2_grpc,
)
from vitalis_documents.extraction_bench.corpus import generate_report
from vitalis_documents.storage.base import ObjectStorage
from vitalis_runtime.service_auth import ServiceCredentials

CSV = b"a,b\n1,2\n"


def service(user: uuid.UUID, name: str = "identity") -> tuple[tuple[str, str], ...]:
    """Metadata of a service acting for ``user``."""
    return ServiceCredentials(SERVICE_SECRET, name).metadata(user)


async def create(client: Any, user: uuid.UUID, data: bytes, name: str = "") -> document_pb2.Document:
    """Upload bytes as ``user``."""
    return await client.documents.CreateDocument(
        document_service_pb2.CreateDocumentRequest(
            parent="users/me",
            http_body=httpbody_pb2.HttpBody(data=data),
            document=document_pb2.Document(display_name=name),
        ),
        metadata=client.auth(user),
    )


async def test_a_service_reads_a_documents_bytes_and_a_user_token_is_refused(
    disk_storage: ObjectStorage, start_client: Callable[..., Any]
) -> None:
    async with start_client(disk_storage) as client:
        user = uuid.uuid4()
        document = await create(client, user, CSV)
        stub = document_internal_service_pb2_grpc.DocumentInternalServiceStub(client.channel)
        request = document_internal_service_pb2.ReadDocumentContentRequest(name=document.name)
        bodies = [
            body async for body in stub.ReadDocumentContent(request, metadata=service(user, "ingestion"))
        ]
        assert b"".join(body.data for body in bodies) == CSV
        assert {body.content_type for body in bodies} == {"text/csv"}
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.ReadDocumentContent(request, metadata=client.auth(user)).read()
        assert refused.value.code() in {grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED}
        with pytest.raises(grpc.aio.AioRpcError) as other:
            await stub.ReadDocumentContent(request, metadata=service(uuid.uuid4(), "ingestion")).read()
        assert other.value.code() == grpc.StatusCode.NOT_FOUND


async def test_export_streams_documents_markers_and_files_then_erase_removes_everything(
    storage: ObjectStorage, start_client: Callable[..., Any]
) -> None:
    async with start_client(storage, biomarkers=FakeBiomarkers()) as client:
        user, bystander = uuid.uuid4(), uuid.uuid4()
        report = generate_report("table", 2)
        lab = await create(client, user, report.pdf, "labs.pdf")
        csv = await create(client, user, CSV, "../../etc/passwd")
        kept = await create(client, bystander, CSV)
        await client.app.pipeline.drain()
        stub = user_data_service_pb2_grpc.UserDataServiceStub(client.channel)
        entries: dict[str, bytearray] = {}
        types: dict[str, str] = {}
        async for chunk in stub.ExportUserData(
            user_data_service_pb2.ExportUserDataRequest(user=f"users/{user}"), metadata=service(user)
        ):
            entries.setdefault(chunk.entry_path, bytearray()).extend(chunk.data)
            types[chunk.entry_path] = chunk.content_type
        documents = [json.loads(line) for line in entries["documents.jsonl"].splitlines()]
        assert {d["name"] for d in documents} == {lab.name, csv.name}
        markers = [json.loads(line) for line in entries["extracted_markers.jsonl"].splitlines()]
        assert len(markers) == len(report.rows)
        assert all(m["name"].startswith(lab.name) for m in markers)
        lab_id, csv_id = lab.name.rsplit("/", 1)[1], csv.name.rsplit("/", 1)[1]
        assert bytes(entries[f"files/{lab_id}/labs.pdf"]) == report.pdf
        assert types[f"files/{lab_id}/labs.pdf"] == "application/pdf"
        csv_entry = next(path for path in entries if path.startswith(f"files/{csv_id}/"))
        assert ".." not in csv_entry.split("/")[2:]
        assert "/etc" not in csv_entry

        erased = await stub.EraseUserData(
            user_data_service_pb2.EraseUserDataRequest(user=f"users/{user}"), metadata=service(user)
        )
        assert erased.erased_item_count >= 2 + len(report.rows) + 2
        again = await stub.EraseUserData(
            user_data_service_pb2.EraseUserDataRequest(user=f"users/{user}"), metadata=service(user)
        )
        assert again.erased_item_count == 0
        listed = await client.documents.ListDocuments(
            document_service_pb2.ListDocumentsRequest(parent="users/me", show_deleted=True),
            metadata=client.auth(user),
        )
        assert not listed.documents
        assert not await storage.exists(f"{user}/{lab.sha256}")
        # The other user's identical bytes are untouched.
        content = [
            body.data
            async for body in client.documents.DownloadDocument(
                document_service_pb2.DownloadDocumentRequest(name=kept.name), metadata=client.auth(bystander)
            )
        ]
        assert b"".join(content) == CSV
        empty: dict[str, bytes] = {}
        async for chunk in stub.ExportUserData(
            user_data_service_pb2.ExportUserDataRequest(user=f"users/{user}"), metadata=service(user)
        ):
            empty[chunk.entry_path] = empty.get(chunk.entry_path, b"") + chunk.data
        assert empty == {"documents.jsonl": b"", "extracted_markers.jsonl": b""}


async def test_user_data_requests_are_checked(
    disk_storage: ObjectStorage, start_client: Callable[..., Any]
) -> None:
    async with start_client(disk_storage) as client:
        stub = user_data_service_pb2_grpc.UserDataServiceStub(client.channel)
        user = uuid.uuid4()
        for name, code in (
            ("users/me", grpc.StatusCode.INVALID_ARGUMENT),
            ("people/x", grpc.StatusCode.INVALID_ARGUMENT),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.EraseUserData(
                    user_data_service_pb2.EraseUserDataRequest(user=name), metadata=service(user)
                )
            assert caught.value.code() == code
        with pytest.raises(grpc.aio.AioRpcError) as user_token:
            await stub.EraseUserData(
                user_data_service_pb2.EraseUserDataRequest(user=f"users/{user}"), metadata=client.auth(user)
            )
        assert user_token.value.code() in {grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED}
