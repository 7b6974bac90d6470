"""Garmin FIT files: activities (records, laps, a session), monitoring and weight-scale files."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import IO, Any, Final

import fitdecode  # type: ignore[import-untyped]

from vitalis_ingestion.domain.records import WORKOUTS, RecordDraft
from vitalis_ingestion.domain.samples import SampleDraft
from vitalis_ingestion.importers.items import ImportFailure, ImportItem, SourceHint, hinted_source, rejected

GARMIN_PLATFORM: Final = 2
SEMICIRCLE_DEGREES: Final = 180.0 / 2**31
MAX_ROUTE_POINTS: Final = 50_000
NO_VALUE: Final = "NO_SUPPORTED_VALUE"
SPORTS: Final = {
    "running": "ACTIVITY_TYPE_RUNNING",
    "walking": "ACTIVITY_TYPE_WALKING",
    "hiking": "ACTIVITY_TYPE_HIKING",
    "cycling": "ACTIVITY_TYPE_CYCLING",
    "swimming": "ACTIVITY_TYPE_POOL_SWIMMING",
    "rowing": "ACTIVITY_TYPE_ROWING",
    "training": "ACTIVITY_TYPE_STRENGTH_TRAINING",
    "alpine_skiing": "ACTIVITY_TYPE_SKIING",
    "cross_country_skiing": "ACTIVITY_TYPE_SKIING",
}
# FIT record field -> MetricType number, in the order samples are made from one record.
RECORD_METRICS: Final = (("heart_rate", 1), ("speed", 24), ("cadence", 25), ("power", 26))


def semicircles_to_degrees(value: int) -> float:
    """A FIT position (semicircles) in degrees."""
    return value * SEMICIRCLE_DEGREES


def _fields(frame: Any) -> dict[str, Any]:
    return {field.name: field.value for field in frame.fields if field.value is not None}


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


class FitParser:
    """Turns a FIT stream into import items."""

    def __init__(self, *, fixed_source: SourceHint | None) -> None:
        self._source = fixed_source
        self._route: list[dict[str, Any]] = []
        self._laps: list[dict[str, Any]] = []
        self._last_timestamp: datetime | None = None
        self._counts: dict[str, int] = {}
        self._totals: dict[str, Any] | None = None

    def _location(self, name: str) -> str:
        self._counts[name] = self._counts.get(name, 0) + 1
        return f"{name} {self._counts[name]}"

    def _source_for(self, values: dict[str, Any]) -> SourceHint:
        if self._source is None:
            product = values.get("garmin_product") or values.get("product") or "device"
            name = f"{values.get('manufacturer', 'garmin')} {product}".strip()
            self._source = hinted_source("garmin", str(name), GARMIN_PLATFORM)
        return self._source

    def items(self, stream: IO[bytes]) -> Iterator[ImportItem]:
        """Every record, session, monitoring and weight-scale message of the file."""
        try:
            with fitdecode.FitReader(stream, check_crc=fitdecode.CrcCheck.RAISE) as reader:
                for frame in reader:
                    if isinstance(frame, fitdecode.FitDataMessage):
                        yield from self._message(frame.name, _fields(frame))
            totals = self.flush_totals()
            if totals is not None:
                yield totals
        except fitdecode.FitEOFError as error:
            raise ImportFailure(
                "FILE_TRUNCATED", f"the FIT file ends before its last message ({error})"
            ) from error
        except fitdecode.FitCRCError as error:
            raise ImportFailure("FILE_CORRUPT", f"the FIT file fails its checksum ({error})") from error
        except fitdecode.FitHeaderError as error:
            raise ImportFailure("UNSUPPORTED_FORMAT", f"the file is not a FIT file ({error})") from error
        except fitdecode.FitError as error:
            raise ImportFailure("FILE_CORRUPT", f"the FIT file cannot be decoded ({error})") from error

    def _message(self, name: str, values: dict[str, Any]) -> Iterator[ImportItem]:
        if name == "file_id":
            self._source_for(values)
        elif name == "monitoring_info" and isinstance(values.get("timestamp"), datetime):
            self._last_timestamp = values["timestamp"]
        elif name == "record":
            yield self._record(values, self._location(name))
        elif name == "lap":
            self._laps.append(self._lap(values))
        elif name == "session":
            yield self._session(values, self._location(name))
        elif name == "monitoring":
            item = self._monitoring(values, self._location(name))
            if item is not None:
                yield item
        elif name == "weight_scale":
            yield self._weight(values, self._location(name))

    def _record(self, values: dict[str, Any], location: str) -> ImportItem:
        moment = values.get("timestamp")
        if not isinstance(moment, datetime):
            return rejected("record", location, NO_VALUE, "the record has no timestamp")
        values.setdefault("speed", values.get("enhanced_speed"))
        source = self._source_for({})
        samples = [
            SampleDraft(
                source_id=source.source_id, metric=metric, value=float(values[field]), start_time=moment
            )
            for field, metric in RECORD_METRICS
            if values.get(field) is not None
        ]
        if "position_lat" in values and "position_long" in values and len(self._route) < MAX_ROUTE_POINTS:
            point: dict[str, Any] = {
                "time": _iso(moment),
                "position": {
                    "latitude": semicircles_to_degrees(values["position_lat"]),
                    "longitude": semicircles_to_degrees(values["position_long"]),
                },
            }
            altitude = values.get("enhanced_altitude", values.get("altitude"))
            if altitude is not None:
                point["altitudeMeters"] = float(altitude)
            self._route.append(point)
        if not samples:
            return rejected(
                "record", location, NO_VALUE, "the record carries no heart rate, speed, cadence or power"
            )
        return ImportItem("record", location, source=source, samples=samples)

    @staticmethod
    def _lap(values: dict[str, Any]) -> dict[str, Any]:
        start, end = values.get("start_time"), values.get("timestamp")
        lap: dict[str, Any] = {}
        if isinstance(start, datetime) and isinstance(end, datetime):
            lap = {"startTime": _iso(start), "endTime": _iso(end)}
        for field, key in (
            ("total_distance", "distanceMeters"),
            ("avg_heart_rate", "averageHeartRate"),
            ("max_heart_rate", "maxHeartRate"),
            ("enhanced_avg_speed", "averageSpeed"),
            ("total_calories", "energyKcal"),
        ):
            if values.get(field) is not None:
                lap[key] = float(values[field])
        if values.get("total_timer_time") is not None:
            lap["movingDuration"] = f"{float(values['total_timer_time']):.3f}s"
        return lap

    def _session(self, values: dict[str, Any], location: str) -> ImportItem:
        start, end = values.get("start_time"), values.get("timestamp")
        if not isinstance(start, datetime) or not isinstance(end, datetime):
            return rejected("session", location, NO_VALUE, "the session has no start or end time")
        elapsed = values.get("total_elapsed_time")
        if isinstance(elapsed, int | float):
            end = max(end, start + timedelta(seconds=float(elapsed)))
        body: dict[str, Any] = {
            "activityType": SPORTS.get(str(values.get("sport")), "ACTIVITY_TYPE_OTHER"),
            "laps": self._laps,
            "route": self._route,
        }
        if values.get("sport_profile_name"):
            body["displayName"] = str(values["sport_profile_name"])
        for field, key in (
            ("total_distance", "distanceMeters"),
            ("total_calories", "activeEnergyKcal"),
            ("avg_heart_rate", "averageHeartRate"),
            ("max_heart_rate", "maxHeartRate"),
            ("total_ascent", "elevationGainMeters"),
            ("total_descent", "elevationLossMeters"),
        ):
            if values.get(field) is not None:
                body[key] = float(values[field])
        if values.get("total_timer_time") is not None:
            body["movingDuration"] = f"{float(values['total_timer_time']):.3f}s"
        self._laps, self._route = [], []
        source = self._source_for({})
        draft = RecordDraft(WORKOUTS, source.source_id, start, end, body)
        return ImportItem("session", location, source=source, records=[draft])

    def _add_to_totals(self, values: dict[str, Any], moment: datetime, location: str) -> ImportItem | None:
        """Sum the per-activity totals of one period (walking, running, ...) into one item."""
        end = moment + timedelta(minutes=float(values["duration_min"]))
        done = None
        if self._totals is not None and (self._totals["start"], self._totals["end"]) != (moment, end):
            done = self.flush_totals()
        if self._totals is None:
            self._totals = {
                "start": moment,
                "end": end,
                "steps": 0.0,
                "energy": None,
                "count": 0,
                "at": location,
            }
        self._totals["steps"] += float(values["steps"])
        if values.get("active_calories") is not None:
            self._totals["energy"] = (self._totals["energy"] or 0.0) + float(values["active_calories"])
        self._totals["count"] += 1
        return done

    def flush_totals(self) -> ImportItem | None:
        """The pending period totals as one item (``None`` when there are none)."""
        totals, self._totals = self._totals, None
        if totals is None:
            return None
        source = self._source_for({})
        start, end = totals["start"], totals["end"]
        samples = [SampleDraft(source.source_id, 4, totals["steps"], start, end_time=end)]
        if totals["energy"] is not None:
            samples.append(SampleDraft(source.source_id, 7, totals["energy"], start, end_time=end))
        return ImportItem("monitoring", totals["at"], source=source, samples=samples, weight=totals["count"])

    def _monitoring(self, values: dict[str, Any], location: str) -> ImportItem | None:
        moment = values.get("timestamp")
        if isinstance(moment, datetime):
            self._last_timestamp = moment
        elif "timestamp_16" in values and self._last_timestamp is not None:
            base = int(self._last_timestamp.timestamp())
            seconds = base + ((int(values["timestamp_16"]) - (base & 0xFFFF)) & 0xFFFF)
            moment = self._last_timestamp = datetime.fromtimestamp(seconds, UTC)
        if not isinstance(moment, datetime):
            return rejected(
                "monitoring", location, NO_VALUE, "the monitoring message has no usable timestamp"
            )
        source = self._source_for({})
        samples = []
        if values.get("heart_rate"):
            samples.append(SampleDraft(source.source_id, 1, float(values["heart_rate"]), moment))
        if "steps" in values and "duration_min" in values:
            return self._add_to_totals(values, moment, location)
        if not samples:
            return rejected(
                "monitoring",
                location,
                NO_VALUE,
                "the monitoring message carries only activity levels or raw cycles",
            )
        return ImportItem("monitoring", location, source=source, samples=samples)

    def _weight(self, values: dict[str, Any], location: str) -> ImportItem:
        moment = values.get("timestamp")
        source = self._source_for({})
        if not isinstance(moment, datetime) or not isinstance(values.get("weight"), int | float):
            return rejected(
                "weight_scale", location, NO_VALUE, "the weight-scale message has no weight or time"
            )
        samples = [SampleDraft(source.source_id, 14, float(values["weight"]), moment)]
        if isinstance(values.get("percent_fat"), int | float):
            samples.append(SampleDraft(source.source_id, 15, float(values["percent_fat"]), moment))
        return ImportItem("weight_scale", location, source=source, samples=samples)
