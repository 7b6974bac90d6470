"""Which documents this machine can read at all, known before any byte is opened."""

from __future__ import annotations

import shutil

from vitalis_documents.domain.model import ParseStateReason
from vitalis_documents.parsing.errors import ParseFailure


def tesseract_available() -> bool:
    """Whether a ``tesseract`` binary is on PATH."""
    return shutil.which("tesseract") is not None


def unreadable_image(content_type: str, *, ocr_available: bool) -> ParseFailure | None:
    """Why an image of this type cannot be read (no text recognition for it), or None when it can be."""
    if content_type.startswith("image/") and (content_type == "image/heic" or not ocr_available):
        return ParseFailure(
            ParseStateReason.NO_TEXT_LAYER,
            "The report is an image and no text recognition engine is installed; enter the results by"
            " hand or upload the PDF the lab sent.",
        )
    return None
