"""DocumentService reads and changes over gRPC: get, list, update, delete, undelete, download."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import asyncpg
import grpc
import pytest
from google.api import httpbody_pb2
from google.protobuf import field_mask_pb2

from vitalis.documents.v1 import document_pb2, document_service_pb2
from vitalis_documents.storage.base import ObjectStorage

Documents = document_service_pb2


async def create(client: Any, user: uuid.UUID, data: bytes, **fields: Any) -> document_pb2.Document:
    """CreateDocument with the given bytes and fields."""
    return await client.documents.CreateDocument(
        Documents.CreateDocumentRequest(
            parent="users/me",
            http_body=httpbody_pb2.HttpBody(data=data),
            document=document_pb2.Document(**fields),
        ),
        metadata=client.auth(user),
    )


def csv(index: int) -> bytes:
    """A distinct small CSV file."""
    return f"day,value\n{index},1\n".encode()


async def code_of(call: Any) -> grpc.StatusCode:
    """The status code a call fails with."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value.code()


async def test_list_pages_through_documents_newest_first_with_tamper_evident_tokens(
    disk_storage: ObjectStorage, start_client: Callable[..., Any]
) -> None:
    async with start_client(disk_storage) as client:
        user = uuid.uuid4()
        created = [await create(client, user, csv(i), display_name=f"file {i}") for i in range(5)]
        names: list[str] = []
        token = ""
        while True:
            page = await client.documents.ListDocuments(
                Documents.ListDocumentsRequest(parent="users/me", page_size=2, page_token=token),
                metadata=client.auth(user),
            )
            assert len(page.documents) <= 2
            names += [d.name for d in page.documents]
            token = page.next_page_token
            if not token:
                break
        assert names == [d.name for d in reversed(created)]
        by_name = await client.documents.ListDocuments(
            Documents.ListDocumentsRequest(parent="users/me", order_by="display_name"),
            metadata=client.auth(user),
        )
        assert [d.display_name for d in by_name.documents] == [f"file {i}" for i in range(5)]
        first = await client.documents.ListDocuments(
            Documents.ListDocumentsRequest(parent="users/me", page_size=2), metadata=client.auth(user)
        )
        for request in (
            Documents.ListDocumentsRequest(
                parent="users/me", page_token=first.next_page_token, filter="kind = X"
            ),
            Documents.ListDocumentsRequest(parent="users/me", page_token=first.next_page_token + "x"),
            Documents.ListDocumentsRequest(parent="users/me", page_size=-1),
            Documents.ListDocumentsRequest(parent="users/me", order_by="size_bytes"),
            Documents.ListDocumentsRequest(parent="users/me", filter="sha256 = 'abc'"),
        ):
            assert await code_of(client.documents.ListDocuments(request, metadata=client.auth(user))) == (
                grpc.StatusCode.INVALID_ARGUMENT
            )
        # Another user's token is refused too: it was issued for another caller.
        other = uuid.uuid4()
        assert await code_of(
            client.documents.ListDocuments(
                Documents.ListDocumentsRequest(parent="users/me", page_token=first.next_page_token),
                metadata=client.auth(other),
            )
        ) in {grpc.StatusCode.INVALID_ARGUMENT}


async def test_list_filters_on_kind_and_parse_state(
    disk_storage: ObjectStorage, start_client: Callable[..., Any]
) -> None:
    async with start_client(disk_storage) as client:
        user = uuid.uuid4()
        other = await create(client, user, csv(1))
        scan = await create(client, user, csv(2), kind=document_pb2.DOCUMENT_KIND_BODY_COMPOSITION_SCAN)
        result = await client.documents.ListDocuments(
            Documents.ListDocumentsRequest(
                parent="users/me",
                filter="kind = DOCUMENT_KIND_BODY_COMPOSITION_SCAN AND parse_state = PARSE_STATE_SKIPPED",
            ),
            metadata=client.auth(user),
        )
        assert [d.name for d in result.documents] == [scan.name]
        result = await client.documents.ListDocuments(
            Documents.ListDocumentsRequest(
                parent="users/me", filter='content_type = "text/csv" AND kind != 2'
            ),
            metadata=client.auth(user),
        )
        assert [d.name for d in result.documents] == [other.name]
        recent = await client.documents.ListDocuments(
            Documents.ListDocumentsRequest(
                parent="users/me",
                filter='create_time > "2000-01-01T00:00:00+00:00" AND collection_date < 2100-01-01',
            ),
            metadata=client.auth(user),
        )
        assert not recent.documents  # no collection date: a comparison with one is false
        created = await client.documents.ListDocuments(
            Documents.ListDocumentsRequest(parent="users/me", filter='create_time >= "2000-01-01T00:00:00Z"'),
            metadata=client.auth(user),
        )
        assert {d.name for d in created.documents} == {other.name, scan.name}


