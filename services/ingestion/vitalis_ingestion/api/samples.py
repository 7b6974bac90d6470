"""vitalis.ingestion.v1.SampleService."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import grpc
from google.protobuf import empty_pb2
from google.protobuf.timestamp_pb2 import Timestamp

from vitalis.ingestion.v1 import metric_pb2, sample_pb2, sample_service_pb2, sample_service_pb2_grpc
from vitalis_ingestion.api.access import Access, parse_name, parse_parent, short_device_id, short_source_id
from vitalis_ingestion.api.convert import (
    counts_to_proto,
    duration,
    interval_bounds,
    request_key,
    timestamp,
)
from vitalis_ingestion.domain.metrics import metric_by_number
from vitalis_ingestion.domain.samples import MAX_BATCH, SampleDraft, WriteTally, parse_sample_id
from vitalis_ingestion.domain.time_zones import TimeZoneLookup
from vitalis_ingestion.events import sample_deleted
from vitalis_ingestion.store.samples import SampleStore, SeriesFilter, StoredSample
from vitalis_ingestion.store.sources import SourceStore
from vitalis_ingestion.writing import SampleWriter
from vitalis_runtime.db import Database
from vitalis_runtime.errors import InvalidArgument, NotFound, ResourceExhausted
from vitalis_runtime.pagination import PageTokens, resolve_page_size

Context = grpc.aio.ServicerContext[object, object]
MAX_BUCKETS = 100_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NO_METADATA: Mapping[str, str] = MappingProxyType({})
_WIDTHS = {
    sample_pb2.BUCKET_WIDTH_MINUTE: ("minute", timedelta(minutes=1)),
    sample_pb2.BUCKET_WIDTH_HOUR: ("hour", timedelta(hours=1)),
    sample_pb2.BUCKET_WIDTH_DAY: ("day", timedelta(days=1)),
    sample_pb2.BUCKET_WIDTH_WEEK: ("week", timedelta(weeks=1)),
}


def _instant(stamp: Timestamp) -> datetime:
    return EPOCH + timedelta(0, stamp.seconds, stamp.nanos // 1000)


def _at(where: str, index: int | None) -> str:
    return where if index is None else f"{where}[{index}]"


def draft_from_proto(
    message: sample_pb2.Sample,
    user_id: uuid.UUID,
    where: str,
    names: dict[str, str] | None = None,
    index: int | None = None,
) -> SampleDraft:
    """A SampleDraft from a Sample message (names shortened to IDs of ``user_id``).

    ``where`` locates the message in errors, ``{where}[{index}]`` when an index is given (the
    location is only written out for an error). ``names`` caches the IDs of source and device
    names already checked in the same batch.
    """
    names = {} if names is None else names
    source = message.source
    source_id = names.get(source) if source else ""
    if source_id is None:
        source_id = names[source] = short_source_id(source, user_id, field=f"{_at(where, index)}.source")
    if not message.HasField("start_time"):
        raise InvalidArgument.for_field(f"{_at(where, index)}.start_time", "is required")
    device_id = None
    device = message.device
    if device:
        device_id = names.get(device)
        if device_id is None:
            device_id = names[device] = short_device_id(device, user_id, field=f"{_at(where, index)}.device")
    start_stamp = message.start_time
    start = _instant(start_stamp)
    end = None
    if message.HasField("end_time"):
        end_stamp = message.end_time
        # An instant sample repeats its start: one datetime serves both (and its key hashes faster).
        same = (
            end_stamp.seconds == start_stamp.seconds and end_stamp.nanos // 1000 == start_stamp.nanos // 1000
        )
        end = start if same else _instant(end_stamp)
    has_hrv = message.HasField("hrv")
    metadata = message.metadata
    # Positional: this runs once per sample written, and keyword construction costs twice as much.
    return SampleDraft(
        source_id,
        message.metric_type,
        message.value,
        start,
        end,
        message.unit,
        message.hrv.method if has_hrv else 0,
        message.hrv.window.seconds if has_hrv else 0,
        has_hrv,
        message.utc_offset.seconds if message.HasField("utc_offset") else None,
        device_id,
        message.correlation_key,
        dict(metadata) if metadata else _NO_METADATA,
    )


def sample_to_proto(stored: StoredSample, user_id: uuid.UUID) -> sample_pb2.Sample:
    """A Sample message in canonical units."""
    row = stored.row
    metric = metric_by_number(row.metric)
    user = f"users/{user_id}"
    message = sample_pb2.Sample(
        name=f"{user}/samples/{row.sample_id}",
        source=f"{user}/sources/{row.source_id}",
        device=f"{user}/devices/{row.device_id}" if row.device_id else "",
        metric_type=row.metric,  # type: ignore[arg-type]
        value=row.value,
        unit=metric.canonical_unit if metric else "",
        start_time=timestamp(row.start_time),
        end_time=timestamp(row.end_time),
        correlation_key=row.correlation_key or "",
        metadata=dict(row.metadata or {}),
        import_job=f"{user}/importJobs/{stored.import_job_id}" if stored.import_job_id else "",
        create_time=timestamp(stored.create_time),
    )
    if row.hrv_method:
        message.hrv.method = row.hrv_method  # type: ignore[assignment]
        message.hrv.window.CopyFrom(duration(row.hrv_window_s))
    if row.utc_offset_s is not None:
        message.utc_offset.CopyFrom(duration(row.utc_offset_s))
    return message


def series_filter(
    metric_type: int,
    hrv: metric_pb2.HrvParameters,
    *,
    has_hrv: bool,
    start: datetime | None,
    end: datetime | None,
    sources: list[str],
    user_id: uuid.UUID,
) -> SeriesFilter:
    """The series a read covers; INVALID_ARGUMENT for a missing metric or an HRV read without method."""
    metric = metric_by_number(metric_type)
    if metric is None:
        raise InvalidArgument.for_field("metric_type", "is required")
    method, window = 0, None
    if metric.requires_hrv:
        if not has_hrv or hrv.method not in (metric_pb2.HRV_METHOD_RMSSD, metric_pb2.HRV_METHOD_SDNN):
            raise InvalidArgument.for_field(
                "hrv.method", "HRV reads must name RMSSD or SDNN; the two are never mixed"
            )
        method = hrv.method
        window = hrv.window.seconds if hrv.HasField("window") and hrv.window.seconds else None
    source_ids = [short_source_id(name, user_id, field=f"sources[{i}]") for i, name in enumerate(sources)]
    return SeriesFilter(metric.number, method, window, start, end, source_ids)


class SampleServicer(sample_service_pb2_grpc.SampleServiceServicer):
    """Writes and reads time-series samples."""

    def __init__(
        self,
        *,
        db: Database,
        store: SampleStore,
        writer: SampleWriter,
        access: Access,
        tokens: PageTokens,
        time_zones: TimeZoneLookup,
        sources: SourceStore,
    ) -> None:
        self._db = db
        self._store = store
        self._writer = writer
        self._access = access
        self._tokens = tokens
        self._time_zones = time_zones
        self._sources = sources

    async def BatchCreateSamples(
        self, request: sample_service_pb2.BatchCreateSamplesRequest, context: Context
    ) -> sample_service_pb2.BatchCreateSamplesResponse:
        """Write up to 10,000 samples."""
        user_id = Access.owned(parse_parent(request.parent))
        if len(request.samples) > MAX_BATCH:
            raise ResourceExhausted(
                f"a batch may carry at most {MAX_BATCH} samples; split it", reason="BATCH_TOO_LARGE"
            )
        names: dict[str, str] = {}
        drafts = [
            draft_from_proto(sample, user_id, "samples", names, i) for i, sample in enumerate(request.samples)
        ]
        tally = await self._writer.write(user_id, drafts, where="samples", strict=True)
        return sample_service_pb2.BatchCreateSamplesResponse(counts=counts_to_proto(tally))

    async def StreamSamples(
        self, request_iterator: AsyncIterator[sample_service_pb2.StreamSamplesRequest], context: Context
    ) -> sample_service_pb2.StreamSamplesResponse:
        """Write chunks as they arrive; report totals when the client closes the stream."""
        tally = WriteTally()
        names: dict[str, str] = {}
        parent: str | None = None
        chunks = 0
        async for chunk in request_iterator:
            if parent is None:
                parent = chunk.parent
            elif chunk.parent != parent:
                raise InvalidArgument.for_field(
                    f"chunks[{chunks}].parent", "every chunk must name the same parent"
                )
            user_id = Access.owned(parse_parent(chunk.parent))
            if len(chunk.samples) > MAX_BATCH:
                raise ResourceExhausted(
                    f"a chunk may carry at most {MAX_BATCH} samples", reason="BATCH_TOO_LARGE"
                )
            where = f"chunks[{chunks}].samples"
            drafts = [
                draft_from_proto(sample, user_id, where, names, i) for i, sample in enumerate(chunk.samples)
            ]
            await self._writer.write(user_id, drafts, where=where, strict=True, tally=tally)
            chunks += 1
        return sample_service_pb2.StreamSamplesResponse(counts=counts_to_proto(tally), chunk_count=chunks)

    async def GetSample(
        self, request: sample_service_pb2.GetSampleRequest, context: Context
    ) -> sample_pb2.Sample:
        """One sample by name."""
        parsed = parse_name(request.name, "samples")
        user_id = await self._access.readable(parsed.user_id)
        parts = parse_sample_id(parsed.resource_id)
        stored = None
        if parts is not None:
            async with self._db.transaction(user_id=user_id, readonly=True) as conn:
                stored = await self._store.get(conn, user_id, parts)
        if stored is None:
            raise NotFound(f"sample {request.name!r} does not exist", reason="SAMPLE_NOT_FOUND")
        return sample_to_proto(stored, user_id)

    async def ListSamples(
        self, request: sample_service_pb2.ListSamplesRequest, context: Context
    ) -> sample_service_pb2.ListSamplesResponse:
        """Raw samples of one series in a range, paginated."""
        user_id = await self._access.readable(parse_parent(request.parent))
        start, end = interval_bounds(request.interval)
        series = series_filter(
            request.metric_type,
            request.hrv,
            has_hrv=request.HasField("hrv"),
            start=start,
            end=end,
            sources=list(request.sources),
            user_id=user_id,
        )
        if request.order_by not in ("", "start_time", "start_time asc", "start_time desc"):
            raise InvalidArgument.for_field("order_by", "must be start_time or start_time desc")
        descending = request.order_by == "start_time desc"
        size = resolve_page_size(request.page_size, default=1000, maximum=10_000)
        fingerprint = {"op": "ListSamples", "user": str(user_id), "req": request_key(request)}
        cursor = self._tokens.decode(request.page_token, request=fingerprint)
        after = (datetime.fromisoformat(cursor["t"]), str(cursor["u"])) if cursor else None
        async with self._db.transaction(user_id=user_id, readonly=True) as conn:
            found = await self._store.find(
                conn, user_id, series, descending=descending, after=after, limit=size + 1
            )
        page, more = found[:size], len(found) > size
        token = ""
        if more:
            last = page[-1].row
            token = self._tokens.encode(
                {"t": last.start_time.isoformat(), "u": str(last.sample_uid)}, request=fingerprint
            )
        return sample_service_pb2.ListSamplesResponse(
            samples=[sample_to_proto(item, user_id) for item in page], next_page_token=token
        )

    async def QuerySampleBuckets(
        self, request: sample_service_pb2.QuerySampleBucketsRequest, context: Context
    ) -> sample_service_pb2.QuerySampleBucketsResponse:
        """Buckets with count, min, avg, max and sum computed in PostgreSQL."""
        user_id = await self._access.readable(parse_parent(request.parent))
        if request.width not in _WIDTHS:
            raise InvalidArgument.for_field("width", "is required: minute, hour, day or week")
        unit, width = _WIDTHS[request.width]
        start, end = interval_bounds(request.interval)
        if start is None or end is None:
            raise InvalidArgument.for_field("interval", "both start_time and end_time are required")
        series = series_filter(
            request.metric_type,
            request.hrv,
            has_hrv=request.HasField("hrv"),
            start=start,
            end=end,
            sources=list(request.sources),
            user_id=user_id,
        )
        if (end - start) / width > MAX_BUCKETS:
            raise InvalidArgument.for_field(
                "interval", f"would give more than {MAX_BUCKETS} buckets; use a wider width"
            )
        zone = request.time_zone or await self._time_zones.time_zone_of(user_id)
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise InvalidArgument.for_field("time_zone", f"{zone!r} is not an IANA time zone") from None
        size = resolve_page_size(request.page_size, default=1000, maximum=10_000)
        fingerprint = {
            "op": "QuerySampleBuckets",
            "user": str(user_id),
            "req": request_key(request),
            "tz": zone,
        }
        cursor = self._tokens.decode(request.page_token, request=fingerprint)
        after = datetime.fromisoformat(cursor["b"]) if cursor else None
        metric = metric_by_number(series.metric)
        assert metric is not None
        async with self._db.transaction(user_id=user_id, readonly=True) as conn:
            priority = (
                (await self._sources.get_priority(conn, user_id)).order_for(series.metric)
                if request.apply_source_priority
                else None
            )
            buckets = await self._store.buckets(
                conn,
                user_id,
                series,
                unit=unit,
                time_zone="UTC" if unit == "minute" else zone,
                cumulative=metric.cumulative,
                priority=priority,
                after=after,
                limit=size + 1,
            )
        page, more = buckets[:size], len(buckets) > size
        token = self._tokens.encode({"b": page[-1].start.isoformat()}, request=fingerprint) if more else ""
        return sample_service_pb2.QuerySampleBucketsResponse(
            buckets=[
                sample_pb2.SampleBucket(
                    start_time=timestamp(b.start),
                    end_time=timestamp(b.end),
                    count=b.count,
                    min=b.min,
                    avg=b.avg,
                    max=b.max,
                    sum=b.sum,
                )
                for b in page
            ],
            unit=metric.canonical_unit,
            time_zone=zone,
            next_page_token=token,
        )

    async def DeleteSample(
        self, request: sample_service_pb2.DeleteSampleRequest, context: Context
    ) -> empty_pb2.Empty:
        """Delete one sample so a corrected value can be written."""
        parsed = parse_name(request.name, "samples")
        user_id = Access.owned(parsed.user_id)
        parts = parse_sample_id(parsed.resource_id)
        deleted = None
        if parts is not None:
            async with self._db.transaction(user_id=user_id) as conn:
                deleted = await self._store.delete(conn, user_id, parts)
                if deleted is not None:
                    await sample_deleted(conn, user_id, deleted.row)
        if deleted is None:
            raise NotFound(f"sample {request.name!r} does not exist", reason="SAMPLE_NOT_FOUND")
        return empty_pb2.Empty()
