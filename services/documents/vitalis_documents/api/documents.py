"""vitalis.documents.v1.DocumentService."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import grpc
from google.api import httpbody_pb2  # type: ignore[import-untyped]

from vitalis.documents.v1 import document_pb2, document_service_pb2, document_service_pb2_grpc
from vitalis_documents.api.convert import document_fields, document_to_proto
from vitalis_documents.api.names import parse_document, parse_user, require_owner, require_reader
from vitalis_documents.api.upload_messages import ChunkOnly, UploadMessage
from vitalis_documents.library import DocumentFields, DocumentLibrary, ListQuery
from vitalis_documents.uploads import Chunk
from vitalis_runtime.auth import current_principal
from vitalis_runtime.call_state import require_open_call
from vitalis_runtime.errors import InvalidArgument
from vitalis_runtime.pagination import PageTokens, resolve_page_size
from vitalis_runtime.sharing import ShareGrantChecker

UploadDocumentRequest = document_service_pb2.UploadDocumentRequest
MAX_CHUNK_BYTES = 1024 * 1024
MUTABLE_FIELDS = ("display_name", "description", "kind")
Context = grpc.aio.ServicerContext[object, object]


def request_uuid(text: str, field: str) -> uuid.UUID | None:
    """A request id, or None when unset."""
    if not text:
        return None
    try:
        return uuid.UUID(text)
    except ValueError:
        raise InvalidArgument.for_field(field, f"{text!r} is not a UUID") from None


def split_chunks(data: bytes) -> AsyncIterator[Chunk]:
    """The bytes of a unary upload in chunks (views, not copies), like a streamed one."""

    async def chunks() -> AsyncIterator[Chunk]:
        view = memoryview(data)
        for offset in range(0, len(data), MAX_CHUNK_BYTES):
            yield view[offset : offset + MAX_CHUNK_BYTES]

    return chunks()


def chunk_of(message: UploadDocumentRequest, parent: str) -> bytes:
    """The chunk of a message after the first, which must carry one (and no other parent)."""
    if message.WhichOneof("payload") != "chunk":
        raise InvalidArgument.for_field("chunk", "every message after the first must carry a chunk")
    if message.parent and message.parent != parent:
        raise InvalidArgument.for_field("parent", "must be the same in every message")
    # Every read of a bytes field copies it: read it once.
    return message.chunk


class DocumentServicer(document_service_pb2_grpc.DocumentServiceServicer):
    """Upload, read, list, change, delete, restore and download documents."""

    def __init__(self, library: DocumentLibrary, pages: PageTokens, grants: ShareGrantChecker | None) -> None:
        self._library = library
        self._pages = pages
        self._grants = grants

    async def UploadDocument(
        self, request_iterator: AsyncIterator[UploadMessage], context: Context
    ) -> document_pb2.Document:
        """Metadata first, then chunks; the document is created when the client ends the stream.

        A stream that ends because its client went away (cancelled, closed its channel, died) looks
        finished to the handler; the call's own state tells them apart before anything is stored.
        """
        first = await anext(aiter(request_iterator), None)
        if not isinstance(first, UploadDocumentRequest) or first.WhichOneof("payload") != "metadata":
            raise InvalidArgument.for_field(
                "metadata", "the first message must carry the document's metadata"
            )
        user_id = parse_user(first.parent, "parent")
        require_owner(user_id, first.parent)
        metadata = first.metadata
        parent = first.parent

        async def chunks() -> AsyncIterator[Chunk]:
            async for message in request_iterator:
                chunk = message.chunk if isinstance(message, ChunkOnly) else chunk_of(message, parent)
                # The message holds the bytes too: drop it before waiting for the next one.
                del message
                if len(chunk) > MAX_CHUNK_BYTES:
                    raise InvalidArgument.for_field("chunk", f"must be at most {MAX_CHUNK_BYTES} bytes")
                yield chunk

        document = await self._library.upload(
            user_id,
            chunks(),
            fields=document_fields(metadata.document, "metadata.document"),
            declared_size=metadata.size_bytes,
            declared_sha256=metadata.sha256,
            request_id=request_uuid(metadata.request_id, "metadata.request_id"),
            confirm_whole=lambda: require_open_call(context),
        )
        return document_to_proto(document)

    async def CreateDocument(
        self, request: document_service_pb2.CreateDocumentRequest, context: Context
    ) -> document_pb2.Document:
        """The whole file in one message."""
        user_id = parse_user(request.parent, "parent")
        require_owner(user_id, request.parent)
        document = await self._library.upload(
            user_id,
            split_chunks(request.http_body.data),
            fields=document_fields(request.document, "document"),
            request_id=request_uuid(request.request_id, "request_id"),
        )
        return document_to_proto(document)

    async def GetDocument(
        self, request: document_service_pb2.GetDocumentRequest, context: Context
    ) -> document_pb2.Document:
        """One document."""
        ref = parse_document(request.name)
        await require_reader(ref.user_id, request.name, self._grants)
        return document_to_proto(await self._library.get(ref.user_id, ref.document_id))

    async def ListDocuments(
        self, request: document_service_pb2.ListDocumentsRequest, context: Context
    ) -> document_service_pb2.ListDocumentsResponse:
        """A page of a user's documents."""
        user_id = parse_user(request.parent, "parent")
        await require_reader(user_id, request.parent, self._grants)
        page_size = resolve_page_size(request.page_size, default=50, maximum=1000)
        bound = {
            "method": "ListDocuments",
            "parent": str(user_id),
            "caller": str(current_principal().user_id),
            "filter": request.filter,
            "order_by": request.order_by,
            "show_deleted": request.show_deleted,
        }
        cursor = self._pages.decode(request.page_token, request=bound)
        documents, next_cursor = await self._library.list_documents(
            user_id,
            ListQuery(
                filter=request.filter,
                order_by=request.order_by,
                show_deleted=request.show_deleted,
                page_size=page_size,
                cursor=cursor,
            ),
        )
        return document_service_pb2.ListDocumentsResponse(
            documents=[document_to_proto(d) for d in documents],
            next_page_token="" if next_cursor is None else self._pages.encode(next_cursor, request=bound),
        )

    async def UpdateDocument(
        self, request: document_service_pb2.UpdateDocumentRequest, context: Context
    ) -> document_pb2.Document:
        """Change display name, description or kind."""
        if not request.HasField("document"):
            raise InvalidArgument.for_field("document", "is required")
        ref = parse_document(request.document.name, "document.name")
        require_owner(ref.user_id, request.document.name)
        fields = document_fields(request.document, "document")
        paths = list(request.update_mask.paths) if request.HasField("update_mask") else []
        if paths == ["*"]:
            paths = list(MUTABLE_FIELDS)
        elif not paths:
            paths = [f.name for f, _ in request.document.ListFields() if f.name in MUTABLE_FIELDS]
        for path in paths:
            if path not in MUTABLE_FIELDS:
                raise InvalidArgument.for_field(
                    "update_mask",
                    f"{path!r} cannot be updated; updatable fields: {', '.join(MUTABLE_FIELDS)}",
                )
        document = await self._library.update(
            ref.user_id, ref.document_id, fields, sorted(set(paths)), request.document.etag
        )
        return document_to_proto(document)

    async def DeleteDocument(
        self, request: document_service_pb2.DeleteDocumentRequest, context: Context
    ) -> document_pb2.Document:
        """Soft-delete."""
        ref = parse_document(request.name)
        require_owner(ref.user_id, request.name)
        return document_to_proto(await self._library.delete(ref.user_id, ref.document_id, request.etag))

    async def UndeleteDocument(
        self, request: document_service_pb2.UndeleteDocumentRequest, context: Context
    ) -> document_pb2.Document:
        """Restore."""
        ref = parse_document(request.name)
        require_owner(ref.user_id, request.name)
        return document_to_proto(await self._library.undelete(ref.user_id, ref.document_id, request.etag))

    async def DownloadDocument(
        self, request: document_service_pb2.DownloadDocumentRequest, context: Context
    ) -> AsyncIterator[httpbody_pb2.HttpBody]:
        """Stream the bytes."""
        ref = parse_document(request.name)
        await require_reader(ref.user_id, request.name, self._grants)
        document, content = await self._library.open_content(ref.user_id, ref.document_id)
        async for chunk in content:
            yield httpbody_pb2.HttpBody(content_type=document.content_type, data=chunk)


__all__ = ["DocumentFields", "DocumentServicer"]
