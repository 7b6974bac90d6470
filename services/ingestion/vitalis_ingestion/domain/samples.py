"""Samples: their natural key, validation, and the accounting of a write (new, duplicate, rejected)."""

from __future__ import annotations

import hashlib
import math
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final

from vitalis_ingestion.domain.metrics import HrvMethod, Metric, metric_by_number
from vitalis_runtime.errors import FieldViolation

MAX_INTERVAL: Final = timedelta(days=31)
MAX_FUTURE: Final = timedelta(hours=24)
MAX_OFFSET_SECONDS: Final = 18 * 3600
MAX_BATCH: Final = 10_000
MAX_METADATA_ENTRIES: Final = 20
EARLIEST_TIME: Final = datetime(1900, 1, 1, tzinfo=UTC)
_HRV_METHODS: Final = (HrvMethod.RMSSD, HrvMethod.SDNN)


@dataclass(slots=True)
class SampleDraft:
    """A sample as a writer sends it, before validation (value in ``unit``; ids are the short ids)."""

    source_id: str
    metric: int
    value: float
    start_time: datetime
    end_time: datetime | None = None
    unit: str = ""
    hrv_method: int = 0
    hrv_window_s: int = 0
    has_hrv: bool = False
    utc_offset_s: int | None = None
    device_id: str | None = None
    correlation_key: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class SampleRow:
    """A valid sample in canonical form, as stored."""

    source_id: str
    metric: int
    hrv_method: int
    hrv_window_s: int
    start_time: datetime
    end_time: datetime
    value: float
    utc_offset_s: int | None
    device_id: str | None
    correlation_key: str | None
    metadata: Mapping[str, str] | None
    sample_uid: str

    @property
    def sample_id(self) -> str:
        """The resource ID: it carries the metric, method and start time so a lookup finds one partition."""
        return sample_id(self.metric, self.hrv_method, self.start_time, self.sample_uid)


@dataclass(frozen=True)
class Rejection:
    """A well-formed record refused on its own: a stable reason, a sentence and where it was."""

    reason: str
    message: str
    location: str


def natural_key_uid(
    source_id: str, metric: int, *, hrv_method: int, hrv_window_s: int, start: datetime, end: datetime
) -> str:
    """A UUID (32 hex digits) derived from a sample's natural key, the same for every write of that sample."""
    start_micros = epoch_micros(start)
    end_micros = start_micros if end is start else epoch_micros(end)
    key = f"{source_id}\x00{metric}\x00{hrv_method}\x00{hrv_window_s}\x00{start_micros}\x00{end_micros}"
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def epoch_micros(moment: datetime) -> int:
    """Microseconds since 1970-01-01 UTC (exact for the times a sample may have, 1900 to tomorrow)."""
    return round(moment.timestamp() * 1_000_000)


def sample_id(metric: int, hrv_method: int, start: datetime, uid: str) -> str:
    """``{metric}-{method}-{start µs in hex}-{uid}``."""
    micros = epoch_micros(start)
    sign = "n" if micros < 0 else ""
    return f"{metric}-{hrv_method}-{sign}{abs(micros):x}-{uid}"


@dataclass(frozen=True)
class SampleIdParts:
    """What a sample ID says about the sample."""

    metric: int
    hrv_method: int
    start_time: datetime
    uid: str


def parse_sample_id(text: str) -> SampleIdParts | None:
    """The parts of a sample ID, or ``None`` when it is not one this service issued."""
    parts = text.split("-")
    if len(parts) != 4:
        return None
    metric, method, micros_text, uid_text = parts
    negative = micros_text.startswith("n")
    try:
        micros = int(micros_text.removeprefix("n"), 16) * (-1 if negative else 1)
        start = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)
        return SampleIdParts(int(metric), int(method), start, uuid.UUID(hex=uid_text).hex)
    except (ValueError, OverflowError):
        return None


