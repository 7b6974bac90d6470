"""The insight feed, its watch and the alert lifecycle through the gRPC contract."""

from __future__ import annotations

import asyncio
import uuid

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration

from vitalis.insights.v1 import (
    alert_pb2,
    alert_service_pb2,
    alert_service_pb2_grpc,
    insight_pb2,
    insight_service_pb2,
    insight_service_pb2_grpc,
)

from .conftest import Platform, RunningInsights, bearer, eventually, running_insights
from .test_engine_acceptance import ldl_panel

pytestmark = pytest.mark.timeout(60)


async def critical_and_high_panel(platform: Platform, insights: RunningInsights, user_id: uuid.UUID) -> None:
    event = ldl_panel(user_id)
    event.flagged_markers.add(
        marker=f"{event.panel}/markers/potassium", biomarker="biomarkers/potassium", flag=5
    )
    await platform.publish("biomarkers", user_id, event)
    stub = insight_service_pb2_grpc.InsightServiceStub(insights.channel)

    async def two() -> bool:
        listed = await stub.ListInsights(
            insight_service_pb2.ListInsightsRequest(parent="users/me"), metadata=bearer(platform, user_id)
        )
        return len(listed.insights) == 2

    await eventually(two)


async def test_read_dismiss_etag_and_another_users_insight(platform: Platform) -> None:
    user_id, stranger = uuid.uuid4(), uuid.uuid4()
    async with running_insights(platform, platform.settings()) as insights:
        await critical_and_high_panel(platform, insights, user_id)
        stub = insight_service_pb2_grpc.InsightServiceStub(insights.channel)
        me = bearer(platform, user_id)
        listed = await stub.ListInsights(
            insight_service_pb2.ListInsightsRequest(
                parent=f"users/{user_id}", order_by="severity desc, create_time desc"
            ),
            metadata=me,
        )
        assert listed.unread_count == 2
        critical, warning = listed.insights
        assert critical.rule == "rules/biomarker-critical"
        assert critical.alert
        assert warning.rule == "rules/biomarker-out-of-range"

        with pytest.raises(grpc.aio.AioRpcError) as stale:
            await stub.MarkInsightRead(
                insight_service_pb2.MarkInsightReadRequest(name=warning.name, etag="99"), metadata=me
            )
        assert stale.value.code() == grpc.StatusCode.ABORTED
        read = await stub.MarkInsightRead(
            insight_service_pb2.MarkInsightReadRequest(name=warning.name, etag=warning.etag), metadata=me
        )
        assert read.state == insight_pb2.INSIGHT_STATE_READ
        assert read.HasField("read_time")
        dismissed = await stub.DismissInsight(
            insight_service_pb2.DismissInsightRequest(name=warning.name), metadata=me
        )
        assert dismissed.state == insight_pb2.INSIGHT_STATE_DISMISSED

        feed = await stub.ListInsights(
            insight_service_pb2.ListInsightsRequest(parent="users/me"), metadata=me
        )
        assert [item.name for item in feed.insights] == [critical.name]
        everything = await stub.ListInsights(
            insight_service_pb2.ListInsightsRequest(
                parent="users/me", filter="state = INSIGHT_STATE_DISMISSED"
            ),
            metadata=me,
        )
        assert [item.name for item in everything.insights] == [warning.name]
        first_page = await stub.ListInsights(
            insight_service_pb2.ListInsightsRequest(
                parent="users/me", filter="severity >= SEVERITY_WARNING", page_size=1
            ),
            metadata=me,
        )
        assert len(first_page.insights) == 1

        for call in (
            stub.GetInsight(
                insight_service_pb2.GetInsightRequest(name=critical.name), metadata=bearer(platform, stranger)
            ),
            stub.GetInsight(
                insight_service_pb2.GetInsightRequest(name=f"users/{user_id}/insights/{uuid.uuid4()}"),
                metadata=me,
            ),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as hidden:
                await call
            assert hidden.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.aio.AioRpcError) as malformed:
            await stub.ListInsights(
                insight_service_pb2.ListInsightsRequest(parent="users/me", filter="colour = red"), metadata=me
            )
        assert malformed.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_alert_acknowledge_and_snooze(platform: Platform) -> None:
    user_id = uuid.uuid4()
    async with running_insights(platform, platform.settings()) as insights:
        await critical_and_high_panel(platform, insights, user_id)
        stub = alert_service_pb2_grpc.AlertServiceStub(insights.channel)
        me = bearer(platform, user_id)
        alerts = await stub.ListAlerts(alert_service_pb2.ListAlertsRequest(parent="users/me"), metadata=me)
        assert alerts.active_count == 1
        alert = alerts.alerts[0]
        assert alert.severity == 3

        with pytest.raises(grpc.aio.AioRpcError) as too_short:
            await stub.SnoozeAlert(
                alert_service_pb2.SnoozeAlertRequest(name=alert.name, snooze_duration=Duration(seconds=60)),
                metadata=me,
            )
        assert too_short.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        snoozed = await stub.SnoozeAlert(
            alert_service_pb2.SnoozeAlertRequest(
                name=alert.name, snooze_duration=Duration(seconds=3600), etag=alert.etag
            ),
            metadata=me,
        )
        assert snoozed.state == alert_pb2.ALERT_STATE_SNOOZED
        assert (
            await stub.ListAlerts(alert_service_pb2.ListAlertsRequest(parent="users/me"), metadata=me)
        ).active_count == 0

        acknowledged = await stub.AcknowledgeAlert(
            alert_service_pb2.AcknowledgeAlertRequest(name=alert.name), metadata=me
        )
        assert acknowledged.state == alert_pb2.ALERT_STATE_ACKNOWLEDGED
        again = await stub.AcknowledgeAlert(
            alert_service_pb2.AcknowledgeAlertRequest(name=alert.name), metadata=me
        )
        assert again.etag == acknowledged.etag
        with pytest.raises(grpc.aio.AioRpcError) as final:
            await stub.SnoozeAlert(
                alert_service_pb2.SnoozeAlertRequest(name=alert.name, snooze_duration=Duration(seconds=3600)),
                metadata=me,
            )
        assert final.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        filtered = await stub.ListAlerts(
            alert_service_pb2.ListAlertsRequest(parent="users/me", filter="state = ALERT_STATE_ACKNOWLEDGED"),
            metadata=me,
        )
        assert [item.name for item in filtered.alerts] == [alert.name]


