"""SampleService against a real PostgreSQL: idempotent COPY writes, validation, raw reads and buckets."""

from __future__ import annotations

import asyncio
import math
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from google.type import interval_pb2

from vitalis.ingestion.v1 import metric_pb2, sample_pb2, sample_service_pb2, sample_service_pb2_grpc

pytestmark = pytest.mark.timeout(60)
HR = metric_pb2.METRIC_TYPE_HEART_RATE
STEPS = metric_pb2.METRIC_TYPE_STEPS
HRV = metric_pb2.METRIC_TYPE_HEART_RATE_VARIABILITY


def ts(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def sample(source: str, metric: int, value: float, start: datetime, **extra: Any) -> sample_pb2.Sample:
    message = sample_pb2.Sample(source=source, metric_type=metric, value=value, start_time=ts(start))  # type: ignore[arg-type]
    if "end" in extra:
        message.end_time.CopyFrom(ts(extra.pop("end")))
    if "offset" in extra:
        message.utc_offset.CopyFrom(Duration(seconds=extra.pop("offset")))
    if "hrv" in extra:
        method, window = extra.pop("hrv")
        message.hrv.method = method
        message.hrv.window.CopyFrom(Duration(seconds=window))
    for key, value_ in extra.items():
        setattr(message, key, value_)
    return message


def stub(service: Any) -> sample_service_pb2_grpc.SampleServiceStub:
    return sample_service_pb2_grpc.SampleServiceStub(service.channel)


def interval(start: datetime, end: datetime) -> interval_pb2.Interval:
    return interval_pb2.Interval(start_time=ts(start), end_time=ts(end))


async def test_replayed_batch_five_times_concurrently_is_stored_once(service: Any, make_source: Any) -> None:
    source = await make_source("watch")
    start = datetime(2024, 5, 1, 6, 0, tzinfo=UTC)
    batch = [sample(source, HR, 60 + i % 30, start + timedelta(minutes=i), offset=7200) for i in range(500)]
    request = sample_service_pb2.BatchCreateSamplesRequest(parent="users/me", samples=batch)

    replies = await asyncio.gather(
        *(stub(service).BatchCreateSamples(request, metadata=service.me) for _ in range(5))
    )

    assert sum(reply.counts.new_count for reply in replies) == 500
    assert all(reply.counts.received_count == 500 for reply in replies)
    assert all(reply.counts.new_count + reply.counts.duplicate_count == 500 for reply in replies)
    async with service.app.db.transaction(user_id=service.user_id) as conn:
        assert await conn.fetchval("SELECT count(*) FROM samples") == 500


async def test_samples_keep_their_utc_offset_and_canonical_unit(service: Any, make_source: Any) -> None:
    source = await make_source("scale")
    start = datetime(2024, 5, 31, 5, 12, tzinfo=UTC)
    weight = sample(source, metric_pb2.METRIC_TYPE_BODY_WEIGHT, 165.0, start, offset=-18000, unit="[lb_av]")
    await stub(service).BatchCreateSamples(
        sample_service_pb2.BatchCreateSamplesRequest(parent="users/me", samples=[weight]), metadata=service.me
    )
    listed = await stub(service).ListSamples(
        sample_service_pb2.ListSamplesRequest(
            parent="users/me", metric_type=metric_pb2.METRIC_TYPE_BODY_WEIGHT
        ),
        metadata=service.me,
    )
    [stored] = listed.samples
    assert stored.unit == "kg"
    assert stored.value == pytest.approx(165.0 * 0.45359237)
    assert stored.utc_offset.seconds == -18000
    assert stored.start_time.ToDatetime(tzinfo=UTC) == start
    got = await stub(service).GetSample(
        sample_service_pb2.GetSampleRequest(name=stored.name), metadata=service.me
    )
    assert got == stored


async def test_samples_keep_their_times_to_the_microsecond(service: Any, make_source: Any) -> None:
    source = await make_source("lab")
    times = [
        (
            datetime(1969, 7, 20, 20, 17, 40, 123456, tzinfo=UTC),
            datetime(1969, 7, 20, 20, 19, 0, 1, tzinfo=UTC),
        ),
        (datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=UTC), None),
    ]
    await stub(service).BatchCreateSamples(
        sample_service_pb2.BatchCreateSamplesRequest(
            parent="users/me",
            samples=[sample(source, HR, 70, start, **({"end": end} if end else {})) for start, end in times],
        ),
        metadata=service.me,
    )
    listed = await stub(service).ListSamples(
        sample_service_pb2.ListSamplesRequest(parent="users/me", metric_type=HR), metadata=service.me
    )
    stored = [
        (s.start_time.ToDatetime(tzinfo=UTC), s.end_time.ToDatetime(tzinfo=UTC)) for s in listed.samples
    ]
    assert stored == [(start, end or start) for start, end in times]
    for listed_sample in listed.samples:
        got = await stub(service).GetSample(
            sample_service_pb2.GetSampleRequest(name=listed_sample.name), metadata=service.me
        )
        assert got == listed_sample


