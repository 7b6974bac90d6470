"""Lab-report PDFs in the layouts labs print, generated with fpdf2, each with its ground truth.

Layouts: ``table`` (Test, Result, Unit, Reference range, Flag), ``flag_first`` (Test, Result, Flag,
Units, Reference interval), ``two_column`` (two tables side by side), ``multi_page`` (a long panel
over pages with repeated headers and footers) and ``european`` (German labels, decimal commas, SI
units, day-first dates).
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta

from fpdf import FPDF

from vitalis_documents.extraction_bench.catalog import ANALYTES, Analyte

LAYOUTS = ("table", "flag_first", "two_column", "multi_page", "european")


@dataclass(frozen=True)
class TruthRow:
    """What a result row says."""

    page: int
    printed_name: str
    value: float
    unit: str
    flag: str
    low: float | None
    high: float | None
    analyte: Analyte


@dataclass
class GeneratedReport:
    """A report's bytes and what it says."""

    name: str
    layout: str
    pdf: bytes
    collection_date: date
    rows: list[TruthRow] = field(default_factory=list)


@dataclass(frozen=True)
class _Printed:
    name: str
    value_text: str
    value: float
    unit_text: str
    ucum: str
    range_text: str
    low: float | None
    high: float | None
    flag: str
    analyte: Analyte


def _format(number: float, decimals: int, comma: bool) -> str:
    text = f"{number:.{decimals}f}"
    return text.replace(".", ",") if comma else text


def _printed(analyte: Analyte, rng: random.Random, *, si: bool, comma: bool, german: bool) -> _Printed:
    factor = analyte.si_factor if si else 1.0
    decimals = analyte.si_decimals if si else analyte.decimals
    low = None if analyte.low is None else round(analyte.low * factor, decimals)
    high = None if analyte.high is None else round(analyte.high * factor, decimals)
    anchor_low = low if low is not None else (high or 1) * 0.4
    anchor_high = high if high is not None else (low or 1) * 2.0
    span = anchor_high - anchor_low
    value = round(rng.uniform(anchor_low - span * 0.3, anchor_high + span * 0.3), decimals)
    value = max(value, 10**-decimals if decimals else 1)
    if low is not None and high is not None:
        range_text = f"{_format(low, decimals, comma)} - {_format(high, decimals, comma)}"
    elif high is not None:
        range_text = f"< {_format(high, decimals, comma)}"
    else:
        range_text = f"> {_format(low or 0, decimals, comma)}"
    flag = ""
    if high is not None and value > high:
        flag = "+" if german and rng.random() < 0.5 else "H"
    elif low is not None and value < low:
        flag = "-" if german and rng.random() < 0.5 else "L"
    return _Printed(
        name=analyte.german if german else analyte.english,
        value_text=_format(value, decimals, comma),
        value=value,
        unit_text=analyte.si_unit if si else analyte.unit,
        ucum=analyte.si_ucum if si else analyte.ucum,
        range_text=range_text,
        low=low,
        high=high,
        flag=flag,
        analyte=analyte,
    )


def _truth(page: int, printed: _Printed) -> TruthRow:
    flag = {"+": "H", "-": "L"}.get(printed.flag, printed.flag)
    return TruthRow(
        page, printed.name, printed.value, printed.ucum, flag, printed.low, printed.high, printed.analyte
    )


class _Writer:
    def __init__(self) -> None:
        self.pdf = FPDF(unit="pt", format="A4")
        self.pdf.set_auto_page_break(False)
        self.pdf.set_font("Helvetica", size=9)

    def text(self, x: float, y: float, text: str, *, bold: bool = False, size: float = 9) -> None:
        self.pdf.set_font("Helvetica", "B" if bold else "", size)
        self.pdf.set_xy(x, y)
        self.pdf.cell(text=text)

    def page(self) -> int:
        self.pdf.add_page()
        return int(self.pdf.page_no())

    def bytes(self) -> bytes:
        return bytes(self.pdf.output())


def _letterhead(writer: _Writer, lab: str, collected: str, patient: str, reported: str) -> None:
    writer.text(40, 30, lab, bold=True, size=13)
    writer.text(40, 50, "1200 Main Street, Springfield  Tel 555-0100")
    writer.text(320, 50, reported)
    writer.text(40, 75, f"Patient: {patient}  ID 482913  DOB 01/02/1980")
    writer.text(320, 75, collected)


def _footer(writer: _Writer, y: float) -> None:
    writer.text(40, y + 10, "Comment: sample slightly haemolysed; 2 of 3 tubes received at 08:40.")
    writer.text(40, y + 26, "Results marked H or L lie outside the reference range of the laboratory.")


def _columns(writer: _Writer, y: float, headers: Sequence[tuple[float, str]]) -> None:
    for x, header in headers:
        writer.text(x, y, header, bold=True)


