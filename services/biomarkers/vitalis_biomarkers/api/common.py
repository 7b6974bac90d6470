"""Translation helpers every servicer shares: names, times, intervals, page tokens."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from google.type import interval_pb2  # type: ignore[import-untyped]

from vitalis_biomarkers.store.panels import TimeInterval
from vitalis_runtime.auth import current_principal
from vitalis_runtime.errors import InvalidArgument
from vitalis_runtime.pagination import PageTokens

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def timestamp(moment: datetime) -> Timestamp:
    """A protobuf Timestamp (a naive datetime is taken as UTC, as ``Timestamp.FromDatetime`` does)."""
    # Whole days, seconds and microseconds since the epoch: what FromDatetime computes, without its
    # detour through a time tuple (a list builds one per item).
    since = (moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)) - _EPOCH
    return Timestamp(seconds=since.days * 86400 + since.seconds, nanos=since.microseconds * 1000)


def moment(stamp: Timestamp) -> datetime:
    """An aware datetime from a Timestamp."""
    return stamp.ToDatetime(tzinfo=UTC)


def required_moment(message: Any, field: str, path: str) -> datetime:
    """The Timestamp field ``field`` of ``message``; InvalidArgument on ``path`` when unset."""
    if not message.HasField(field):
        raise InvalidArgument.for_field(path, "is required")
    return moment(getattr(message, field))


def optional_moment(message: Any, field: str) -> datetime | None:
    """The Timestamp field ``field`` of ``message``, or None when unset."""
    return moment(getattr(message, field)) if message.HasField(field) else None


def duration(value: timedelta) -> Duration:
    """A protobuf Duration."""
    result = Duration()
    result.FromTimedelta(value)
    return result


def optional_duration(message: Any, field: str) -> timedelta | None:
    """The Duration field ``field`` of ``message``, or None when unset."""
    return getattr(message, field).ToTimedelta() if message.HasField(field) else None


def interval(message: Any, field: str) -> TimeInterval:
    """A google.type.Interval field as a TimeInterval (unset sides open)."""
    if not message.HasField(field):
        return TimeInterval()
    given: interval_pb2.Interval = getattr(message, field)
    start = moment(given.start_time) if given.HasField("start_time") else None
    end = moment(given.end_time) if given.HasField("end_time") else None
    if start is not None and end is not None and end < start:
        raise InvalidArgument.for_field(f"{field}.end_time", "must not be before start_time")
    return TimeInterval(start, end)


def interval_fingerprint(value: TimeInterval) -> list[str | None]:
    """The interval as JSON for a page-token fingerprint."""
    return [
        None if value.start is None else value.start.isoformat(),
        None if value.end is None else value.end.isoformat(),
    ]


def split_name(name: str, collections: Sequence[str], field: str) -> list[str]:
    """The IDs of a resource name ``users/{user}/<collection>/{id}/...``; InvalidArgument when malformed."""
    parts = name.split("/")
    expected = "/".join(f"{collection}/{{{collection}}}" for collection in collections)
    if len(parts) != 2 * len(collections) or any(
        parts[2 * index] != collection or not parts[2 * index + 1]
        for index, collection in enumerate(collections)
    ):
        raise InvalidArgument.for_field(field, f"{name!r} is not a resource name of the form {expected}")
    return [parts[2 * index + 1] for index in range(len(collections))]


def parse_id(text: str, field: str) -> uuid.UUID:
    """A resource ID segment as a UUID; InvalidArgument when it is not one."""
    try:
        return uuid.UUID(text)
    except ValueError:
        raise InvalidArgument.for_field(field, f"{text!r} is not a valid ID") from None


def ordering(order_by: str, time_field: str) -> bool:
    """Whether ``order_by`` asks for ascending time order (``<time_field>``) or descending (default)."""
    normalized = " ".join(order_by.split())
    if normalized in ("", f"{time_field} desc"):
        return False
    if normalized in (time_field, f"{time_field} asc"):
        return True
    raise InvalidArgument.for_field(
        "order_by", f"must be '{time_field} desc' (the default) or '{time_field}'"
    )


class Pages:
    """Page tokens bound to the request's parameters and the calling user."""

    def __init__(self, tokens: PageTokens) -> None:
        """Sign tokens with ``tokens``."""
        self._tokens = tokens

    @staticmethod
    def _bound(request: Mapping[str, Any]) -> dict[str, Any]:
        return {**request, "caller": str(current_principal().user_id)}

    def cursor(self, token: str, request: Mapping[str, Any]) -> dict[str, Any]:
        """The cursor inside ``token`` ({} for the first page)."""
        return self._tokens.decode(token, request=self._bound(request))

    def token(self, cursor: Mapping[str, Any], request: Mapping[str, Any]) -> str:
        """A token for the page after ``cursor``."""
        return self._tokens.encode(cursor, request=self._bound(request))


def time_cursor(cursor: Mapping[str, Any]) -> tuple[datetime, uuid.UUID] | None:
    """A (time, id) keyset cursor from a decoded page token."""
    if not cursor:
        return None
    try:
        return datetime.fromisoformat(cursor["t"]), uuid.UUID(cursor["id"])
    except (KeyError, TypeError, ValueError):
        raise InvalidArgument.for_field(
            "page_token", "is not a page token of this list", reason="INVALID_PAGE_TOKEN"
        ) from None


def time_cursor_of(time: datetime, item_id: uuid.UUID) -> dict[str, str]:
    """The cursor after an item at ``time`` with ``item_id``."""
    return {"t": time.isoformat(), "id": str(item_id)}
