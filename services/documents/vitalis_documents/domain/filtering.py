"""A small AIP-160 subset: comparisons joined by AND, on the fields a list method names."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from vitalis_runtime.errors import InvalidArgument

_TERM = re.compile(
    r"""\s*(?P<field>[a-z_][a-z_.]*)\s*(?P<op><=|>=|!=|=|<|>)\s*
        (?P<value>"[^"]*"|'[^']*'|[^\s()]+)\s*""",
    re.VERBOSE,
)
_OPERATORS = {"=", "!=", "<", "<=", ">", ">="}


@dataclass(frozen=True)
class Comparison:
    """``field operator value`` with the value already converted for the field."""

    field: str
    operator: str
    value: Any


Converter = Callable[[str], Any]


def enum_converter(values: Mapping[str, int], prefix: str) -> Converter:
    """Read an enum value by its contract name (``PREFIX_NAME``), its short name or its number."""

    def convert(text: str) -> int:
        if text.isdigit() and int(text) in values.values():
            return int(text)
        return values[text.removeprefix(prefix)]

    return convert


def parse_filter(text: str, fields: Mapping[str, Converter], *, ordered: frozenset[str]) -> list[Comparison]:
    """Parse ``a = X AND b < Y``; ``fields`` maps each filterable field to its value converter.

    ``ordered`` names the fields that accept ``<``/``>``; others take only ``=``/``!=``. Anything
    else is ``InvalidArgument`` on ``filter`` naming the part that is wrong.
    """
    if not text.strip():
        return []
    comparisons = []
    for part in re.split(r"\s+AND\s+", text.strip()):
        match = _TERM.fullmatch(part)
        if match is None:
            raise InvalidArgument.for_field(
                "filter", f"{part!r} is not a comparison like `field = value`; join comparisons with AND"
            )
        field, operator, raw = match["field"], match["op"], match["value"]
        if field not in fields:
            raise InvalidArgument.for_field(
                "filter", f"cannot filter on {field!r}; filterable fields: {', '.join(sorted(fields))}"
            )
        if operator not in {"=", "!="} and field not in ordered:
            raise InvalidArgument.for_field("filter", f"{field} accepts only = and !=")
        value = raw[1:-1] if raw[:1] in {'"', "'"} else raw
        try:
            converted = fields[field](value)
        except (ValueError, KeyError):
            raise InvalidArgument.for_field("filter", f"{value!r} is not a valid value for {field}") from None
        comparisons.append(Comparison(field, operator, converted))
    return comparisons
