"""A small AIP-160 filter subset: ``field op value`` terms joined by ``AND``, turned into SQL.

Enum fields take their enum value names (``state = INSIGHT_STATE_UNREAD``), compared by number so
``severity >= SEVERITY_WARNING`` works; text fields take quoted strings; time fields RFC 3339
timestamps; boolean fields ``true``/``false``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from vitalis_runtime.errors import InvalidArgument

_TERM = re.compile(r'^\s*([a-z_.]+)\s*(<=|>=|!=|=|<|>)\s*("(?:[^"\\]|\\.)*"|[A-Za-z0-9_:.+\-/]+)\s*$')
_OPERATORS = {"=": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


@dataclass(frozen=True)
class FilterField:
    """A filterable field: its SQL column and how its values are written."""

    column: str
    kind: Literal["enum", "text", "time", "bool"]
    enum_value: Callable[[str], int] | None = None


@dataclass(frozen=True)
class FilterTerm:
    """One ``field op value`` term, its value already typed."""

    field: str
    operator: str
    value: Any


def parse_filter(
    text: str, fields: Mapping[str, FilterField], *, field_name: str = "filter"
) -> list[FilterTerm]:
    """The terms of a filter; ``InvalidArgument`` on ``field_name`` for a bad term or an unknown field."""
    terms: list[FilterTerm] = []
    if not text.strip():
        return terms
    for term in re.split(r"\s+AND\s+", text.strip()):
        match = _TERM.match(term)
        if match is None:
            raise InvalidArgument.for_field(
                field_name, f"cannot parse {term.strip()!r}; expected `field = value`"
            )
        name, operator, raw = match.groups()
        spec = fields.get(name)
        if spec is None:
            raise InvalidArgument.for_field(
                field_name, f"unknown field {name!r}; known fields: {', '.join(sorted(fields))}"
            )
        terms.append(FilterTerm(name, operator, _value(spec, name, raw, field_name)))
    return terms


def filter_to_sql(
    text: str, fields: Mapping[str, FilterField], *, first_parameter: int, field_name: str = "filter"
) -> tuple[str, list[Any]]:
    """SQL conditions (``AND``-joined, or ``TRUE``) and their parameters, numbered from
    ``first_parameter``."""
    terms = parse_filter(text, fields, field_name=field_name)
    if not terms:
        return "TRUE", []
    conditions = [
        f"{fields[term.field].column} {_OPERATORS[term.operator]} ${first_parameter + index}"
        for index, term in enumerate(terms)
    ]
    return " AND ".join(conditions), [term.value for term in terms]


def matches(terms: list[FilterTerm], values: Mapping[str, Any]) -> bool:
    """Whether values held in memory satisfy every term."""
    compare = {
        "=": lambda a, b: a == b,
        "!=": lambda a, b: a != b,
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
        ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b,
    }
    return all(compare[term.operator](values[term.field], term.value) for term in terms)


def _value(spec: FilterField, name: str, raw: str, field_name: str) -> Any:
    unquoted = raw[1:-1].replace('\\"', '"') if raw.startswith('"') else raw
    if spec.kind == "enum" and spec.enum_value is not None:
        try:
            return spec.enum_value(unquoted)
        except ValueError:
            raise InvalidArgument.for_field(field_name, f"{unquoted!r} is not a value of {name}") from None
    if spec.kind == "time":
        try:
            moment = datetime.fromisoformat(unquoted.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidArgument.for_field(field_name, f"{unquoted!r} is not an RFC 3339 time") from None
        if moment.tzinfo is None:
            raise InvalidArgument.for_field(field_name, f"{unquoted!r} needs a time zone offset")
        return moment
    if spec.kind == "bool":
        if unquoted not in {"true", "false"}:
            raise InvalidArgument.for_field(field_name, f"{name} takes true or false")
        return unquoted == "true"
    return unquoted
