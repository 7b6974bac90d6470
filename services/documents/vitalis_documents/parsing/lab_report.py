"""Layout-aware extraction of lab results from the words of a report.

A report is read the way a person reads it: lines of cells; header lines ("Test  Result  Unit
Reference range") tell which column holds what and whether two tables stand side by side; every
other line that has a name, a number and a unit or range is a result. Repeated headers on later
pages are recognised as headers, not results. Each field gets a confidence.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Final

from vitalis_documents.domain.model import BoundingBox, ReferenceRange, ResultFlag, ValueComparator
from vitalis_documents.parsing.layout import Cell, Line, PageText, group_lines
from vitalis_documents.parsing.values import (
    find_date,
    looks_like_unit,
    normalize_unit,
    parse_flag,
    parse_range,
    parse_value,
)

_HEADER_WORDS: Final = {
    "name": {
        "test", "tests", "analyte", "parameter", "untersuchung", "analysis", "examination", "analyse",
        "investigation", "component",
    },
    "value": {"result", "results", "value", "ergebnis", "wert", "befund", "résultat"},
    "unit": {"unit", "units", "einheit", "unité"},
    "range": {
        "reference", "range", "referenz", "referenzbereich", "normbereich", "normal", "interval", "ref.",
        "norm",
    },
    "flag": {"flag", "flags", "kennung", "status", "h/l"},
}  # fmt: skip
_DATE_LABEL: Final = re.compile(
    r"(collect|entnahme|abnahme|sample|specimen|drawn|probe|prélèvement|blood draw|date of draw)", re.I
)
_WEAK_DATE_LABEL: Final = re.compile(r"\b(date|datum|received|eingang)\b", re.I)
_NOT_A_RESULT: Final = re.compile(
    r"\b(page|seite|patient|birth|geburt|born|dob|tel|fax|phone|id|order|auftrag|date|datum|report|befund|"
    r"physician|arzt|address|adresse|printed|gedruckt|sex|geschlecht|age|alter)\b",
    re.I,
)
_LAB_NAME: Final = re.compile(r"(laborator|\blab\b|labor\b|diagnosti|patholog|clinical)", re.I)


@dataclass(frozen=True)
class ExtractedRow:
    """One result line as read, with a confidence per field."""

    page: int
    source_text: str
    printed_name: str
    value_text: str
    value: float
    comparator: ValueComparator
    unit_text: str
    unit: str
    flag_text: str
    flag: ResultFlag
    reference_range: ReferenceRange
    bounding_box: BoundingBox
    value_confidence: float
    unit_confidence: float
    flag_confidence: float
    range_confidence: float


@dataclass
class LabReport:
    """Everything read from a report."""

    page_count: int
    rows: list[ExtractedRow] = field(default_factory=list)
    collection_date: date | None = None
    collection_date_confidence: float = 0.0
    lab_name: str = ""
    decimal_comma: bool = False


@dataclass(frozen=True)
class _Column:
    role: str
    left: float
    right: float


def _header_role(text: str) -> str | None:
    lowered = text.lower()
    for role, words in _HEADER_WORDS.items():
        if any(word in words for word in re.split(r"[\s/()]+", lowered)):
            return role
    return None


def _header_columns(line: Line) -> list[_Column] | None:
    columns = []
    for cell in line.cells:
        role = _header_role(cell.text)
        if role is None:
            return None
        columns.append(_Column(role, cell.left, cell.right))
    roles = {column.role for column in columns}
    if ("name" in roles and len(roles) >= 3) or ({"value", "unit"} <= roles and len(columns) >= 3):
        return columns
    return None


def _regions(columns: Sequence[_Column], page_width: float) -> list[tuple[float, float]]:
    """Side-by-side tables: a region starts at each name column."""
    starts = [column.left for column in columns if column.role == "name"] or [0.0]
    starts = sorted(starts)
    bounds = [0.0, *[start - 2.0 for start in starts[1:]], page_width + 1]
    return [(bounds[i], bounds[i + 1]) for i in range(len(bounds) - 1)]


def _decimal_comma(pages: Sequence[PageText]) -> bool:
    commas = dots = 0
    for page in pages:
        for word in page.words:
            if re.fullmatch(r"[<>]?\d+,\d{1,2}", word.text):
                commas += 1
            elif re.fullmatch(r"[<>]?\d+\.\d{1,2}", word.text):
                dots += 1
    return commas > dots


def extract_lab_report(pages: Sequence[PageText]) -> LabReport:
    """Read every result row, the collection date and the lab's name from the pages' words."""
    report = LabReport(page_count=len(pages), decimal_comma=_decimal_comma(pages))
    regions: list[tuple[float, float]] | None = None
    for page in pages:
        lines = group_lines(page.words)
        if page.number == 1:
            report.lab_name = _lab_name(lines, page)
        for line in lines:
            _note_date(report, line)
            columns = _header_columns(line)
            if columns is not None:
                regions = _regions(columns, page.width)
                continue
            for cells in _split_regions(line, regions or [(0.0, page.width + 1)]):
                row = _read_row(cells, page, report.decimal_comma)
                if row is not None:
                    report.rows.append(row)
    return report


def _split_regions(line: Line, regions: Sequence[tuple[float, float]]) -> list[list[Cell]]:
    parts: list[list[Cell]] = [[] for _ in regions]
    for cell in line.cells:
        for index, (left, right) in enumerate(regions):
            if left <= cell.left < right:
                parts[index].append(cell)
                break
        else:
            parts[-1].append(cell)
    return [part for part in parts if part]


def _note_date(report: LabReport, line: Line) -> None:
    """Keep the most trustworthy date: one right after a collection label beats one after a weak label
    ("date"), which beats one printed without a label (a birth date, say)."""
    texts = [cell.text for cell in line.cells]
    for index, text in enumerate(texts):
        if report.collection_date_confidence >= 0.9:
            return
        label = _DATE_LABEL.search(text) or _WEAK_DATE_LABEL.search(text)
        if label is None:
            found, ceiling = find_date(text, day_first=report.decimal_comma), 0.5
        else:
            after = " ".join([text[label.end() :], *texts[index + 1 : index + 2]])
            found = find_date(after, day_first=report.decimal_comma)
            ceiling = 1.0 if _DATE_LABEL.search(label.group(0)) else 0.7
        if found is not None and min(found[1], ceiling) > report.collection_date_confidence:
            report.collection_date, report.collection_date_confidence = found[0], min(found[1], ceiling)


def _lab_name(lines: Sequence[Line], page: PageText) -> str:
    for line in lines:
        if line.top > page.height * 0.2:
            break
        if _LAB_NAME.search(line.text) and not find_date(line.text):
            return line.cells[0].text[:200]
    return ""


def _split_name(cells: Sequence[Cell], decimal_comma: bool) -> tuple[str, list[str]] | None:
    """The printed name and the texts from the value on, or None when no value follows a name."""
    value_index = next(
        (
            index
            for index, cell in enumerate(cells)
            if index > 0 and parse_value(cell.words[0].text, decimal_comma=decimal_comma) is not None
        ),
        -1,
    )
    if value_index > 0:
        name = " ".join(cell.text for cell in cells[:value_index])
        return name.strip(" :."), [cell.text for cell in cells[value_index:]]
    # No cell starts with a value: the name and the value share a cell ("Glucose 95 mg/dL").
    for index, cell in enumerate(cells):
        words = [w.text for w in cell.words]
        for position, word in enumerate(words):
            if (position or index) and parse_value(word, decimal_comma=decimal_comma) is not None:
                name = " ".join([*(c.text for c in cells[:index]), *words[:position]])
                rest = [" ".join(words[position:]), *(c.text for c in cells[index + 1 :])]
                return name.strip(" :."), rest
    return None


@dataclass
class _Fields:
    unit_text: str = ""
    unit: str = ""
    unit_confidence: float = 0.0
    flag_text: str = ""
    flag: ResultFlag = ResultFlag.UNSPECIFIED
    reference_range: tuple[ReferenceRange, float] | None = None


def _read_fields(texts: Sequence[str], decimal_comma: bool) -> _Fields:
    fields = _Fields()
    for text in texts:
        for piece in _pieces(text, decimal_comma):
            flag = parse_flag(piece)
            if not fields.flag_text and flag is not None:
                fields.flag_text, fields.flag = piece, flag
            elif fields.reference_range is None and (
                parsed := parse_range(piece, decimal_comma=decimal_comma)
            ):
                fields.reference_range = parsed
            elif not fields.unit_text and looks_like_unit(piece):
                fields.unit_text = piece
                fields.unit, fields.unit_confidence = normalize_unit(piece)
    return fields


def _box(cells: Sequence[Cell], page: PageText) -> BoundingBox:
    left = min(c.left for c in cells)
    right = max(c.right for c in cells)
    top = min(w.top for c in cells for w in c.words)
    bottom = max(w.bottom for c in cells for w in c.words)
    return BoundingBox(
        left=max(left / page.width, 0.0),
        top=max(top / page.height, 0.0),
        width=min((right - left) / page.width, 1.0),
        height=min((bottom - top) / page.height, 1.0),
    )


def _read_row(cells: Sequence[Cell], page: PageText, decimal_comma: bool) -> ExtractedRow | None:
    split = _split_name(cells, decimal_comma)
    if split is None or not _is_name(split[0]):
        return None
    name, (first, *rest) = split
    value_word, *value_tail = first.split(" ", 1)
    if value_word in {"<", ">", "<=", ">=", "≤", "≥"} and value_tail:
        value_word, *value_tail = (value_word + value_tail[0]).split(" ", 1)
    value = parse_value(value_word, decimal_comma=decimal_comma)
    if value is None:
        return None
    fields = _read_fields([*value_tail, *rest], decimal_comma)
    if not fields.unit_text and fields.reference_range is None:
        return None
    return ExtractedRow(
        page=page.number,
        source_text="  ".join(c.text for c in cells),
        printed_name=name,
        value_text=value_word,
        value=value.value,
        comparator=value.comparator,
        unit_text=fields.unit_text,
        unit=fields.unit,
        flag_text=fields.flag_text,
        flag=fields.flag,
        reference_range=fields.reference_range[0] if fields.reference_range else ReferenceRange(),
        bounding_box=_box(cells, page),
        value_confidence=value.confidence,
        unit_confidence=fields.unit_confidence,
        flag_confidence=0.95 if fields.flag_text else 0.0,
        range_confidence=fields.reference_range[1] if fields.reference_range else 0.0,
    )


def _pieces(text: str, decimal_comma: bool) -> list[str]:
    """A cell as one piece when it reads as a whole (a range, a unit), otherwise its words."""
    stripped = text.strip()
    if not stripped:
        return []
    if (
        parse_range(stripped, decimal_comma=decimal_comma)
        or parse_flag(stripped)
        or looks_like_unit(stripped)
    ):
        return [stripped]
    words = stripped.split()
    # "3,5 - 5,1 mmol/l" or "mg/dl 3.5-5.1": try the longest prefix that is a range.
    for cut in range(len(words) - 1, 0, -1):
        head, tail = " ".join(words[:cut]), " ".join(words[cut:])
        if parse_range(head, decimal_comma=decimal_comma):
            return [head, *_pieces(tail, decimal_comma)]
        if parse_range(tail, decimal_comma=decimal_comma):
            return [*_pieces(head, decimal_comma), tail]
    return words


def _is_name(name: str) -> bool:
    letters = sum(ch.isalpha() for ch in name)
    return letters >= 2 and letters >= len(name) * 0.4 and len(name) <= 80 and not _NOT_A_RESULT.search(name)
