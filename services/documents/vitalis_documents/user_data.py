"""Data-subject rights: export everything of a user, erase everything of a user."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

from vitalis_documents.domain.model import Document, ExtractedMarker
from vitalis_documents.library import DOWNLOAD_CHUNK_BYTES, DocumentLibrary
from vitalis_documents.storage.base import user_prefix

Entry = tuple[str, str, bytes]


def _safe_file_name(name: str) -> str:
    cleaned = re.sub(r"[^\w.\- ]+", "_", name).strip(" .") or "document"
    return cleaned[:120]


class UserData:
    """Exports and erases one user's documents, results and stored bytes."""

    def __init__(
        self,
        library: DocumentLibrary,
        *,
        document_json: Callable[[Document], dict[str, Any]],
        marker_json: Callable[[ExtractedMarker], dict[str, Any]],
    ) -> None:
        """The JSON encodings are the contract's (the API layer provides them)."""
        self._library = library
        self._document_json = document_json
        self._marker_json = marker_json

    async def export(self, user_id: uuid.UUID) -> AsyncIterator[Entry]:
        """``documents.jsonl``, ``extracted_markers.jsonl``, then every file, in chunks."""
        store = self._library.store
        async with self._library.db.transaction(user_id=user_id, readonly=True) as conn:
            documents = await store.user_documents(conn, user_id)
            markers = await store.user_markers(conn, user_id)
        for path, encoded in (
            ("documents.jsonl", self._lines(self._document_json(d) for d in documents)),
            ("extracted_markers.jsonl", self._lines(self._marker_json(m) for m in markers)),
        ):
            for offset in range(0, max(len(encoded), 1), DOWNLOAD_CHUNK_BYTES):
                yield path, "application/x-ndjson", encoded[offset : offset + DOWNLOAD_CHUNK_BYTES]
        for document in documents:
            path = f"files/{document.document_id}/{_safe_file_name(document.display_name)}"
            try:
                async for chunk in self._library.storage.read(
                    document.storage_key, chunk_size=DOWNLOAD_CHUNK_BYTES
                ):
                    yield path, document.content_type, chunk
            except KeyError:
                continue

    @staticmethod
    def _lines(objects: Any) -> bytes:
        return b"".join(
            json.dumps(o, separators=(",", ":"), sort_keys=True).encode() + b"\n" for o in objects
        )

    async def erase(self, user_id: uuid.UUID) -> int:
        """Delete every row, queued job and stored object of the user; return how many items went."""
        store = self._library.store
        async with self._library.db.transaction(user_id=user_id) as conn:
            erased = await store.erase_user(conn, user_id)
            erased += await store.forget_user_jobs(conn, user_id)
        erased += await self._library.storage.delete_prefix(user_prefix(user_id))
        return erased
