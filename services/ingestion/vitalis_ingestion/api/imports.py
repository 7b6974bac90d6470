"""vitalis.ingestion.v1.ImportService."""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import grpc
from google.rpc import code_pb2, error_details_pb2, status_pb2  # type: ignore[import-untyped, unused-ignore]

from vitalis.ingestion.v1 import import_job_pb2, import_service_pb2, import_service_pb2_grpc
from vitalis_ingestion.api.access import Access, parse_name, parse_parent, short_source_id
from vitalis_ingestion.api.convert import counts_to_proto, request_key, timestamp
from vitalis_ingestion.documents import DocumentReader
from vitalis_ingestion.domain.import_jobs import ImportJob, JobState
from vitalis_ingestion.importers.archive import compatible, detect_format
from vitalis_ingestion.importing import ImportRunner
from vitalis_ingestion.store.import_jobs import ImportJobStore
from vitalis_ingestion.store.sources import SourceStore
from vitalis_runtime.call_state import require_open_call
from vitalis_runtime.db import Database
from vitalis_runtime.errors import FailedPrecondition, InvalidArgument, NotFound, ResourceExhausted
from vitalis_runtime.pagination import PageTokens, resolve_page_size

Context = grpc.aio.ServicerContext[object, object]
MAX_UPLOAD = 64 * 1024**2
MAX_STREAM = 10 * 1024**3
MAX_CHUNK = 4 * 1024**2
WATCH_POLL_SECONDS = 0.25
ERROR_DOMAIN = "ingestion.vitalis"


def job_to_proto(job: ImportJob) -> import_job_pb2.ImportJob:
    """An ImportJob message."""
    user = f"users/{job.user_id}"
    message = import_job_pb2.ImportJob(
        name=job.name,
        format=job.format,  # type: ignore[arg-type]
        source=f"{user}/sources/{job.source_id}" if job.source_id else "",
        document=job.document,
        file_name=job.file_name,
        size_bytes=job.size_bytes,
        content_sha256=job.content_sha256,
        state=int(job.state),  # type: ignore[arg-type]
        cancel_requested=job.cancel_requested,
        bytes_read=job.bytes_read,
        progress_percent=job.progress_percent,
        counts=counts_to_proto(job.counts.total),
        record_type_counts=[
            import_job_pb2.RecordTypeCounts(record_type=name, counts=counts_to_proto(tally))
            for name, tally in sorted(job.counts.by_type.items(), key=lambda item: -item[1].received)
        ],
        create_time=timestamp(job.create_time),
        update_time=timestamp(job.update_time),
        etag=job.etag,
    )
    if job.start_time is not None:
        message.start_time.CopyFrom(timestamp(job.start_time))
    if job.end_time is not None:
        message.end_time.CopyFrom(timestamp(job.end_time))
    if job.error is not None:
        info = error_details_pb2.ErrorInfo(reason=job.error.reason, domain=ERROR_DOMAIN)
        status = status_pb2.Status(
            code=code_pb2.INTERNAL if job.error.reason == "INTERNAL" else code_pb2.FAILED_PRECONDITION,
            message=job.error.message,
        )
        status.details.add().Pack(info)
        message.error.CopyFrom(status)
    return message