async def test_hrv_without_method_fails_the_whole_batch(service: Any, make_source: Any) -> None:
    source = await make_source("ring")
    start = datetime(2024, 5, 1, tzinfo=UTC)
    good = sample(source, HRV, 45, start, hrv=(metric_pb2.HRV_METHOD_RMSSD, 300))
    bad = sample(source, HRV, 50, start + timedelta(hours=1))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub(service).BatchCreateSamples(
            sample_service_pb2.BatchCreateSamplesRequest(parent="users/me", samples=[good, bad]),
            metadata=service.me,
        )
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "samples[1].hrv.method" in (raised.value.details() or "")
    async with service.app.db.transaction(user_id=service.user_id) as conn:
        assert await conn.fetchval("SELECT count(*) FROM samples") == 0


async def test_rmssd_and_sdnn_are_separate_series(service: Any, make_source: Any) -> None:
    source = await make_source("ring")
    start = datetime(2024, 5, 1, tzinfo=UTC)
    batch = [
        sample(source, HRV, 45, start, hrv=(metric_pb2.HRV_METHOD_RMSSD, 300)),
        sample(source, HRV, 80, start, hrv=(metric_pb2.HRV_METHOD_SDNN, 300)),
    ]
    reply = await stub(service).BatchCreateSamples(
        sample_service_pb2.BatchCreateSamplesRequest(parent="users/me", samples=batch), metadata=service.me
    )
    assert reply.counts.new_count == 2
    rmssd = await stub(service).ListSamples(
        sample_service_pb2.ListSamplesRequest(
            parent="users/me",
            metric_type=HRV,
            hrv=metric_pb2.HrvParameters(method=metric_pb2.HRV_METHOD_RMSSD),
        ),
        metadata=service.me,
    )
    assert [s.value for s in rmssd.samples] == [45]
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub(service).ListSamples(
            sample_service_pb2.ListSamplesRequest(parent="users/me", metric_type=HRV), metadata=service.me
        )
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_implausible_values_are_rejected_with_reasons_and_the_rest_written(
    service: Any, make_source: Any
) -> None:
    source = await make_source("oximeter")
    start = datetime(2024, 5, 1, tzinfo=UTC)
    spo2 = metric_pb2.METRIC_TYPE_OXYGEN_SATURATION
    batch = [sample(source, spo2, 97, start), sample(source, spo2, 0.97, start + timedelta(minutes=1))]
    reply = await stub(service).BatchCreateSamples(
        sample_service_pb2.BatchCreateSamplesRequest(parent="users/me", samples=batch), metadata=service.me
    )
    assert (reply.counts.new_count, reply.counts.rejected_count) == (1, 1)
    [reason] = reply.counts.rejections
    assert (reason.reason, reason.first_location, reason.count) == ("VALUE_OUT_OF_RANGE", "samples[1]", 1)


