"""Goals with progress from the user's data, trends and correlations against scipy, sleep scoring."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import grpc
import numpy as np
import pytest
from google.protobuf import field_mask_pb2
from google.protobuf.duration_pb2 import Duration
from scipy import stats

from vitalis.biomarkers.v1 import (
    biomarker_pb2,
    dictionary_service_pb2,
    dictionary_service_pb2_grpc,
    panel_pb2,
    panel_service_pb2,
    panel_service_pb2_grpc,
)
from vitalis.ingestion.v1 import metric_pb2
from vitalis.insights.v1 import (
    analysis_pb2,
    analysis_service_pb2,
    analysis_service_pb2_grpc,
    common_pb2,
    goal_pb2,
    goal_service_pb2,
    goal_service_pb2_grpc,
    insight_service_pb2,
    insight_service_pb2_grpc,
)
from vitalis_runtime.auth import current_principal
from vitalis_runtime.errors import InvalidArgument, NotFound
from vitalis_runtime.service_auth import ServiceTokenVerifier
from vitalis_runtime.testing_grpc import running_server

from .conftest import SERVICE_SECRET, Platform, bearer, eventually, running_insights

pytestmark = pytest.mark.timeout(90)

RESTING_HR = common_pb2.Series(metric=metric_pb2.METRIC_TYPE_RESTING_HEART_RATE)
SLEEP = common_pb2.Series(sleep_measure=common_pb2.SLEEP_MEASURE_TOTAL_SLEEP_TIME)


async def stored_nights(platform: Platform, user_id: uuid.UUID) -> int:
    count: int = await platform.admin_fetchval(
        "SELECT count(DISTINCT observe_time) FROM insights.series_values WHERE user_id = $1", user_id
    )
    return count


async def publish_nights(
    platform: Platform, user_id: uuid.UUID, heart: list[float], sleep: list[float]
) -> date:
    start = date.today() - timedelta(days=len(heart))
    for offset, (rate, minutes) in enumerate(zip(heart, sleep, strict=True)):
        day = start + timedelta(days=offset)
        platform.add_night(user_id, day, resting_hr=rate, asleep_minutes=minutes)
        from vitalis.ingestion.v1 import events_pb2

        event = events_pb2.DailySummaryUpdated(
            user=f"users/{user_id}", daily_summary=f"users/{user_id}/dailySummaries/{day.isoformat()}"
        )
        event.date.year, event.date.month, event.date.day = day.year, day.month, day.day
        await platform.publish("ingestion", user_id, event)

    async def all_stored() -> bool:
        return await stored_nights(platform, user_id) >= len(heart)

    await eventually(all_stored, within=20)
    return start


async def test_goal_progress_milestones_updates_and_deletion(platform: Platform) -> None:
    user_id = uuid.uuid4()
    async with running_insights(platform, platform.settings()) as insights:
        stub = goal_service_pb2_grpc.GoalServiceStub(insights.channel)
        me = bearer(platform, user_id)
        await publish_nights(platform, user_id, [70, 70, 70, 69, 68, 66, 64, 62, 61, 60], [480] * 10)
        request_id = str(uuid.uuid4())
        goal = await stub.CreateGoal(
            goal_service_pb2.CreateGoalRequest(
                parent="users/me",
                goal=goal_pb2.Goal(
                    display_name="Calmer heart",
                    series=RESTING_HR,
                    direction=goal_pb2.GOAL_DIRECTION_AT_MOST,
                    target_value=58,
                    unit="/min",
                    evaluation_window=Duration(seconds=3 * 86400),
                    start_date={"year": 2020, "month": 1, "day": 1},
                ),
                goal_id="calmer-heart",
                request_id=request_id,
            ),
            metadata=me,
        )
        assert goal.name == f"users/{user_id}/goals/calmer-heart"
        assert goal.progress.current.value == pytest.approx(61.0)
        assert goal.progress.data_point_count == 3
        assert goal.state == goal_pb2.GOAL_STATE_ACTIVE
        retried = await stub.CreateGoal(
            goal_service_pb2.CreateGoalRequest(
                parent="users/me", goal=goal, goal_id="calmer-heart", request_id=request_id
            ),
            metadata=me,
        )
        assert retried.name == goal.name

        updated = await stub.UpdateGoal(
            goal_service_pb2.UpdateGoalRequest(
                goal=goal_pb2.Goal(name=goal.name, target_value=62, etag=retried.etag),
                update_mask=field_mask_pb2.FieldMask(paths=["target_value"]),
            ),
            metadata=me,
        )
        assert updated.target_value == 62
        assert updated.state == goal_pb2.GOAL_STATE_ACHIEVED
        assert updated.progress.fraction_complete == 1.0
        milestones = await insight_service_pb2_grpc.InsightServiceStub(insights.channel).ListInsights(
            insight_service_pb2.ListInsightsRequest(
                parent="users/me", filter='rule = "rules/goal-milestone"'
            ),
            metadata=me,
        )
        assert {insight.dedupe_key for insight in milestones.insights} >= {f"goal-milestone:{goal.name}:100"}
        progressed = await platform.admin_fetchval(
            """SELECT count(*) FROM insights.outbox
               WHERE event_user_id = $1 AND event_type = 'vitalis.insights.v1.GoalProgressed'""",
            user_id,
        )
        assert progressed >= 1
        with pytest.raises(grpc.aio.AioRpcError) as stale:
            await stub.UpdateGoal(
                goal_service_pb2.UpdateGoalRequest(
                    goal=goal_pb2.Goal(name=goal.name, target_value=50, etag="1")
                ),
                metadata=me,
            )
        assert stale.value.code() == grpc.StatusCode.ABORTED

        listed = await stub.ListGoals(
            goal_service_pb2.ListGoalsRequest(parent="users/me", filter="state = GOAL_STATE_ACHIEVED"),
            metadata=me,
        )
        assert [item.name for item in listed.goals] == [goal.name]
        await stub.DeleteGoal(goal_service_pb2.DeleteGoalRequest(name=goal.name), metadata=me)
        with pytest.raises(grpc.aio.AioRpcError) as gone:
            await stub.GetGoal(goal_service_pb2.GetGoalRequest(name=goal.name), metadata=me)
        assert gone.value.code() == grpc.StatusCode.NOT_FOUND

        with pytest.raises(grpc.aio.AioRpcError) as mixed:
            await stub.CreateGoal(
                goal_service_pb2.CreateGoalRequest(
                    parent="users/me",
                    goal=goal_pb2.Goal(
                        series=common_pb2.Series(metric=metric_pb2.METRIC_TYPE_HEART_RATE_VARIABILITY),
                        direction=goal_pb2.GOAL_DIRECTION_AT_LEAST,
                        target_value=60,
                        unit="ms",
                    ),
                ),
                metadata=me,
            )
        assert mixed.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_correlation_and_trend_through_the_contract_match_scipy(platform: Platform) -> None:
    user_id = uuid.uuid4()
    rng = np.random.default_rng(7)
    sleep = [float(round(value)) for value in rng.normal(450, 40, 20)]
    heart = [
        float(round(62 - 0.05 * (minutes - 450) + noise, 1))
        for minutes, noise in zip(sleep, rng.normal(0, 1.5, 20), strict=True)
    ]
    async with running_insights(platform, platform.settings()) as insights:
        stub = analysis_service_pb2_grpc.AnalysisServiceStub(insights.channel)
        me = bearer(platform, user_id)
        await publish_nights(platform, user_id, heart, sleep)

        correlation = await stub.ComputeCorrelation(
            analysis_service_pb2.ComputeCorrelationRequest(
                parent="users/me", series_x=SLEEP, series_y=RESTING_HR, include_points=True
            ),
            metadata=me,
        )
        xs = [point.value for point in correlation.points_x]
        ys = [point.value for point in correlation.points_y]
        assert correlation.sample_count == 20
        assert sorted(xs) == sorted(sleep)
        pearson = stats.pearsonr(xs, ys)
        assert correlation.pearson.r == pytest.approx(pearson.statistic, abs=1e-9)
        low, high = pearson.confidence_interval(0.95)
        assert (correlation.pearson.ci_low, correlation.pearson.ci_high) == pytest.approx(
            (low, high), abs=1e-9
        )
        assert correlation.spearman.r == pytest.approx(stats.spearmanr(xs, ys).statistic, abs=1e-9)

        trend = await stub.ComputeTrend(
            analysis_service_pb2.ComputeTrendRequest(
                parent="users/me", series=RESTING_HR, include_points=True
            ),
            metadata=me,
        )
        days = [
            (point.time.ToDatetime(UTC) - trend.interval.start_time.ToDatetime(UTC)).total_seconds() / 86400
            for point in trend.points
        ]
        reference = stats.theilslopes([point.value for point in trend.points], days)
        assert trend.sample_count == 20
        assert trend.slope_per_day == pytest.approx(reference.slope)
        assert trend.unit == "/min"

        lagged = await stub.ComputeCorrelation(
            analysis_service_pb2.ComputeCorrelationRequest(
                parent="users/me", series_x=SLEEP, series_y=RESTING_HR, lag=Duration(seconds=86400)
            ),
            metadata=me,
        )
        assert lagged.sample_count == 19

        recent = {"start_time": datetime.now(UTC) - timedelta(days=6)}
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.ComputeCorrelation(
                analysis_service_pb2.ComputeCorrelationRequest(
                    parent="users/me", series_x=SLEEP, series_y=RESTING_HR, interval=recent
                ),
                metadata=me,
            )
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "at least 10" in (refused.value.details() or "")
        with pytest.raises(grpc.aio.AioRpcError) as same:
            await stub.ComputeCorrelation(
                analysis_service_pb2.ComputeCorrelationRequest(
                    parent="users/me", series_x=SLEEP, series_y=SLEEP
                ),
                metadata=me,
            )
        assert same.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_score_sleep_through_the_contract(platform: Platform) -> None:
    async with running_insights(platform, platform.settings()) as insights:
        stub = analysis_service_pb2_grpc.AnalysisServiceStub(insights.channel)
        me = bearer(platform, uuid.uuid4())
        counts = [300.0] * 30 + [0.0] * 300 + [300.0] * 30
        request = analysis_service_pb2.ScoreSleepRequest(
            parent="users/me",
            algorithm=analysis_pb2.SLEEP_SCORING_ALGORITHM_COLE_KRIPKE,
            activity_counts=analysis_pb2.ActivityCounts(
                start_time={"seconds": 1_700_000_000}, epoch_length=Duration(seconds=60), counts=counts
            ),
        )
        scored = await stub.ScoreSleep(request, metadata=me)
        assert scored.variant == "cole-kripke-1992-60s-mean"
        assert len(scored.asleep) == len(counts)
        assert 290 <= scored.total_sleep_time.seconds / 60 <= 300
        assert scored.HasField("sleep_onset_time")

        request.activity_counts.epoch_length.seconds = 30
        with pytest.raises(grpc.aio.AioRpcError) as wrong_epoch:
            await stub.ScoreSleep(request, metadata=me)
        assert wrong_epoch.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        request.activity_counts.epoch_length.seconds = 60
        del request.activity_counts.counts[9:]
        with pytest.raises(grpc.aio.AioRpcError) as too_few:
            await stub.ScoreSleep(request, metadata=me)
        assert too_few.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_a_new_goal_reads_the_history_ingestion_already_holds(platform: Platform) -> None:
    user_id = uuid.uuid4()
    for offset, rate in enumerate([64, 63, 62, 61, 60]):
        platform.add_night(user_id, date.today() - timedelta(days=5 - offset), resting_hr=rate)
    async with running_insights(platform, platform.settings()) as insights:
        goal = await goal_service_pb2_grpc.GoalServiceStub(insights.channel).CreateGoal(
            goal_service_pb2.CreateGoalRequest(
                parent="users/me",
                goal=goal_pb2.Goal(
                    series=RESTING_HR,
                    direction=goal_pb2.GOAL_DIRECTION_AT_MOST,
                    target_value=55,
                    unit="/min",
                    evaluation_window=Duration(seconds=2 * 86400),
                    start_date={"year": 2020, "month": 1, "day": 1},
                ),
            ),
            metadata=bearer(platform, user_id),
        )
        assert goal.progress.current.value == pytest.approx(60.5)
        assert goal.progress.baseline.value == pytest.approx(64.0)
        assert goal.progress.fraction_complete == pytest.approx(3.5 / 9)
        assert goal.progress.on_track


async def test_a_trend_reads_the_history_ingestion_holds_when_insights_has_too_little(
    platform: Platform,
) -> None:
    user_id = uuid.uuid4()
    rates = [60, 61, 61, 62, 63, 63, 64, 65, 66, 66]
    for offset, rate in enumerate(rates):
        platform.add_night(user_id, date.today() - timedelta(days=len(rates) - offset), resting_hr=rate)
    async with running_insights(platform, platform.settings()) as insights:
        trend = await analysis_service_pb2_grpc.AnalysisServiceStub(insights.channel).ComputeTrend(
            analysis_service_pb2.ComputeTrendRequest(parent="users/me", series=RESTING_HR),
            metadata=bearer(platform, user_id),
        )
        assert trend.sample_count == len(rates)
        assert trend.direction == analysis_pb2.TREND_DIRECTION_INCREASING
        assert trend.slope_per_day == pytest.approx(stats.theilslopes(rates).slope)


class StandInBiomarkers(
    dictionary_service_pb2_grpc.DictionaryServiceServicer, panel_service_pb2_grpc.PanelServiceServicer
):
    """biomarkers' dictionary conversion and marker listing over data a test gives."""

    def __init__(self, markers: list[panel_pb2.Marker]) -> None:
        self._markers = markers

    async def ConvertBiomarkerValue(
        self, request: dictionary_service_pb2.ConvertBiomarkerValueRequest, context: object
    ) -> dictionary_service_pb2.ConvertBiomarkerValueResponse:
        """LDL only: mmol/L to mg/dL by 38.67."""
        if request.biomarker != LDL:
            raise NotFound(f"{request.biomarker!r} was not found")
        factors = {"mmol/L": 38.67, "mg/dL": 1.0}
        if request.from_unit not in factors:
            raise InvalidArgument.for_field(
                "from_unit", "is not a unit of this biomarker", reason="UNKNOWN_UNIT"
            )
        return dictionary_service_pb2.ConvertBiomarkerValueResponse(
            value=request.value * factors[request.from_unit], unit="mg/dL"
        )

    async def GetBiomarker(
        self, request: dictionary_service_pb2.GetBiomarkerRequest, context: object
    ) -> biomarker_pb2.BiomarkerDefinition:
        """LDL only."""
        if request.name != LDL:
            raise NotFound(f"{request.name!r} was not found")
        return biomarker_pb2.BiomarkerDefinition(name=LDL, display_name="LDL cholesterol, direct")

    async def ListMarkers(
        self, request: panel_service_pb2.ListMarkersRequest, context: object
    ) -> panel_service_pb2.ListMarkersResponse:
        """The caller's markers of the biomarker."""
        prefix = f"users/{current_principal().user_id}/"
        return panel_service_pb2.ListMarkersResponse(
            markers=[
                m for m in self._markers if m.name.startswith(prefix) and m.biomarker == request.biomarker
            ]
        )


