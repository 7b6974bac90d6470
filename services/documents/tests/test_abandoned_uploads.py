"""A streamed upload its client abandons stores nothing: no document, no object, no staged file.

The client runs in a process of its own and never declares ``size_bytes``, so nothing in the
messages tells the service the file is incomplete: only the call's own state does. It goes away
once the service has staged part of the file (or, having sent it all, while the service stores
it) by cancelling the call, closing its channel, or dying.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
import uuid
from asyncio.subprocess import Process
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import pytest

from services.documents.tests.conftest import Client, MigratedDatabase
from vitalis.documents.v1 import document_pb2
from vitalis_documents.api.documents import Context, DocumentServicer
from vitalis_documents.api.upload_messages import SERVICE, UploadMessage, read_upload_message
from vitalis_documents.server import DocumentsApplication
from vitalis_documents.storage.base import ObjectStorage, ObjectWriter
from vitalis_documents.storage.disk import DiskStorage

ABANDONING_CLIENT = """
import asyncio, sys
import grpc
from vitalis.documents.v1 import document_service_pb2, document_service_pb2_grpc

target, token, parent, how, finish = sys.argv[1:]
Request = document_service_pb2.UploadDocumentRequest

async def main():
    loop = asyncio.get_running_loop()
    channel = grpc.aio.insecure_channel(target)
    stub = document_service_pb2_grpc.DocumentServiceStub(channel)
    call = stub.UploadDocument(metadata=(("authorization", "Bearer " + token),))
    await call.write(Request(parent=parent, metadata=document_service_pb2.UploadDocumentMetadata()))
    for index in range(4):
        await call.write(Request(chunk=(b"%PDF-1.7\\n" if index == 0 else b"") + bytes([index]) * 16384))
    if finish == "finish":
        await call.done_writing()
    print("sent", flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)
    if how == "cancel":
        call.cancel()
    elif how == "close":
        await channel.close()
    print("abandoned", flush=True)
    # The process stays alive: only the call (or its channel) is gone.
    await asyncio.sleep(3600)

asyncio.run(main())
"""

UPLOAD = "DocumentService/UploadDocument"
ENDINGS = ("OK", "CANCELLED", "INTERNAL", "UNKNOWN")
NOTICE_SECONDS = 10.0


async def eventually(check: Callable[[], bool], what: str) -> None:
    """Wait until ``check`` holds, failing after :data:`NOTICE_SECONDS`."""
    deadline = time.monotonic() + NOTICE_SECONDS
    while True:
        if check():
            return
        if time.monotonic() > deadline:
            pytest.fail(f"not within {NOTICE_SECONDS}s: {what}")
        await asyncio.sleep(0.02)


async def stored_documents(admin_url: str, user: uuid.UUID) -> int:
    """The user's documents as the database holds them, read past row-level security."""
    admin = await asyncpg.connect(admin_url)
    try:
        return int(await admin.fetchval("SELECT count(*) FROM documents.documents WHERE user_id = $1", user))
    finally:
        await admin.close()


async def abandon_upload(
    client: Client, user: uuid.UUID, how: str, ready: Callable[[], bool], *, finish: bool = False
) -> Process:
    """Start an upload in a process of its own and abandon it ``how`` once the service is ``ready``.

    With ``finish`` the client ends its request stream first (and abandons the call while it waits
    for the answer).
    """
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        ABANDONING_CLIENT,
        client.target,
        client.key.mint(user),
        f"users/{user}",
        how,
        "finish" if finish else "midway",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdin is not None
    assert process.stdout is not None
    try:
        assert await asyncio.wait_for(process.stdout.readline(), timeout=30) == b"sent\n"
        await eventually(ready, "the service is ready for the client to go away")
        if how == "kill":
            process.send_signal(signal.SIGKILL)
        else:
            process.stdin.write(b"go\n")
            await process.stdin.drain()
            assert await asyncio.wait_for(process.stdout.readline(), timeout=10) == b"abandoned\n"
    except BaseException:
        process.kill()
        await process.wait()
        raise
    return process


@asynccontextmanager
async def reaped(process: Awaitable[Process]) -> AsyncIterator[Process]:
    """The process, killed (if still alive) and waited for on exit."""
    running = await process
    try:
        yield running
    finally:
        if running.returncode is None:
            running.kill()
        await running.wait()


HOW = ["cancel", "close", "kill"]


@pytest.mark.parametrize("how", HOW)
async def test_an_upload_abandoned_midway_stores_nothing(
    disk_storage: ObjectStorage,
    start_client: Callable[..., Any],
    make_settings: Callable[..., Any],
    migrated: MigratedDatabase,
    how: str,
) -> None:
    root = Path(make_settings().storage_root)
    staging = root / ".staging"
    async with start_client(disk_storage) as client:
        user = uuid.uuid4()
        async with reaped(abandon_upload(client, user, how, lambda: any(staging.iterdir()))):
            # The call has ended on the service, one way or another, before anything is judged.
            await eventually(
                lambda: sum(client.calls_finished(UPLOAD, code) for code in ENDINGS) > 0,
                "the service ends the abandoned call",
            )
            assert client.calls_finished(UPLOAD, "OK") == 0
            await eventually(lambda: not any(staging.iterdir()), "the staged file is removed")
            assert await stored_documents(migrated.admin_url, user) == 0
            assert not (root / str(user)).exists()


