"""A small AIP-160 filter language: comparisons joined by ``AND``.

``state = SESSION_STATE_ACTIVE AND occur_time > "2025-01-01T00:00:00Z"`` parses into a list of
:class:`Comparison`. Each list method declares which fields it accepts; anything else (``OR``,
``NOT``, parentheses, an unknown field or operator) is refused naming the ``filter`` field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from vitalis_runtime.errors import InvalidArgument

OPERATORS = ("!=", "<=", ">=", "=", "<", ">", ":")
_TOKEN = re.compile(
    r"""\s*(?:(?P<string>"(?:[^"\\]|\\.)*")|(?P<op>!=|<=|>=|=|<|>|:)|(?P<word>[A-Za-z0-9_.\-/+]+)|(?P<bad>\S))"""
)
MAX_FILTER_LENGTH = 1000


@dataclass(frozen=True)
class Comparison:
    """``field op value``; ``value`` is unquoted."""

    field: str
    operator: str
    value: str


def _bad(description: str) -> InvalidArgument:
    return InvalidArgument.for_field("filter", description, reason="INVALID_FILTER")


def parse_filter(text: str, allowed: dict[str, frozenset[str]]) -> list[Comparison]:
    """Parse ``text``; ``allowed`` maps each field to the operators it supports."""
    if len(text) > MAX_FILTER_LENGTH:
        raise _bad(f"must be at most {MAX_FILTER_LENGTH} characters")
    tokens: list[tuple[str, str]] = []
    for match in _TOKEN.finditer(text):
        kind = match.lastgroup
        value = match.group(kind) if kind else ""
        if kind == "bad":
            raise _bad(f"unexpected character {value!r}; only comparisons joined by AND are supported")
        if kind is not None:
            tokens.append((kind, value))
    comparisons: list[Comparison] = []
    position = 0
    while position < len(tokens):
        if comparisons:
            kind, value = tokens[position]
            if kind != "word" or value != "AND":
                raise _bad(f"expected AND before {value!r}; only comparisons joined by AND are supported")
            position += 1
        if position + 3 > len(tokens):
            raise _bad("ends in the middle of a comparison; write field = value")
        (field_kind, field), (op_kind, operator), (value_kind, value) = tokens[position : position + 3]
        position += 3
        if field_kind != "word" or op_kind != "op" or value_kind == "op":
            raise _bad("each comparison must read field operator value, for example state = ACTIVE")
        if field not in allowed:
            raise _bad(f"cannot filter on {field!r}; filterable fields: {', '.join(sorted(allowed))}")
        if operator not in allowed[field]:
            raise _bad(f"{field!r} supports only {', '.join(sorted(allowed[field]))}")
        if value_kind == "string":
            value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        comparisons.append(Comparison(field, operator, value))
    return comparisons