LDL = "biomarkers/ldl-cholesterol-direct"


async def test_a_biomarker_goal_in_another_unit_is_followed_in_the_canonical_unit(platform: Platform) -> None:
    user_id = uuid.uuid4()
    markers = []
    for days_ago, value in ((90, 160.0), (5, 130.0)):
        marker = panel_pb2.Marker(
            name=f"users/{user_id}/panels/p{days_ago}/markers/ldl",
            biomarker=LDL,
            value=value,
            canonical_value=value,
            canonical_unit="mg/dL",
            reported_unit="mg/dL",
        )
        marker.collection_time.FromDatetime(datetime.now(UTC) - timedelta(days=days_ago))
        markers.append(marker)
    stand_in = StandInBiomarkers(markers)

    def register(server: grpc.aio.Server) -> None:
        dictionary_service_pb2_grpc.add_DictionaryServiceServicer_to_server(stand_in, server)
        panel_service_pb2_grpc.add_PanelServiceServicer_to_server(stand_in, server)

    async with (
        running_server(
            service_name="biomarkers",
            register=register,
            service_names=["vitalis.biomarkers.v1.DictionaryService", "vitalis.biomarkers.v1.PanelService"],
            verifier=ServiceTokenVerifier(SERVICE_SECRET),
        ) as biomarkers,
        running_insights(platform, platform.settings(biomarkers_target=biomarkers.target)) as insights,
    ):
        stub = goal_service_pb2_grpc.GoalServiceStub(insights.channel)
        me = bearer(platform, user_id)

        def ldl_goal(biomarker: str, unit: str) -> goal_service_pb2.CreateGoalRequest:
            return goal_service_pb2.CreateGoalRequest(
                parent="users/me",
                goal=goal_pb2.Goal(
                    series=common_pb2.Series(biomarker=biomarker),
                    direction=goal_pb2.GOAL_DIRECTION_AT_MOST,
                    target_value=2.6,
                    unit=unit,
                    start_date={"year": 2020, "month": 1, "day": 1},
                ),
            )

        goal = await stub.CreateGoal(ldl_goal(LDL, "mmol/L"), metadata=me)
        assert goal.unit == "mmol/L"
        assert goal.target_value == pytest.approx(2.6)
        assert goal.progress.current.value == 130.0
        assert goal.progress.current.unit == "mg/dL"
        assert goal.progress.fraction_complete == pytest.approx(30 / (160 - 2.6 * 38.67))

        for request, code in (
            (ldl_goal(LDL, "furlong"), grpc.StatusCode.INVALID_ARGUMENT),
            (ldl_goal("biomarkers/unobtainium", "mg/dL"), grpc.StatusCode.NOT_FOUND),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.CreateGoal(request, metadata=me)
            assert refused.value.code() == code


async def test_sleep_debt_is_a_series_goals_can_follow(platform: Platform) -> None:
    user_id = uuid.uuid4()
    async with running_insights(platform, platform.settings()) as insights:
        await publish_nights(platform, user_id, [55] * 9, [420] * 9)
        goal = await goal_service_pb2_grpc.GoalServiceStub(insights.channel).CreateGoal(
            goal_service_pb2.CreateGoalRequest(
                parent="users/me",
                goal=goal_pb2.Goal(
                    series=common_pb2.Series(sleep_measure=common_pb2.SLEEP_MEASURE_SLEEP_DEBT),
                    direction=goal_pb2.GOAL_DIRECTION_AT_MOST,
                    target_value=60,
                    unit="min",
                    evaluation_window=Duration(seconds=86400),
                ),
            ),
            metadata=bearer(platform, user_id),
        )
        assert goal.progress.current.value == pytest.approx(9 * 60)
        assert goal.progress.current.unit == "min"
