"""Filtered, keyset-paginated queries: AIP-160 comparisons turned into parameterised SQL.

A list method describes its filterable fields as :class:`FilterField` (an SQL expression, the
operators it supports and how a filter value becomes a parameter); :class:`ListQuery` collects
the conditions and parameters and pages by ``(time, id)`` newest first or oldest first.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from vitalis_identity.domain.filters import Comparison
from vitalis_runtime.errors import InvalidArgument

EQUALITY = frozenset({"=", "!="})
ORDERED = frozenset({"=", "!=", "<", "<=", ">", ">="})
_SQL_OPERATORS = {"=": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


def parse_time(value: str) -> datetime:
    """An RFC 3339 timestamp of a filter."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidArgument.for_field(
            "filter", f"{value!r} is not an RFC 3339 timestamp", reason="INVALID_FILTER"
        ) from None
    if parsed.tzinfo is None:
        raise InvalidArgument.for_field(
            "filter", f"{value!r} has no time zone offset", reason="INVALID_FILTER"
        )
    return parsed


def enum_value(mapping: Mapping[str, Any], field_name: str) -> Callable[[str], Any]:
    """A converter accepting the enum names of ``mapping``."""

    def convert(value: str) -> Any:
        if value not in mapping:
            raise InvalidArgument.for_field(
                "filter",
                f"{value!r} is not a value of {field_name}; use one of {', '.join(sorted(mapping))}",
                reason="INVALID_FILTER",
            )
        return mapping[value]

    return convert


@dataclass(frozen=True)
class FilterField:
    """How one filterable field maps to SQL."""

    expression: str
    operators: frozenset[str]
    convert: Callable[[str], Any] = str
    # For ``:`` (has) on an array column: ``$n = ANY(expression)``.
    array: bool = False


@dataclass
class ListQuery:
    """Conditions and parameters of one list query, built up step by step."""

    params: list[Any] = field(default_factory=list)
    conditions: list[str] = field(default_factory=list)

    def param(self, value: Any) -> str:
        """Add a parameter; its placeholder."""
        self.params.append(value)
        return f"${len(self.params)}"

    def where(self, condition: str, *values: Any) -> None:
        """Add a condition whose ``{}`` placeholders are filled with new parameters."""
        self.conditions.append(condition.format(*(self.param(v) for v in values)))

    def apply_filter(self, comparisons: Sequence[Comparison], fields: Mapping[str, FilterField]) -> None:
        """Add one condition per comparison."""
        for comparison in comparisons:
            spec = fields[comparison.field]
            value = spec.convert(comparison.value)
            if comparison.operator == ":":
                placeholder = self.param(value)
                condition = (
                    f"{placeholder} = ANY({spec.expression})"
                    if spec.array
                    else (f"{spec.expression} = {placeholder}")
                )
                self.conditions.append(condition)
            else:
                self.conditions.append(
                    f"{spec.expression} {_SQL_OPERATORS[comparison.operator]} {self.param(value)}"
                )

    def page_after(
        self, cursor: Mapping[str, Any], time_column: str, id_column: str, *, descending: bool
    ) -> None:
        """Continue after the last row of the previous page."""
        if not cursor:
            return
        after_time = datetime.fromisoformat(str(cursor["t"]))
        operator = "<" if descending else ">"
        self.where(
            f"({time_column}, {id_column}::text) {operator} ({{}}, {{}})", after_time, str(cursor["i"])
        )

    def sql(self, select: str, time_column: str, id_column: str, *, descending: bool, limit: int) -> str:
        """The complete statement, fetching one row more than a page to know whether more follow."""
        direction = "DESC" if descending else "ASC"
        where = " AND ".join(self.conditions) or "true"
        return (
            f"{select} WHERE {where} ORDER BY {time_column} {direction}, {id_column}::text {direction} "
            f"LIMIT {self.param(limit + 1)}"
        )


def cursor_of(time: datetime, ident: object) -> dict[str, str]:
    """The cursor continuing after a row."""
    return {"t": time.isoformat(), "i": str(ident)}
