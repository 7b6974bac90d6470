"""The engine end to end in-process: events published as producers publish them, insights watched live."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import grpc
import pytest

from vitalis.biomarkers.v1 import events_pb2 as biomarker_events
from vitalis.biomarkers.v1 import panel_pb2
from vitalis.ingestion.v1 import events_pb2 as ingestion_events
from vitalis.insights.v1 import (
    alert_pb2,
    alert_service_pb2,
    alert_service_pb2_grpc,
    insight_pb2,
    insight_service_pb2,
    insight_service_pb2_grpc,
)
from vitalis_insights.engine import InsightsEngine
from vitalis_runtime.events import Event, StreamNames

from .conftest import PAGE_SECRET, SERVICE_SECRET, SHARDS, Platform, bearer, eventually, running_insights

pytestmark = pytest.mark.timeout(90)

NORMAL_NIGHTS = [54, 55, 56, 55, 53, 54, 56, 55, 54, 57, 55, 54, 56, 55]
ELEVATED = 68.0


def first_night() -> date:
    return date.today() - timedelta(days=len(NORMAL_NIGHTS) + 3)


async def list_insights(
    platform: Platform, channel: grpc.aio.Channel, user_id: uuid.UUID
) -> list[insight_pb2.Insight]:
    stub = insight_service_pb2_grpc.InsightServiceStub(channel)
    response = await stub.ListInsights(
        insight_service_pb2.ListInsightsRequest(parent="users/me"), metadata=bearer(platform, user_id)
    )
    return list(response.insights)


async def processed_nights(platform: Platform, user_id: uuid.UUID) -> int:
    count: int = await platform.admin_fetchval(
        "SELECT count(*) FROM insights.series_values"
        " WHERE user_id = $1 AND series_key = 'metric:resting-heart-rate'",
        user_id,
    )
    return count


async def test_two_normal_weeks_then_three_elevated_nights_give_one_anomaly_watched_live(
    platform: Platform,
) -> None:
    user_id = uuid.uuid4()
    async with running_insights(platform, platform.settings()) as insights:
        stub = insight_service_pb2_grpc.InsightServiceStub(insights.channel)
        watch = stub.WatchInsights(
            insight_service_pb2.WatchInsightsRequest(parent="users/me"), metadata=bearer(platform, user_id)
        )
        received: list[tuple[float, insight_service_pb2.WatchInsightsResponse]] = []
        loop = asyncio.get_running_loop()

        async def collect() -> None:
            async for message in watch:
                received.append((loop.time(), message))

        collector = asyncio.create_task(collect())
        await asyncio.sleep(0.3)
        start = first_night()
        for offset, value in enumerate(NORMAL_NIGHTS):
            await platform.publish_night(user_id, start + timedelta(days=offset), resting_hr=value)
        await eventually(lambda: _at_least(platform, user_id, len(NORMAL_NIGHTS)))
        assert await list_insights(platform, insights.channel, user_id) == []

        for offset in range(3):
            day = start + timedelta(days=len(NORMAL_NIGHTS) + offset)
            await platform.publish_night(user_id, day, resting_hr=ELEVATED)
        last_write = loop.time()
        await eventually(lambda: _has_created(received))
        created = [
            (at, message)
            for at, message in received
            if message.event_type == insight_service_pb2.WATCH_EVENT_TYPE_CREATED
        ]

        assert len(created) == 1
        arrival, message = created[0]
        assert arrival - last_write < 1.0
        insight = message.insight
        assert insight.rule == "rules/resting-heart-rate-anomaly"
        assert insight.rule_version == 1
        assert insight.observed.value == ELEVATED
        assert insight.expected_range.high < ELEVATED
        assert [evidence.resource for evidence in insight.evidence] == [
            f"users/{user_id}/dailySummaries/{start + timedelta(days=len(NORMAL_NIGHTS) + offset):%Y-%m-%d}"
            for offset in (2, 1, 0)
        ]
        stored = await list_insights(platform, insights.channel, user_id)
        assert [item.name for item in stored] == [insight.name]
        alerts = await alert_service_pb2_grpc.AlertServiceStub(insights.channel).ListAlerts(
            alert_service_pb2.ListAlertsRequest(parent="users/me"), metadata=bearer(platform, user_id)
        )
        assert [alert.insight for alert in alerts.alerts] == [insight.name]
        assert alerts.alerts[0].state == alert_pb2.ALERT_STATE_ACTIVE
        collector.cancel()


async def _at_least(platform: Platform, user_id: uuid.UUID, count: int) -> bool:
    return await processed_nights(platform, user_id) >= count


async def _has_created(received: list[tuple[float, insight_service_pb2.WatchInsightsResponse]]) -> bool:
    return any(message.event_type == insight_service_pb2.WATCH_EVENT_TYPE_CREATED for _, message in received)


async def test_three_nights_of_data_never_alert(platform: Platform) -> None:
    user_id = uuid.uuid4()
    async with running_insights(platform, platform.settings()) as insights:
        start = first_night()
        for offset in range(3):
            await platform.publish_night(user_id, start + timedelta(days=offset), resting_hr=90 + offset)
        await eventually(lambda: _at_least(platform, user_id, 3))
        await asyncio.sleep(0.3)
        assert await list_insights(platform, insights.channel, user_id) == []


def ldl_panel(user_id: uuid.UUID) -> biomarker_events.PanelCreated:
    panel = f"users/{user_id}/panels/{uuid.uuid4()}"
    event = biomarker_events.PanelCreated(
        user=f"users/{user_id}",
        panel=panel,
        biomarkers=["biomarkers/ldl-cholesterol-direct", "biomarkers/hdl-cholesterol"],
        provenance=panel_pb2.PROVENANCE_KIND_MANUAL,
    )
    event.flagged_markers.add(
        marker=f"{panel}/markers/ldl",
        biomarker="biomarkers/ldl-cholesterol-direct",
        flag=panel_pb2.MARKER_FLAG_HIGH,
    )
    event.collection_time.FromDatetime(datetime(2025, 3, 3, 8, 0, tzinfo=UTC))
    event.occur_time.FromDatetime(datetime.now(UTC))
    return event


async def test_out_of_range_ldl_gives_one_insight_with_the_panel_as_evidence_and_replays_add_nothing(
    platform: Platform,
) -> None:
    user_id = uuid.uuid4()
    event = ldl_panel(user_id)
    async with running_insights(platform, platform.settings()) as insights:
        await platform.publish("biomarkers", user_id, event)
        found = await eventually(lambda: list_insights(platform, insights.channel, user_id))

        assert len(found) == 1
        insight = found[0]
        assert insight.rule == "rules/biomarker-out-of-range"
        assert insight.severity == 2
        assert [evidence.resource for evidence in insight.evidence] == [
            event.panel,
            f"{event.panel}/markers/ldl",
        ]
        assert insight.dedupe_key == f"biomarker-out-of-range:{event.panel}/markers/ldl"

        # The same stream entry delivered again (a relay that died before marking it published) ...
        stream = StreamNames("biomarkers", SHARDS, platform.prefix).for_user(user_id)
        entries = await platform.redis.xrange(stream)
        original = Event.from_fields(entries[-1][1])
        await platform.redis.xadd(stream, original.to_fields())
        # ... and the same panel announced again as a new event.
        await platform.publish("biomarkers", user_id, event)
        inbox = "SELECT count(*) FROM insights.inbox"
        await eventually(lambda: _inbox_at_least(platform, inbox, 2))
        await asyncio.sleep(0.5)

        assert [item.name for item in await list_insights(platform, insights.channel, user_id)] == [
            insight.name
        ]


async def _inbox_at_least(platform: Platform, query: str, count: int) -> bool:
    return int(await platform.admin_fetchval(query)) >= count


async def test_restart_mid_stream_loses_no_event_and_duplicates_no_insight(platform: Platform) -> None:
    user_id = uuid.uuid4()
    start = first_night()
    nights = [*NORMAL_NIGHTS, ELEVATED, ELEVATED, ELEVATED]
    async with running_insights(platform, platform.settings("replica-a")):
        for offset, value in enumerate(nights[:8]):
            await platform.publish_night(user_id, start + timedelta(days=offset), resting_hr=value)
        await eventually(lambda: _at_least(platform, user_id, 1))
    # While no replica runs, the rest is published.
    for offset, value in enumerate(nights[8:], start=8):
        await platform.publish_night(user_id, start + timedelta(days=offset), resting_hr=value)
    async with running_insights(platform, platform.settings("replica-b")) as insights:
        await eventually(lambda: _at_least(platform, user_id, len(nights)), within=20)
        found = await eventually(lambda: list_insights(platform, insights.channel, user_id))
        # Everything delivered once more (a replay of the whole stream) changes nothing.
        for offset, value in enumerate(nights):
            await platform.publish_night(user_id, start + timedelta(days=offset), resting_hr=value)
        await eventually(
            lambda: _inbox_at_least(platform, "SELECT count(*) FROM insights.inbox", 2 * len(nights))
        )

        assert len(found) == 1
        assert found[0].rule == "rules/resting-heart-rate-anomaly"
        assert [item.name for item in await list_insights(platform, insights.channel, user_id)] == [
            found[0].name
        ]
        assert await processed_nights(platform, user_id) == len(nights)


async def test_a_killed_replica_loses_no_event_and_duplicates_no_insight(platform: Platform) -> None:
    user_id = uuid.uuid4()
    start = first_night()
    nights = [*NORMAL_NIGHTS, ELEVATED, ELEVATED, ELEVATED]
    settings = platform.settings("replica-killed")
    environment = {
        **{key: value for key, value in os.environ.items() if key in ("PATH", "HOME", "LANG")},
        "DATABASE_URL": settings.database_url,
        "VITALIS_DATABASE_ROLE": platform.app_role,
        "REDIS_URL": settings.redis_url,
        "VITALIS_PAGE_TOKEN_SECRET": PAGE_SECRET,
        "VITALIS_SERVICE_TOKEN_SECRET": SERVICE_SECRET,
        "VITALIS_INGESTION_TARGET": platform.ingestion_target,
        "VITALIS_IDENTITY_TARGET": "127.0.0.1:9",
        "VITALIS_GRPC_HOST": "127.0.0.1",
        "VITALIS_GRPC_PORT": "0",
        "VITALIS_EVENT_SHARDS": str(SHARDS),
        "VITALIS_EVENT_STREAM_PREFIX": platform.prefix,
        "VITALIS_CONSUMER_NAME": "replica-killed",
        "VITALIS_EVENT_LEASE_MS": "2000",
        "VITALIS_LOG_FORMAT": "console",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "vitalis_insights",
        env=environment,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        for offset, value in enumerate(nights[:10]):
            await platform.publish_night(user_id, start + timedelta(days=offset), resting_hr=value)
        await eventually(lambda: _at_least(platform, user_id, 3), within=30)
    finally:
        process.send_signal(signal.SIGKILL)
        await process.wait()
    for offset, value in enumerate(nights[10:], start=10):
        await platform.publish_night(user_id, start + timedelta(days=offset), resting_hr=value)
    async with running_insights(platform, platform.settings("replica-b")) as insights:
        await eventually(lambda: _at_least(platform, user_id, len(nights)), within=30)
        found = await eventually(lambda: list_insights(platform, insights.channel, user_id))
        await asyncio.sleep(0.5)

        assert len(found) == 1
        assert [item.name for item in await list_insights(platform, insights.channel, user_id)] == [
            found[0].name
        ]
        inbox = await platform.admin_fetchval("SELECT count(*) FROM insights.inbox")
        assert inbox == len(nights)


def test_only_the_latest_update_of_a_days_summary_needs_handling() -> None:
    engine = InsightsEngine(ingestion=None, biomarkers=None)
    user = uuid.uuid4()

    def event(message: Any) -> Event:
        return Event(
            id=uuid.uuid4(),
            type=message.DESCRIPTOR.full_name,
            producer="ingestion",
            user_id=user,
            payload=message.SerializeToString(),
            occur_time=datetime.now(UTC),
        )

    monday, tuesday = (
        event(ingestion_events.DailySummaryUpdated(daily_summary=f"users/{user}/dailySummaries/{day}"))
        for day in ("2026-11-16", "2026-11-17")
    )
    monday_again = event(
        ingestion_events.DailySummaryUpdated(daily_summary=f"users/{user}/dailySummaries/2026-11-16")
    )
    panel = event(biomarker_events.PanelCreated(panel=f"users/{user}/panels/p"))

    assert engine.supersede_key(monday) == engine.supersede_key(monday_again)
    assert engine.supersede_key(monday) != engine.supersede_key(tuesday)
    assert engine.supersede_key(panel) is None