async def test_unknown_source_is_not_found_and_another_users_source_is_invalid(
    service: Any, make_source: Any
) -> None:
    start = datetime(2024, 5, 1, tzinfo=UTC)
    missing = sample(f"{service.user}/sources/nope", HR, 60, start)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub(service).BatchCreateSamples(
            sample_service_pb2.BatchCreateSamplesRequest(parent="users/me", samples=[missing]),
            metadata=service.me,
        )
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    foreign = sample(f"users/{uuid.uuid4()}/sources/watch", HR, 60, start)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub(service).BatchCreateSamples(
            sample_service_pb2.BatchCreateSamplesRequest(parent="users/me", samples=[foreign]),
            metadata=service.me,
        )
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_another_user_cannot_read_or_write(service: Any, make_source: Any) -> None:
    source = await make_source("watch")
    await stub(service).BatchCreateSamples(
        sample_service_pb2.BatchCreateSamplesRequest(
            parent="users/me", samples=[sample(source, HR, 70, datetime(2024, 5, 1, tzinfo=UTC))]
        ),
        metadata=service.me,
    )
    listed = await stub(service).ListSamples(
        sample_service_pb2.ListSamplesRequest(parent="users/me", metric_type=HR), metadata=service.me
    )
    stranger = service.as_user(uuid.uuid4())
    for call in (
        stub(service).GetSample(
            sample_service_pb2.GetSampleRequest(name=listed.samples[0].name), metadata=stranger
        ),
        stub(service).ListSamples(
            sample_service_pb2.ListSamplesRequest(parent=service.user, metric_type=HR), metadata=stranger
        ),
        stub(service).DeleteSample(
            sample_service_pb2.DeleteSampleRequest(name=listed.samples[0].name), metadata=stranger
        ),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call
        assert raised.value.code() == grpc.StatusCode.NOT_FOUND


async def test_stream_commits_chunks_and_reports_totals(service: Any, make_source: Any) -> None:
    source = await make_source("strap")
    start = datetime(2024, 6, 30, 23, 0, tzinfo=UTC)

    def chunks() -> Any:
        for c in range(3):
            yield sample_service_pb2.StreamSamplesRequest(
                parent="users/me",
                samples=[
                    sample(source, HR, 100 + i, start + timedelta(minutes=c * 40 + i)) for i in range(40)
                ],
            )

    reply = await stub(service).StreamSamples(chunks(), metadata=service.me)
    assert (reply.chunk_count, reply.counts.received_count, reply.counts.new_count) == (3, 120, 120)
    again = await stub(service).StreamSamples(chunks(), metadata=service.me)
    assert (again.counts.new_count, again.counts.duplicate_count) == (0, 120)


async def test_list_pages_through_a_range_and_refuses_a_tampered_token(
    service: Any, make_source: Any
) -> None:
    source = await make_source("watch")
    start = datetime(2024, 5, 1, tzinfo=UTC)
    await stub(service).BatchCreateSamples(
        sample_service_pb2.BatchCreateSamplesRequest(
            parent="users/me",
            samples=[sample(source, HR, 50 + i, start + timedelta(minutes=i)) for i in range(25)],
        ),
        metadata=service.me,
    )
    seen: list[float] = []
    token = ""
    while True:
        page = await stub(service).ListSamples(
            sample_service_pb2.ListSamplesRequest(
                parent="users/me",
                metric_type=HR,
                interval=interval(start + timedelta(minutes=5), start + timedelta(minutes=20)),
                page_size=4,
                page_token=token,
            ),
            metadata=service.me,
        )
        seen += [s.value for s in page.samples]
        token = page.next_page_token
        if not token:
            break
    assert seen == [float(55 + i) for i in range(15)]
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub(service).ListSamples(
            sample_service_pb2.ListSamplesRequest(parent="users/me", metric_type=STEPS, page_token="x.y"),
            metadata=service.me,
        )
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_delete_lets_a_corrected_value_be_written(service: Any, make_source: Any) -> None:
    source = await make_source("watch")
    start = datetime(2024, 5, 1, tzinfo=UTC)
    request = sample_service_pb2.BatchCreateSamplesRequest(
        parent="users/me", samples=[sample(source, HR, 70, start)]
    )
    await stub(service).BatchCreateSamples(request, metadata=service.me)
    [stored] = (
        await stub(service).ListSamples(
            sample_service_pb2.ListSamplesRequest(parent="users/me", metric_type=HR), metadata=service.me
        )
    ).samples
    await stub(service).DeleteSample(
        sample_service_pb2.DeleteSampleRequest(name=stored.name), metadata=service.me
    )
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub(service).GetSample(
            sample_service_pb2.GetSampleRequest(name=stored.name), metadata=service.me
        )
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    corrected = sample_service_pb2.BatchCreateSamplesRequest(
        parent="users/me", samples=[sample(source, HR, 72, start)]
    )
    assert (await stub(service).BatchCreateSamples(corrected, metadata=service.me)).counts.new_count == 1
    again = await stub(service).GetSample(
        sample_service_pb2.GetSampleRequest(name=stored.name), metadata=service.me
    )
    assert again.value == 72


def expected_buckets(
    values: list[tuple[datetime, datetime, float]], *, width: str, zone: str, cumulative: bool
) -> list[tuple[datetime, int, float, float, float, float]]:
    """Buckets computed in Python with zoneinfo, independently of the SQL."""
    tz = ZoneInfo(zone)

    def bucket_start(moment: datetime) -> datetime:
        local = moment.astimezone(tz)
        if width == "minute":
            local = local.replace(second=0, microsecond=0)
        elif width == "hour":
            local = local.replace(minute=0, second=0, microsecond=0)
        else:
            local = local.replace(hour=0, minute=0, second=0, microsecond=0)
            if width == "week":
                local -= timedelta(days=local.weekday())
        return local.replace(tzinfo=None)

    def next_start(local: datetime) -> datetime:
        steps = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1), "day": timedelta(days=1)}
        return local + steps.get(width, timedelta(weeks=1))

    parts: dict[datetime, list[float]] = defaultdict(list)
    for start, end, value in values:
        local = bucket_start(start)
        if not cumulative or end == start:
            parts[local.replace(tzinfo=tz).astimezone(UTC)].append(value)
            continue
        while True:
            b_start = local.replace(tzinfo=tz).astimezone(UTC)
            b_end = next_start(local).replace(tzinfo=tz).astimezone(UTC)
            overlap = (min(end, b_end) - max(start, b_start)).total_seconds()
            if overlap <= 0:
                break
            parts[b_start].append(value * overlap / (end - start).total_seconds())
            local = next_start(local)
    return [
        (start, len(items), min(items), sum(items) / len(items), max(items), sum(items))
        for start, items in sorted(parts.items())
    ]


