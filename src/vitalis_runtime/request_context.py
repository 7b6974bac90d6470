"""The request a piece of code is serving: its id and gRPC method, held in context variables.

The request-context interceptor binds them for each call; logs, the error mapping and the client
package read them, so a request id follows a call through every service it touches.
"""

from __future__ import annotations

import contextvars
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

REQUEST_ID_HEADER = "x-request-id"
# Ids come from callers; only short, printable ones are kept so logs cannot be forged or flooded.
_ACCEPTABLE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:/+=-]{1,128}$")


@dataclass(frozen=True)
class RequestContext:
    """The id and full gRPC method name of the request being served, and when its caller gives up."""

    request_id: str
    method: str
    deadline: float | None = None
    """``time.monotonic()`` value of the caller's deadline; None when the caller set none."""

    def time_remaining(self) -> float | None:
        """Seconds left until the caller's deadline, or None without one."""
        return None if self.deadline is None else self.deadline - time.monotonic()


_request: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar("request", default=None)


def new_request_id() -> str:
    """A fresh request id."""
    return uuid.uuid4().hex


def accept_request_id(candidate: str | None) -> str:
    """The caller's request id when it is well-formed, otherwise a fresh one."""
    if candidate and _ACCEPTABLE_REQUEST_ID.match(candidate):
        return candidate
    return new_request_id()


def current_request() -> RequestContext | None:
    """The request being served, if any."""
    return _request.get()


def current_time_remaining() -> float | None:
    """Seconds left until the current request's deadline; None outside a request or without one."""
    request = _request.get()
    return request.time_remaining() if request else None


def current_request_id() -> str | None:
    """The id of the request being served, if any."""
    request = _request.get()
    return request.request_id if request else None


@contextmanager
def bound_request(
    request_id: str, method: str, *, time_remaining: float | None = None
) -> Iterator[RequestContext]:
    """Serve a block of code as part of the given request (``time_remaining`` until its deadline)."""
    deadline = None if time_remaining is None else time.monotonic() + time_remaining
    request = RequestContext(request_id=request_id, method=method, deadline=deadline)
    token = _request.set(request)
    try:
        yield request
    finally:
        reset_quietly(_request, token)


def reset_quietly(variable: contextvars.ContextVar[T], token: contextvars.Token[T]) -> None:
    """Undo ``variable.set``; a no-op when run in another context than the one that set it.

    That happens when an abandoned streaming handler is finalised by the event loop instead of the
    task that served it: the serving task's context is gone and nothing is left to restore.
    """
    with suppress(ValueError):
        variable.reset(token)
