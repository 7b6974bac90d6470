"""B6's two extractors over documents' generated corpus, scored the same way.

- ``vitalis``: documents' own parser, ``read_report`` (the code the service runs in its parsing child).
- ``pdfplumber``: what a team would write with pdfplumber: words grouped into lines by their top
  edge, lines cut into cells at wide gaps, and a result read wherever a numeric cell follows a name.

Recall is the share of the ground truth's rows found with the right name, value and page, counted
identically for both, so neither extractor is judged by the other's notion of a row.
"""

from __future__ import annotations

import itertools
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pdfplumber

CELL_GAP = 12.0
LINE_TOLERANCE = 3.0
NUMBER = re.compile(r"^[<>]?\s*\d+(?:[.,]\d+)?$")

Found = set[tuple[int, str, float]]
"""(page, normalised printed name, value) of each row an extractor read."""


def name_key(name: str) -> str:
    """A printed name without case, spaces or punctuation."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def parse_number(text: str) -> float | None:
    """A printed number (decimal point or comma, optional < or >)."""
    cleaned = text.lstrip("<> ").replace(",", ".")
    try:
        return float(cleaned)
    except ValueError:
        return None


@dataclass
class Report:
    """One PDF of the corpus written to disk, with its truth."""

    path: Path
    pages: int
    truth: Found


def write_corpus(folder: Path, per_layout: int) -> list[Report]:
    """Generate documents' corpus into ``folder``."""
    from vitalis_documents.extraction_bench.corpus import generate_corpus

    reports = []
    for generated in generate_corpus(per_layout):
        path = folder / f"{generated.name}.pdf"
        path.write_bytes(generated.pdf)
        truth = {(row.page, name_key(row.printed_name), row.value) for row in generated.rows}
        pages = max((row.page for row in generated.rows), default=1)
        reports.append(Report(path, pages, truth))
    return reports


def extract_with_vitalis(path: Path) -> tuple[int, Found]:
    """Pages and rows as documents' parser reads them."""
    from vitalis_documents.parsing.report_reader import read_report

    report, _ = read_report(path, "application/pdf", max_pages=50)
    return report.page_count, {(row.page, name_key(row.printed_name), row.value) for row in report.rows}


def _cells(words: Iterable[dict[str, object]]) -> list[str]:
    cells: list[list[str]] = []
    last_right: float | None = None
    for word in sorted(words, key=lambda w: float(w["x0"])):  # type: ignore[arg-type]
        left, right = float(word["x0"]), float(word["x1"])  # type: ignore[arg-type]
        if last_right is None or left - last_right > CELL_GAP:
            cells.append([])
        cells[-1].append(str(word["text"]))
        last_right = right
    return [" ".join(cell) for cell in cells]


def extract_with_pdfplumber(path: Path) -> tuple[int, Found]:
    """Pages and rows read with pdfplumber's words and a line-and-cell heuristic."""
    found: Found = set()
    with pdfplumber.open(path) as pdf:
        for number, page in enumerate(pdf.pages, start=1):
            lines: dict[int, list[dict[str, object]]] = {}
            for word in page.extract_words(keep_blank_chars=False, use_text_flow=False):
                lines.setdefault(round(float(word["top"]) / LINE_TOLERANCE), []).append(word)
            for words in lines.values():
                cells = _cells(words)
                for previous, cell in itertools.pairwise(cells):
                    value = parse_number(cell) if NUMBER.match(cell) else None
                    if (
                        value is not None
                        and previous
                        and not NUMBER.match(previous)
                        and previous[0].isalpha()
                    ):
                        found.add((number, name_key(previous), value))
        return len(pdf.pages), found


EXTRACTORS = {"vitalis": extract_with_vitalis, "pdfplumber": extract_with_pdfplumber}


def corpus_folder() -> tempfile.TemporaryDirectory[str]:
    """A scratch folder for the corpus."""
    return tempfile.TemporaryDirectory(prefix="vitalis-bench-corpus-")
