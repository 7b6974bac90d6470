"""Optical character recognition with the ``tesseract`` command, when it is installed.

Tesseract's TSV output gives every word with its box in pixels; boxes are converted to points so
the layout analysis treats recognised pages exactly like text layers.
"""

from __future__ import annotations

import csv
import subprocess
import tempfile
from pathlib import Path

import pypdfium2  # type: ignore[import-untyped]

from vitalis_documents.parsing.layout import PageText, Word

OCR_DPI = 300
OCR_TIMEOUT_SECONDS = 120


def _tesseract_words(image: Path, *, scale: float) -> list[Word]:
    completed = subprocess.run(  # noqa: S603 - a fixed program; the path is our own temporary file
        ["tesseract", str(image), "stdout", "tsv"],  # noqa: S607
        capture_output=True,
        check=True,
        timeout=OCR_TIMEOUT_SECONDS,
        text=True,
    )
    words = []
    for row in csv.DictReader(completed.stdout.splitlines(), delimiter="\t", quoting=csv.QUOTE_NONE):
        text = (row.get("text") or "").strip()
        if not text or row.get("level") != "5":
            continue
        left, top = float(row["left"]) * scale, float(row["top"]) * scale
        words.append(
            Word(text, left, top, left + float(row["width"]) * scale, top + float(row["height"]) * scale)
        )
    return words


def ocr_pdf_page(document: pypdfium2.PdfDocument, index: int) -> PageText:
    """Render page ``index`` and recognise its words."""
    page = document[index]
    try:
        width, height = page.get_size()
        bitmap = page.render(scale=OCR_DPI / 72)
        with tempfile.TemporaryDirectory() as folder:
            image = Path(folder) / "page.png"
            bitmap.to_pil().save(image)
            words = _tesseract_words(image, scale=72 / OCR_DPI)
    finally:
        page.close()
    return PageText(number=index + 1, width=width, height=height, words=words)


def ocr_image(path: Path) -> PageText:
    """Recognise the words of a PNG or JPEG, taking one pixel as one point."""
    from PIL import Image

    with Image.open(path) as image:
        width, height = image.size
    return PageText(
        number=1, width=float(width), height=float(height), words=_tesseract_words(path, scale=1.0)
    )
