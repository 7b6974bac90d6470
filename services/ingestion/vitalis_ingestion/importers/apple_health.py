"""Apple Health ``export.xml``: a streaming parse in bounded memory.

Top-level elements are handled as they end and then cleared, so memory stays flat whatever the
file's size. Entities are never resolved and nothing is fetched from the network; a document that
declares entities is refused. Time-zone offsets are kept, blood-pressure correlations become a
systolic and a diastolic sample sharing a correlation key, sleep-analysis records are grouped into
sessions with mapped stages, and HRV is recorded as SDNN.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import IO, Any, Final

from lxml import etree

from vitalis_ingestion.domain.records import SLEEP_SESSIONS, WORKOUTS, RecordDraft
from vitalis_ingestion.domain.samples import SampleDraft
from vitalis_ingestion.importers.items import (
    UNPARSEABLE,
    UNSUPPORTED,
    ImportFailure,
    ImportItem,
    SourceHint,
    hinted_source,
    rejected,
)
from vitalis_ingestion.importers.routes import read_gpx_route

APPLE_HEALTH_PLATFORM: Final = 1
SDNN: Final = 2
SLEEP_GAP: Final = timedelta(hours=2)
MAX_ROUTE_POINTS: Final = 50_000
# HealthKit quantity type -> (MetricType number, multiplier applied before unit conversion).
QUANTITY_TYPES: Final = {
    "HKQuantityTypeIdentifierHeartRate": 1,
    "HKQuantityTypeIdentifierRestingHeartRate": 2,
    "HKQuantityTypeIdentifierHeartRateVariabilitySDNN": 3,
    "HKQuantityTypeIdentifierStepCount": 4,
    "HKQuantityTypeIdentifierDistanceWalkingRunning": 5,
    "HKQuantityTypeIdentifierFlightsClimbed": 6,
    "HKQuantityTypeIdentifierActiveEnergyBurned": 7,
    "HKQuantityTypeIdentifierBasalEnergyBurned": 8,
    "HKQuantityTypeIdentifierAppleExerciseTime": 9,
    "HKQuantityTypeIdentifierOxygenSaturation": 10,
    "HKQuantityTypeIdentifierRespiratoryRate": 11,
    "HKQuantityTypeIdentifierBodyTemperature": 12,
    "HKQuantityTypeIdentifierBodyMass": 14,
    "HKQuantityTypeIdentifierBodyFatPercentage": 15,
    "HKQuantityTypeIdentifierLeanBodyMass": 16,
    "HKQuantityTypeIdentifierBodyMassIndex": 17,
    "HKQuantityTypeIdentifierHeight": 18,
    "HKQuantityTypeIdentifierBloodPressureSystolic": 19,
    "HKQuantityTypeIdentifierBloodPressureDiastolic": 20,
    "HKQuantityTypeIdentifierBloodGlucose": 22,
    "HKQuantityTypeIdentifierVO2Max": 23,
}
# HealthKit unit -> (UCUM unit, factor): HealthKit writes fractions for percentages.
UNITS: Final = {
    "count/min": ("/min", 1.0),
    "ms": ("ms", 1.0),
    "count": ("", 1.0),
    "km": ("km", 1.0),
    "m": ("m", 1.0),
    "mi": ("[mi_i]", 1.0),
    "ft": ("cm", 30.48),
    "in": ("[in_i]", 1.0),
    "cm": ("cm", 1.0),
    "kcal": ("kcal", 1.0),
    "Cal": ("kcal", 1.0),
    "kJ": ("kJ", 1.0),
    "min": ("min", 1.0),
    "%": ("%", 100.0),
    "degC": ("Cel", 1.0),
    "degF": ("[degF]", 1.0),
    "kg": ("kg", 1.0),
    "g": ("g", 1.0),
    "lb": ("[lb_av]", 1.0),
    "mmHg": ("mm[Hg]", 1.0),
    "mg/dL": ("mg/dL", 1.0),
    "mmol<180.1558800000541>/L": ("mmol/L", 1.0),
    "mL/min·kg": ("mL/(kg.min)", 1.0),
}
SLEEP_STAGES: Final = {
    "HKCategoryValueSleepAnalysisInBed": "SLEEP_STAGE_TYPE_IN_BED",
    "HKCategoryValueSleepAnalysisAsleep": "SLEEP_STAGE_TYPE_ASLEEP",
    "HKCategoryValueSleepAnalysisAsleepUnspecified": "SLEEP_STAGE_TYPE_ASLEEP",
    "HKCategoryValueSleepAnalysisAwake": "SLEEP_STAGE_TYPE_AWAKE",
    "HKCategoryValueSleepAnalysisAsleepCore": "SLEEP_STAGE_TYPE_LIGHT",
    "HKCategoryValueSleepAnalysisAsleepDeep": "SLEEP_STAGE_TYPE_DEEP",
    "HKCategoryValueSleepAnalysisAsleepREM": "SLEEP_STAGE_TYPE_REM",
}
ACTIVITIES: Final = {
    "HKWorkoutActivityTypeRunning": "ACTIVITY_TYPE_RUNNING",
    "HKWorkoutActivityTypeWalking": "ACTIVITY_TYPE_WALKING",
    "HKWorkoutActivityTypeHiking": "ACTIVITY_TYPE_HIKING",
    "HKWorkoutActivityTypeCycling": "ACTIVITY_TYPE_CYCLING",
    "HKWorkoutActivityTypeSwimming": "ACTIVITY_TYPE_POOL_SWIMMING",
    "HKWorkoutActivityTypeRowing": "ACTIVITY_TYPE_ROWING",
    "HKWorkoutActivityTypeElliptical": "ACTIVITY_TYPE_ELLIPTICAL",
    "HKWorkoutActivityTypeTraditionalStrengthTraining": "ACTIVITY_TYPE_STRENGTH_TRAINING",
    "HKWorkoutActivityTypeFunctionalStrengthTraining": "ACTIVITY_TYPE_STRENGTH_TRAINING",
    "HKWorkoutActivityTypeHighIntensityIntervalTraining": "ACTIVITY_TYPE_HIIT",
    "HKWorkoutActivityTypeYoga": "ACTIVITY_TYPE_YOGA",
    "HKWorkoutActivityTypePilates": "ACTIVITY_TYPE_PILATES",
    "HKWorkoutActivityTypeDownhillSkiing": "ACTIVITY_TYPE_SKIING",
    "HKWorkoutActivityTypeCrossCountrySkiing": "ACTIVITY_TYPE_SKIING",
}
NOT_RECORDS: Final = frozenset({"ExportDate", "Me"})
RouteOpener = Callable[[str], IO[bytes]]


def parse_time(text: str | None) -> tuple[datetime, int]:
    """``2018-09-10 02:28:55 -0700`` as an aware datetime and its UTC offset in seconds."""
    if not text or len(text) != 25 or text[19] != " ":
        raise ValueError(f"{text!r} is not an Apple Health date")
    moment = datetime.fromisoformat(text[:19] + text[20:])
    offset = moment.utcoffset()
    if offset is None:
        raise ValueError(f"{text!r} is not an Apple Health date")
    return moment, offset.days * 86400 + offset.seconds


def _metadata(element: Any) -> dict[str, str]:
    entries: dict[str, str] = {}
    for child in element.iterchildren("MetadataEntry"):
        if len(entries) >= 20:
            break
        key, value = child.get("key"), child.get("value")
        if key and value is not None:
            entries[key[:100]] = value[:500]
    return entries


class _SleepGrouper:
    """Collects sleep-analysis records into sessions, one open session per source."""

    def __init__(self) -> None:
        self._open: dict[str, dict[str, Any]] = {}

    def add(
        self, source: SourceHint, stage: str, *, start: datetime, end: datetime, offset: int, location: str
    ) -> list[ImportItem]:
        done = []
        current = self._open.get(source.source_id)
        if current is not None and start > current["end"] + SLEEP_GAP:
            done.append(self._close(source.source_id))
            current = None
        if current is None:
            current = {
                "source": source,
                "start": start,
                "end": end,
                "offset": offset,
                "stages": [],
                "location": location,
            }
            self._open[source.source_id] = current
        current["start"] = min(current["start"], start)
        current["end"] = max(current["end"], end)
        current["stages"].append({"stage": stage, "startTime": start.isoformat(), "endTime": end.isoformat()})
        return done

    def _close(self, source_id: str) -> ImportItem:
        session = self._open.pop(source_id)
        draft = RecordDraft(
            collection=SLEEP_SESSIONS,
            source_id=session["source"].source_id,
            start_time=session["start"],
            end_time=session["end"],
            utc_offset_s=session["offset"],
            body={"stages": sorted(session["stages"], key=lambda s: s["startTime"])},
        )
        return ImportItem(
            "HKCategoryTypeIdentifierSleepAnalysis",
            session["location"],
            source=session["source"],
            records=[draft],
            weight=len(session["stages"]),
        )

    def close_all(self) -> list[ImportItem]:
        return [self._close(source_id) for source_id in list(self._open)]


class AppleHealthParser:
    """Turns an export.xml stream into import items."""

    def __init__(self, *, fixed_source: SourceHint | None, route_opener: RouteOpener | None) -> None:
        self._fixed = fixed_source
        self._routes = route_opener
        self._sources: dict[str, SourceHint] = {}
        self._sources_by_id: dict[str, SourceHint] = (
            {} if fixed_source is None else {fixed_source.source_id: fixed_source}
        )
        self._sleep = _SleepGrouper()

    def _source(self, element: Any) -> SourceHint:
        return self._source_named(element.get("sourceName"))

    def _source_named(self, name: str | None) -> SourceHint:
        if self._fixed is not None:
            return self._fixed
        name = name or "Apple Health"
        hint = self._sources.get(name)
        if hint is None:
            hint = self._sources[name] = hinted_source("apple-health", name, APPLE_HEALTH_PLATFORM)
            self._sources_by_id[hint.source_id] = hint
        return hint

    def items(self, stream: IO[bytes]) -> Iterator[ImportItem]:
        """Every record of the file, in file order (sleep sessions when they close)."""
        context = etree.iterparse(
            stream,
            events=("end",),
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            huge_tree=False,
            remove_comments=True,
            remove_pis=True,
        )
        number = 0
        root: Any = None
        try:
            for _, element in context:
                if root is None:
                    _refuse_entities(element)
                    root = element.getroottree().getroot()
                parent = element.getparent()
                if parent is None:
                    if element.tag != "HealthData":
                        raise ImportFailure(
                            "UNSUPPORTED_FORMAT", "the XML document is not an Apple Health export"
                        )
                    break
                if parent.getparent() is not None:
                    continue
                if element.tag not in NOT_RECORDS:
                    number += 1
                    yield from self._element(element, f"record {number}")
                element.clear()
                while element.getprevious() is not None:
                    del parent[0]
        except etree.XMLSyntaxError as error:
            message = str(error)
            if "entit" in message.lower():
                raise ImportFailure(
                    "XML_ENTITY_FORBIDDEN", "the export declares XML entities, which are refused"
                ) from error
            if _exhausted(stream):
                raise ImportFailure(
                    "FILE_TRUNCATED", f"the export ends in the middle of a record after record {number}"
                ) from error
            raise ImportFailure("FILE_CORRUPT", f"the export is not well-formed XML ({message})") from error
        yield from self._sleep.close_all()

    def _element(self, element: Any, location: str) -> list[ImportItem]:
        tag = element.tag
        try:
            if tag == "Record":
                return self._record(element, location)
            if tag == "Workout":
                return [self._workout(element, location)]
            if tag == "Correlation":
                return [self._correlation(element, location)]
            return [rejected(tag, location, UNSUPPORTED, f"{tag} elements are not imported")]
        except (ValueError, TypeError) as error:
            return [rejected(element.get("type") or tag, location, UNPARSEABLE, f"{location}: {error}")]

    def _quantity(self, element: Any) -> SampleDraft | None:
        get = element.get
        metric = QUANTITY_TYPES.get(get("type", ""))
        if metric is None:
            return None
        unit_text = get("unit", "")
        unit, factor = UNITS.get(unit_text, (unit_text, 1.0))
        start_text, end_text = get("startDate"), get("endDate")
        start, offset = parse_time(start_text)
        end = start if end_text == start_text else parse_time(end_text)[0]
        window = max(int((end - start).total_seconds()), 60) if metric == 3 else 0
        return SampleDraft(
            self._source_named(get("sourceName")).source_id,
            metric,
            float(get("value")) * factor,
            start,
            end,
            unit,
            SDNN if metric == 3 else 0,
            window,
            metric == 3,
            offset,
            None,
            "",
            _metadata(element) if len(element) else {},
        )

    def _record(self, element: Any, location: str) -> list[ImportItem]:
        record_type = element.get("type") or "Record"
        if record_type == "HKCategoryTypeIdentifierSleepAnalysis":
            stage = SLEEP_STAGES.get(element.get("value") or "")
            if stage is None:
                return [
                    rejected(
                        record_type, location, UNPARSEABLE, f"unknown sleep category {element.get('value')!r}"
                    )
                ]
            start, offset = parse_time(element.get("startDate"))
            end, _ = parse_time(element.get("endDate"))
            return self._sleep.add(
                self._source(element), stage, start=start, end=end, offset=offset, location=location
            )
        draft = self._quantity(element)
        if draft is None:
            return [
                rejected(record_type, location, UNSUPPORTED, f"{record_type} is not a metric Vitalis imports")
            ]
        return [ImportItem(record_type, location, self._sources_by_id[draft.source_id], [draft])]

    def _correlation(self, element: Any, location: str) -> ImportItem:
        record_type = element.get("type") or "Correlation"
        if record_type != "HKCorrelationTypeIdentifierBloodPressure":
            return rejected(record_type, location, UNSUPPORTED, f"{record_type} is not imported")
        start, _ = parse_time(element.get("startDate"))
        key = (
            "bp-"
            + hashlib.sha256(f"{element.get('sourceName')}|{start.isoformat()}".encode()).hexdigest()[:16]
        )
        samples = []
        for child in element.iterchildren("Record"):
            draft = self._quantity(child)
            if draft is not None and draft.metric in (19, 20):
                draft.correlation_key = key
                samples.append(draft)
        if len(samples) != 2:
            return rejected(
                record_type,
                location,
                UNPARSEABLE,
                "a blood-pressure reading needs a systolic and a diastolic value",
            )
        return ImportItem(record_type, location, source=self._source(element), samples=samples)

    def _workout(self, element: Any, location: str) -> ImportItem:
        start, offset = parse_time(element.get("startDate"))
        end, _ = parse_time(element.get("endDate"))
        kind = element.get("workoutActivityType") or ""
        body: dict[str, Any] = {
            "activityType": ACTIVITIES.get(kind, "ACTIVITY_TYPE_OTHER"),
            "metadata": _metadata(element),
        }
        if kind not in ACTIVITIES:
            body["displayName"] = kind.removeprefix("HKWorkoutActivityType")
        distance, distance_unit = element.get("totalDistance"), element.get("totalDistanceUnit")
        if distance is not None:
            factor = {"km": 1000.0, "mi": 1609.344, "m": 1.0, "yd": 0.9144}.get(distance_unit or "", 1.0)
            body["distanceMeters"] = float(distance) * factor
        energy, energy_unit = element.get("totalEnergyBurned"), element.get("totalEnergyBurnedUnit")
        if energy is not None:
            body["activeEnergyKcal"] = float(energy) / (4.184 if energy_unit == "kJ" else 1.0)
        body["route"] = self._route(element)
        draft = RecordDraft(WORKOUTS, self._source(element).source_id, start, end, body, utc_offset_s=offset)
        return ImportItem("Workout", location, source=self._source(element), records=[draft])

    def _route(self, workout: Any) -> list[dict[str, Any]]:
        points: list[dict[str, Any]] = []
        for route in workout.iterchildren("WorkoutRoute"):
            for location in route.iterchildren("Location"):
                if len(points) >= MAX_ROUTE_POINTS:
                    break
                moment, _ = parse_time(location.get("date"))
                points.append(
                    {
                        "time": moment.isoformat(),
                        "position": {
                            "latitude": float(location.get("latitude")),
                            "longitude": float(location.get("longitude")),
                        },
                        "altitudeMeters": float(location.get("altitude") or 0),
                        "horizontalAccuracyMeters": float(location.get("horizontalAccuracy") or 0),
                    }
                )
            for reference in route.iterchildren("FileReference"):
                path = reference.get("path") or ""
                if self._routes is not None and path:
                    with self._routes(path) as gpx:
                        points += read_gpx_route(gpx, limit=MAX_ROUTE_POINTS - len(points))
        return points


def _refuse_entities(element: Any) -> None:
    dtd = element.getroottree().docinfo.internalDTD
    if dtd is not None and any(True for _ in dtd.iterentities()):
        raise ImportFailure(
            "XML_ENTITY_FORBIDDEN",
            "the export declares XML entities; Apple Health exports never do, so it is refused",
        )


def _exhausted(stream: IO[bytes]) -> bool:
    """Whether the parser had read the whole stream when it failed: the file ends too early."""
    try:
        return stream.read(1) == b""
    except (OSError, ValueError):
        return False
