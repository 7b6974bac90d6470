"""Which kind of file some bytes are, decided from the bytes alone (never from a client's claim)."""

from __future__ import annotations

from typing import Final

SNIFF_BYTES: Final = 4096
"""How many leading bytes :func:`sniff_content_type` looks at."""

ALLOWED_CONTENT_TYPES: Final = frozenset(
    {
        "application/pdf",
        "image/png",
        "image/jpeg",
        "image/heic",
        "text/csv",
        "application/xml",
        "application/zip",
        "application/vnd.ant.fit",
    }
)

_HEIC_BRANDS: Final = frozenset({b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"})
_UTF8_BOM: Final = b"\xef\xbb\xbf"
_CSV_DELIMITERS: Final = (",", ";", "\t", "|")


_MAGIC: Final = (
    (b"%PDF-", "application/pdf"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"PK\x03\x04", "application/zip"),
    (b"PK\x05\x06", "application/zip"),
)


def sniff_content_type(head: bytes) -> str | None:
    """The media type of a file starting with ``head`` (its first bytes), or None when not allowed."""
    for magic, content_type in _MAGIC:
        if head.startswith(magic):
            return content_type
    if len(head) >= 12 and head[4:8] == b"ftyp" and head[8:12] in _HEIC_BRANDS:
        return "image/heic"
    if len(head) >= 12 and head[0] in (12, 14) and head[8:12] == b".FIT":
        return "application/vnd.ant.fit"
    return _sniff_text(head)


def _sniff_text(head: bytes) -> str | None:
    text = _as_text(head)
    if text is None:
        return None
    stripped = text.lstrip()
    if stripped.startswith("<?xml") or (stripped.startswith("<") and stripped[1:2].isalpha()):
        return "application/xml"
    return "text/csv" if _looks_like_csv(text) else None


def _as_text(head: bytes) -> str | None:
    if b"\x00" in head:
        return None
    data = head.removeprefix(_UTF8_BOM)
    # The head may end in the middle of a multi-byte character.
    for cut in range(4):
        try:
            return data[: len(data) - cut].decode("utf-8")
        except UnicodeDecodeError:
            continue
    return None


def _looks_like_csv(text: str) -> bool:
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or any(ch not in "\t\r\n" and not ch.isprintable() for ch in text):
        return False
    first = lines[0]
    for delimiter in _CSV_DELIMITERS:
        columns = first.count(delimiter)
        if columns == 0:
            continue
        complete = lines[:-1] if len(lines) > 1 else lines
        if all(line.count(delimiter) >= 1 for line in complete):
            return True
    return False
