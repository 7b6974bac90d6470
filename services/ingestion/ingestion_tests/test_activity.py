"""Sleep, workouts, strength, nutrition and manual entries: standard methods, etags, computed fields."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.timestamp_pb2 import Timestamp
from google.type import date_pb2

from vitalis.ingestion.v1 import (
    manual_entry_pb2,
    manual_entry_service_pb2,
    manual_entry_service_pb2_grpc,
    nutrition_log_pb2,
    nutrition_service_pb2,
    nutrition_service_pb2_grpc,
    sleep_service_pb2,
    sleep_service_pb2_grpc,
    sleep_session_pb2,
    strength_session_pb2,
    workout_pb2,
    workout_service_pb2,
    workout_service_pb2_grpc,
)

pytestmark = pytest.mark.timeout(60)


def ts(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def night(source: str, start: datetime) -> sleep_session_pb2.SleepSession:
    stages = [
        (sleep_session_pb2.SLEEP_STAGE_TYPE_LIGHT, 0, 120),
        (sleep_session_pb2.SLEEP_STAGE_TYPE_DEEP, 120, 210),
        (sleep_session_pb2.SLEEP_STAGE_TYPE_AWAKE, 210, 225),
        (sleep_session_pb2.SLEEP_STAGE_TYPE_REM, 225, 300),
    ]
    return sleep_session_pb2.SleepSession(
        source=source,
        start_time=ts(start),
        end_time=ts(start + timedelta(minutes=320)),
        utc_offset=Duration(seconds=-7 * 3600),
        stages=[
            sleep_session_pb2.SleepStage(
                stage=stage,
                start_time=ts(start + timedelta(minutes=a)),
                end_time=ts(start + timedelta(minutes=b)),
            )
            for stage, a, b in stages
        ],
    )


async def test_sleep_session_lifecycle_with_sleep_day_and_durations(service: Any, make_source: Any) -> None:
    stub = sleep_service_pb2_grpc.SleepServiceStub(service.channel)
    source = await make_source("ring")
    # 23:00 on 1 May in UTC-07:00 to 04:20 on 2 May: the sleep day is 2 May.
    start = datetime(2024, 5, 2, 6, 0, tzinfo=UTC)
    created = await stub.CreateSleepSession(
        sleep_service_pb2.CreateSleepSessionRequest(
            parent="users/me", sleep_session=night(source, start), request_id="r1"
        ),
        metadata=service.me,
    )
    assert (created.sleep_date.year, created.sleep_date.month, created.sleep_date.day) == (2024, 5, 2)
    assert created.in_bed_duration.seconds == 320 * 60
    assert created.asleep_duration.seconds == (120 + 90 + 75) * 60
    assert created.awake_duration.seconds == 15 * 60
    assert created.efficiency == pytest.approx(285 / 320)
    again = await stub.CreateSleepSession(
        sleep_service_pb2.CreateSleepSessionRequest(
            parent="users/me", sleep_session=night(source, start), request_id="r1"
        ),
        metadata=service.me,
    )
    assert again.name == created.name
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.CreateSleepSession(
            sleep_service_pb2.CreateSleepSessionRequest(
                parent="users/me", sleep_session=night(source, start)
            ),
            metadata=service.me,
        )
    assert raised.value.code() == grpc.StatusCode.ALREADY_EXISTS

    listed = await stub.ListSleepSessions(
        sleep_service_pb2.ListSleepSessionsRequest(
            parent="users/me",
            start_date=date_pb2.Date(year=2024, month=5, day=2),
            end_date=date_pb2.Date(year=2024, month=5, day=2),
        ),
        metadata=service.me,
    )
    assert [s.name for s in listed.sleep_sessions] == [created.name]

    updated = await stub.UpdateSleepSession(
        sleep_service_pb2.UpdateSleepSessionRequest(
            sleep_session=sleep_session_pb2.SleepSession(name=created.name, nap=True, etag=created.etag),
            update_mask=FieldMask(paths=["nap"]),
        ),
        metadata=service.me,
    )
    assert updated.nap
    assert updated.etag != created.etag
    assert len(updated.stages) == 4
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.UpdateSleepSession(
            sleep_service_pb2.UpdateSleepSessionRequest(
                sleep_session=sleep_session_pb2.SleepSession(name=created.name, nap=False, etag=created.etag),
                update_mask=FieldMask(paths=["nap"]),
            ),
            metadata=service.me,
        )
    assert raised.value.code() == grpc.StatusCode.ABORTED
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.UpdateSleepSession(
            sleep_service_pb2.UpdateSleepSessionRequest(
                sleep_session=sleep_session_pb2.SleepSession(name=created.name, start_time=ts(start)),
                update_mask=FieldMask(paths=["start_time"]),
            ),
            metadata=service.me,
        )
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.GetSleepSession(
            sleep_service_pb2.GetSleepSessionRequest(name=created.name),
            metadata=service.as_user(uuid.uuid4()),
        )
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    await stub.DeleteSleepSession(
        sleep_service_pb2.DeleteSleepSessionRequest(name=created.name, etag=updated.etag), metadata=service.me
    )
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.GetSleepSession(
            sleep_service_pb2.GetSleepSessionRequest(name=created.name), metadata=service.me
        )
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


async def test_sleep_session_validation(service: Any, make_source: Any) -> None:
    stub = sleep_service_pb2_grpc.SleepServiceStub(service.channel)
    source = await make_source("ring")
    start = datetime(2024, 5, 2, 6, 0, tzinfo=UTC)
    too_long = night(source, start)
    too_long.end_time.CopyFrom(ts(start + timedelta(hours=25)))
    outside = night(source, start)
    outside.stages[0].start_time.CopyFrom(ts(start - timedelta(hours=1)))
    for session in (too_long, outside):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.CreateSleepSession(
                sleep_service_pb2.CreateSleepSessionRequest(parent="users/me", sleep_session=session),
                metadata=service.me,
            )
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_workouts_with_route_views_filters_and_pages(service: Any, make_source: Any) -> None:
    stub = workout_service_pb2_grpc.WorkoutServiceStub(service.channel)
    source = await make_source("watch")
    start = datetime(2024, 5, 1, 7, tzinfo=UTC)
    names = []
    for day in range(3):
        begin = start + timedelta(days=day)
        workout = workout_pb2.Workout(
            source=source,
            activity_type=workout_pb2.ACTIVITY_TYPE_RUNNING if day < 2 else workout_pb2.ACTIVITY_TYPE_CYCLING,
            start_time=ts(begin),
            end_time=ts(begin + timedelta(minutes=30)),
            distance_meters=5000 + day,
            route=[workout_pb2.RoutePoint(time=ts(begin), position={"latitude": 48.85, "longitude": 2.35})],
            laps=[workout_pb2.Lap(start_time=ts(begin), end_time=ts(begin + timedelta(minutes=30)))],
        )
        created = await stub.CreateWorkout(
            workout_service_pb2.CreateWorkoutRequest(parent="users/me", workout=workout), metadata=service.me
        )
        assert created.route_point_count == 1
        names.append(created.name)
    basic = await stub.GetWorkout(
        workout_service_pb2.GetWorkoutRequest(name=names[0], view=workout_pb2.WORKOUT_VIEW_BASIC),
        metadata=service.me,
    )
    assert not basic.route
    assert basic.route_point_count == 1
    full = await stub.GetWorkout(workout_service_pb2.GetWorkoutRequest(name=names[0]), metadata=service.me)
    assert full.route[0].position.latitude == pytest.approx(48.85)
    runs = await stub.ListWorkouts(
        workout_service_pb2.ListWorkoutsRequest(
            parent="users/me", activity_type=workout_pb2.ACTIVITY_TYPE_RUNNING
        ),
        metadata=service.me,
    )
    assert [w.name for w in runs.workouts] == [names[1], names[0]]
    assert not runs.workouts[0].route
    first = await stub.ListWorkouts(
        workout_service_pb2.ListWorkoutsRequest(parent="users/me", page_size=2, order_by="start_time"),
        metadata=service.me,
    )
    second = await stub.ListWorkouts(
        workout_service_pb2.ListWorkoutsRequest(
            parent="users/me", page_size=2, order_by="start_time", page_token=first.next_page_token
        ),
        metadata=service.me,
    )
    assert [w.name for w in [*first.workouts, *second.workouts]] == names
    assert not second.next_page_token
    updated = await stub.UpdateWorkout(
        workout_service_pb2.UpdateWorkoutRequest(
            workout=workout_pb2.Workout(name=names[2], display_name="Commute"),
            update_mask=FieldMask(paths=["display_name"]),
        ),
        metadata=service.me,
    )
    assert updated.display_name == "Commute"
    assert updated.distance_meters == 5002
    await stub.DeleteWorkout(workout_service_pb2.DeleteWorkoutRequest(name=names[2]), metadata=service.me)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.DeleteWorkout(workout_service_pb2.DeleteWorkoutRequest(name=names[2]), metadata=service.me)
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


async def test_strength_sessions_use_the_exercise_dictionary(service: Any, make_source: Any) -> None:
    stub = workout_service_pb2_grpc.WorkoutServiceStub(service.channel)
    source = await make_source("notebook")
    squats = await stub.ListExercises(
        workout_service_pb2.ListExercisesRequest(query="squat"), metadata=service.me
    )
    assert "exercises/back-squat" in [e.name for e in squats.exercises]
    bench = await stub.GetExercise(
        workout_service_pb2.GetExerciseRequest(name="exercises/bench-press"), metadata=service.me
    )
    assert bench.display_name == "Bench press"
    session = strength_session_pb2.StrengthSession(
        source=source,
        start_time=ts(datetime(2024, 5, 3, 17, tzinfo=UTC)),
        exercises=[
            strength_session_pb2.ExerciseEntry(
                exercise="exercises/back-squat",
                sets=[strength_session_pb2.StrengthSet(reps=5, load_kg=100, rpe=8)] * 3,
            ),
            strength_session_pb2.ExerciseEntry(
                exercise="exercises/bench-press", sets=[strength_session_pb2.StrengthSet(reps=8, load_kg=60)]
            ),
        ],
    )
    created = await stub.CreateStrengthSession(
        workout_service_pb2.CreateStrengthSessionRequest(parent="users/me", strength_session=session),
        metadata=service.me,
    )
    assert created.total_volume_kg == 3 * 5 * 100 + 8 * 60
    with_squats = await stub.ListStrengthSessions(
        workout_service_pb2.ListStrengthSessionsRequest(parent="users/me", exercise="exercises/back-squat"),
        metadata=service.me,
    )
    assert [s.name for s in with_squats.strength_sessions] == [created.name]
    none = await stub.ListStrengthSessions(
        workout_service_pb2.ListStrengthSessionsRequest(parent="users/me", exercise="exercises/deadlift"),
        metadata=service.me,
    )
    assert not none.strength_sessions
    session.exercises[0].exercise = "exercises/levitation"
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.CreateStrengthSession(
            workout_service_pb2.CreateStrengthSessionRequest(parent="users/me", strength_session=session),
            metadata=service.me,
        )
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    got = await stub.GetStrengthSession(
        workout_service_pb2.GetStrengthSessionRequest(name=created.name), metadata=service.me
    )
    updated = await stub.UpdateStrengthSession(
        workout_service_pb2.UpdateStrengthSessionRequest(
            strength_session=strength_session_pb2.StrengthSession(
                name=got.name, note="felt strong", etag=got.etag
            ),
            update_mask=FieldMask(paths=["note"]),
        ),
        metadata=service.me,
    )
    assert updated.note == "felt strong"
    await stub.DeleteStrengthSession(
        workout_service_pb2.DeleteStrengthSessionRequest(name=created.name), metadata=service.me
    )


async def test_nutrition_logs_compute_consumed_nutrients(service: Any, make_source: Any) -> None:
    stub = nutrition_service_pb2_grpc.NutritionServiceStub(service.channel)
    source = await make_source("food-app")
    log = nutrition_log_pb2.NutritionLog(
        source=source,
        meal_type=nutrition_log_pb2.MEAL_TYPE_BREAKFAST,
        consume_time=ts(datetime(2024, 5, 3, 7, tzinfo=UTC)),
        items=[
            nutrition_log_pb2.FoodItem(
                display_name="Oats",
                per_100_grams=nutrition_log_pb2.Nutrients(energy_kcal=380, protein_grams=13),
                serving=nutrition_log_pb2.Serving(description="cup", grams=80),
                quantity=1.5,
            ),
            nutrition_log_pb2.FoodItem(
                display_name="Milk",
                per_100_grams=nutrition_log_pb2.Nutrients(energy_kcal=64, protein_grams=3.4),
                quantity=200,
            ),
        ],
    )
    created = await stub.CreateNutritionLog(
        nutrition_service_pb2.CreateNutritionLogRequest(parent="users/me", nutrition_log=log),
        metadata=service.me,
    )
    assert created.items[0].consumed_grams == 120
    assert created.items[0].consumed.energy_kcal == pytest.approx(456)
    assert created.total.energy_kcal == pytest.approx(456 + 128)
    assert created.total.protein_grams == pytest.approx(15.6 + 6.8)
    assert not created.total.HasField("fat_grams")
    listed = await stub.ListNutritionLogs(
        nutrition_service_pb2.ListNutritionLogsRequest(
            parent="users/me", meal_type=nutrition_log_pb2.MEAL_TYPE_DINNER
        ),
        metadata=service.me,
    )
    assert not listed.nutrition_logs
    got = await stub.GetNutritionLog(
        nutrition_service_pb2.GetNutritionLogRequest(name=created.name), metadata=service.me
    )
    updated = await stub.UpdateNutritionLog(
        nutrition_service_pb2.UpdateNutritionLogRequest(
            nutrition_log=nutrition_log_pb2.NutritionLog(
                name=got.name, meal_type=nutrition_log_pb2.MEAL_TYPE_SNACK
            ),
            update_mask=FieldMask(paths=["meal_type"]),
        ),
        metadata=service.me,
    )
    assert updated.meal_type == nutrition_log_pb2.MEAL_TYPE_SNACK
    assert updated.total.energy_kcal == pytest.approx(584)
    await stub.DeleteNutritionLog(
        nutrition_service_pb2.DeleteNutritionLogRequest(name=created.name), metadata=service.me
    )


async def test_manual_entries_and_menstrual_cycles(service: Any) -> None:
    stub = manual_entry_service_pb2_grpc.ManualEntryServiceStub(service.channel)
    base = datetime(2024, 3, 1, 8, tzinfo=UTC)

    async def create(entry: manual_entry_pb2.ManualEntry) -> manual_entry_pb2.ManualEntry:
        return await stub.CreateManualEntry(
            manual_entry_service_pb2.CreateManualEntryRequest(parent="users/me", manual_entry=entry),
            metadata=service.me,
        )

    mood = await create(
        manual_entry_pb2.ManualEntry(entry_time=ts(base), mood=manual_entry_pb2.MoodCheckIn(mood=4))
    )
    assert mood.kind == manual_entry_pb2.MANUAL_ENTRY_KIND_MOOD
    assert mood.source.endswith("/sources/manual")
    waist = await create(
        manual_entry_pb2.ManualEntry(
            entry_time=ts(base + timedelta(minutes=1)),
            measurement=manual_entry_pb2.BodyMeasurement(
                site=manual_entry_pb2.MEASUREMENT_SITE_WAIST, value=32, unit="[in_i]"
            ),
        )
    )
    assert (waist.measurement.value, waist.measurement.unit) == (pytest.approx(81.28), "cm")
    for offset, flow, start in [
        (0, 4, True),
        (1, 5, False),
        (2, 3, False),
        (28, 4, False),
        (29, 3, False),
        (56, 4, True),
    ]:
        day = (base + timedelta(days=offset)).date()
        await create(
            manual_entry_pb2.ManualEntry(
                entry_time=ts(base + timedelta(days=offset, hours=1)),
                menstruation=manual_entry_pb2.MenstruationDay(
                    date=date_pb2.Date(year=day.year, month=day.month, day=day.day),
                    flow=flow,
                    cycle_start=start,  # type: ignore[arg-type]
                ),
            )
        )
    cycles = await stub.ListMenstrualCycles(
        manual_entry_service_pb2.ListMenstrualCyclesRequest(parent="users/me"), metadata=service.me
    )
    assert [(c.cycle_length_days, c.period_length_days) for c in cycles.menstrual_cycles] == [
        (0, 1),
        (28, 2),
        (28, 3),
    ]
    first = await stub.GetMenstrualCycle(
        manual_entry_service_pb2.GetMenstrualCycleRequest(name=f"{service.user}/menstrualCycles/2024-03-01"),
        metadata=service.me,
    )
    assert first.end_date.day == 28
    assert first.cycle_length_days == 28
    moods = await stub.ListManualEntries(
        manual_entry_service_pb2.ListManualEntriesRequest(
            parent="users/me", kinds=[manual_entry_pb2.MANUAL_ENTRY_KIND_MOOD]
        ),
        metadata=service.me,
    )
    assert [m.name for m in moods.manual_entries] == [mood.name]
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.UpdateManualEntry(
            manual_entry_service_pb2.UpdateManualEntryRequest(
                manual_entry=manual_entry_pb2.ManualEntry(
                    name=mood.name, journal=manual_entry_pb2.JournalNote(text="x")
                ),
                update_mask=FieldMask(paths=["journal"]),
            ),
            metadata=service.me,
        )
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    better = await stub.UpdateManualEntry(
        manual_entry_service_pb2.UpdateManualEntryRequest(
            manual_entry=manual_entry_pb2.ManualEntry(
                name=mood.name, mood=manual_entry_pb2.MoodCheckIn(mood=5)
            ),
            update_mask=FieldMask(paths=["mood"]),
        ),
        metadata=service.me,
    )
    assert better.mood.mood == 5
    got = await stub.GetManualEntry(
        manual_entry_service_pb2.GetManualEntryRequest(name=mood.name), metadata=service.me
    )
    assert got == better
    await stub.DeleteManualEntry(
        manual_entry_service_pb2.DeleteManualEntryRequest(name=mood.name), metadata=service.me
    )
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await create(
            manual_entry_pb2.ManualEntry(entry_time=ts(base), mood=manual_entry_pb2.MoodCheckIn(mood=9))
        )
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
