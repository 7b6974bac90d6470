"""vitalis.insights.v1.AnalysisService: trends, correlations and actigraphy sleep scoring."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Final

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from google.type import interval_pb2  # type: ignore[import-untyped]

from vitalis.insights.v1 import analysis_pb2, analysis_service_pb2, analysis_service_pb2_grpc, common_pb2
from vitalis_insights.api.names import ReadAccess, resolve_parent
from vitalis_insights.domain import sleep_scoring, statistics
from vitalis_insights.domain.series import SeriesValue, series_key
from vitalis_insights.engine import InsightsEngine
from vitalis_insights.store import series as series_store
from vitalis_runtime.db import Database
from vitalis_runtime.errors import FailedPrecondition, InvalidArgument

DEFAULT_INTERVAL: Final = timedelta(days=90)
MAX_INTERVAL: Final = timedelta(days=5 * 366)
MAX_LAG_DAYS: Final = 30

Context = grpc.aio.ServicerContext[object, object]


def _stamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def _interval(interval: interval_pb2.Interval, has_interval: bool, field: str) -> tuple[datetime, datetime]:
    now = datetime.now(UTC)
    if not has_interval:
        return now - DEFAULT_INTERVAL, now
    end = interval.end_time.ToDatetime(UTC) if interval.HasField("end_time") else now
    start = interval.start_time.ToDatetime(UTC) if interval.HasField("start_time") else end - MAX_INTERVAL
    if start >= end:
        raise InvalidArgument.for_field(field, "must not be empty: start_time must come before end_time")
    if start > now:
        raise InvalidArgument.for_field(field, "must not lie in the future")
    if end - start > MAX_INTERVAL:
        raise InvalidArgument.for_field(field, "must not be longer than 5 years")
    return start, end


def insufficient(found: int, needed: int, what: str) -> FailedPrecondition:
    """The refusal to compute on too little data."""
    return FailedPrecondition(
        f"{found} {what} found, at least {needed} needed",
        reason="INSUFFICIENT_DATA",
        metadata={"sample_count": str(found), "min_sample_count": str(needed)},
    )


def _points(values: list[SeriesValue]) -> list[common_pb2.SeriesPoint]:
    return [common_pb2.SeriesPoint(time=_stamp(value.observe_time), value=value.value) for value in values]


class AnalysisServicer(analysis_service_pb2_grpc.AnalysisServiceServicer):
    """Statistics on a user's own series."""

    def __init__(self, db: Database, access: ReadAccess, engine: InsightsEngine) -> None:
        self._db = db
        self._access = access
        self._engine = engine

    async def _values(
        self, user_id: uuid.UUID, key: str, start: datetime, end: datetime, *, needed: int
    ) -> list[SeriesValue]:
        """The series' values in the interval; read from the producing service when too few are held."""
        async with self._db.transaction(user_id=user_id, readonly=True) as conn:
            values = await series_store.values_of(conn, user_id, key, start=start, end=end)
        if len(values) >= needed:
            return values
        history = await self._engine.history(user_id, key, start.date(), end.date())
        if not history:
            return values
        async with self._db.transaction(user_id=user_id) as conn:
            await series_store.upsert_values(conn, user_id, history)
            return await series_store.values_of(conn, user_id, key, start=start, end=end)

    async def ComputeTrend(
        self, request: analysis_service_pb2.ComputeTrendRequest, context: Context
    ) -> analysis_pb2.Trend:
        """Median baseline, scaled MAD, Theil-Sen slope with its 95 % interval, Mann-Kendall p."""
        user_id = await self._access.parent(request.parent)
        key = series_key(request.series)
        await self._engine.require_known_biomarker(user_id, key)
        start, end = _interval(request.interval, request.HasField("interval"), "interval")
        values = await self._values(user_id, key, start, end, needed=statistics.MIN_TREND_POINTS)
        origin = start
        try:
            result = statistics.trend(
                [(value.observe_time - origin).total_seconds() / 86400.0 for value in values],
                [value.value for value in values],
            )
        except statistics.InsufficientDataError as error:
            raise insufficient(error.found, error.needed, "values") from error
        direction = {
            1: analysis_pb2.TREND_DIRECTION_INCREASING,
            -1: analysis_pb2.TREND_DIRECTION_DECREASING,
            0: analysis_pb2.TREND_DIRECTION_STABLE,
        }[result.direction]
        trend = analysis_pb2.Trend(
            series=request.series,
            unit=values[-1].unit,
            sample_count=result.count,
            baseline=result.baseline,
            baseline_spread=result.spread,
            slope_per_day=result.slope,
            slope_ci_low=result.slope_low,
            slope_ci_high=result.slope_high,
            p_value=result.p_value,
            direction=direction,
            compute_time=_stamp(datetime.now(UTC)),
        )
        trend.interval.start_time.CopyFrom(_stamp(start))
        trend.interval.end_time.CopyFrom(_stamp(end))
        if request.include_points:
            trend.points.extend(_points(values))
        return trend

    async def ComputeCorrelation(
        self, request: analysis_service_pb2.ComputeCorrelationRequest, context: Context
    ) -> analysis_pb2.Correlation:
        """Pearson and Spearman with Fisher-z intervals on the paired values."""
        user_id = await self._access.parent(request.parent)
        key_x = series_key(request.series_x, field="series_x")
        key_y = series_key(request.series_y, field="series_y")
        if key_x == key_y:
            raise InvalidArgument.for_field("series_y", "must differ from series_x")
        for key in (key_x, key_y):
            await self._engine.require_known_biomarker(user_id, key)
        lag = request.lag.ToTimedelta() if request.HasField("lag") else timedelta(0)
        if lag < timedelta(0) or lag > timedelta(days=MAX_LAG_DAYS) or lag % timedelta(days=1):
            raise InvalidArgument.for_field("lag", "must be a whole number of days from 0 to 30")
        start, end = _interval(request.interval, request.HasField("interval"), "interval")
        needed = statistics.MIN_CORRELATION_PAIRS
        xs = {
            value.observe_time: value
            for value in await self._values(user_id, key_x, start - lag, end - lag, needed=needed)
        }
        ys = await self._values(user_id, key_y, start, end, needed=needed)
        pairs = [(xs[y.observe_time - lag], y) for y in ys if y.observe_time - lag in xs]
        try:
            result = statistics.correlation([x.value for x, _ in pairs], [y.value for _, y in pairs])
        except statistics.InsufficientDataError as error:
            raise insufficient(error.found, error.needed, "pairs") from error
        except statistics.ConstantSeriesError as error:
            raise FailedPrecondition(
                "a series does not vary over the interval, so no correlation exists", reason="CONSTANT_SERIES"
            ) from error
        correlation = analysis_pb2.Correlation(
            series_x=request.series_x,
            series_y=request.series_y,
            sample_count=result.count,
            pearson=analysis_pb2.CorrelationCoefficient(
                r=result.pearson.r,
                ci_low=result.pearson.low,
                ci_high=result.pearson.high,
                p_value=result.pearson.p_value,
            ),
            spearman=analysis_pb2.CorrelationCoefficient(
                r=result.spearman.r,
                ci_low=result.spearman.low,
                ci_high=result.spearman.high,
                p_value=result.spearman.p_value,
            ),
            compute_time=_stamp(datetime.now(UTC)),
        )
        correlation.lag.FromTimedelta(lag)
        correlation.interval.start_time.CopyFrom(_stamp(start))
        correlation.interval.end_time.CopyFrom(_stamp(end))
        if request.include_points:
            correlation.points_x.extend(_points([x for x, _ in pairs]))
            correlation.points_y.extend(_points([y for _, y in pairs]))
        return correlation

    async def ScoreSleep(
        self, request: analysis_service_pb2.ScoreSleepRequest, context: Context
    ) -> analysis_pb2.SleepScoring:
        """Cole-Kripke or Sadeh on 60-second epochs."""
        resolve_parent(request.parent)
        algorithms = {
            analysis_pb2.SLEEP_SCORING_ALGORITHM_COLE_KRIPKE: sleep_scoring.cole_kripke,
            analysis_pb2.SLEEP_SCORING_ALGORITHM_SADEH: sleep_scoring.sadeh,
        }
        score = algorithms.get(request.algorithm)
        if score is None:
            raise InvalidArgument.for_field("algorithm", "must be COLE_KRIPKE or SADEH")
        counts_message = request.activity_counts
        if counts_message.epoch_length.ToTimedelta() != timedelta(seconds=sleep_scoring.EPOCH_SECONDS):
            raise InvalidArgument.for_field(
                "activity_counts.epoch_length",
                "must be 60s: the published coefficients are for 1-minute epochs",
            )
        counts = list(counts_message.counts)
        if any(count < 0 for count in counts):
            raise InvalidArgument.for_field("activity_counts.counts", "must not be negative")
        if len(counts) > sleep_scoring.MAX_EPOCHS:
            raise InvalidArgument.for_field("activity_counts.counts", "must hold at most 100 000 epochs")
        if len(counts) < sleep_scoring.MIN_EPOCHS:
            raise insufficient(len(counts), sleep_scoring.MIN_EPOCHS, "epochs")
        scored = score(counts)
        start = counts_message.start_time.ToDatetime(UTC)
        epoch = timedelta(seconds=sleep_scoring.EPOCH_SECONDS)
        result = analysis_pb2.SleepScoring(
            algorithm=request.algorithm,
            variant=scored.variant,
            start_time=counts_message.start_time,
            epoch_length=counts_message.epoch_length,
            scores=scored.scores,
            asleep=scored.asleep,
            sleep_efficiency=scored.efficiency,
        )
        result.total_sleep_time.FromTimedelta(epoch * scored.total_sleep_epochs)
        result.wake_after_sleep_onset.FromTimedelta(epoch * scored.wake_after_onset_epochs)
        if scored.onset_index is not None and scored.final_wake_index is not None:
            result.sleep_onset_time.CopyFrom(_stamp(start + epoch * scored.onset_index))
            result.final_wake_time.CopyFrom(_stamp(start + epoch * scored.final_wake_index))
        return result
