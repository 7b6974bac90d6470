"""Recognising an import file and opening Apple Health zip archives safely."""

from __future__ import annotations

import zipfile
from typing import IO, Final

from vitalis_ingestion.importers.items import ImportFailure

APPLE_ZIP: Final = 1
APPLE_XML: Final = 2
GARMIN_FIT: Final = 3
CSV: Final = 4
JSON: Final = 5
MAX_UNCOMPRESSED: Final = 16 * 1024**3
MAX_RATIO: Final = 250


def detect_format(head: bytes) -> int:
    """The ImportFormat the first bytes of a file say it is."""
    if head.startswith(b"PK\x03\x04"):
        return APPLE_ZIP
    if len(head) >= 12 and head[8:12] == b".FIT":
        return GARMIN_FIT
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped.startswith(b"<"):
        return APPLE_XML
    if stripped.startswith(b"{"):
        return JSON
    return CSV


def compatible(declared: int, detected: int) -> bool:
    """Whether a declared format agrees with the bytes (CSV cannot be told apart from text)."""
    return declared in (0, detected) or (declared == CSV and detected in (CSV, JSON))


def open_export(
    archive: zipfile.ZipFile, *, max_uncompressed: int = MAX_UNCOMPRESSED, max_ratio: int = MAX_RATIO
) -> zipfile.ZipInfo:
    """The ``export.xml`` entry of an Apple Health archive, after checking it is no zip bomb."""
    entries = archive.infolist()
    total = sum(entry.file_size for entry in entries)
    if total > max_uncompressed:
        raise ImportFailure(
            "ARCHIVE_TOO_LARGE",
            f"the archive would expand to {total} bytes, more than the limit of {max_uncompressed}",
        )
    for entry in entries:
        if (
            entry.compress_size
            and entry.file_size / entry.compress_size > max_ratio
            and entry.file_size > 1024**2
        ):
            raise ImportFailure(
                "ARCHIVE_TOO_LARGE",
                f"{entry.filename} expands {entry.file_size // entry.compress_size} times, "
                f"more than {max_ratio}: "
                "it looks like a zip bomb",
            )
    candidates = [e for e in entries if e.filename.rsplit("/", 1)[-1] == "export.xml"]
    if not candidates:
        raise ImportFailure(
            "UNSUPPORTED_FORMAT", "the archive has no export.xml; share the Health export again"
        )
    return min(candidates, key=lambda e: e.filename.count("/"))


class BoundedEntry:
    """A zip entry stream that stops at the size its header declared, whatever the data says."""

    def __init__(self, stream: IO[bytes], limit: int) -> None:
        self._stream = stream
        self._left = limit + 1

    def read(self, size: int = -1) -> bytes:
        """Read, failing once more bytes come out than declared."""
        data = self._stream.read(size if size >= 0 else 1 << 20)
        self._left -= len(data)
        if self._left < 0:
            raise ImportFailure("ARCHIVE_TOO_LARGE", "an archive entry expands beyond its declared size")
        return data
