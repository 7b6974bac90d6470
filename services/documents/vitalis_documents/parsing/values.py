"""Reading the fields of a printed lab result: numbers, comparators, units, flags, ranges, dates."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import date
from typing import Final

from vitalis_documents.domain.model import ReferenceRange, ResultFlag, ValueComparator

_COMPARATORS: Final = {
    "<=": ValueComparator.LESS_THAN_OR_EQUAL,
    "≤": ValueComparator.LESS_THAN_OR_EQUAL,
    ">=": ValueComparator.GREATER_THAN_OR_EQUAL,
    "≥": ValueComparator.GREATER_THAN_OR_EQUAL,
    "<": ValueComparator.LESS_THAN,
    ">": ValueComparator.GREATER_THAN,
}
_NUMBER: Final = r"[+-]?(?:\d{1,3}(?:[.,' ]\d{3})+|\d+)(?:[.,]\d+)?|[+-]?[.,]\d+"
_VALUE: Final = re.compile(rf"^(?P<cmp><=|>=|≤|≥|<|>)?\s*(?P<num>{_NUMBER})$")
_RANGE: Final = re.compile(
    rf"^\(?\s*(?P<low>{_NUMBER})\s*(?:-|\u2013|\u2014|to|bis|\.\.)\s*(?P<high>{_NUMBER})\s*\)?$"
)
_BOUND: Final = re.compile(rf"^\(?\s*(?P<cmp><=|>=|≤|≥|<|>)\s*(?P<num>{_NUMBER})\s*\)?$")
_FLAGS: Final = {
    "H": ResultFlag.HIGH,
    "HIGH": ResultFlag.HIGH,
    "+": ResultFlag.HIGH,
    "↑": ResultFlag.HIGH,
    "L": ResultFlag.LOW,
    "LOW": ResultFlag.LOW,
    "-": ResultFlag.LOW,
    "↓": ResultFlag.LOW,
    "HH": ResultFlag.CRITICAL_HIGH,
    "++": ResultFlag.CRITICAL_HIGH,
    "LL": ResultFlag.CRITICAL_LOW,
    "--": ResultFlag.CRITICAL_LOW,
    "A": ResultFlag.ABNORMAL,
    "*": ResultFlag.ABNORMAL,
    "N": ResultFlag.NORMAL,
    "NORMAL": ResultFlag.NORMAL,
}
_UNITS: Final = {
    "mg/dl": "mg/dL",
    "g/dl": "g/dL",
    "g/l": "g/L",
    "mg/l": "mg/L",
    "mmol/l": "mmol/L",
    "µmol/l": "umol/L",
    "μmol/l": "umol/L",
    "umol/l": "umol/L",
    "nmol/l": "nmol/L",
    "pmol/l": "pmol/L",
    "ng/ml": "ng/mL",
    "ng/dl": "ng/dL",
    "pg/ml": "pg/mL",
    "µg/dl": "ug/dL",
    "μg/dl": "ug/dL",
    "ug/dl": "ug/dL",
    "µg/l": "ug/L",
    "μg/l": "ug/L",
    "ug/l": "ug/L",
    "u/l": "U/L",
    "iu/l": "[IU]/L",
    "miu/l": "m[IU]/L",
    "mu/l": "m[IU]/L",
    "µiu/ml": "u[IU]/mL",
    "μiu/ml": "u[IU]/mL",
    "uiu/ml": "u[IU]/mL",
    "µu/ml": "u[IU]/mL",
    "mmol/mol": "mmol/mol",
    "%": "%",
    "fl": "fL",
    "pg": "pg",
    "g/dL": "g/dL",
    "10^9/l": "10*9/L",
    "10*9/l": "10*9/L",
    "x10^9/l": "10*9/L",
    "g/l ": "g/L",
    "/nl": "10*9/L",
    "gpt/l": "10*9/L",
    "10^12/l": "10*12/L",
    "10*12/l": "10*12/L",
    "x10^12/l": "10*12/L",
    "/pl": "10*12/L",
    "tpt/l": "10*12/L",
    "10^3/µl": "10*3/uL",
    "10^3/ul": "10*3/uL",
    "k/µl": "10*3/uL",
    "k/ul": "10*3/uL",
    "10^6/µl": "10*6/uL",
    "10^6/ul": "10*6/uL",
    "m/µl": "10*6/uL",
    "m/ul": "10*6/uL",
    "ml/min/1.73m2": "mL/min/{1.73_m2}",
    "ml/min/1,73m2": "mL/min/{1.73_m2}",
    "ml/min/1.73 m2": "mL/min/{1.73_m2}",
    "ml/min/1.73m²": "mL/min/{1.73_m2}",
    "mm/h": "mm/h",
    "s": "s",
    "sec": "s",
    "ratio": "{ratio}",
}
_UCUM_CODES: Final = frozenset(_UNITS.values())
_UNIT_SHAPE: Final = re.compile(r"^[a-zA-Zµμ%/^*0-9.,\[\]{}²³ -]{1,24}$")
_MONTHS: Final = {
    name: number
    for number, names in enumerate(
        [
            ("jan", "january", "januar", "jän"),
            ("feb", "february", "februar"),
            ("mar", "march", "mär", "märz", "maerz"),
            ("apr", "april"),
            ("may", "mai"),
            ("jun", "june", "juni"),
            ("jul", "july", "juli"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october", "okt", "oktober"),
            ("nov", "november"),
            ("dec", "december", "dez", "dezember"),
        ],
        start=1,
    )
    for name in names
}
_ISO_DATE: Final = re.compile(r"(?<!\d)(\d{4})-(\d{1,2})-(\d{1,2})(?!\d)")
_DOT_DATE: Final = re.compile(r"(?<!\d)(\d{1,2})\.(\d{1,2})\.(\d{4})(?!\d)")
_SLASH_DATE: Final = re.compile(r"(?<!\d)(\d{1,2})/(\d{1,2})/(\d{4})(?!\d)")
_WORD_DATE: Final = re.compile(r"(?<!\d)(\d{1,2})\.?\s+([A-Za-zäÄ]{3,9})\.?\s+(\d{4})(?!\d)")
_MONTH_FIRST_DATE: Final = re.compile(r"\b([A-Za-z]{3,9})\.?\s+(\d{1,2}),?\s+(\d{4})(?!\d)")


@dataclass(frozen=True)
class ParsedValue:
    """A number as printed and read."""

    value: float
    comparator: ValueComparator
    confidence: float


def parse_number(text: str, *, decimal_comma: bool | None = None) -> tuple[float, float] | None:
    """The number in ``text`` and how sure the reading is; decimal commas are understood.

    With both separators the last one is the decimal separator (``1.234,5``, ``1,234.5``). A lone
    comma is decimal unless it is followed by exactly three digits in a document that does not use
    decimal commas, which reads as thousands (less confidently).
    """
    raw = text.strip().replace("\u2212", "-").replace("'", "").replace(" ", "")
    if not raw or not re.fullmatch(r"[+-]?[\d.,]+", raw) or not any(ch.isdigit() for ch in raw):
        return None
    confidence = 0.98
    if "," in raw and "." in raw:
        decimal = "," if raw.rfind(",") > raw.rfind(".") else "."
        thousands = "." if decimal == "," else ","
        raw = raw.replace(thousands, "").replace(decimal, ".")
    elif "," in raw:
        head, _, tail = raw.rpartition(",")
        if raw.count(",") > 1:
            raw = raw.replace(",", "")
            confidence = 0.85
        elif len(tail) == 3 and decimal_comma is not True and head.lstrip("+-") not in {"", "0"}:
            raw = head + tail
            confidence = 0.7
        else:
            raw = raw.replace(",", ".")
            confidence = 0.97 if decimal_comma is not False else 0.8
    elif raw.count(".") > 1:
        raw = raw.replace(".", "")
        confidence = 0.85
    try:
        number = float(raw)
    except ValueError:
        return None
    if not math.isfinite(number):
        return None
    return number, confidence


def parse_value(text: str, *, decimal_comma: bool | None = None) -> ParsedValue | None:
    """A result value such as ``5,4``, ``<0.5`` or ``>= 90``; None when ``text`` is not one."""
    match = _VALUE.match(text.strip().replace("\u2212", "-"))
    if match is None:
        return None
    parsed = parse_number(match["num"], decimal_comma=decimal_comma)
    if parsed is None:
        return None
    comparator = _COMPARATORS.get(match["cmp"] or "", ValueComparator.EXACT)
    return ParsedValue(parsed[0], comparator, parsed[1])


def parse_flag(text: str) -> ResultFlag | None:
    """The flag a lab printed (``H``, ``L``, ``HH``, ``+``, ``↑``, ``*``), or None."""
    return _FLAGS.get(text.strip().upper())


def normalize_unit(text: str) -> tuple[str, float]:
    """The UCUM code of a printed unit and the confidence of the reading ('' and 0 for none)."""
    cleaned = " ".join(text.strip().split())
    if not cleaned:
        return "", 0.0
    if cleaned in _UCUM_CODES:
        return cleaned, 0.95
    known = _UNITS.get(cleaned.lower()) or _UNITS.get(cleaned.lower().replace(" ", ""))
    if known:
        return known, 0.95
    if _UNIT_SHAPE.match(cleaned) and any(ch.isalpha() or ch == "%" for ch in cleaned):
        return cleaned, 0.5
    return "", 0.0


def looks_like_unit(text: str) -> bool:
    """Whether ``text`` reads as a unit (known, or shaped like one)."""
    unit, confidence = normalize_unit(text)
    return bool(unit) and (confidence > 0.9 or "/" in text)


def parse_range(text: str, *, decimal_comma: bool | None = None) -> tuple[ReferenceRange, float] | None:
    """A reference range such as ``3,5 - 5,1``, ``< 116`` or ``> 40``; None when ``text`` is not one."""
    cleaned = text.strip().replace("\u2212", "-")
    match = _RANGE.match(cleaned)
    if match is not None:
        low = parse_number(match["low"], decimal_comma=decimal_comma)
        high = parse_number(match["high"], decimal_comma=decimal_comma)
        if low is None or high is None or low[0] > high[0]:
            return None
        return ReferenceRange(low=low[0], high=high[0], text=cleaned), min(low[1], high[1], 0.95)
    bound = _BOUND.match(cleaned)
    if bound is not None:
        number = parse_number(bound["num"], decimal_comma=decimal_comma)
        if number is None:
            return None
        if bound["cmp"] in {"<", "<=", "≤"}:
            return ReferenceRange(high=number[0], text=cleaned), min(number[1], 0.95)
        return ReferenceRange(low=number[0], text=cleaned), min(number[1], 0.95)
    return None


def _valid(year: int, month: int, day: int) -> date | None:
    try:
        found = date(year, month, day)
    except ValueError:
        return None
    return found if 1900 <= year <= 2100 else None


def find_date(text: str, *, day_first: bool | None = None) -> tuple[date, float] | None:
    """The first date printed in ``text`` and how sure the reading is.

    ``day_first`` resolves slashed dates such as ``03/12/2025`` when the document's conventions are
    known (decimal commas go with day-first dates); without it they read month first, less surely.
    """
    for pattern, order, confidence in (
        (_ISO_DATE, (0, 1, 2), 0.95),
        (_DOT_DATE, (2, 1, 0), 0.95),
    ):
        match = pattern.search(text)
        if match:
            groups = [int(g) for g in match.groups()]
            found = _valid(groups[order[0]], groups[order[1]], groups[order[2]])
            if found:
                return found, confidence
    match = _WORD_DATE.search(text)
    if match and match[2].lower() in _MONTHS:
        found = _valid(int(match[3]), _MONTHS[match[2].lower()], int(match[1]))
        if found:
            return found, 0.95
    match = _MONTH_FIRST_DATE.search(text)
    if match and match[1].lower() in _MONTHS:
        found = _valid(int(match[3]), _MONTHS[match[1].lower()], int(match[2]))
        if found:
            return found, 0.95
    match = _SLASH_DATE.search(text)
    if match:
        first, second, year = (int(g) for g in match.groups())
        if first > 12 or (day_first and second <= 12):
            found = _valid(year, second, first)
            return (found, 0.9) if found else None
        found = _valid(year, first, second)
        # Month first (US style) unless the day cannot be a month; ambiguous without conventions.
        return (found, 0.9 if second > 12 or day_first is False else 0.75) if found else None
    return None
