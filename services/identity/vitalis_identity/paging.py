"""Page sizes and page tokens of every list method (AIP-158)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from vitalis_runtime.pagination import PageTokens, resolve_page_size

T = TypeVar("T")


class Pager:
    """Turns ``page_size``/``page_token`` into a limit and a cursor, and a page into its next token."""

    def __init__(self, tokens: PageTokens) -> None:
        self._tokens = tokens

    def start(
        self, page_size: int, page_token: str, request: Mapping[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        """The page size to use and the cursor to continue after (``{}`` on the first page)."""
        size = resolve_page_size(page_size)
        return size, self._tokens.decode(page_token, request=request)

    def finish(
        self,
        rows: Sequence[T],
        size: int,
        request: Mapping[str, Any],
        cursor: Callable[[T], Mapping[str, Any]],
    ) -> tuple[list[T], str]:
        """The page (``size`` rows at most, of ``size + 1`` fetched) and the token of the next one."""
        page = list(rows[:size])
        if len(rows) <= size or not page:
            return page, ""
        return page, self._tokens.encode(cursor(page[-1]), request=request)

    def encode(self, cursor: Mapping[str, Any], request: Mapping[str, Any]) -> str:
        """A token continuing after ``cursor`` (for lists paged in memory)."""
        return self._tokens.encode(cursor, request=request)
