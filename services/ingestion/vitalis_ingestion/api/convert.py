"""Small conversions shared by the servicers: times, durations, dates, counts."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from google.type import date_pb2, interval_pb2  # type: ignore[import-untyped]

from vitalis.ingestion.v1 import common_pb2
from vitalis_ingestion.domain.samples import WriteTally
from vitalis_runtime.errors import InvalidArgument


def timestamp(moment: datetime) -> Timestamp:
    """A protobuf Timestamp."""
    stamp = Timestamp()
    stamp.FromDatetime(moment.astimezone(UTC))
    return stamp


def duration(seconds: float) -> Duration:
    """A protobuf Duration of ``seconds``."""
    value = Duration()
    value.FromTimedelta(timedelta(seconds=seconds))
    return value


def from_timestamp(stamp: Timestamp) -> datetime:
    """An aware UTC datetime."""
    return stamp.ToDatetime(tzinfo=UTC)


def proto_date(day: date) -> date_pb2.Date:
    """A google.type.Date."""
    return date_pb2.Date(year=day.year, month=day.month, day=day.day)


def from_proto_date(value: date_pb2.Date, field: str) -> date | None:
    """The date, ``None`` when unset (all zero); INVALID_ARGUMENT for an impossible one."""
    if not (value.year or value.month or value.day):
        return None
    try:
        return date(value.year, value.month, value.day)
    except ValueError:
        raise InvalidArgument.for_field(field, "is not a valid calendar date") from None


def interval_bounds(value: interval_pb2.Interval) -> tuple[datetime | None, datetime | None]:
    """Start and end of an Interval; unset ends are ``None``."""
    start = from_timestamp(value.start_time) if value.HasField("start_time") else None
    end = from_timestamp(value.end_time) if value.HasField("end_time") else None
    if start is not None and end is not None and end < start:
        raise InvalidArgument.for_field("interval.end_time", "must not be before interval.start_time")
    return start, end


def offset_seconds(value: Duration, present: bool) -> int | None:
    """A UTC offset in whole seconds, or ``None`` when not sent."""
    return int(value.seconds) if present else None


def counts_to_proto(tally: WriteTally) -> common_pb2.WriteCounts:
    """WriteCounts with reasons, most frequent first."""
    return common_pb2.WriteCounts(
        received_count=tally.received,
        new_count=tally.new,
        duplicate_count=tally.duplicate,
        rejected_count=tally.rejected,
        rejections=[
            common_pb2.RejectionReason(
                reason=reason,
                message=tally.first[reason].message,
                count=count,
                first_location=tally.first[reason].location,
            )
            for reason, count in tally.reasons.most_common()
        ],
    )


def update_paths(mask_paths: list[str], populated: list[str], prefix: str) -> list[str]:
    """AIP-134: the mask's paths (without a leading ``prefix.``), or the populated fields without one."""
    paths = [path.removeprefix(f"{prefix}.") for path in mask_paths]
    return paths or populated


def request_key(request: Message) -> str:
    """The request's parameters other than paging, as a stable string for a page-token fingerprint."""
    copy = type(request)()
    copy.CopyFrom(request)
    for field in ("page_size", "page_token"):
        if field in copy.DESCRIPTOR.fields_by_name:
            copy.ClearField(field)
    return copy.SerializeToString(deterministic=True).hex()


def day_range_filter(request: Any) -> dict[str, Any]:
    """``first_day``/``last_day`` store filters from a request's ``start_date`` and ``end_date``."""
    first = from_proto_date(request.start_date, "start_date")
    last = from_proto_date(request.end_date, "end_date") if request.HasField("end_date") else None
    if first and last and last < first:
        raise InvalidArgument.for_field("end_date", "must not be before start_date")
    return {"first_day": first, "last_day": last}


def interval_filter(request: Any) -> dict[str, Any]:
    """``start``/``end`` store filters from a request's ``interval``."""
    start, end = interval_bounds(request.interval)
    return {"start": start, "end": end}


def enum_name(enum: Any, value: int, field: str) -> str:
    """The name of an enum value a caller sent; INVALID_ARGUMENT naming the field for unknown numbers."""
    try:
        name: str = enum.Name(value)
    except ValueError:
        raise InvalidArgument.for_field(field, f"{value} is not a known value") from None
    return name
