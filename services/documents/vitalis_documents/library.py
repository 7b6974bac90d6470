"""Documents as a user sees them: upload, read, list, change, delete, restore, download, purge."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
from google.protobuf.message import Message

from vitalis_documents import events
from vitalis_documents.domain.filtering import enum_converter, parse_filter
from vitalis_documents.domain.model import (
    PARSEABLE_CONTENT_TYPES,
    Document,
    DocumentKind,
    ParseState,
    ParseStateReason,
    default_kind,
)
from vitalis_documents.parsing.engines import unreadable_image
from vitalis_documents.storage.base import ObjectStorage, content_key
from vitalis_documents.store import ORDERINGS, Condition, DocumentStore, sort_value
from vitalis_documents.uploads import Chunk, StreamedUpload, too_large
from vitalis_runtime.db import Database
from vitalis_runtime.errors import (
    Aborted,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
)
from vitalis_runtime.mailbox import advisory_lock
from vitalis_runtime.outbox import add_to_outbox

SCHEMA = "documents"
PRODUCER = "documents"
RETENTION_AFTER_DELETE = timedelta(days=30)
DOWNLOAD_CHUNK_BYTES = 1024 * 1024
MAX_DISPLAY_NAME = 255
MAX_DESCRIPTION = 2000


@dataclass(frozen=True)
class DocumentFields:
    """The mutable fields a client sets on a document."""

    display_name: str = ""
    description: str = ""
    kind: DocumentKind = DocumentKind.UNSPECIFIED


@dataclass(frozen=True)
class ListQuery:
    """The parameters of a list call, already validated for page size."""

    filter: str = ""
    order_by: str = ""
    show_deleted: bool = False
    page_size: int = 50
    cursor: dict[str, Any] | None = None


def not_found(user_id: uuid.UUID, document_id: uuid.UUID | str) -> NotFound:
    """The one answer for a document that is missing or not the caller's."""
    return not_found_name(f"users/{user_id}/documents/{document_id}")


def not_found_name(name: str) -> NotFound:
    """NOT_FOUND for a name, the same whether it never existed or belongs to someone else."""
    return NotFound(f"{name!r} was not found", reason="NOT_FOUND", metadata={"name": name})


def validate_fields(fields: DocumentFields, prefix: str) -> None:
    """Check lengths and the kind; InvalidArgument naming the field otherwise."""
    if len(fields.display_name) > MAX_DISPLAY_NAME:
        raise InvalidArgument.for_field(
            f"{prefix}.display_name", f"must be at most {MAX_DISPLAY_NAME} characters"
        )
    if len(fields.description) > MAX_DESCRIPTION:
        raise InvalidArgument.for_field(
            f"{prefix}.description", f"must be at most {MAX_DESCRIPTION} characters"
        )


def initial_parse_state(
    kind: DocumentKind, content_type: str, *, ocr_available: bool
) -> tuple[ParseState, ParseStateReason, str]:
    """Where a new (or re-kinded) document starts in the parse pipeline.

    An image that no text recognition engine can read waits for review at once: queueing it would
    only end the same way.
    """
    if kind != DocumentKind.LAB_REPORT:
        return ParseState.SKIPPED, ParseStateReason.KIND_NOT_PARSED, "Only lab reports are parsed."
    if content_type not in PARSEABLE_CONTENT_TYPES and not content_type.startswith("image/"):
        return (
            ParseState.SKIPPED,
            ParseStateReason.UNSUPPORTED_CONTENT_TYPE,
            f"A {content_type} file cannot hold lab results; upload the report as a PDF.",
        )
    unreadable = unreadable_image(content_type, ocr_available=ocr_available)
    if unreadable is not None:
        return ParseState.NEEDS_REVIEW, unreadable.reason, unreadable.message
    return ParseState.PENDING, ParseStateReason.UNSPECIFIED, ""