class _Spooled:
    """An upload being written to the spool directory while its SHA-256 is computed."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"upload-{uuid.uuid4().hex}.part"
        self._file = self.path.open("wb")
        self._hash = hashlib.sha256()
        self.size = 0
        self.head = b""

    async def write(self, data: bytes) -> None:
        self._hash.update(data)
        self.size += len(data)
        if len(self.head) < 64:
            self.head = (self.head + data)[:64]
        await asyncio.to_thread(self._file.write, data)

    def close(self) -> str:
        self._file.close()
        return self._hash.hexdigest()

    def discard(self) -> None:
        self._file.close()
        self.path.unlink(missing_ok=True)


class ImportServicer(import_service_pb2_grpc.ImportServiceServicer):
    """Imports files as background jobs."""

    def __init__(
        self,
        *,
        db: Database,
        store: ImportJobStore,
        sources: SourceStore,
        runner: ImportRunner,
        documents: DocumentReader,
        access: Access,
        tokens: PageTokens,
        spool_dir: Path,
    ) -> None:
        self._db = db
        self._store = store
        self._sources = sources
        self._runner = runner
        self._documents = documents
        self._access = access
        self._tokens = tokens
        self._spool = spool_dir

    async def _source_id(self, user_id: uuid.UUID, name: str, field: str) -> str | None:
        if not name:
            return None
        source_id = short_source_id(name, user_id, field=field)
        async with self._db.transaction(user_id=user_id, readonly=True) as conn:
            if not await self._sources.existing_source_ids(conn, user_id, [source_id]):
                raise NotFound(f"source {name!r} does not exist", reason="SOURCE_NOT_FOUND")
        return source_id

    async def _start(
        self,
        user_id: uuid.UUID,
        spooled: _Spooled,
        *,
        declared: int,
        source_id: str | None,
        document: str,
        file_name: str,
        request_id: str,
    ) -> ImportJob:
        digest = spooled.close()
        if spooled.size == 0:
            spooled.discard()
            raise InvalidArgument.for_field("file", "is empty")
        detected = detect_format(spooled.head)
        if not compatible(declared, detected):
            spooled.discard()
            raise InvalidArgument.for_field(
                "format",
                f"the bytes look like {import_job_pb2.ImportFormat.Name(detected)}, not "  # type: ignore[arg-type]
                f"{import_job_pb2.ImportFormat.Name(declared)}",  # type: ignore[arg-type]
            )
        async with self._db.transaction(user_id=user_id) as conn:
            job, created = await self._store.create(
                conn,
                user_id,
                format=declared or detected,
                source_id=source_id,
                document=document,
                file_name=file_name[:500],
                size_bytes=spooled.size,
                content_sha256=digest,
                request_id=request_id or None,
            )
        if created:
            os.replace(spooled.path, self._runner.path_of(job.job_id))
            self._runner.submit(job)
        else:
            spooled.discard()
        return job

    async def CreateImportJob(
        self, request: import_service_pb2.CreateImportJobRequest, context: Context
    ) -> import_job_pb2.ImportJob:
        """Import a document already stored by the documents service."""
        user_id = Access.owned(parse_parent(request.parent))
        document = request.import_job.document
        parts = document.split("/")
        if len(parts) != 4 or parts[0] != "users" or parts[2] != "documents":
            raise InvalidArgument.for_field(
                "import_job.document", "must be users/{user}/documents/{document}"
            )
        if parts[1] not in ("me", str(user_id)):
            raise NotFound(f"document {document!r} does not exist", reason="DOCUMENT_NOT_FOUND")
        source_id = await self._source_id(user_id, request.import_job.source, "import_job.source")
        spooled = _Spooled(self._spool)
        try:
            async for chunk in self._documents.read(user_id, f"users/{user_id}/documents/{parts[3]}"):
                await spooled.write(chunk)
        except BaseException:
            spooled.discard()
            raise
        job = await self._start(
            user_id,
            spooled,
            declared=request.import_job.format,
            source_id=source_id,
            document=f"users/{user_id}/documents/{parts[3]}",
            file_name=request.import_job.file_name,
            request_id=request.request_id,
        )
        return job_to_proto(job)

    async def UploadImportFile(
        self, request: import_service_pb2.UploadImportFileRequest, context: Context
    ) -> import_job_pb2.ImportJob:
        """Import the bytes of the request body."""
        user_id = Access.owned(parse_parent(request.parent))
        data = request.http_body.data
        if len(data) > MAX_UPLOAD:
            raise ResourceExhausted(
                "an upload may be at most 64 MiB; stream larger files", reason="FILE_TOO_LARGE"
            )
        if not data:
            raise InvalidArgument.for_field("http_body.data", "is empty")
        source_id = await self._source_id(user_id, request.source, "source")
        spooled = _Spooled(self._spool)
        await spooled.write(data)
        job = await self._start(
            user_id,
            spooled,
            declared=request.format,
            source_id=source_id,
            document="",
            file_name=request.file_name,
            request_id=request.request_id,
        )
        return job_to_proto(job)

    async def StreamImportFile(
        self,
        request_iterator: AsyncIterator[import_service_pb2.StreamImportFileRequest],
        context: Context,
    ) -> import_job_pb2.ImportJob:
        """Import a file streamed in chunks."""
        spooled = _Spooled(self._spool)
        try:
            user_id, meta = await _receive_stream(request_iterator, spooled)
            source_id = await self._source_id(user_id, meta.source, "metadata.source")
            # A client that went away midway ends the stream as a finished one does.
            await require_open_call(context)
        except BaseException:
            spooled.discard()
            raise
        job = await self._start(
            user_id,
            spooled,
            declared=meta.format,
            source_id=source_id,
            document="",
            file_name=meta.file_name,
            request_id=meta.request_id,
        )
        return job_to_proto(job)

    async def _job(self, name: str) -> tuple[uuid.UUID, uuid.UUID]:
        parsed = parse_name(name, "importJobs")
        user_id = Access.owned(parsed.user_id)
        try:
            return user_id, uuid.UUID(parsed.resource_id)
        except ValueError:
            raise NotFound(f"import job {name!r} does not exist", reason="IMPORT_JOB_NOT_FOUND") from None

    async def _load(self, name: str) -> ImportJob:
        user_id, job_id = await self._job(name)
        async with self._db.transaction(user_id=user_id, readonly=True) as conn:
            job = await self._store.get(conn, user_id, job_id)
        if job is None:
            raise NotFound(f"import job {name!r} does not exist", reason="IMPORT_JOB_NOT_FOUND")
        return job

    async def GetImportJob(
        self, request: import_service_pb2.GetImportJobRequest, context: Context
    ) -> import_job_pb2.ImportJob:
        """One job."""
        return job_to_proto(await self._load(request.name))

    async def ListImportJobs(
        self, request: import_service_pb2.ListImportJobsRequest, context: Context
    ) -> import_service_pb2.ListImportJobsResponse:
        """Jobs newest first."""
        user_id = Access.owned(parse_parent(request.parent))
        size = resolve_page_size(request.page_size, default=50, maximum=1000)
        fingerprint = {"op": "ListImportJobs", "user": str(user_id), "req": request_key(request)}
        cursor = self._tokens.decode(request.page_token, request=fingerprint)
        after = (datetime.fromisoformat(cursor["t"]), uuid.UUID(cursor["j"])) if cursor else None
        async with self._db.transaction(user_id=user_id, readonly=True) as conn:
            found = await self._store.find(
                conn, user_id, states=list(request.states), after=after, limit=size + 1
            )
        page = found[:size]
        token = ""
        if len(found) > size:
            token = self._tokens.encode(
                {"t": page[-1].create_time.isoformat(), "j": str(page[-1].job_id)}, request=fingerprint
            )
        return import_service_pb2.ListImportJobsResponse(
            import_jobs=[job_to_proto(job) for job in page], next_page_token=token
        )

    async def CancelImportJob(
        self, request: import_service_pb2.CancelImportJobRequest, context: Context
    ) -> import_job_pb2.ImportJob:
        """Ask a pending or running job to stop."""
        job = await self._load(request.name)
        if job.state is JobState.CANCELLED:
            return job_to_proto(job)
        if job.state.terminal:
            raise FailedPrecondition(
                f"the job already {job.state.name.lower()}; only a pending or running job can be cancelled",
                reason="IMPORT_JOB_FINISHED",
            )
        async with self._db.transaction(user_id=job.user_id) as conn:
            return job_to_proto(await self._store.request_cancel(conn, job))

    async def WatchImportJob(
        self, request: import_service_pb2.WatchImportJobRequest, context: Context
    ) -> AsyncIterator[import_job_pb2.ImportJob]:
        """The job now, then on every change (at most once a second for counts), until it ends."""
        job = await self._load(request.name)
        yield job_to_proto(job)
        loop = asyncio.get_running_loop()
        last_sent = loop.time()
        while not job.state.terminal:
            await asyncio.sleep(WATCH_POLL_SECONDS)
            current = await self._load(request.name)
            if current.version == job.version:
                continue
            state_changed = current.state != job.state
            if state_changed or loop.time() - last_sent >= 1.0:
                job = current
                last_sent = loop.time()
                yield job_to_proto(job)


async def _receive_stream(
    messages: AsyncIterator[import_service_pb2.StreamImportFileRequest], spooled: _Spooled
) -> tuple[uuid.UUID, import_service_pb2.ImportFileMetadata]:
    """Spool a streamed upload; return its user and metadata after checking the stream's shape."""
    user_id: uuid.UUID | None = None
    meta: import_service_pb2.ImportFileMetadata | None = None
    parent = ""
    index = 0
    async for message in messages:
        content = message.WhichOneof("content")
        if index == 0:
            parent = message.parent
            user_id = Access.owned(parse_parent(parent))
            if content != "metadata":
                raise InvalidArgument.for_field(
                    "requests[0].metadata", "the first message must carry metadata"
                )
            meta = message.metadata
        elif message.parent != parent:
            raise InvalidArgument.for_field(f"requests[{index}].parent", "must equal the first message's")
        elif content != "chunk":
            raise InvalidArgument.for_field(
                f"requests[{index}].chunk", "only the first message carries metadata"
            )
        elif len(message.chunk) > MAX_CHUNK:
            raise InvalidArgument.for_field(f"requests[{index}].chunk", "a chunk may be at most 4 MiB")
        else:
            await spooled.write(message.chunk)
            if spooled.size > MAX_STREAM:
                raise ResourceExhausted("an import file may be at most 10 GiB", reason="FILE_TOO_LARGE")
        index += 1
    if user_id is None or meta is None:
        raise InvalidArgument.for_field("requests", "the stream was empty")
    if meta.size_bytes and meta.size_bytes != spooled.size:
        raise InvalidArgument.for_field(
            "metadata.size_bytes", f"announced {meta.size_bytes} bytes but {spooled.size} arrived"
        )
    return user_id, meta
