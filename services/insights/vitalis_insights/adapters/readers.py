"""Reading the values an event announces, through the producing services' gRPC contracts.

Events carry resource names, never measured values; the engine reads what a rule needs with
service credentials acting for the event's user, and keeps it in its own ``series_values``.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Final, Protocol

import grpc
import grpc.aio

from vitalis.biomarkers.v1 import (
    dictionary_service_pb2,
    dictionary_service_pb2_grpc,
    panel_service_pb2,
    panel_service_pb2_grpc,
    score_service_pb2,
    score_service_pb2_grpc,
)
from vitalis.ingestion.v1 import (
    daily_summary_pb2,
    daily_summary_service_pb2,
    daily_summary_service_pb2_grpc,
    metric_pb2,
)
from vitalis_insights.domain.panel_rules import MarkerReading
from vitalis_insights.domain.series import (
    DEEP_SLEEP_TIME,
    REM_SLEEP_TIME,
    SLEEP_EFFICIENCY,
    TOTAL_SLEEP_TIME,
    SeriesValue,
    metric_key,
)
from vitalis_runtime import errors
from vitalis_runtime.service_auth import ServiceCredentials

CUMULATIVE_METRICS: Final = frozenset(
    {
        metric_pb2.METRIC_TYPE_STEPS,
        metric_pb2.METRIC_TYPE_DISTANCE,
        metric_pb2.METRIC_TYPE_FLOORS_CLIMBED,
        metric_pb2.METRIC_TYPE_ACTIVE_ENERGY,
        metric_pb2.METRIC_TYPE_BASAL_ENERGY,
        metric_pb2.METRIC_TYPE_EXERCISE_TIME,
    }
)
_RETRYABLE: Final = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
CALL_TIMEOUT: Final = 10.0


class DailyValueReader(Protocol):
    """Reads a merged daily summary as series values."""

    async def daily_values(self, user_id: uuid.UUID, daily_summary: str) -> list[SeriesValue]:
        """The values of the summary; empty when it no longer exists."""
        ...

    async def history(self, user_id: uuid.UUID, start: date, end: date) -> list[SeriesValue]:
        """The values of every merged summary from ``start`` to ``end`` (inclusive)."""
        ...


class BiomarkerReader(Protocol):
    """Reads a panel's marker values and a score's value."""

    async def panel_readings(self, user_id: uuid.UUID, panel: str) -> dict[str, tuple[str, MarkerReading]]:
        """Marker name -> (biomarker, reading); empty when the panel cannot be read."""
        ...

    async def score_value(self, user_id: uuid.UUID, score: str) -> SeriesValue | None:
        """The score's value, or None when it cannot be read."""
        ...

    async def marker_history(self, user_id: uuid.UUID, biomarker: str) -> list[SeriesValue]:
        """Every marker of the biomarker the user has, in canonical units."""
        ...

    async def display_names(self, user_id: uuid.UUID, biomarkers: list[str]) -> dict[str, str]:
        """The dictionary's display name of each biomarker it knows."""
        ...

    async def to_canonical(
        self, user_id: uuid.UUID, biomarker: str, value: float, unit: str
    ) -> tuple[float, str]:
        """``value`` in ``unit`` converted to the biomarker's canonical unit."""
        ...

    async def biomarker_exists(self, user_id: uuid.UUID, biomarker: str) -> bool:
        """Whether the dictionary knows the biomarker."""
        ...


def _unavailable(service: str, error: grpc.aio.AioRpcError) -> errors.Unavailable:
    return errors.Unavailable(
        f"{service} cannot be reached: {error.details()}", reason="DEPENDENCY_UNAVAILABLE"
    )