def well_formed(draft: SampleDraft, metric: Metric | None) -> bool:
    """Whether ``draft`` (of ``metric``, its catalogue entry) keeps the contract.

    The same verdict as :func:`contract_violations` returning nothing, without naming problems.
    """
    end = draft.end_time
    start = draft.start_time
    unit = draft.unit
    offset = draft.utc_offset_s
    return (
        metric is not None
        and bool(draft.source_id)
        and (
            draft.has_hrv and draft.hrv_method in _HRV_METHODS and draft.hrv_window_s > 0
            if metric.requires_hrv
            else not draft.has_hrv
        )
        and (end is None or start <= end <= start + MAX_INTERVAL)
        and start >= EARLIEST_TIME
        and (not unit or unit == metric.canonical_unit or unit in metric.accepted_units)
        and (offset is None or -MAX_OFFSET_SECONDS <= offset <= MAX_OFFSET_SECONDS)
        and len(draft.correlation_key) <= 100
        and (not draft.metadata or not _metadata_violations(draft.metadata, ""))
    )


def contract_violations(draft: SampleDraft, where: str) -> list[FieldViolation]:
    """Ways ``draft`` breaks the contract (the whole batch then fails); empty when well-formed."""
    metric = metric_by_number(draft.metric)
    if well_formed(draft, metric):
        return []
    problems: list[FieldViolation] = []
    if not draft.source_id:
        problems.append(FieldViolation(f"{where}.source", "is required"))
    if metric is None:
        problems.append(FieldViolation(f"{where}.metric_type", "must name a metric type"))
        return problems
    if metric.requires_hrv:
        if not draft.has_hrv or draft.hrv_method not in (HrvMethod.RMSSD, HrvMethod.SDNN):
            problems.append(
                FieldViolation(f"{where}.hrv.method", "HRV samples must say whether they are RMSSD or SDNN")
            )
        if draft.hrv_window_s <= 0:
            problems.append(
                FieldViolation(f"{where}.hrv.window", "HRV samples must give the recording window, e.g. 300s")
            )
    elif draft.has_hrv:
        problems.append(FieldViolation(f"{where}.hrv", "is allowed only on heart-rate-variability samples"))
    problems += _time_and_unit_violations(draft, metric, where)
    problems += _metadata_violations(draft.metadata, f"{where}.metadata")
    return problems


def _time_and_unit_violations(draft: SampleDraft, metric: Metric, where: str) -> list[FieldViolation]:
    problems: list[FieldViolation] = []
    if draft.end_time is not None and draft.end_time < draft.start_time:
        problems.append(FieldViolation(f"{where}.end_time", "must not be before start_time"))
    elif draft.end_time is not None and draft.end_time - draft.start_time > MAX_INTERVAL:
        problems.append(FieldViolation(f"{where}.end_time", "a sample may span at most 31 days"))
    if draft.start_time < EARLIEST_TIME:
        problems.append(FieldViolation(f"{where}.start_time", "must be after 1900-01-01"))
    if metric.to_canonical(1.0, draft.unit) is None:
        accepted = ", ".join([metric.canonical_unit, *metric.accepted_units])
        problems.append(
            FieldViolation(
                f"{where}.unit", f"{draft.unit!r} is not accepted for {metric.slug}; use {accepted}"
            )
        )
    if draft.utc_offset_s is not None and abs(draft.utc_offset_s) > MAX_OFFSET_SECONDS:
        problems.append(FieldViolation(f"{where}.utc_offset", "must be between -18 and +18 hours"))
    if len(draft.correlation_key) > 100:
        problems.append(FieldViolation(f"{where}.correlation_key", "must be at most 100 characters"))
    return problems


def _metadata_violations(metadata: Mapping[str, str], where: str) -> list[FieldViolation]:
    if not metadata:
        return []
    if len(metadata) > MAX_METADATA_ENTRIES:
        return [FieldViolation(where, "may have at most 20 entries")]
    if any(len(key) > 100 or len(value) > 500 for key, value in metadata.items()):
        return [FieldViolation(where, "keys may have at most 100 and values at most 500 characters")]
    return []


