"""Bytes streaming in: sniffed, hashed, counted and written to storage, never held whole."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib

from vitalis_documents.domain.sniffing import SNIFF_BYTES, sniff_content_type
from vitalis_documents.storage.base import ObjectStorage, ObjectWriter
from vitalis_runtime.errors import InvalidArgument, ResourceExhausted

Chunk = bytes | memoryview
"""Bytes of an upload as they arrive: a view of a received message, or bytes."""


class StreamedUpload:
    """Bytes streaming in: sniffed, hashed, counted and written to storage, never held whole.

    A chunk is hashed (in a worker thread: ``hashlib`` releases the GIL on large buffers) and
    written while the next one is being received, so at most two chunks are held at a time.
    """

    def __init__(self, storage: ObjectStorage, max_bytes: int) -> None:
        """Write to ``storage``; refuse more than ``max_bytes``."""
        self._storage = storage
        self._max_bytes = max_bytes
        self._digest = hashlib.sha256()
        self.size = 0
        self.content_type = ""
        self._head: list[Chunk] = []
        self._absorbing: asyncio.Future[None] | None = None
        self._opening: asyncio.Future[ObjectWriter] | None = None
        self.writer: ObjectWriter | None = None

    @property
    def sha256(self) -> str:
        """The hex SHA-256 of the bytes fed (complete once :meth:`finish` returned)."""
        return self._digest.hexdigest()

    async def feed(self, chunk: Chunk) -> None:
        """Take the next bytes; the type is checked once enough bytes arrived to sniff it."""
        self.size += len(chunk)
        if self.size > self._max_bytes:
            raise too_large(self._max_bytes)
        await self._settle()
        if self.writer is None:
            self._head.append(chunk)
            if self.size < SNIFF_BYTES:
                return
            chunk = self._take_head()
            await self._start(chunk)
        self._absorbing = asyncio.ensure_future(self._absorb(chunk))

    def _take_head(self) -> Chunk:
        head, self._head = self._head, []
        # One piece (the usual first chunk of a client) is used as it is, without a copy.
        return head[0] if len(head) == 1 else b"".join(head)

    async def _start(self, head: Chunk) -> None:
        content_type = sniff_content_type(bytes(head[:SNIFF_BYTES]))
        if content_type is None:
            raise InvalidArgument(
                "The file is not of an allowed type: upload a PDF, PNG, JPEG, HEIC, CSV, XML, ZIP or FIT"
                " file.",
                reason="UNSUPPORTED_CONTENT_TYPE",
            )
        self.content_type = content_type
        # Opening stages something (a file, a multipart upload) even if this call is cancelled while
        # it runs; shielded, the writer still arrives, and abort() discards it.
        self._opening = asyncio.ensure_future(self._storage.open_writer())
        self.writer = await asyncio.shield(self._opening)

    async def _absorb(self, chunk: Chunk) -> None:
        assert self.writer is not None
        await asyncio.gather(asyncio.to_thread(self._digest.update, chunk), self.writer.write(chunk))

    async def _settle(self) -> None:
        """Wait until the chunk before is hashed and written; its failure surfaces here."""
        absorbing, self._absorbing = self._absorbing, None
        if absorbing is not None:
            await absorbing

    async def finish(self) -> None:
        """The stream ended: refuse an empty file, sniff a short one, wait for the last write."""
        await self._settle()
        if self.size == 0:
            raise InvalidArgument(
                "The upload carried no bytes; send the file's content.", reason="EMPTY_FILE"
            )
        if self.writer is None:
            head = self._take_head()
            await self._start(head)
            await self._absorb(head)

    async def abort(self) -> None:
        """Discard what was staged (a no-op after the writer committed)."""
        absorbing, self._absorbing = self._absorbing, None
        try:
            if absorbing is not None:
                # A write in flight finishes before its file is discarded; its failure is moot now.
                with contextlib.suppress(Exception):
                    await asyncio.shield(absorbing)
        finally:
            opening, self._opening = self._opening, None
            if self.writer is None and opening is not None:
                with contextlib.suppress(Exception):
                    self.writer = await asyncio.shield(opening)
            if self.writer is not None:
                await self.writer.abort()


def too_large(max_bytes: int) -> ResourceExhausted:
    """The error for a file over the size limit."""
    return ResourceExhausted(
        f"The file is larger than the maximum of {max_bytes} bytes.",
        reason="FILE_TOO_LARGE",
        metadata={"max_bytes": str(max_bytes)},
    )
