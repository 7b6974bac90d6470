"""Text with positions from a PDF's text layer (PDFium through pypdfium2)."""

from __future__ import annotations

from pathlib import Path

import pypdfium2  # type: ignore[import-untyped]

from vitalis_documents.domain.model import ParseStateReason
from vitalis_documents.parsing.errors import ParseFailure
from vitalis_documents.parsing.layout import PageText, Word

MAX_CHARS_PER_PAGE = 200_000


def open_pdf(path: Path, *, max_pages: int) -> pypdfium2.PdfDocument:
    """Open a PDF; encrypted, malformed and over-long documents fail with a clear reason."""
    try:
        document = pypdfium2.PdfDocument(str(path))
    except pypdfium2.PdfiumError as error:
        text = str(error).lower()
        if "password" in text:
            raise ParseFailure(
                ParseStateReason.ENCRYPTED, "The PDF is password-protected; upload an unprotected copy."
            ) from None
        raise ParseFailure(
            ParseStateReason.MALFORMED, "The file is damaged or not a valid PDF; export the report again."
        ) from None
    if len(document) > max_pages:
        count = len(document)
        document.close()
        raise ParseFailure(
            ParseStateReason.RESOURCE_LIMIT_EXCEEDED,
            f"The PDF has {count} pages, more than the {max_pages} a lab report may have.",
        )
    return document


def page_words(document: pypdfium2.PdfDocument, index: int) -> PageText:
    """The words of page ``index`` (from 0), with boxes measured from the top left corner."""
    try:
        return _page_words(document, index)
    except pypdfium2.PdfiumError:
        raise ParseFailure(
            ParseStateReason.MALFORMED,
            f"Page {index + 1} of the PDF is damaged and cannot be read; export the report again.",
        ) from None


def _page_words(document: pypdfium2.PdfDocument, index: int) -> PageText:
    page = document[index]
    try:
        width, height = page.get_size()
        textpage = page.get_textpage()
        try:
            count = min(textpage.count_chars(), MAX_CHARS_PER_PAGE)
            words: list[Word] = []
            current: list[tuple[str, float, float, float, float]] = []

            def flush() -> None:
                if current:
                    words.append(
                        Word(
                            text="".join(c[0] for c in current),
                            left=min(c[1] for c in current),
                            top=min(c[2] for c in current),
                            right=max(c[3] for c in current),
                            bottom=max(c[4] for c in current),
                        )
                    )
                    current.clear()

            text = textpage.get_text_range(0, count) if count else ""
            if len(text) != count:
                # Characters outside the basic plane count twice for PDFium; read them one by one.
                text = "".join(textpage.get_text_range(i, 1)[:1] or " " for i in range(count))
            for char_index in range(count):
                char = text[char_index]
                if not char or char.isspace():
                    flush()
                    continue
                left, bottom, right, top = textpage.get_charbox(char_index, loose=True)
                box = (char, left, height - top, right, height - bottom)
                if current:
                    previous = current[-1]
                    char_height = max(box[4] - box[2], previous[4] - previous[2], 1.0)
                    if (
                        box[1] - previous[3] > char_height * 0.25
                        or abs(box[2] - previous[2]) > char_height * 0.5
                    ):
                        flush()
                current.append(box)
            flush()
        finally:
            textpage.close()
    finally:
        page.close()
    return PageText(number=index + 1, width=width, height=height, words=words)
