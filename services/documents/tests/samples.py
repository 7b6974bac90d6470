"""PDFs that a parser must survive: encrypted, damaged, too long, decompression bombs, scans."""

from __future__ import annotations

import io
import zlib

from fpdf import FPDF


def _objects_to_pdf(objects: list[bytes]) -> bytes:
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def decompression_bomb(expanded_bytes: int = 512 * 1024 * 1024) -> bytes:
    """A one-page PDF whose 2 MB content stream inflates to ``expanded_bytes``."""
    compressor = zlib.compressobj(1)
    block = b"0 0 m " * (1024 * 1024 // 6)
    stream = (
        b"".join(compressor.compress(block) for _ in range(expanded_bytes // len(block))) + compressor.flush()
    )
    return _objects_to_pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>",
            b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream",
        ]
    )


def encrypted_report() -> bytes:
    """A lab report that needs a password to open."""
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica")
    pdf.cell(text="Glucose  95  mg/dL  70 - 99")
    pdf.set_encryption(owner_password="owner", user_password="secret")
    return bytes(pdf.output())


def many_pages(pages: int) -> bytes:
    """A text PDF of ``pages`` pages."""
    pdf = FPDF()
    pdf.set_font("Helvetica")
    for number in range(pages):
        pdf.add_page()
        pdf.cell(text=f"Page {number + 1}")
    return bytes(pdf.output())


def damaged_pdf() -> bytes:
    """Starts like a PDF, is none."""
    return b"%PDF-1.7\n" + b"\x00garbage that is no PDF structure\n" * 200


def scanned_report() -> bytes:
    """A page with only an image of text: no text layer."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (800, 300), "white")
    ImageDraw.Draw(image).text((20, 20), "Glucose 95 mg/dL 70 - 99", fill="black")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    pdf = FPDF()
    pdf.add_page()
    pdf.image(io.BytesIO(buffer.getvalue()), x=10, y=10, w=180)
    return bytes(pdf.output())


def unreadable_report() -> bytes:
    """A text PDF with no lab results in it."""
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica")
    pdf.cell(text="Dear patient, thank you for your visit.")
    return bytes(pdf.output())


def long_report(pages: int, rows_per_page: int = 60) -> bytes:
    """A text PDF dense with result-like rows: slow to read on purpose."""
    pdf = FPDF()
    pdf.set_auto_page_break(False)
    pdf.set_font("Helvetica", size=6)
    for page in range(pages):
        pdf.add_page()
        for row in range(rows_per_page):
            pdf.set_xy(10, 10 + row * 4.5)
            pdf.cell(text=f"Analyte {page}-{row}   95   mg/dL   70 - 99   H   " * 2)
    return bytes(pdf.output())
