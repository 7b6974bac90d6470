"""vitalis.ingestion.v1.DailySummaryService."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta

import grpc

from vitalis.ingestion.v1 import daily_summary_pb2, daily_summary_service_pb2, daily_summary_service_pb2_grpc
from vitalis_ingestion.api.access import Access, parse_parent, parse_singleton
from vitalis_ingestion.api.convert import duration, from_proto_date, proto_date, request_key, timestamp
from vitalis_ingestion.domain.metrics import METRICS, metric_by_number
from vitalis_ingestion.domain.summaries import DaySummary, merged, per_source
from vitalis_ingestion.domain.time_zones import TimeZoneLookup
from vitalis_ingestion.store.records import RecordStore
from vitalis_ingestion.store.sources import SourceStore
from vitalis_ingestion.store.summaries import SummaryStore
from vitalis_runtime.db import Database
from vitalis_runtime.errors import InvalidArgument, NotFound
from vitalis_runtime.pagination import PageTokens, resolve_page_size

Context = grpc.aio.ServicerContext[object, object]
CUMULATIVE = [metric.number for metric in METRICS if metric.cumulative]
WINDOW_DAYS = 31


def summary_to_proto(summary: DaySummary, user_id: uuid.UUID) -> daily_summary_pb2.DailySummary:
    """A DailySummary message."""
    user = f"users/{user_id}"
    prefix = f"{user}/sources/{summary.source_id}" if summary.source_id else user
    message = daily_summary_pb2.DailySummary(
        name=f"{prefix}/dailySummaries/{summary.day.isoformat()}",
        date=proto_date(summary.day),
        source=f"{user}/sources/{summary.source_id}" if summary.source_id else "",
        etag=summary.fingerprint(),
    )
    for aggregate in summary.metrics:
        metric = metric_by_number(aggregate.metric)
        entry = message.metrics.add(
            metric_type=aggregate.metric,
            unit=metric.canonical_unit if metric else "",
            count=aggregate.count,
            min=aggregate.min,
            avg=aggregate.avg,
            max=aggregate.max,
            sum=aggregate.sum,
            source=f"{user}/sources/{aggregate.source_id}",
        )
        if aggregate.hrv_method:
            entry.hrv.method = aggregate.hrv_method  # type: ignore[assignment]
            entry.hrv.window.CopyFrom(duration(aggregate.hrv_window_s))
    if summary.sleep is not None:
        sleep = summary.sleep
        message.sleep.CopyFrom(
            daily_summary_pb2.DailySleep(
                session_count=sleep.sessions,
                in_bed_duration=duration(sleep.in_bed),
                asleep_duration=duration(sleep.asleep),
                awake_duration=duration(sleep.stages.get("SLEEP_STAGE_TYPE_AWAKE", 0.0)),
                light_duration=duration(sleep.stages.get("SLEEP_STAGE_TYPE_LIGHT", 0.0)),
                deep_duration=duration(sleep.stages.get("SLEEP_STAGE_TYPE_DEEP", 0.0)),
                rem_duration=duration(sleep.stages.get("SLEEP_STAGE_TYPE_REM", 0.0)),
                source=f"{user}/sources/{sleep.source_id}",
            )
        )
    if summary.workouts or summary.strength_sessions:
        message.activity.CopyFrom(
            daily_summary_pb2.DailyActivity(
                workout_count=summary.workouts,
                workout_duration=duration(summary.workout_seconds),
                strength_session_count=summary.strength_sessions,
            )
        )
    if summary.update_time is not None:
        message.update_time.CopyFrom(timestamp(summary.update_time))
    return message


def _parse_summary_parent(parent: str, field: str) -> tuple[uuid.UUID, str | None, bool]:
    """``users/{u}`` (merged), ``users/{u}/sources/{s}`` (one source) or ``users/{u}/sources/-`` (all)."""
    parts = parent.split("/")
    if len(parts) == 2:
        return parse_parent(parent, field=field), None, False
    if len(parts) == 4 and parts[0] == "users" and parts[2] == "sources" and parts[3]:
        user_id = parse_parent("/".join(parts[:2]), field=field)
        return (user_id, None, True) if parts[3] == "-" else (user_id, parts[3], True)
    raise InvalidArgument.for_field(
        field, f"{parent!r} is not users/{{user}} or users/{{user}}/sources/{{source}}"
    )


class DailySummaryServicer(daily_summary_service_pb2_grpc.DailySummaryServiceServicer):
    """Daily summaries computed from samples, sleep, workouts and strength sessions."""

    def __init__(
        self,
        *,
        db: Database,
        summaries: SummaryStore,
        records: RecordStore,
        sources: SourceStore,
        access: Access,
        tokens: PageTokens,
        time_zones: TimeZoneLookup,
    ) -> None:
        self._db = db
        self._summaries = summaries
        self._records = records
        self._sources = sources
        self._access = access
        self._tokens = tokens
        self._time_zones = time_zones

    async def _compute(
        self, user_id: uuid.UUID, first: date, last: date, *, source_id: str | None, by_source: bool
    ) -> list[DaySummary]:
        zone = await self._time_zones.time_zone_of(user_id)
        window = (
            datetime.combine(first - timedelta(days=32), time(), UTC),
            datetime.combine(last + timedelta(days=2), time(), UTC),
        )
        async with self._db.transaction(user_id=user_id, readonly=True) as conn:
            aggregates = await self._summaries.day_aggregates(
                conn,
                user_id,
                first_day=first,
                last_day=last,
                window=window,
                time_zone=zone,
                cumulative_metrics=CUMULATIVE,
                source_id=source_id,
            )
            records = [
                r
                for r in await self._records.on_days(conn, user_id, first, last)
                if source_id is None or r.source_id == source_id
            ]
            priority = await self._sources.get_priority(conn, user_id)
        days = per_source(aggregates, records)
        if by_source:
            return [summary for _, summary in sorted(days.items()) if not summary.empty]
        return [summary for _, summary in sorted(merged(days, priority).items()) if not summary.empty]

    async def GetDailySummary(
        self, request: daily_summary_service_pb2.GetDailySummaryRequest, context: Context
    ) -> daily_summary_pb2.DailySummary:
        """One day, merged or of one source."""
        parent, _, day_text = request.name.rpartition("/dailySummaries/")
        user_id, source_id, by_source = _parse_summary_parent(parent, "name")
        if by_source and source_id is None:
            raise InvalidArgument.for_field("name", "name one source, not sources/-")
        try:
            day = date.fromisoformat(day_text)
        except ValueError:
            raise InvalidArgument.for_field(
                "name", f"{day_text!r} is not an ISO 8601 date such as 2024-05-31"
            ) from None
        user_id = await self._access.readable(user_id)
        found = await self._compute(user_id, day, day, source_id=source_id, by_source=by_source)
        if not found:
            raise NotFound(f"there is no data for {request.name!r}", reason="DAILY_SUMMARY_NOT_FOUND")
        return summary_to_proto(found[0], user_id)

    async def ListDailySummaries(
        self, request: daily_summary_service_pb2.ListDailySummariesRequest, context: Context
    ) -> daily_summary_service_pb2.ListDailySummariesResponse:
        """Days in a range, oldest first by default, in windows of a month at a time."""
        user_id, source_id, by_source = _parse_summary_parent(request.parent, "parent")
        user_id = await self._access.readable(user_id)
        first = from_proto_date(request.start_date, "start_date")
        last = from_proto_date(request.end_date, "end_date")
        if first and last and last < first:
            raise InvalidArgument.for_field("end_date", "must not be before start_date")
        if request.order_by not in ("", "date", "date asc", "date desc"):
            raise InvalidArgument.for_field("order_by", "must be date or date desc")
        descending = request.order_by == "date desc"
        size = resolve_page_size(request.page_size, default=31, maximum=366)
        fingerprint = {"op": "ListDailySummaries", "user": str(user_id), "req": request_key(request)}
        cursor = self._tokens.decode(request.page_token, request=fingerprint)
        async with self._db.transaction(user_id=user_id, readonly=True) as conn:
            span = await self._summaries.data_span(conn, user_id)
        if span is None:
            return daily_summary_service_pb2.ListDailySummariesResponse()
        low = max(first or date.min, span[0].date() - timedelta(days=1))
        high = min(last or date.max, span[1].date() + timedelta(days=1))
        if cursor:
            position = date.fromisoformat(cursor["d"])
            low, high = (
                (low, position - timedelta(days=1)) if descending else (position + timedelta(days=1), high)
            )
        page: list[DaySummary] = []
        while low <= high and len(page) <= size:
            if descending:
                window_low, window_high = max(low, high - timedelta(days=WINDOW_DAYS - 1)), high
                high = window_low - timedelta(days=1)
            else:
                window_low, window_high = low, min(high, low + timedelta(days=WINDOW_DAYS - 1))
                low = window_high + timedelta(days=1)
            found = await self._compute(
                user_id, window_low, window_high, source_id=source_id, by_source=by_source
            )
            page += reversed(found) if descending else found
        # A page ends at a day boundary so the cursor (a date) never splits one day's sources.
        token = ""
        if len(page) > size:
            cut = page[size - 1].day
            page = [s for s in page if (s.day >= cut if descending else s.day <= cut)]
            token = self._tokens.encode({"d": cut.isoformat()}, request=fingerprint)
        return daily_summary_service_pb2.ListDailySummariesResponse(
            daily_summaries=[summary_to_proto(summary, user_id) for summary in page], next_page_token=token
        )

    async def GetDayAttributionPolicy(
        self, request: daily_summary_service_pb2.GetDayAttributionPolicyRequest, context: Context
    ) -> daily_summary_pb2.DayAttributionPolicy:
        """The fixed rules: calendar day for samples and activity, sleep day for sleep."""
        user_id = await self._access.readable(parse_singleton(request.name, "dayAttributionPolicy"))
        return daily_summary_pb2.DayAttributionPolicy(
            name=f"users/{user_id}/dayAttributionPolicy",
            samples=daily_summary_pb2.DAY_ATTRIBUTION_CALENDAR_DAY,
            sleep_sessions=daily_summary_pb2.DAY_ATTRIBUTION_SLEEP_DAY,
            time_zone=await self._time_zones.time_zone_of(user_id),
        )
