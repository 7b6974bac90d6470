"""Bytes streaming in: sniffed, hashed, counted and written to storage, never held whole."""

from __future__ import annotations

import hashlib

from vitalis_documents.domain.sniffing import SNIFF_BYTES, sniff_content_type
from vitalis_documents.storage.base import ObjectStorage, ObjectWriter
from vitalis_runtime.errors import InvalidArgument, ResourceExhausted


class StreamedUpload:
    """Bytes streaming in: sniffed, hashed, counted and written to storage, never held whole."""

    def __init__(self, storage: ObjectStorage, max_bytes: int) -> None:
        """Write to ``storage``; refuse more than ``max_bytes``."""
        self._storage = storage
        self._max_bytes = max_bytes
        self.digest = hashlib.sha256()
        self.size = 0
        self.content_type = ""
        self._head = bytearray()
        self.writer: ObjectWriter | None = None

    async def feed(self, chunk: bytes) -> None:
        """Take the next bytes; the type is checked once enough bytes arrived to sniff it."""
        self.size += len(chunk)
        if self.size > self._max_bytes:
            raise too_large(self._max_bytes)
        self.digest.update(chunk)
        if self.writer is None:
            self._head += chunk
            if len(self._head) < SNIFF_BYTES:
                return
            await self._start()
            return
        await self.writer.write(chunk)

    async def _start(self) -> None:
        content_type = sniff_content_type(bytes(self._head[:SNIFF_BYTES]))
        if content_type is None:
            raise InvalidArgument(
                "The file is not of an allowed type: upload a PDF, PNG, JPEG, HEIC, CSV, XML, ZIP or FIT"
                " file.",
                reason="UNSUPPORTED_CONTENT_TYPE",
            )
        self.content_type = content_type
        self.writer = await self._storage.open_writer()
        await self.writer.write(bytes(self._head))
        self._head = bytearray()

    async def finish(self) -> None:
        """The stream ended: refuse an empty file, sniff a short one."""
        if self.size == 0:
            raise InvalidArgument(
                "The upload carried no bytes; send the file's content.", reason="EMPTY_FILE"
            )
        if self.writer is None:
            await self._start()

    async def abort(self) -> None:
        """Discard what was staged (a no-op after the writer committed)."""
        if self.writer is not None:
            await self.writer.abort()


def too_large(max_bytes: int) -> ResourceExhausted:
    """The error for a file over the size limit."""
    return ResourceExhausted(
        f"The file is larger than the maximum of {max_bytes} bytes.",
        reason="FILE_TOO_LARGE",
        metadata={"max_bytes": str(max_bytes)},
    )
