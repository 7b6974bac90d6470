"""Daily summaries with source priority, sources and devices, the metric catalogue, JSON imports,
user data export and erasure, and the events written to the outbox."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from google.protobuf import json_format
from google.protobuf.duration_pb2 import Duration
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.timestamp_pb2 import Timestamp
from google.type import date_pb2

from vitalis.ingestion.v1 import (
    daily_summary_pb2,
    daily_summary_service_pb2,
    daily_summary_service_pb2_grpc,
    events_pb2,
    import_job_pb2,
    metric_pb2,
    metric_service_pb2,
    metric_service_pb2_grpc,
    sample_pb2,
    sample_service_pb2,
    sample_service_pb2_grpc,
    sleep_service_pb2,
    sleep_service_pb2_grpc,
    sleep_session_pb2,
    source_pb2,
    source_service_pb2,
    source_service_pb2_grpc,
    user_data_service_pb2,
    user_data_service_pb2_grpc,
)

from .importing_helpers import import_file

pytestmark = pytest.mark.timeout(60)
STEPS = metric_pb2.METRIC_TYPE_STEPS
HR = metric_pb2.METRIC_TYPE_HEART_RATE


def ts(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def sample(
    source: str, metric: int, value: float, start: datetime, minutes: int = 0, offset: int = 0
) -> sample_pb2.Sample:
    message = sample_pb2.Sample(
        source=source,
        metric_type=metric,
        value=value,
        start_time=ts(start),
        utc_offset=Duration(seconds=offset),  # type: ignore[arg-type]
    )
    if minutes:
        message.end_time.CopyFrom(ts(start + timedelta(minutes=minutes)))
    return message


async def write(service: Any, samples: list[sample_pb2.Sample]) -> None:
    await sample_service_pb2_grpc.SampleServiceStub(service.channel).BatchCreateSamples(
        sample_service_pb2.BatchCreateSamplesRequest(parent="users/me", samples=samples), metadata=service.me
    )


async def test_daily_summaries_split_midnight_and_follow_source_priority(
    service: Any, make_source: Any
) -> None:
    watch, phone = await make_source("watch"), await make_source("phone")
    # Local clock UTC+02:00; a 60-minute step sample from 23:30 to 00:30 local is split 50/50.
    evening = datetime(2024, 5, 1, 21, 30, tzinfo=UTC)
    await write(
        service,
        [
            sample(watch, STEPS, 600, evening, minutes=60, offset=7200),
            sample(watch, HR, 60, evening, offset=7200),
            sample(watch, HR, 80, evening + timedelta(minutes=10), offset=7200),
            sample(phone, STEPS, 1000, evening - timedelta(hours=2), minutes=30, offset=7200),
        ],
    )
    stub = daily_summary_service_pb2_grpc.DailySummaryServiceStub(service.channel)
    watch_day = await stub.GetDailySummary(
        daily_summary_service_pb2.GetDailySummaryRequest(name=f"{watch}/dailySummaries/2024-05-01"),
        metadata=service.me,
    )
    by_metric = {m.metric_type: m for m in watch_day.metrics}
    assert by_metric[STEPS].sum == pytest.approx(300)
    assert (by_metric[HR].count, by_metric[HR].min, by_metric[HR].avg, by_metric[HR].max) == (2, 60, 70, 80)
    merged = await stub.GetDailySummary(
        daily_summary_service_pb2.GetDailySummaryRequest(name="users/me/dailySummaries/2024-05-01"),
        metadata=service.me,
    )
    # Without a priority the sources are ordered by ID: phone before watch.
    assert {m.metric_type: m.source for m in merged.metrics}[STEPS] == phone
    await source_service_pb2_grpc.SourceServiceStub(service.channel).UpdateSourcePriority(
        source_service_pb2.UpdateSourcePriorityRequest(
            source_priority=source_pb2.SourcePriority(
                name="users/me/sourcePriority",
                metric_orders=[source_pb2.MetricSourceOrder(metric_type=STEPS, sources=[watch, phone])],
            )
        ),
        metadata=service.me,
    )
    trusted = await stub.GetDailySummary(
        daily_summary_service_pb2.GetDailySummaryRequest(name="users/me/dailySummaries/2024-05-01"),
        metadata=service.me,
    )
    steps = {m.metric_type: m for m in trusted.metrics}[STEPS]
    assert (steps.source, steps.sum) == (watch, pytest.approx(300))
    assert trusted.etag != merged.etag
    listed = await stub.ListDailySummaries(
        daily_summary_service_pb2.ListDailySummariesRequest(parent="users/me", page_size=1),
        metadata=service.me,
    )
    assert [s.name.rsplit("/", 1)[-1] for s in listed.daily_summaries] == ["2024-05-01"]
    rest = await stub.ListDailySummaries(
        daily_summary_service_pb2.ListDailySummariesRequest(
            parent="users/me", page_size=1, page_token=listed.next_page_token
        ),
        metadata=service.me,
    )
    assert [s.name.rsplit("/", 1)[-1] for s in rest.daily_summaries] == ["2024-05-02"]
    every_source = await stub.ListDailySummaries(
        daily_summary_service_pb2.ListDailySummariesRequest(parent="users/me/sources/-"), metadata=service.me
    )
    assert len(every_source.daily_summaries) == 3
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.GetDailySummary(
            daily_summary_service_pb2.GetDailySummaryRequest(name="users/me/dailySummaries/2024-06-01"),
            metadata=service.me,
        )
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    policy = await stub.GetDayAttributionPolicy(
        daily_summary_service_pb2.GetDayAttributionPolicyRequest(name="users/me/dayAttributionPolicy"),
        metadata=service.me,
    )
    assert policy.sleep_sessions == daily_summary_pb2.DAY_ATTRIBUTION_SLEEP_DAY
    assert policy.samples == daily_summary_pb2.DAY_ATTRIBUTION_CALENDAR_DAY


async def test_a_long_cumulative_sample_counts_its_share_on_every_day_it_spans(
    service: Any, make_source: Any
) -> None:
    pedometer = await make_source("pedometer")
    # 2,000 steps over twenty UTC days: 100 a day, also on days long after the sample started.
    start = datetime(2024, 3, 1, tzinfo=UTC)
    await write(
        service,
        [
            sample(pedometer, STEPS, 2000, start, minutes=20 * 24 * 60),
            sample(pedometer, HR, 70, start + timedelta(days=14, hours=12)),
        ],
    )
    stub = daily_summary_service_pb2_grpc.DailySummaryServiceStub(service.channel)
    for day, heart_rates in (("2024-03-01", 0), ("2024-03-15", 1), ("2024-03-20", 0)):
        summary = await stub.GetDailySummary(
            daily_summary_service_pb2.GetDailySummaryRequest(name=f"{pedometer}/dailySummaries/{day}"),
            metadata=service.me,
        )
        by_metric = {m.metric_type: m for m in summary.metrics}
        assert by_metric[STEPS].sum == pytest.approx(100), day
        assert (by_metric[HR].count if HR in by_metric else 0) == heart_rates, day
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.GetDailySummary(
            daily_summary_service_pb2.GetDailySummaryRequest(name=f"{pedometer}/dailySummaries/2024-03-21"),
            metadata=service.me,
        )
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_batch_adds_to_each_source_only_the_metrics_written_to_it(
    service: Any, make_source: Any
) -> None:
    watch, scale = await make_source("watch"), await make_source("scale")
    moment = datetime(2024, 5, 1, tzinfo=UTC)
    await write(service, [sample(watch, HR, 60, moment), sample(scale, STEPS, 10, moment, minutes=1)])
    await write(service, [sample(watch, STEPS, 20, moment, minutes=1)])
    stub = source_service_pb2_grpc.SourceServiceStub(service.channel)
    got = {
        name: await stub.GetSource(source_service_pb2.GetSourceRequest(name=name), metadata=service.me)
        for name in (watch, scale)
    }
    assert sorted(got[watch].metric_types) == sorted([HR, STEPS])
    assert list(got[scale].metric_types) == [STEPS]
    assert got[watch].last_write_time.ToDatetime() >= got[scale].last_write_time.ToDatetime()


async def test_sleep_counts_towards_the_day_it_ends(service: Any, make_source: Any) -> None:
    ring = await make_source("ring")
    start = datetime(2024, 5, 1, 21, 0, tzinfo=UTC)
    await sleep_service_pb2_grpc.SleepServiceStub(service.channel).CreateSleepSession(
        sleep_service_pb2.CreateSleepSessionRequest(
            parent="users/me",
            sleep_session=sleep_session_pb2.SleepSession(
                source=ring,
                start_time=ts(start),
                end_time=ts(start + timedelta(hours=8)),
                utc_offset=Duration(seconds=7200),
                stages=[
                    sleep_session_pb2.SleepStage(
                        stage=sleep_session_pb2.SLEEP_STAGE_TYPE_DEEP,
                        start_time=ts(start),
                        end_time=ts(start + timedelta(hours=2)),
                    )
                ],
            ),
        ),
        metadata=service.me,
    )
    summary = await daily_summary_service_pb2_grpc.DailySummaryServiceStub(service.channel).GetDailySummary(
        daily_summary_service_pb2.GetDailySummaryRequest(name="users/me/dailySummaries/2024-05-02"),
        metadata=service.me,
    )
    assert summary.sleep.session_count == 1
    assert summary.sleep.deep_duration.seconds == 7200
    assert summary.sleep.in_bed_duration.seconds == 8 * 3600


async def test_sources_and_devices_standard_methods(service: Any) -> None:
    stub = source_service_pb2_grpc.SourceServiceStub(service.channel)
    device = await stub.CreateDevice(
        source_service_pb2.CreateDeviceRequest(
            parent="users/me",
            device_id="fenix",
            device=source_pb2.Device(
                display_name="Fenix 5", device_type=source_pb2.DEVICE_TYPE_WATCH, manufacturer="Garmin"
            ),
        ),
        metadata=service.me,
    )
    source = await stub.CreateSource(
        source_service_pb2.CreateSourceRequest(
            parent="users/me",
            source_id="garmin",
            request_id="abc",
            source=source_pb2.Source(
                display_name="Garmin", platform=source_pb2.SOURCE_PLATFORM_GARMIN, devices=[device.name]
            ),
        ),
        metadata=service.me,
    )
    retried = await stub.CreateSource(
        source_service_pb2.CreateSourceRequest(
            parent="users/me",
            source_id="garmin",
            request_id="abc",
            source=source_pb2.Source(display_name="Garmin", platform=source_pb2.SOURCE_PLATFORM_GARMIN),
        ),
        metadata=service.me,
    )
    assert retried == source
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.CreateSource(
            source_service_pb2.CreateSourceRequest(
                parent="users/me",
                source_id="garmin",
                source=source_pb2.Source(display_name="Again", platform=source_pb2.SOURCE_PLATFORM_GARMIN),
            ),
            metadata=service.me,
        )
    assert raised.value.code() == grpc.StatusCode.ALREADY_EXISTS
    renamed = await stub.UpdateSource(
        source_service_pb2.UpdateSourceRequest(
            source=source_pb2.Source(name=source.name, display_name="My Garmin", etag=source.etag),
            update_mask=FieldMask(paths=["display_name"]),
        ),
        metadata=service.me,
    )
    assert renamed.display_name == "My Garmin"
    assert renamed.etag != source.etag
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.UpdateSource(
            source_service_pb2.UpdateSourceRequest(
                source=source_pb2.Source(name=source.name, display_name="Stale", etag=source.etag),
                update_mask=FieldMask(paths=["display_name"]),
            ),
            metadata=service.me,
        )
    assert raised.value.code() == grpc.StatusCode.ABORTED
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.UpdateSource(
            source_service_pb2.UpdateSourceRequest(
                source=source_pb2.Source(name=source.name, platform=source_pb2.SOURCE_PLATFORM_OURA),
                update_mask=FieldMask(paths=["platform"]),
            ),
            metadata=service.me,
        )
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    await write(service, [sample(source.name, HR, 60, datetime(2024, 5, 1, tzinfo=UTC))])
    got = await stub.GetSource(source_service_pb2.GetSourceRequest(name=source.name), metadata=service.me)
    assert list(got.metric_types) == [HR]
    assert got.HasField("last_write_time")
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.DeleteSource(source_service_pb2.DeleteSourceRequest(name=source.name), metadata=service.me)
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    devices = await stub.ListDevices(
        source_service_pb2.ListDevicesRequest(parent="users/me"), metadata=service.me
    )
    assert [d.name for d in devices.devices] == [device.name]
    updated_device = await stub.UpdateDevice(
        source_service_pb2.UpdateDeviceRequest(
            device=source_pb2.Device(name=device.name, firmware_version="21.0"),
            update_mask=FieldMask(paths=["firmware_version"]),
        ),
        metadata=service.me,
    )
    assert updated_device.firmware_version == "21.0"
    assert (
        await stub.GetDevice(source_service_pb2.GetDeviceRequest(name=device.name), metadata=service.me)
    ) == updated_device
    await stub.DeleteDevice(source_service_pb2.DeleteDeviceRequest(name=device.name), metadata=service.me)
    await stub.DeleteSource(
        source_service_pb2.DeleteSourceRequest(name=source.name, force=True), metadata=service.me
    )
    listed = await stub.ListSources(
        source_service_pb2.ListSourcesRequest(parent="users/me"), metadata=service.me
    )
    assert not listed.sources
    priority = await stub.GetSourcePriority(
        source_service_pb2.GetSourcePriorityRequest(name="users/me/sourcePriority"), metadata=service.me
    )
    assert priority.name == f"{service.user}/sourcePriority"
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.GetSource(
            source_service_pb2.GetSourceRequest(name=source.name), metadata=service.as_user(uuid.uuid4())
        )
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


async def test_metric_catalogue(service: Any) -> None:
    stub = metric_service_pb2_grpc.MetricServiceStub(service.channel)
    hrv = await stub.GetMetricDescriptor(
        metric_service_pb2.GetMetricDescriptorRequest(name="metricDescriptors/heart-rate-variability"),
        metadata=service.me,
    )
    assert hrv.requires_hrv_parameters
    assert hrv.canonical_unit == "ms"
    first = await stub.ListMetricDescriptors(
        metric_service_pb2.ListMetricDescriptorsRequest(page_size=20), metadata=service.me
    )
    rest = await stub.ListMetricDescriptors(
        metric_service_pb2.ListMetricDescriptorsRequest(page_size=20, page_token=first.next_page_token),
        metadata=service.me,
    )
    numbers = [d.metric_type for d in [*first.metric_descriptors, *rest.metric_descriptors]]
    assert numbers == sorted(numbers)
    assert len(numbers) == len(metric_pb2.MetricType.values()) - 1
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.GetMetricDescriptor(
            metric_service_pb2.GetMetricDescriptorRequest(name="metricDescriptors/telepathy"),
            metadata=service.me,
        )
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


async def test_json_import_accounts_for_every_element(service: Any, make_source: Any) -> None:
    source = await make_source("exporter")
    start = datetime(2024, 5, 1, 6, tzinfo=UTC)
    document = {
        "samples": [
            {
                "source": source,
                "metricType": "METRIC_TYPE_HEART_RATE",
                "value": 58,
                "startTime": start.isoformat(),
            },
            {
                "metricType": "METRIC_TYPE_STEPS",
                "value": 120,
                "startTime": start.isoformat(),
                "endTime": (start + timedelta(minutes=5)).isoformat(),
            },
            {
                "source": source,
                "metricType": "METRIC_TYPE_HEART_RATE_VARIABILITY",
                "value": 40,
                "startTime": start.isoformat(),
            },
        ],
        "workouts": [
            {
                "source": source,
                "activityType": "ACTIVITY_TYPE_WALKING",
                "startTime": start.isoformat(),
                "endTime": (start + timedelta(minutes=40)).isoformat(),
            },
        ],
        "manualEntries": [{"entryTime": start.isoformat(), "journal": {"text": "good day"}}],
    }
    job = await import_file(service, json.dumps(document).encode(), format=import_job_pb2.IMPORT_FORMAT_JSON)
    assert job.state == import_job_pb2.IMPORT_JOB_STATE_SUCCEEDED, job.error
    counts = job.counts
    assert (counts.received_count, counts.new_count, counts.rejected_count) == (5, 4, 1)
    assert counts.rejections[0].first_location == "samples[2]"
    again = await import_file(service, json.dumps(document, indent=2).encode())
    assert (again.counts.new_count, again.counts.duplicate_count) == (0, 4)


async def test_user_data_is_exported_and_erased_for_service_callers(service: Any, make_source: Any) -> None:
    source = await make_source("watch")
    await write(
        service,
        [
            sample(source, HR, 60 + i, datetime(2024, 5, 1, tzinfo=UTC) + timedelta(minutes=i))
            for i in range(5)
        ],
    )
    stub = user_data_service_pb2_grpc.UserDataServiceStub(service.channel)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.EraseUserData(
            user_data_service_pb2.EraseUserDataRequest(user=service.user), metadata=service.me
        )
    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
    entries = [
        e
        async for e in stub.ExportUserData(
            user_data_service_pb2.ExportUserDataRequest(user=service.user), metadata=service.as_service()
        )
    ]
    paths = [e.entry_path for e in entries]
    assert "ingestion/sources.json" in paths
    assert "ingestion/samples-00001.jsonl" in paths
    lines = next(e for e in entries if e.entry_path.endswith(".jsonl")).data.decode().splitlines()
    assert [json.loads(line)["value"] for line in lines] == [60, 61, 62, 63, 64]
    erased = await stub.EraseUserData(
        user_data_service_pb2.EraseUserDataRequest(user=service.user), metadata=service.as_service()
    )
    assert erased.erased_item_count == 5 + 1
    async with service.app.db.transaction(user_id=service.user_id) as conn:
        assert await conn.fetchval("SELECT count(*) FROM samples") == 0
        assert await conn.fetchval("SELECT count(*) FROM sources") == 0


async def test_writes_announce_themselves_in_the_outbox(service: Any, make_source: Any) -> None:
    source = await make_source("watch")
    await write(
        service,
        [
            sample(source, HR, 60 + i, datetime(2024, 5, 1, tzinfo=UTC) + timedelta(minutes=i))
            for i in range(3)
        ],
    )
    async with service.app.db.transaction(user_id=None) as conn:
        rows = await conn.fetch("SELECT event_type, payload FROM outbox ORDER BY occur_time")
    types = [row["event_type"] for row in rows]
    assert "vitalis.ingestion.v1.SamplesIngested" in types
    assert "vitalis.ingestion.v1.DailySummaryUpdated" in types
    ingested = events_pb2.SamplesIngested.FromString(
        next(row["payload"] for row in rows if row["event_type"].endswith("SamplesIngested"))
    )
    assert (ingested.sample_count, ingested.source, ingested.metric_type) == (3, source, HR)
    assert json_format.MessageToDict(ingested)["user"] == service.user
    assert date_pb2.Date  # the DailySummaryUpdated events name calendar days