def _table(
    writer: _Writer,
    report: GeneratedReport,
    rows: Sequence[_Printed],
    *,
    page: int,
    order: Sequence[str],
    xs: Sequence[float],
    y: float = 130,
    joined_units: float = 0.0,
    rng: random.Random | None = None,
) -> float:
    for printed in rows:
        # Some labs print the unit right after the value, in the value's column.
        joined = rng is not None and rng.random() < joined_units
        fields = {
            "name": printed.name,
            "value": f"{printed.value_text} {printed.unit_text}" if joined else printed.value_text,
            "unit": "" if joined else printed.unit_text,
            "range": printed.range_text,
            "flag": printed.flag,
        }
        for x, key in zip(xs, order, strict=True):
            if fields[key]:
                writer.text(x, y, fields[key])
        truth = _truth(page, printed)
        report.rows.append(truth if "flag" in order else replace(truth, flag=""))
        y += 16
    return y


def generate_report(
    layout: str, seed: int, *, renamed: Sequence[str] = (), analytes: Sequence[str] = ()
) -> GeneratedReport:
    """One report in ``layout``; the same seed gives the same report.

    ``analytes`` (English names) chooses the results instead of a random sample; ``renamed`` replaces
    the printed names of the first results (to print analytes no dictionary knows).
    """
    # A seeded generator of test data, not of secrets.
    rng = random.Random(f"{layout}:{seed}")  # noqa: S311
    collected = date(2024, 1, 1) + timedelta(days=rng.randrange(700))
    german = layout == "european"
    count = {"multi_page": 22, "two_column": 16}.get(layout, rng.randrange(8, 14))
    chosen = (
        [a for a in ANALYTES if a.english in set(analytes)]
        if analytes
        else rng.sample(ANALYTES, min(count, len(ANALYTES)))
    )
    rows = [_printed(a, rng, si=german, comma=german, german=german) for a in chosen]
    rows = [replace(row, name=name) for row, name in zip(rows, renamed, strict=False)] + rows[len(renamed) :]
    report = GeneratedReport(f"{layout}-{seed:03d}", layout, b"", collected)
    reported = collected + timedelta(days=rng.randrange(1, 4))
    writer = _Writer()
    page = writer.page()
    if german:
        _letterhead(
            writer,
            "Labor Dr. Muster MVZ",
            f"Entnahme: {collected:%d.%m.%Y}",
            "Erika Musterfrau",
            f"Befund vom {reported:%d.%m.%Y}",
        )
        headers = ["Untersuchung", "Ergebnis", "Einheit", "Referenzbereich", "Kennung"]
        order, xs = ["name", "value", "unit", "range", "flag"], [40.0, 220.0, 290.0, 370.0, 490.0]
        _columns(writer, 110, list(zip(xs, headers, strict=True)))
        end = _table(writer, report, rows, page=page, order=order, xs=xs)
    elif layout == "two_column":
        _letterhead(
            writer,
            "Northside Clinical Laboratory",
            f"Collected: {collected:%m/%d/%Y}",
            "John Doe",
            f"Reported {reported:%m/%d/%Y}",
        )
        half = len(rows) // 2
        end = 0.0
        for offset, part in ((0.0, rows[:half]), (290.0, rows[half:])):
            xs = [30 + offset, 150 + offset, 190 + offset, 262 + offset]
            _columns(writer, 110, list(zip(xs, ["Test", "Result", "Unit", "Range"], strict=True)))
            order = ["name", "value", "unit", "range"]
            end = max(end, _table(writer, report, part, page=page, order=order, xs=xs))
    elif layout == "flag_first":
        _letterhead(
            writer,
            "Acme Diagnostics Laboratory",
            f"Date Collected: {collected:%B %d, %Y}",
            "Jane Roe",
            f"Reported: {reported:%B %d, %Y}",
        )
        headers = ["Tests", "Result", "Flag", "Units", "Reference Interval"]
        order, xs = ["name", "value", "flag", "unit", "range"], [40.0, 210.0, 270.0, 310.0, 420.0]
        _columns(writer, 110, list(zip(xs, headers, strict=True)))
        end = _table(writer, report, rows, page=page, order=order, xs=xs)
    else:
        _letterhead(
            writer,
            "Riverside Medical Laboratory",
            f"Collection date: {collected.isoformat()}",
            "Ann Lee",
            f"Printed {reported.isoformat()}",
        )
        headers = ["Test", "Result", "Unit", "Reference Range", "Flag"]
        order, xs = ["name", "value", "unit", "range", "flag"], [40.0, 220.0, 290.0, 380.0, 500.0]
        per_page = 9 if layout == "multi_page" else len(rows)
        end = 0.0
        for start in range(0, len(rows), per_page):
            if start:
                page = writer.page()
                writer.text(40, 30, "Riverside Medical Laboratory  (continued)", bold=True)
            _columns(writer, 110, list(zip(xs, headers, strict=True)))
            part = rows[start : start + per_page]
            end = _table(writer, report, part, page=page, order=order, xs=xs, joined_units=0.3, rng=rng)
            writer.text(260, 800, f"Page {page} of {(len(rows) + per_page - 1) // per_page}")
    _footer(writer, end)
    report.pdf = writer.bytes()
    return report


def generate_corpus(per_layout: int = 4) -> Iterator[GeneratedReport]:
    """``per_layout`` reports of every layout."""
    for layout in LAYOUTS:
        for seed in range(per_layout):
            yield generate_report(layout, seed)