def canonical_row(draft: SampleDraft, metric: Metric, *, now: datetime) -> SampleRow | Rejection:
    """The stored form of a well-formed draft, or why its value is refused on its own."""
    value = metric.to_canonical(draft.value, draft.unit)
    assert value is not None, "units are checked by contract_violations"
    if math.isnan(value) or not metric.plausible_min <= value <= metric.plausible_max:
        return Rejection(
            "VALUE_OUT_OF_RANGE",
            f"{draft.value:g} {draft.unit or metric.canonical_unit} is outside the plausible range of "
            f"{metric.slug} ({metric.plausible_min:g} to {metric.plausible_max:g} {metric.canonical_unit})",
            "",
        )
    start = draft.start_time
    if start > now + MAX_FUTURE:
        return Rejection("TIME_IN_FUTURE", f"{start.isoformat()} is more than 24 hours ahead", "")
    end = draft.end_time or start
    method, window = (draft.hrv_method, draft.hrv_window_s) if metric.requires_hrv else (0, 0)
    source_id = draft.source_id
    number = metric.number
    # Positional: this runs once per stored sample, and keyword construction costs twice as much.
    return SampleRow(
        source_id,
        number,
        method,
        window,
        start,
        end,
        value,
        draft.utc_offset_s,
        draft.device_id,
        draft.correlation_key or None,
        dict(draft.metadata) if draft.metadata else None,
        natural_key_uid(source_id, number, hrv_method=method, hrv_window_s=window, start=start, end=end),
    )


@dataclass
class WriteTally:
    """Counts of a write: every record received is new, duplicate or rejected (with a reason)."""

    received: int = 0
    new: int = 0
    duplicate: int = 0
    rejected: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    first: dict[str, Rejection] = field(default_factory=dict)

    def reject(self, rejection: Rejection, count: int = 1) -> None:
        """Count ``count`` refused records."""
        self.rejected += count
        self.reasons[rejection.reason] += count
        self.first.setdefault(rejection.reason, rejection)

    def stored(self, *, new: int, written: int) -> None:
        """Count ``written`` records of which ``new`` were stored for the first time."""
        self.new += new
        self.duplicate += written - new

    def add(self, other: WriteTally) -> None:
        """Add another tally's counts to this one (first rejections of this one win)."""
        self.received += other.received
        self.new += other.new
        self.duplicate += other.duplicate
        self.rejected += other.rejected
        self.reasons.update(other.reasons)
        for reason, rejection in other.first.items():
            self.first.setdefault(reason, rejection)

    def to_json(self) -> dict[str, object]:
        """A JSON-ready form (stored with import jobs)."""
        return {
            "received": self.received,
            "new": self.new,
            "duplicate": self.duplicate,
            "rejected": self.rejected,
            "rejections": [
                {
                    "reason": reason,
                    "count": count,
                    "message": self.first[reason].message,
                    "location": self.first[reason].location,
                }
                for reason, count in self.reasons.most_common()
            ],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> WriteTally:
        """The inverse of :meth:`to_json`."""
        tally = cls(
            received=_int(data.get("received")),
            new=_int(data.get("new")),
            duplicate=_int(data.get("duplicate")),
            rejected=_int(data.get("rejected")),
        )
        rejections = data.get("rejections")
        for entry in rejections if isinstance(rejections, list) else []:
            reason = str(entry["reason"])
            tally.reasons[reason] = int(entry["count"])
            tally.first[reason] = Rejection(reason, str(entry["message"]), str(entry["location"]))
        return tally


def _int(value: object) -> int:
    return int(value) if isinstance(value, int | float | str) else 0


def located(rejection: Rejection, location: str) -> Rejection:
    """The same rejection, found at ``location``."""
    return Rejection(rejection.reason, rejection.message, location)


def distinct_months(rows: Iterable[SampleRow]) -> list[datetime]:
    """The first instant (UTC) of every month the rows' start times fall in."""
    months = {(start.year, start.month) for start in (row.start_time.astimezone(UTC) for row in rows)}
    return [datetime(year, month, 1, tzinfo=UTC) for year, month in sorted(months)]
