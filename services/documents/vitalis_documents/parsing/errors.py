"""A parse that cannot succeed, with the reason the document records."""

from __future__ import annotations

from vitalis_documents.domain.model import ParseStateReason


class ParseFailure(Exception):
    """The document cannot be parsed: ``reason`` for machines, ``message`` for people."""

    def __init__(self, reason: ParseStateReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