@pytest.mark.parametrize(
    ("width", "zone"),
    [("minute", "UTC"), ("hour", "Asia/Kolkata"), ("day", "America/New_York"), ("week", "Europe/Paris")],
)
async def test_buckets_match_values_computed_independently(
    service: Any, make_source: Any, width: str, zone: str
) -> None:
    source = await make_source("tracker")
    # Across the March daylight-saving change in New York and Paris.
    base = datetime(2024, 3, 5, tzinfo=UTC)
    values = []
    batch = []
    for i in range(400):
        start = base + timedelta(minutes=97 * i)
        end = start + timedelta(minutes=45 + i % 50)
        value = float((i * 37) % 500)
        values.append((start, end, value))
        batch.append(sample(source, STEPS, value, start, end=end))
    await stub(service).BatchCreateSamples(
        sample_service_pb2.BatchCreateSamplesRequest(parent="users/me", samples=batch), metadata=service.me
    )
    heart = [(base + timedelta(minutes=61 * i), float(50 + (i * 13) % 90)) for i in range(300)]
    await stub(service).BatchCreateSamples(
        sample_service_pb2.BatchCreateSamplesRequest(
            parent="users/me", samples=[sample(source, HR, v, t) for t, v in heart]
        ),
        metadata=service.me,
    )
    proto_width = {
        "minute": sample_pb2.BUCKET_WIDTH_MINUTE,
        "hour": sample_pb2.BUCKET_WIDTH_HOUR,
        "day": sample_pb2.BUCKET_WIDTH_DAY,
        "week": sample_pb2.BUCKET_WIDTH_WEEK,
    }[width]
    query_end = base + timedelta(days=40)
    for metric, data, cumulative in ((STEPS, values, True), (HR, [(t, t, v) for t, v in heart], False)):
        buckets: list[sample_pb2.SampleBucket] = []
        token = ""
        while True:
            page = await stub(service).QuerySampleBuckets(
                sample_service_pb2.QuerySampleBucketsRequest(
                    parent="users/me",
                    metric_type=metric,
                    interval=interval(base, query_end),  # type: ignore[arg-type]
                    width=proto_width,
                    time_zone=zone,
                    page_size=50 if width != "minute" else 10_000,
                    page_token=token,
                ),
                metadata=service.me,
            )
            buckets += page.buckets
            token = page.next_page_token
            if not token:
                break
        expected = [
            e
            for e in expected_buckets(data, width=width, zone=zone, cumulative=cumulative)
            if e[0] < query_end
        ]
        got = [(b.start_time.ToDatetime(tzinfo=UTC), b.count, b.min, b.avg, b.max, b.sum) for b in buckets]
        assert len(got) == len(expected)
        for g, e in zip(got, expected, strict=True):
            assert g[0] == e[0]
            assert g[1] == e[1]
            assert all(
                math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9) for a, b in zip(g[2:], e[2:], strict=True)
            )