async def test_update_changes_named_fields_and_refuses_stale_etags_and_output_only_paths(
    disk_storage: ObjectStorage, start_client: Callable[..., Any]
) -> None:
    async with start_client(disk_storage) as client:
        user = uuid.uuid4()
        document = await create(client, user, csv(1), display_name="old", description="keep")
        updated = await client.documents.UpdateDocument(
            Documents.UpdateDocumentRequest(
                document=document_pb2.Document(name=document.name, display_name="new", etag=document.etag),
                update_mask=field_mask_pb2.FieldMask(paths=["display_name"]),
            ),
            metadata=client.auth(user),
        )
        assert (updated.display_name, updated.description) == ("new", "keep")
        assert updated.etag != document.etag
        stale = Documents.UpdateDocumentRequest(
            document=document_pb2.Document(name=document.name, display_name="x", etag=document.etag)
        )
        assert await code_of(client.documents.UpdateDocument(stale, metadata=client.auth(user))) == (
            grpc.StatusCode.ABORTED
        )
        output_only = Documents.UpdateDocumentRequest(
            document=document_pb2.Document(name=document.name),
            update_mask=field_mask_pb2.FieldMask(paths=["sha256"]),
        )
        assert await code_of(client.documents.UpdateDocument(output_only, metadata=client.auth(user))) == (
            grpc.StatusCode.INVALID_ARGUMENT
        )
        relabelled = await client.documents.UpdateDocument(
            Documents.UpdateDocumentRequest(
                document=document_pb2.Document(name=document.name, kind=document_pb2.DOCUMENT_KIND_LAB_REPORT)
            ),
            metadata=client.auth(user),
        )
        assert relabelled.kind == document_pb2.DOCUMENT_KIND_LAB_REPORT
        assert relabelled.parse_state == document_pb2.PARSE_STATE_SKIPPED
        assert relabelled.parse_state_reason == document_pb2.PARSE_STATE_REASON_UNSUPPORTED_CONTENT_TYPE
        current = await client.documents.GetDocument(
            Documents.GetDocumentRequest(name=document.name), metadata=client.auth(user)
        )
        assert current.display_name == "new"


