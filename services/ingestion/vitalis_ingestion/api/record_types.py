"""The record types other than samples: validation, the stored body and the computed output fields."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message

from vitalis.ingestion.v1 import (
    manual_entry_pb2,
    nutrition_log_pb2,
    sleep_session_pb2,
    strength_session_pb2,
    workout_pb2,
)
from vitalis_ingestion.api.convert import duration, from_timestamp, proto_date
from vitalis_ingestion.domain import records
from vitalis_ingestion.domain.exercises import EXERCISES_BY_ID
from vitalis_ingestion.domain.records import StoredRecord
from vitalis_runtime.errors import InvalidArgument

COLUMN_FIELDS = frozenset(
    {"name", "source", "end_time", "utc_offset", "create_time", "update_time", "etag", "import_job"}
)
ASLEEP_STAGES = {
    sleep_session_pb2.SLEEP_STAGE_TYPE_ASLEEP,
    sleep_session_pb2.SLEEP_STAGE_TYPE_LIGHT,
    sleep_session_pb2.SLEEP_STAGE_TYPE_DEEP,
    sleep_session_pb2.SLEEP_STAGE_TYPE_REM,
}
NUTRIENTS = [field.name for field in nutrition_log_pb2.Nutrients.DESCRIPTOR.fields]


def _bad(where: str, field: str, description: str) -> InvalidArgument:
    return InvalidArgument.for_field(f"{where}.{field}", description)


def _no_kind(_message: Any) -> int:
    return 0


@dataclass(frozen=True)
class RecordType:
    """How one kind of record is validated, stored and presented."""

    collection: str
    message: type[Message]
    start_field: str
    end_field: str | None
    output_fields: frozenset[str]
    mutable: frozenset[str]
    check: Callable[[Any, str], None]
    finish: Callable[[Any, StoredRecord], None]
    kind_of: Callable[[Any], int] = _no_kind
    manual_source: bool = False

    @property
    def singular(self) -> str:
        """``sleepSessions`` -> ``sleep session`` (for messages)."""
        words = "".join(f" {c.lower()}" if c.isupper() else c for c in self.collection).strip()
        return words.removesuffix("s").removesuffix("ie") + ("y" if words.endswith("ies") else "")

    def body(self, message: Message) -> dict[str, Any]:
        """The message without the fields kept in columns or computed on output, as protobuf JSON."""
        copy = type(message)()
        copy.CopyFrom(message)
        for name in COLUMN_FIELDS | self.output_fields | {self.start_field}:
            if name in copy.DESCRIPTOR.fields_by_name:
                copy.ClearField(name)
        return json_format.MessageToDict(copy)

    def present(self, stored: StoredRecord) -> Any:
        """The message for a stored record, output fields computed."""
        message: Any = json_format.ParseDict(stored.body, self.message(), ignore_unknown_fields=True)
        user = f"users/{stored.user_id}"
        message.name = stored.name
        message.source = f"{user}/sources/{stored.source_id}"
        getattr(message, self.start_field).FromDatetime(stored.start_time)
        if self.end_field:
            getattr(message, self.end_field).FromDatetime(stored.end_time)
        if stored.utc_offset_s is not None:
            message.utc_offset.CopyFrom(duration(stored.utc_offset_s))
        if "import_job" in message.DESCRIPTOR.fields_by_name and stored.import_job_id:
            message.import_job = f"{user}/importJobs/{stored.import_job_id}"
        message.create_time.FromDatetime(stored.create_time)
        message.update_time.FromDatetime(stored.update_time)
        message.etag = stored.etag
        self.finish(message, stored)
        return message


def _check_sleep(message: sleep_session_pb2.SleepSession, where: str) -> None:
    start, end = from_timestamp(message.start_time), from_timestamp(message.end_time)
    if not message.HasField("end_time") or end <= start:
        raise _bad(where, "end_time", "must be after start_time")
    if end - start > timedelta(hours=24):
        raise _bad(where, "end_time", "a sleep session may last at most 24 hours")
    for index, stage in enumerate(message.stages):
        if stage.stage not in sleep_session_pb2.SleepStageType.values() or stage.stage == 0:
            raise _bad(where, f"stages[{index}].stage", "is required")
        stage_start, stage_end = from_timestamp(stage.start_time), from_timestamp(stage.end_time)
        if stage_end <= stage_start:
            raise _bad(where, f"stages[{index}].end_time", "must be after the stage's start_time")
        if stage_start < start or stage_end > end:
            raise _bad(where, f"stages[{index}]", "lies outside the session")


def _finish_sleep(message: sleep_session_pb2.SleepSession, stored: StoredRecord) -> None:
    totals: dict[int, float] = {}
    for stage in message.stages:
        seconds = (from_timestamp(stage.end_time) - from_timestamp(stage.start_time)).total_seconds()
        totals[stage.stage] = totals.get(stage.stage, 0.0) + seconds
    in_bed = (stored.end_time - stored.start_time).total_seconds()
    asleep = sum(seconds for stage, seconds in totals.items() if stage in ASLEEP_STAGES)
    message.sleep_date.CopyFrom(proto_date(stored.local_date))
    message.in_bed_duration.CopyFrom(duration(in_bed))
    message.asleep_duration.CopyFrom(duration(asleep))
    message.awake_duration.CopyFrom(duration(totals.get(sleep_session_pb2.SLEEP_STAGE_TYPE_AWAKE, 0.0)))
    message.light_duration.CopyFrom(duration(totals.get(sleep_session_pb2.SLEEP_STAGE_TYPE_LIGHT, 0.0)))
    message.deep_duration.CopyFrom(duration(totals.get(sleep_session_pb2.SLEEP_STAGE_TYPE_DEEP, 0.0)))
    message.rem_duration.CopyFrom(duration(totals.get(sleep_session_pb2.SLEEP_STAGE_TYPE_REM, 0.0)))
    message.efficiency = asleep / in_bed if in_bed else 0.0


def _check_workout(message: workout_pb2.Workout, where: str) -> None:
    if message.activity_type == 0 or message.activity_type not in workout_pb2.ActivityType.values():
        raise _bad(where, "activity_type", "is required")
    if not message.HasField("end_time") or message.end_time.ToDatetime() <= message.start_time.ToDatetime():
        raise _bad(where, "end_time", "must be after start_time")
    for index, point in enumerate(message.route):
        if not (-90 <= point.position.latitude <= 90 and -180 <= point.position.longitude <= 180):
            raise _bad(where, f"route[{index}].position", "is not a position on Earth")
    for index, lap in enumerate(message.laps):
        if lap.end_time.ToDatetime() < lap.start_time.ToDatetime():
            raise _bad(where, f"laps[{index}].end_time", "must not be before the lap's start_time")


def _finish_workout(message: workout_pb2.Workout, stored: StoredRecord) -> None:  # noqa: ARG001
    message.route_point_count = len(message.route)


def _check_strength(message: strength_session_pb2.StrengthSession, where: str) -> None:
    if not 1 <= len(message.exercises) <= 100:
        raise _bad(where, "exercises", "must list between 1 and 100 exercises")
    if message.HasField("end_time") and message.end_time.ToDatetime() < message.start_time.ToDatetime():
        raise _bad(where, "end_time", "must not be before start_time")
    for index, entry in enumerate(message.exercises):
        prefix, _, exercise_id = entry.exercise.partition("/")
        if prefix != "exercises" or exercise_id not in EXERCISES_BY_ID:
            raise _bad(
                where, f"exercises[{index}].exercise", f"{entry.exercise!r} is not in the exercise dictionary"
            )
        if not entry.sets:
            raise _bad(where, f"exercises[{index}].sets", "at least one set is required")
        for number, performed in enumerate(entry.sets):
            if performed.reps < 0 or performed.load_kg < 0:
                raise _bad(
                    where, f"exercises[{index}].sets[{number}]", "reps and load_kg must not be negative"
                )
            if not 0 <= performed.rpe <= 10:
                raise _bad(where, f"exercises[{index}].sets[{number}].rpe", "must be between 1 and 10")


def _finish_strength(message: strength_session_pb2.StrengthSession, stored: StoredRecord) -> None:
    if not message.HasField("end_time") or stored.end_time == stored.start_time:
        message.ClearField("end_time")
    message.total_volume_kg = sum(s.reps * s.load_kg for entry in message.exercises for s in entry.sets)


def _check_nutrition(message: nutrition_log_pb2.NutritionLog, where: str) -> None:
    if not message.items:
        raise _bad(where, "items", "at least one food is required")
    for index, item in enumerate(message.items):
        if not item.display_name:
            raise _bad(where, f"items[{index}].display_name", "is required")
        if item.quantity <= 0:
            raise _bad(where, f"items[{index}].quantity", "must be positive")
        if not item.HasField("per_100_grams"):
            raise _bad(where, f"items[{index}].per_100_grams", "is required")
        if item.HasField("serving") and item.serving.grams <= 0:
            raise _bad(where, f"items[{index}].serving.grams", "must be positive")


def _finish_nutrition(message: nutrition_log_pb2.NutritionLog, stored: StoredRecord) -> None:  # noqa: ARG001
    totals: dict[str, float] = {}
    for item in message.items:
        grams = item.quantity * item.serving.grams if item.HasField("serving") else item.quantity
        item.consumed_grams = grams
        for name in NUTRIENTS:
            if item.per_100_grams.HasField(name):  # type: ignore[arg-type]
                value = getattr(item.per_100_grams, name) * grams / 100.0
                setattr(item.consumed, name, value)
                totals[name] = totals.get(name, 0.0) + value
    for name, value in totals.items():
        setattr(message.total, name, value)


def _check_manual(message: manual_entry_pb2.ManualEntry, where: str) -> None:
    payload = message.WhichOneof("payload")
    if payload is None:
        raise _bad(
            where,
            "payload",
            "exactly one of supplement, mood, journal, measurement or menstruation is required",
        )
    if payload == "supplement" and (
        not message.supplement.display_name
        or message.supplement.dose <= 0
        or not message.supplement.dose_unit
    ):
        raise _bad(where, "supplement", "display_name, a positive dose and dose_unit are required")
    if payload == "mood":
        mood = message.mood
        if not 1 <= mood.mood <= 5 or not 0 <= mood.energy <= 5 or not 0 <= mood.stress <= 5:
            raise _bad(where, "mood", "mood is 1 to 5; energy and stress 1 to 5 when given")
    if payload == "journal" and not 0 < len(message.journal.text) <= 20_000:
        raise _bad(where, "journal.text", "must be 1 to 20,000 characters")
    if payload == "measurement":
        if message.measurement.site == 0 or message.measurement.value <= 0:
            raise _bad(where, "measurement", "site and a positive value are required")
        if message.measurement.unit not in ("", "cm", "[in_i]"):
            raise _bad(where, "measurement.unit", "must be cm or [in_i]")
    if payload == "menstruation" and not message.menstruation.date.year:
        raise _bad(where, "menstruation.date", "is required")


def _kind_of_manual(message: manual_entry_pb2.ManualEntry) -> int:
    return {
        "supplement": manual_entry_pb2.MANUAL_ENTRY_KIND_SUPPLEMENT,
        "mood": manual_entry_pb2.MANUAL_ENTRY_KIND_MOOD,
        "journal": manual_entry_pb2.MANUAL_ENTRY_KIND_JOURNAL,
        "measurement": manual_entry_pb2.MANUAL_ENTRY_KIND_MEASUREMENT,
        "menstruation": manual_entry_pb2.MANUAL_ENTRY_KIND_MENSTRUATION,
    }.get(message.WhichOneof("payload") or "", 0)


def _finish_manual(message: manual_entry_pb2.ManualEntry, stored: StoredRecord) -> None:
    message.kind = stored.kind  # type: ignore[assignment]
    if message.WhichOneof("payload") == "measurement" and message.measurement.unit == "[in_i]":
        message.measurement.value *= 2.54
        message.measurement.unit = "cm"
    elif message.WhichOneof("payload") == "measurement":
        message.measurement.unit = "cm"


SLEEP = RecordType(
    records.SLEEP_SESSIONS,
    sleep_session_pb2.SleepSession,
    "start_time",
    "end_time",
    frozenset(
        {
            "sleep_date",
            "in_bed_duration",
            "asleep_duration",
            "awake_duration",
            "light_duration",
            "deep_duration",
            "rem_duration",
            "efficiency",
        }
    ),
    frozenset({"end_time", "utc_offset", "nap", "stages", "metadata", "device"}),
    _check_sleep,
    _finish_sleep,
)
WORKOUT = RecordType(
    records.WORKOUTS,
    workout_pb2.Workout,
    "start_time",
    "end_time",
    frozenset({"route_point_count"}),
    frozenset(
        {
            "activity_type",
            "display_name",
            "end_time",
            "utc_offset",
            "moving_duration",
            "distance_meters",
            "active_energy_kcal",
            "average_heart_rate",
            "max_heart_rate",
            "elevation_gain_meters",
            "elevation_loss_meters",
            "laps",
            "route",
            "metadata",
            "device",
        }
    ),
    _check_workout,
    _finish_workout,
)
STRENGTH = RecordType(
    records.STRENGTH_SESSIONS,
    strength_session_pb2.StrengthSession,
    "start_time",
    "end_time",
    frozenset({"total_volume_kg"}),
    frozenset({"end_time", "utc_offset", "exercises", "note"}),
    _check_strength,
    _finish_strength,
)
NUTRITION = RecordType(
    records.NUTRITION_LOGS,
    nutrition_log_pb2.NutritionLog,
    "consume_time",
    None,
    frozenset({"total"}),
    frozenset({"meal_type", "utc_offset", "items", "note"}),
    _check_nutrition,
    _finish_nutrition,
)
MANUAL = RecordType(
    records.MANUAL_ENTRIES,
    manual_entry_pb2.ManualEntry,
    "entry_time",
    None,
    frozenset({"kind"}),
    frozenset(
        {"entry_time", "utc_offset", "supplement", "mood", "journal", "measurement", "menstruation", "note"}
    ),
    _check_manual,
    _finish_manual,
    kind_of=_kind_of_manual,
    manual_source=True,
)
RECORD_TYPES = {
    record_type.collection: record_type for record_type in (SLEEP, WORKOUT, STRENGTH, NUTRITION, MANUAL)
}