@pytest.mark.parametrize("how", HOW)
async def test_an_abandoned_upload_stores_nothing_even_when_its_cancellation_comes_late(
    disk_storage: ObjectStorage,
    start_client: Callable[..., Any],
    make_settings: Callable[..., Any],
    migrated: MigratedDatabase,
    how: str,
) -> None:
    """The upload runs on in a task that gRPC's cancellation of the call does not reach.

    All it learns is that the request stream ended, as a finished one does; the call's own state
    must keep it from storing the truncated file.
    """
    uploads: list[asyncio.Future[document_pb2.Document]] = []

    def register(app: DocumentsApplication, server: grpc.aio.Server) -> None:
        app.register(server)
        servicer = DocumentServicer(app.library, app.pages, app.grants)

        async def upload(requests: AsyncIterator[UploadMessage], context: Context) -> document_pb2.Document:
            uploads.append(asyncio.ensure_future(servicer.UploadDocument(requests, context)))
            return await asyncio.shield(uploads[-1])

        server.add_registered_method_handlers(
            SERVICE,
            {
                "UploadDocument": grpc.stream_unary_rpc_method_handler(
                    upload,
                    request_deserializer=read_upload_message,
                    response_serializer=document_pb2.Document.SerializeToString,
                )
            },
        )

    root = Path(make_settings().storage_root)
    staging = root / ".staging"
    async with start_client(disk_storage, register=register) as client:
        user = uuid.uuid4()
        async with reaped(abandon_upload(client, user, how, lambda: any(staging.iterdir()))):
            assert len(uploads) == 1
            await asyncio.wait_for(asyncio.wait(uploads), timeout=NOTICE_SECONDS)
            assert uploads[0].cancelled(), f"the abandoned upload returned {uploads[0].result()}"
            assert not any(staging.iterdir())
            assert await stored_documents(migrated.admin_url, user) == 0
            assert not (root / str(user)).exists()


class SlowToOpen(DiskStorage):
    """Disk storage whose writers take a while to arrive once their staged file exists."""

    async def open_writer(self) -> ObjectWriter:
        """The writer of a staged file, after a pause (a slow filesystem, a distant S3 endpoint)."""
        writer = await super().open_writer()
        await asyncio.sleep(0.5)
        return writer


@pytest.mark.parametrize("how", HOW)
async def test_an_upload_abandoned_while_its_staged_file_is_opened_leaves_no_staged_file(
    start_client: Callable[..., Any],
    make_settings: Callable[..., Any],
    migrated: MigratedDatabase,
    how: str,
) -> None:
    root = Path(make_settings().storage_root)
    staging = root / ".staging"
    async with start_client(SlowToOpen(root)) as client:
        user = uuid.uuid4()
        async with reaped(abandon_upload(client, user, how, lambda: any(staging.iterdir()))):
            await eventually(
                lambda: client.calls_finished(UPLOAD, "CANCELLED") > 0, "the service ends the abandoned call"
            )
            await eventually(lambda: not any(staging.iterdir()), "the staged file is removed")
            assert await stored_documents(migrated.admin_url, user) == 0


class SlowToInstall(DiskStorage):
    """Disk storage whose writers return a while after their object is in place."""

    async def open_writer(self) -> ObjectWriter:
        """A writer whose commit pauses once the object is installed."""
        writer = await super().open_writer()
        commit = writer.commit

        async def slow_commit(key: str) -> None:
            await commit(key)
            await asyncio.sleep(0.5)

        writer.commit = slow_commit  # type: ignore[method-assign]
        return writer


@pytest.mark.parametrize("how", HOW)
async def test_an_upload_abandoned_while_its_object_is_installed_leaves_no_object(
    start_client: Callable[..., Any],
    make_settings: Callable[..., Any],
    migrated: MigratedDatabase,
    how: str,
) -> None:
    """The client sent the whole file, then went away before the document was committed."""
    root = Path(make_settings().storage_root)
    async with start_client(SlowToInstall(root)) as client:
        user = uuid.uuid4()
        objects = root / str(user)
        installed = abandon_upload(
            client, user, how, lambda: objects.exists() and any(objects.iterdir()), finish=True
        )
        async with reaped(installed):
            await eventually(
                lambda: client.calls_finished(UPLOAD, "CANCELLED") > 0, "the service ends the abandoned call"
            )
            await eventually(lambda: not any(objects.iterdir()), "the installed object is removed")
            assert await stored_documents(migrated.admin_url, user) == 0
            assert not any((root / ".staging").iterdir())