class GrpcIngestionReader:
    """DailySummaryService.GetDailySummary with service credentials."""

    def __init__(self, channel: grpc.aio.Channel, credentials: ServiceCredentials) -> None:
        self._stub = daily_summary_service_pb2_grpc.DailySummaryServiceStub(channel)
        self._credentials = credentials

    async def daily_values(self, user_id: uuid.UUID, daily_summary: str) -> list[SeriesValue]:
        """Resting heart rate, HRV by method, every other metric, and the night's sleep measures."""
        try:
            summary = await self._stub.GetDailySummary(
                daily_summary_service_pb2.GetDailySummaryRequest(name=daily_summary),
                metadata=self._credentials.metadata(user_id),
                timeout=CALL_TIMEOUT,
            )
        except grpc.aio.AioRpcError as error:
            if error.code() in _RETRYABLE:
                raise _unavailable("ingestion", error) from error
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return []
            raise
        return summary_values(summary)

    async def history(self, user_id: uuid.UUID, start: date, end: date) -> list[SeriesValue]:
        """ListDailySummaries, page by page."""
        values: list[SeriesValue] = []
        token = ""
        while True:
            request = daily_summary_service_pb2.ListDailySummariesRequest(
                parent=f"users/{user_id}", page_size=366, page_token=token
            )
            request.start_date.year, request.start_date.month, request.start_date.day = (
                start.year,
                start.month,
                start.day,
            )
            request.end_date.year, request.end_date.month, request.end_date.day = end.year, end.month, end.day
            try:
                page = await self._stub.ListDailySummaries(
                    request, metadata=self._credentials.metadata(user_id), timeout=CALL_TIMEOUT
                )
            except grpc.aio.AioRpcError as error:
                if error.code() in _RETRYABLE:
                    raise _unavailable("ingestion", error) from error
                return values
            for summary in page.daily_summaries:
                values += summary_values(summary)
            token = page.next_page_token
            if not token:
                return values


def summary_values(summary: daily_summary_pb2.DailySummary) -> list[SeriesValue]:
    """The series values one merged daily summary holds."""
    day = datetime(summary.date.year, summary.date.month, summary.date.day, tzinfo=UTC)
    values: list[SeriesValue] = []
    for metric in summary.metrics:
        if metric.count == 0:
            continue
        value = metric.sum if metric.metric_type in CUMULATIVE_METRICS else metric.avg
        key = metric_key(metric.metric_type, metric.hrv.method)
        values.append(SeriesValue(key, day, value, metric.unit, summary.name))
    sleep = summary.sleep
    if sleep.session_count > 0:
        asleep = sleep.asleep_duration.ToTimedelta().total_seconds() / 60.0
        in_bed = sleep.in_bed_duration.ToTimedelta().total_seconds() / 60.0
        values.append(SeriesValue(TOTAL_SLEEP_TIME, day, asleep, "min", summary.name))
        values.append(
            SeriesValue(
                DEEP_SLEEP_TIME,
                day,
                sleep.deep_duration.ToTimedelta().total_seconds() / 60.0,
                "min",
                summary.name,
            )
        )
        values.append(
            SeriesValue(
                REM_SLEEP_TIME,
                day,
                sleep.rem_duration.ToTimedelta().total_seconds() / 60.0,
                "min",
                summary.name,
            )
        )
        if in_bed > 0:
            values.append(SeriesValue(SLEEP_EFFICIENCY, day, asleep / in_bed, "1", summary.name))
    return values


