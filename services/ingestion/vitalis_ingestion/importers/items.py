"""What importers produce: items (one per record of the file), source hints and failures."""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from vitalis_ingestion.domain.records import RecordDraft
from vitalis_ingestion.domain.samples import Rejection, SampleDraft

UNSUPPORTED = "UNSUPPORTED_RECORD_TYPE"
UNPARSEABLE = "UNPARSEABLE_VALUE"


class ImportFailure(Exception):
    """The file cannot be imported further: a stable reason (FILE_TRUNCATED, ...) and a sentence."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class SourceHint:
    """A writing app found in a file; its source is created on first use."""

    source_id: str
    display_name: str
    platform: int
    app_id: str


def hinted_source(prefix: str, name: str, platform: int) -> SourceHint:
    """A source hint with a stable ID derived from the app's name."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40].strip("-") or "app"
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return SourceHint(f"{prefix}-{slug}-{digest}", name[:200] or prefix, platform, name[:200])


@dataclass(slots=True)
class ImportItem:
    """One record of the file (``weight`` records when several form one stored record, such as the
    stages of a night's sleep) and what it becomes: samples, records, or a rejection."""

    record_type: str
    location: str
    source: SourceHint | None = None
    samples: list[SampleDraft] = field(default_factory=list)
    records: list[RecordDraft] = field(default_factory=list)
    rejection: Rejection | None = None
    weight: int = 1


def rejected(record_type: str, location: str, reason: str, message: str) -> ImportItem:
    """An item refused on its own."""
    return ImportItem(record_type, location, rejection=Rejection(reason, message, location))


class CountingReader(io.RawIOBase):
    """A binary stream that counts the bytes read through it (for progress)."""

    def __init__(self, stream: BinaryIO) -> None:
        super().__init__()
        self._stream = stream
        self.bytes_read = 0

    def readinto(self, buffer: Any) -> int:
        """Read into ``buffer`` and count."""
        data = self._stream.read(len(buffer))
        buffer[: len(data)] = data
        self.bytes_read += len(data)
        return len(data)

    def seek(self, offset: int, whence: int = 0) -> int:
        """Seek the underlying stream."""
        return self._stream.seek(offset, whence)

    def tell(self) -> int:
        """Position in the underlying stream."""
        return self._stream.tell()

    def seekable(self) -> bool:
        """Whether the underlying stream can seek."""
        return self._stream.seekable()

    def readable(self) -> bool:
        """Always."""
        return True


ItemStream = Iterator[ImportItem]