async def test_watch_resumes_after_a_token_and_reports_updates(platform: Platform) -> None:
    user_id = uuid.uuid4()
    async with running_insights(platform, platform.settings()) as insights:
        await critical_and_high_panel(platform, insights, user_id)
        stub = insight_service_pb2_grpc.InsightServiceStub(insights.channel)
        me = bearer(platform, user_id)
        watch = stub.WatchInsights(
            insight_service_pb2.WatchInsightsRequest(parent="users/me", resume_token="0"), metadata=me
        )
        first = await asyncio.wait_for(watch.read(), timeout=5)
        second = await asyncio.wait_for(watch.read(), timeout=5)
        assert {first.event_type, second.event_type} == {insight_service_pb2.WATCH_EVENT_TYPE_CREATED}
        await stub.MarkInsightRead(
            insight_service_pb2.MarkInsightReadRequest(name=first.insight.name), metadata=me
        )
        update = await asyncio.wait_for(watch.read(), timeout=2)
        assert update.event_type == insight_service_pb2.WATCH_EVENT_TYPE_UPDATED
        assert update.insight.state == insight_pb2.INSIGHT_STATE_READ
        watch.cancel()

        resumed = stub.WatchInsights(
            insight_service_pb2.WatchInsightsRequest(parent="users/me", resume_token=second.resume_token),
            metadata=me,
        )
        replayed = await asyncio.wait_for(resumed.read(), timeout=5)
        assert replayed.resume_token == update.resume_token
        resumed.cancel()

        critical_only = stub.WatchInsights(
            insight_service_pb2.WatchInsightsRequest(
                parent="users/me", resume_token="0", filter="severity = SEVERITY_CRITICAL"
            ),
            metadata=me,
        )
        only = await asyncio.wait_for(critical_only.read(), timeout=5)
        assert only.insight.rule == "rules/biomarker-critical"
        critical_only.cancel()

        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await stub.WatchInsights(
                insight_service_pb2.WatchInsightsRequest(parent="users/me", resume_token="not-a-token"),
                metadata=me,
            ).read()
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_rules_are_listed_with_their_versions(platform: Platform) -> None:
    async with running_insights(platform, platform.settings()) as insights:
        stub = insight_service_pb2_grpc.InsightServiceStub(insights.channel)
        me = bearer(platform, uuid.uuid4())
        rules = await stub.ListRules(insight_service_pb2.ListRulesRequest(), metadata=me)
        names = [rule.name for rule in rules.rules]
        assert names == sorted(names)
        assert "rules/resting-heart-rate-anomaly" in names
        sleep = await stub.ListRules(
            insight_service_pb2.ListRulesRequest(filter="category = INSIGHT_CATEGORY_SLEEP"), metadata=me
        )
        assert {rule.name for rule in sleep.rules} == {"rules/short-sleep-anomaly", "rules/sleep-debt"}
        rule = await stub.GetRule(
            insight_service_pb2.GetRuleRequest(name="rules/resting-heart-rate-anomaly"), metadata=me
        )
        assert rule.version == 1
        assert rule.parameters["min_nights"] == "14"
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await stub.GetRule(insight_service_pb2.GetRuleRequest(name="rules/nope"), metadata=me)
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND


async def test_watches_keep_working_when_the_listening_connection_is_lost(platform: Platform) -> None:
    user_id = uuid.uuid4()
    async with running_insights(platform, platform.settings()) as insights:
        stub = insight_service_pb2_grpc.InsightServiceStub(insights.channel)
        watch = stub.WatchInsights(
            insight_service_pb2.WatchInsightsRequest(parent="users/me"), metadata=bearer(platform, user_id)
        )
        await watch.initial_metadata()
        terminated = await platform.admin_fetchval(
            """SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
               WHERE datname = current_database() AND query LIKE 'LISTEN%'"""
        )
        assert terminated == 1
        await asyncio.sleep(1.5)
        loop = asyncio.get_running_loop()
        await platform.publish("biomarkers", user_id, ldl_panel(user_id))
        published = loop.time()
        message = await asyncio.wait_for(watch.read(), timeout=10)
        assert message.event_type == insight_service_pb2.WATCH_EVENT_TYPE_CREATED
        assert loop.time() - published < 2.0
        watch.cancel()