class GrpcBiomarkerReader:
    """PanelService.GetPanel and ScoreService.GetScore with service credentials."""

    def __init__(self, channel: grpc.aio.Channel, credentials: ServiceCredentials) -> None:
        self._panels = panel_service_pb2_grpc.PanelServiceStub(channel)
        self._dictionary = dictionary_service_pb2_grpc.DictionaryServiceStub(channel)
        self._names: dict[str, str] = {}
        self._scores = score_service_pb2_grpc.ScoreServiceStub(channel)
        self._credentials = credentials

    async def panel_readings(self, user_id: uuid.UUID, panel: str) -> dict[str, tuple[str, MarkerReading]]:
        """Each marker's canonical value (or reported, when it has none) and its lab range."""
        try:
            found = await self._panels.GetPanel(
                panel_service_pb2.GetPanelRequest(name=panel),
                metadata=self._credentials.metadata(user_id),
                timeout=CALL_TIMEOUT,
            )
        except grpc.aio.AioRpcError as error:
            if error.code() in _RETRYABLE:
                raise _unavailable("biomarkers", error) from error
            return {}
        readings: dict[str, tuple[str, MarkerReading]] = {}
        for marker in found.markers:
            canonical = marker.HasField("canonical_value")
            readings[marker.name] = (
                marker.biomarker,
                MarkerReading(
                    value=marker.canonical_value if canonical else marker.value,
                    unit=marker.canonical_unit if canonical else marker.reported_unit,
                    range_low=marker.lab_range.low if marker.lab_range.HasField("low") else None,
                    range_high=marker.lab_range.high if marker.lab_range.HasField("high") else None,
                ),
            )
        return readings

    async def display_names(self, user_id: uuid.UUID, biomarkers: list[str]) -> dict[str, str]:
        """DictionaryService.GetBiomarker, remembered (the dictionary changes with releases only)."""
        for biomarker in biomarkers:
            if biomarker in self._names:
                continue
            try:
                found = await self._dictionary.GetBiomarker(
                    dictionary_service_pb2.GetBiomarkerRequest(name=biomarker),
                    metadata=self._credentials.metadata(user_id),
                    timeout=CALL_TIMEOUT,
                )
            except grpc.aio.AioRpcError:
                continue
            self._names[biomarker] = found.display_name
        return {biomarker: self._names[biomarker] for biomarker in biomarkers if biomarker in self._names}

    async def biomarker_exists(self, user_id: uuid.UUID, biomarker: str) -> bool:
        """DictionaryService.GetBiomarker answers it (and the display name is remembered)."""
        if biomarker in self._names:
            return True
        try:
            found = await self._dictionary.GetBiomarker(
                dictionary_service_pb2.GetBiomarkerRequest(name=biomarker),
                metadata=self._credentials.metadata(user_id),
                timeout=CALL_TIMEOUT,
            )
        except grpc.aio.AioRpcError as error:
            if error.code() in _RETRYABLE:
                raise _unavailable("biomarkers", error) from error
            return error.code() != grpc.StatusCode.NOT_FOUND
        self._names[biomarker] = found.display_name
        return True

    async def to_canonical(
        self, user_id: uuid.UUID, biomarker: str, value: float, unit: str
    ) -> tuple[float, str]:
        """DictionaryService.ConvertBiomarkerValue; an unknown biomarker is NOT_FOUND, a foreign unit
        INVALID_ARGUMENT on ``goal.unit``."""
        try:
            converted = await self._dictionary.ConvertBiomarkerValue(
                dictionary_service_pb2.ConvertBiomarkerValueRequest(
                    biomarker=biomarker, value=value, from_unit=unit
                ),
                metadata=self._credentials.metadata(user_id),
                timeout=CALL_TIMEOUT,
            )
        except grpc.aio.AioRpcError as error:
            if error.code() in _RETRYABLE:
                raise _unavailable("biomarkers", error) from error
            if error.code() == grpc.StatusCode.NOT_FOUND:
                raise errors.NotFound(
                    f"biomarker {biomarker!r} was not found", reason="BIOMARKER_NOT_FOUND"
                ) from error
            raise errors.InvalidArgument.for_field(
                "goal.unit", f"{unit!r} cannot be converted: {error.details()}"
            ) from error
        return converted.value, converted.unit

    async def marker_history(self, user_id: uuid.UUID, biomarker: str) -> list[SeriesValue]:
        """ListMarkers of the biomarker across the user's panels, page by page."""
        values: list[SeriesValue] = []
        token = ""
        while True:
            try:
                page = await self._panels.ListMarkers(
                    panel_service_pb2.ListMarkersRequest(
                        parent=f"users/{user_id}/panels/-",
                        biomarker=biomarker,
                        page_size=1000,
                        page_token=token,
                    ),
                    metadata=self._credentials.metadata(user_id),
                    timeout=CALL_TIMEOUT,
                )
            except grpc.aio.AioRpcError as error:
                if error.code() in _RETRYABLE:
                    raise _unavailable("biomarkers", error) from error
                return values
            for marker in page.markers:
                if marker.HasField("canonical_value"):
                    values.append(
                        SeriesValue(
                            f"biomarker:{biomarker}",
                            marker.collection_time.ToDatetime(UTC),
                            marker.canonical_value,
                            marker.canonical_unit,
                            marker.name,
                        )
                    )
            token = page.next_page_token
            if not token:
                return values

    async def score_value(self, user_id: uuid.UUID, score: str) -> SeriesValue | None:
        """The score's value at its sample time."""
        try:
            found = await self._scores.GetScore(
                score_service_pb2.GetScoreRequest(name=score),
                metadata=self._credentials.metadata(user_id),
                timeout=CALL_TIMEOUT,
            )
        except grpc.aio.AioRpcError as error:
            if error.code() in _RETRYABLE:
                raise _unavailable("biomarkers", error) from error
            return None
        return SeriesValue(
            f"score:{found.formula}", found.sample_time.ToDatetime(UTC), found.value, found.unit, found.name
        )