async def test_delete_hides_and_undelete_restores_and_a_reupload_restores_too(
    storage: ObjectStorage, start_client: Callable[..., Any], migrated: Any
) -> None:
    async with start_client(storage) as client:
        user = uuid.uuid4()
        document = await create(client, user, csv(1))
        deleted = await client.documents.DeleteDocument(
            Documents.DeleteDocumentRequest(name=document.name, etag=document.etag),
            metadata=client.auth(user),
        )
        assert deleted.HasField("delete_time")
        assert deleted.HasField("expire_time")
        listed = await client.documents.ListDocuments(
            Documents.ListDocumentsRequest(parent="users/me"), metadata=client.auth(user)
        )
        assert not listed.documents
        with_deleted = await client.documents.ListDocuments(
            Documents.ListDocumentsRequest(parent="users/me", show_deleted=True), metadata=client.auth(user)
        )
        assert [d.name for d in with_deleted.documents] == [document.name]
        download = client.documents.DownloadDocument(
            Documents.DownloadDocumentRequest(name=document.name), metadata=client.auth(user)
        )
        assert await code_of(download.read()) == grpc.StatusCode.FAILED_PRECONDITION
        assert (
            await code_of(
                client.documents.DeleteDocument(
                    Documents.DeleteDocumentRequest(name=document.name), metadata=client.auth(user)
                )
            )
            == grpc.StatusCode.FAILED_PRECONDITION
        )
        restored = await client.documents.UndeleteDocument(
            Documents.UndeleteDocumentRequest(name=document.name), metadata=client.auth(user)
        )
        assert not restored.HasField("delete_time")
        assert (
            await code_of(
                client.documents.UndeleteDocument(
                    Documents.UndeleteDocumentRequest(name=document.name), metadata=client.auth(user)
                )
            )
            == grpc.StatusCode.FAILED_PRECONDITION
        )
        await client.documents.DeleteDocument(
            Documents.DeleteDocumentRequest(name=document.name), metadata=client.auth(user)
        )
        again = await create(client, user, csv(1))
        assert again.name == document.name
        assert not again.HasField("delete_time")
    admin = await asyncpg.connect(migrated.admin_url)
    try:
        events = await admin.fetch(
            "SELECT event_type FROM documents.outbox WHERE event_user_id = $1 ORDER BY position", user
        )
    finally:
        await admin.close()
    assert [row["event_type"].rsplit(".", 1)[1] for row in events] == [
        "DocumentUploaded",
        "DocumentDeleted",
        "DocumentUndeleted",
        "DocumentDeleted",
        "DocumentUndeleted",
    ]


async def test_expired_soft_deletes_are_purged_with_their_bytes(
    storage: ObjectStorage, start_client: Callable[..., Any], migrated: Any
) -> None:
    async with start_client(storage) as client:
        user = uuid.uuid4()
        document = await create(client, user, csv(9))
        stored = await client.app.library.get(user, uuid.UUID(document.name.rsplit("/", 1)[1]))
        await client.documents.DeleteDocument(
            Documents.DeleteDocumentRequest(name=document.name), metadata=client.auth(user)
        )
        assert await client.app.library.purge_due() == 0
        admin = await asyncpg.connect(migrated.admin_url)
        try:
            await admin.execute(
                "UPDATE documents.documents SET expire_time = now() - interval '1 minute' WHERE user_id = $1",
                user,
            )
            await admin.execute(
                "UPDATE documents.purge_schedule SET purge_time = now() - interval '1 minute'"
                " WHERE owner_id = $1",
                user,
            )
        finally:
            await admin.close()
        assert await client.app.library.purge_due() == 1
        assert not await storage.exists(stored.storage_key)
        assert (
            await code_of(
                client.documents.GetDocument(
                    Documents.GetDocumentRequest(name=document.name), metadata=client.auth(user)
                )
            )
            == grpc.StatusCode.NOT_FOUND
        )


@pytest.mark.parametrize(
    "name",
    ["users/{other}/documents/{doc}", "users/me/documents/{random}", "users/me/documents/not-a-uuid"],
)
async def test_documents_that_are_not_the_callers_are_not_found_and_malformed_names_invalid(
    disk_storage: ObjectStorage, start_client: Callable[..., Any], name: str
) -> None:
    async with start_client(disk_storage) as client:
        owner, stranger = uuid.uuid4(), uuid.uuid4()
        document = await create(client, owner, csv(3))
        resolved = name.format(other=owner, doc=document.name.rsplit("/", 1)[1], random=uuid.uuid4())
        expected = grpc.StatusCode.INVALID_ARGUMENT if "not-a-uuid" in name else grpc.StatusCode.NOT_FOUND
        calls = [
            client.documents.GetDocument(
                Documents.GetDocumentRequest(name=resolved), metadata=client.auth(stranger)
            ),
            client.documents.DeleteDocument(
                Documents.DeleteDocumentRequest(name=resolved), metadata=client.auth(stranger)
            ),
            client.documents.DownloadDocument(
                Documents.DownloadDocumentRequest(name=resolved), metadata=client.auth(stranger)
            ).read(),
        ]
        for call in calls:
            assert await code_of(call) == expected
