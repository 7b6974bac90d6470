"""From a file on disk to a :class:`LabReport`: PDF text layer first, OCR when there is none."""

from __future__ import annotations

from pathlib import Path

from vitalis_documents.domain.model import ParseStateReason
from vitalis_documents.parsing.engines import tesseract_available, unreadable_image
from vitalis_documents.parsing.errors import ParseFailure
from vitalis_documents.parsing.lab_report import LabReport, extract_lab_report
from vitalis_documents.parsing.layout import PageText
from vitalis_documents.parsing.ocr import ocr_image, ocr_pdf_page
from vitalis_documents.parsing.pdf_text import open_pdf, page_words


def read_report(path: Path, content_type: str, *, max_pages: int) -> tuple[LabReport, bool]:
    """The report's results and whether OCR was used; ParseFailure when nothing can be read."""
    if content_type.startswith("image/"):
        unreadable = unreadable_image(content_type, ocr_available=tesseract_available())
        if unreadable is not None:
            raise unreadable
        return extract_lab_report([ocr_image(path)]), True
    document = open_pdf(path, max_pages=max_pages)
    try:
        pages: list[PageText] = [page_words(document, index) for index in range(len(document))]
        ocr_used = False
        if not any(page.words for page in pages):
            if not tesseract_available():
                raise ParseFailure(
                    ParseStateReason.NO_TEXT_LAYER,
                    "The PDF is a scan without a text layer and no text recognition engine is installed;"
                    " enter the results by hand or upload the PDF the lab sent.",
                )
            pages = [ocr_pdf_page(document, index) for index in range(len(document))]
            ocr_used = True
    finally:
        document.close()
    report = extract_lab_report(pages)
    if not report.rows:
        raise ParseFailure(
            ParseStateReason.NO_RESULTS_FOUND,
            "No lab results were recognised in the document; check that it is a lab report.",
        )
    return report, ocr_used