class DocumentLibrary:
    """The documents of every user, their bytes and their lifecycle."""

    def __init__(
        self,
        db: Database,
        storage: ObjectStorage,
        *,
        max_upload_bytes: int,
        ocr_available: bool = False,
        store: DocumentStore | None = None,
        on_parse_requested: Callable[[], None] = lambda: None,
    ) -> None:
        """``on_parse_requested`` is called after a commit that queued a parse.

        ``ocr_available`` says whether images can be read here (a text recognition engine is installed).
        """
        self._db = db
        self._storage = storage
        self._store = store or DocumentStore()
        self.max_upload_bytes = max_upload_bytes
        self.ocr_available = ocr_available
        self._on_parse_requested = on_parse_requested

    @property
    def db(self) -> Database:
        """The database the library works in."""
        return self._db

    @property
    def store(self) -> DocumentStore:
        """The SQL of the service."""
        return self._store

    @property
    def storage(self) -> ObjectStorage:
        """Where the bytes are."""
        return self._storage

    async def emit(self, conn: asyncpg.Connection, user_id: uuid.UUID, message: Message) -> None:
        """Add an event to the outbox inside the caller's transaction."""
        await add_to_outbox(conn, schema=SCHEMA, producer=PRODUCER, message=message, user_id=user_id)

    async def upload(
        self,
        user_id: uuid.UUID,
        chunks: AsyncIterator[Chunk],
        *,
        fields: DocumentFields,
        declared_size: int = 0,
        declared_sha256: str = "",
        request_id: uuid.UUID | None = None,
        confirm_whole: Callable[[], Awaitable[None]] | None = None,
    ) -> Document:
        """Store a file streamed in ``chunks``; the same bytes again return the existing document.

        ``confirm_whole`` is awaited once ``chunks`` ended and the bytes were checked, before anything
        is stored: it raises when the chunks ended because their sender went away midway, which a
        stream without a declared size cannot show otherwise. Its error discards the upload.
        """
        validate_fields(fields, "metadata.document")
        if declared_sha256 and (len(declared_sha256) != 64 or declared_sha256.strip("0123456789abcdef")):
            raise InvalidArgument.for_field("metadata.sha256", "must be 64 lower-case hex digits")
        if declared_size < 0:
            raise InvalidArgument.for_field("metadata.size_bytes", "must not be negative")
        if request_id is not None:
            earlier = await self._earlier_upload(user_id, request_id)
            if earlier is not None:
                return earlier
        if declared_size > self.max_upload_bytes:
            raise too_large(self.max_upload_bytes)
        upload = StreamedUpload(self._storage, self.max_upload_bytes)
        try:
            async for chunk in chunks:
                await upload.feed(chunk)
            await upload.finish()
            sha256 = upload.sha256
            if declared_size and declared_size != upload.size:
                raise InvalidArgument.for_field(
                    "metadata.size_bytes", f"says {declared_size} bytes but {upload.size} bytes were received"
                )
            if declared_sha256 and declared_sha256 != sha256:
                raise InvalidArgument.for_field(
                    "metadata.sha256", "does not match the SHA-256 of the bytes received"
                )
            if confirm_whole is not None:
                await confirm_whole()
            return await self._store_upload(user_id, upload, sha256, fields, request_id)
        finally:
            await upload.abort()

    async def _earlier_upload(self, user_id: uuid.UUID, request_id: uuid.UUID) -> Document | None:
        async with self._db.transaction(user_id=user_id, readonly=True) as conn:
            found = await self._store.find_request(conn, user_id, request_id)
            if found is None:
                return None
            return await self._store.get_document(conn, user_id, found[1])

    async def _store_upload(
        self,
        user_id: uuid.UUID,
        upload: StreamedUpload,
        sha256: str,
        fields: DocumentFields,
        request_id: uuid.UUID | None,
    ) -> Document:
        queued = False
        installing: asyncio.Future[None] | None = None
        key = content_key(user_id, sha256)
        async with self._db.transaction(user_id=user_id) as conn:
            await advisory_lock(conn, f"documents.content:{user_id}:{sha256}")
            try:
                existing = await self._store.find_by_sha256(conn, user_id, sha256)
                if existing is not None:
                    document = existing
                    if existing.deleted:
                        document = await self._restore(conn, existing)
                else:
                    assert upload.writer is not None
                    # Shielded, so that an installed object is known even if the call is cancelled.
                    installing = asyncio.ensure_future(upload.writer.commit(key))
                    await asyncio.shield(installing)
                    document = await self._insert_upload(
                        conn, user_id, upload, sha256=sha256, key=key, fields=fields
                    )
                    queued = document.parse_state == ParseState.PENDING
                if request_id is not None:
                    await self._store.record_request(
                        conn, user_id, request_id, method="UploadDocument", document_id=document.document_id
                    )
            except BaseException:
                if installing is not None:
                    # Still under the content lock: no other upload installed these bytes meanwhile,
                    # and no document holds them once this transaction rolls back.
                    with contextlib.suppress(Exception):
                        await asyncio.shield(installing)
                    await self._storage.delete(key)
                raise
        if queued:
            self._on_parse_requested()
        return document

    async def _insert_upload(
        self,
        conn: asyncpg.Connection,
        user_id: uuid.UUID,
        upload: StreamedUpload,
        *,
        sha256: str,
        key: str,
        fields: DocumentFields,
    ) -> Document:
        kind = fields.kind or default_kind(upload.content_type)
        state, reason, message = initial_parse_state(
            kind, upload.content_type, ocr_available=self.ocr_available
        )
        document = await self._store.insert_document(
            conn,
            user_id=user_id,
            document_id=uuid.uuid4(),
            display_name=fields.display_name or f"Document {datetime.now(UTC).date().isoformat()}",
            description=fields.description,
            kind=kind,
            content_type=upload.content_type,
            size_bytes=upload.size,
            sha256=sha256,
            storage_key=key,
            parse_state=state,
            parse_state_reason=reason,
            parse_state_message=message,
        )
        await self.emit(conn, user_id, events.document_uploaded(document))
        if state == ParseState.PENDING:
            await self._store.enqueue_parse(conn, user_id, document.document_id)
        return document

    async def get(self, user_id: uuid.UUID, document_id: uuid.UUID) -> Document:
        """One document, soft-deleted included."""
        async with self._db.transaction(user_id=user_id, readonly=True) as conn:
            document = await self._store.get_document(conn, user_id, document_id)
        if document is None:
            raise not_found(user_id, document_id)
        return document

    async def list_documents(
        self, user_id: uuid.UUID, query: ListQuery
    ) -> tuple[list[Document], dict[str, Any] | None]:
        """A page of documents and the cursor of the next page (None on the last)."""
        order_by = " ".join(query.order_by.lower().split()) or "create_time desc"
        if order_by.endswith(" asc"):
            order_by = order_by.removesuffix(" asc")
        if order_by not in ORDERINGS:
            raise InvalidArgument.for_field("order_by", f"must be one of: {', '.join(ORDERINGS)}")
        comparisons = parse_filter(
            query.filter,
            {
                "kind": enum_converter({k.name: k.value for k in DocumentKind}, "DOCUMENT_KIND_"),
                "parse_state": enum_converter({s.name: s.value for s in ParseState}, "PARSE_STATE_"),
                "content_type": str,
                "collection_date": date.fromisoformat,
                "create_time": datetime.fromisoformat,
            },
            ordered=frozenset({"collection_date", "create_time"}),
        )
        conditions = [
            Condition(c.field, "<>" if c.operator == "!=" else c.operator, c.value) for c in comparisons
        ]
        async with self._db.transaction(user_id=user_id, readonly=True) as conn:
            documents = await self._store.list_documents(
                conn,
                user_id,
                conditions=conditions,
                order_by=order_by,
                after=query.cursor or {},
                limit=query.page_size + 1,
                show_deleted=query.show_deleted,
            )
        if len(documents) <= query.page_size:
            return documents, None
        page = documents[: query.page_size]
        column = ORDERINGS[order_by][0]
        return page, {"v": sort_value(page[-1], column), "id": str(page[-1].document_id)}

    async def update(
        self, user_id: uuid.UUID, document_id: uuid.UUID, fields: DocumentFields, paths: list[str], etag: str
    ) -> Document:
        """Change the named mutable fields; re-kinding to or from a lab report starts or discards parsing."""
        validate_fields(fields, "document")
        queued = False
        async with self._db.transaction(user_id=user_id) as conn:
            document = await self._locked(conn, user_id, document_id, etag)
            if document.deleted:
                raise FailedPrecondition(
                    "The document is deleted; undelete it first.", reason="DOCUMENT_DELETED"
                )
            changes: dict[str, Any] = {}
            for path in paths:
                value = getattr(fields, path)
                if path == "kind":
                    value = value or default_kind(document.content_type)
                changes[path] = value
            new_kind = changes.get("kind", document.kind)
            if new_kind != document.kind and DocumentKind.LAB_REPORT in {new_kind, document.kind}:
                state, reason, message = initial_parse_state(
                    new_kind, document.content_type, ocr_available=self.ocr_available
                )
                changes.update(parse_state=state, parse_state_reason=reason, parse_state_message=message)
                if state == ParseState.PENDING:
                    await self._store.enqueue_parse(conn, user_id, document_id)
                    queued = True
                else:
                    await self._store.finish_parse(conn, document_id)
            updated = await self._store.update_document(conn, document, changes) if changes else document
        if queued:
            self._on_parse_requested()
        return updated

    async def delete(self, user_id: uuid.UUID, document_id: uuid.UUID, etag: str) -> Document:
        """Soft-delete: hidden from lists, not downloadable, purged at ``expire_time``."""
        async with self._db.transaction(user_id=user_id) as conn:
            document = await self._locked(conn, user_id, document_id, etag)
            if document.deleted:
                raise FailedPrecondition("The document is already deleted.", reason="DOCUMENT_DELETED")
            now = datetime.now(UTC)
            deleted = await self._store.update_document(
                conn, document, {"delete_time": now, "expire_time": now + RETENTION_AFTER_DELETE}
            )
            await self._store.schedule_purge(conn, user_id, document_id, deleted.expire_time)
            await self.emit(conn, user_id, events.document_deleted(deleted))
        return deleted

    async def undelete(self, user_id: uuid.UUID, document_id: uuid.UUID, etag: str) -> Document:
        """Restore a soft-deleted document."""
        async with self._db.transaction(user_id=user_id) as conn:
            document = await self._locked(conn, user_id, document_id, etag)
            if not document.deleted:
                raise FailedPrecondition("The document is not deleted.", reason="DOCUMENT_NOT_DELETED")
            return await self._restore(conn, document)

    async def _restore(self, conn: asyncpg.Connection, document: Document) -> Document:
        restored = await self._store.update_document(
            conn, document, {"delete_time": None, "expire_time": None}
        )
        await self._store.schedule_purge(conn, document.user_id, document.document_id, None)
        await self.emit(conn, document.user_id, events.document_undeleted(restored))
        return restored

    async def _locked(
        self, conn: asyncpg.Connection, user_id: uuid.UUID, document_id: uuid.UUID, etag: str
    ) -> Document:
        document = await self._store.get_document(conn, user_id, document_id, for_update=True)
        if document is None:
            raise not_found(user_id, document_id)
        if etag and etag != document.etag:
            raise Aborted("The document changed since it was read; read it again.", reason="ETAG_MISMATCH")
        return document

    async def open_content(
        self, user_id: uuid.UUID, document_id: uuid.UUID
    ) -> tuple[Document, AsyncIterator[bytes]]:
        """The document and a stream of its bytes; deleted documents cannot be read."""
        document = await self.get(user_id, document_id)
        if document.deleted:
            raise FailedPrecondition(
                "The document is deleted; undelete it to download it.", reason="DOCUMENT_DELETED"
            )
        return document, self._content(document)

    async def _content(self, document: Document) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._storage.read(document.storage_key, chunk_size=DOWNLOAD_CHUNK_BYTES):
                yield chunk
        except KeyError:
            raise not_found(document.user_id, document.document_id) from None

    async def purge(self, user_id: uuid.UUID, document_id: uuid.UUID) -> bool:
        """Remove a soft-deleted document whose time has come, with its bytes; return whether it was."""
        async with self._db.transaction(user_id=user_id) as conn:
            found = await self._store.get_document(conn, user_id, document_id)
            if found is not None:
                # The content lock first, as uploads take it: an upload of the same bytes can neither
                # slip between the two deletes nor deadlock with them.
                await advisory_lock(conn, f"documents.content:{user_id}:{found.sha256}")
            document = await self._store.get_document(conn, user_id, document_id, for_update=True)
            await self._store.schedule_purge(conn, user_id, document_id, None)
            if document is None or document.expire_time is None or document.expire_time > datetime.now(UTC):
                return False
            await self._store.delete_document_row(conn, user_id, document_id)
            await self._store.finish_parse(conn, document_id)
            await self.emit(conn, user_id, events.document_purged(document))
            await self._storage.delete(document.storage_key)
        return True

    async def purge_due(self, *, limit: int = 100) -> int:
        """Purge every document whose soft-delete expired; return how many."""
        async with self._db.transaction(user_id=None) as conn:
            due = await self._store.due_purges(conn, limit=limit)
        purged = 0
        for user_id, document_id in due:
            purged += await self.purge(user_id, document_id)
            await asyncio.sleep(0)
        return purged