async def test_source_priority_drops_overlapping_samples_of_less_trusted_sources(
    service: Any, make_source: Any
) -> None:
    from vitalis.ingestion.v1 import source_pb2, source_service_pb2, source_service_pb2_grpc

    watch = await make_source("watch")
    phone = await make_source("phone")
    start = datetime(2024, 5, 1, 8, tzinfo=UTC)
    batch = [
        sample(watch, STEPS, 100, start, end=start + timedelta(minutes=10)),
        sample(phone, STEPS, 90, start + timedelta(minutes=2), end=start + timedelta(minutes=12)),
        sample(phone, STEPS, 40, start + timedelta(hours=2), end=start + timedelta(hours=2, minutes=5)),
    ]
    await stub(service).BatchCreateSamples(
        sample_service_pb2.BatchCreateSamplesRequest(parent="users/me", samples=batch), metadata=service.me
    )
    await source_service_pb2_grpc.SourceServiceStub(service.channel).UpdateSourcePriority(
        source_service_pb2.UpdateSourcePriorityRequest(
            source_priority=source_pb2.SourcePriority(
                name="users/me/sourcePriority", default_order=[watch, phone]
            )
        ),
        metadata=service.me,
    )
    request = sample_service_pb2.QuerySampleBucketsRequest(
        parent="users/me",
        metric_type=STEPS,
        interval=interval(start - timedelta(hours=8), start + timedelta(hours=8)),
        width=sample_pb2.BUCKET_WIDTH_DAY,
        time_zone="UTC",
    )
    everything = await stub(service).QuerySampleBuckets(request, metadata=service.me)
    request.apply_source_priority = True
    trusted = await stub(service).QuerySampleBuckets(request, metadata=service.me)
    assert [b.sum for b in everything.buckets] == [230]
    assert [b.sum for b in trusted.buckets] == [140]
    request.apply_source_priority = False
    request.sources.append(phone)
    only_phone = await stub(service).QuerySampleBuckets(request, metadata=service.me)
    assert [b.sum for b in only_phone.buckets] == [130]
    listed = await stub(service).ListSamples(
        sample_service_pb2.ListSamplesRequest(parent="users/me", metric_type=STEPS, sources=[watch]),
        metadata=service.me,
    )
    assert [s.value for s in listed.samples] == [100]


async def test_bucket_queries_validate_their_arguments(service: Any) -> None:
    start = datetime(2024, 5, 1, tzinfo=UTC)
    cases = [
        sample_service_pb2.QuerySampleBucketsRequest(
            parent="users/me", metric_type=HR, interval=interval(start, start + timedelta(days=1))
        ),
        sample_service_pb2.QuerySampleBucketsRequest(
            parent="users/me",
            metric_type=HR,
            width=sample_pb2.BUCKET_WIDTH_HOUR,
            interval=interval(start, start + timedelta(days=1)),
            time_zone="Mars/Olympus",
        ),
        sample_service_pb2.QuerySampleBucketsRequest(
            parent="users/me",
            metric_type=HR,
            width=sample_pb2.BUCKET_WIDTH_MINUTE,
            interval=interval(start, start + timedelta(days=400)),
        ),
        sample_service_pb2.QuerySampleBucketsRequest(
            parent="users/me",
            metric_type=HR,
            width=sample_pb2.BUCKET_WIDTH_HOUR,
            interval=interval(start, start + timedelta(days=1)),
            page_size=-1,
        ),
    ]
    for request in cases:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub(service).QuerySampleBuckets(request, metadata=service.me)
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_partitions_created_on_demand_keep_row_level_security(
    service: Any, make_source: Any, admin_database_url: str, app_role: str
) -> None:
    from vitalis_runtime.migrations import assert_rls_posture

    source = await make_source("watch")
    months = [
        datetime(2019, 1, 15, tzinfo=UTC),
        datetime(2024, 2, 29, tzinfo=UTC),
        datetime(2031, 12, 31, tzinfo=UTC),
    ]
    await stub(service).BatchCreateSamples(
        sample_service_pb2.BatchCreateSamplesRequest(
            parent="users/me", samples=[sample(source, HR, 60, moment) for moment in months]
        ),
        metadata=service.me,
    )
    async with service.app.db.transaction(user_id=None) as conn:
        partitions = await conn.fetch(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'samples'::regclass ORDER BY 1"
        )
        # Without a user, row-level security shows nothing, even through a partition.
        assert await conn.fetchval("SELECT count(*) FROM samples_2019_01") == 0
    assert [row["relname"] for row in partitions] == ["samples_2019_01", "samples_2024_02"]
    assert await assert_rls_posture(admin_database_url, schema="ingestion", app_role=app_role) == []
