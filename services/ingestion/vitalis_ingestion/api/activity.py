"""vitalis.ingestion.v1.SleepService, WorkoutService, NutritionService and ManualEntryService."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import grpc
from google.protobuf import empty_pb2

from vitalis.ingestion.v1 import (
    exercise_pb2,
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
from vitalis_ingestion.api.access import Access, parse_name, parse_parent
from vitalis_ingestion.api.convert import from_proto_date, interval_bounds, proto_date
from vitalis_ingestion.api.record_operations import RecordOperations
from vitalis_ingestion.api.record_types import MANUAL, NUTRITION, SLEEP, STRENGTH, WORKOUT
from vitalis_ingestion.domain.cycles import menstrual_cycles
from vitalis_ingestion.domain.exercises import EXERCISES, EXERCISES_BY_ID, Exercise
from vitalis_ingestion.store.records import RecordStore
from vitalis_runtime.db import Database
from vitalis_runtime.errors import InvalidArgument, NotFound
from vitalis_runtime.pagination import PageTokens, resolve_page_size

Context = grpc.aio.ServicerContext[object, object]


def _day_range(request: Any) -> dict[str, Any]:
    first = from_proto_date(request.start_date, "start_date")
    last = from_proto_date(request.end_date, "end_date") if request.HasField("end_date") else None
    if first and last and last < first:
        raise InvalidArgument.for_field("end_date", "must not be before start_date")
    return {"first_day": first, "last_day": last}


def _interval(request: Any) -> dict[str, Any]:
    start, end = interval_bounds(request.interval)
    return {"start": start, "end": end}


class SleepServicer(sleep_service_pb2_grpc.SleepServiceServicer):
    """Sleep sessions with their stages."""

    def __init__(self, operations: RecordOperations) -> None:
        self._ops = operations

    async def CreateSleepSession(
        self, request: sleep_service_pb2.CreateSleepSessionRequest, context: Context
    ) -> sleep_session_pb2.SleepSession:
        """Record a sleep session."""
        return await self._ops.create(
            SLEEP, request.parent, request.sleep_session, request.request_id, "sleep_session"
        )  # type: ignore[return-value]

    async def GetSleepSession(
        self, request: sleep_service_pb2.GetSleepSessionRequest, context: Context
    ) -> sleep_session_pb2.SleepSession:
        """One session."""
        return await self._ops.get(SLEEP, request.name)  # type: ignore[return-value]

    async def ListSleepSessions(
        self, request: sleep_service_pb2.ListSleepSessionsRequest, context: Context
    ) -> sleep_service_pb2.ListSleepSessionsResponse:
        """Sessions by sleep day, newest first by default."""
        filters = {**_day_range(request), "source": request.source}
        found, token = await self._ops.find(
            SLEEP, request, default_desc=True, order_field="start_time", filters=filters
        )
        return sleep_service_pb2.ListSleepSessionsResponse(sleep_sessions=found, next_page_token=token)

    async def UpdateSleepSession(
        self, request: sleep_service_pb2.UpdateSleepSessionRequest, context: Context
    ) -> sleep_session_pb2.SleepSession:
        """Change a session."""
        return await self._ops.update(
            SLEEP, request.sleep_session, list(request.update_mask.paths), "sleep_session"
        )  # type: ignore[return-value]

    async def DeleteSleepSession(
        self, request: sleep_service_pb2.DeleteSleepSessionRequest, context: Context
    ) -> empty_pb2.Empty:
        """Delete a session."""
        await self._ops.delete(SLEEP, request.name, request.etag)
        return empty_pb2.Empty()


def exercise_to_proto(exercise: Exercise) -> exercise_pb2.Exercise:
    """An Exercise message."""
    return exercise_pb2.Exercise(
        name=f"exercises/{exercise.exercise_id}",
        display_name=exercise.display_name,
        aliases=list(exercise.aliases),
        equipment=exercise.equipment,  # type: ignore[arg-type]
        muscle_groups=list(exercise.muscle_groups),  # type: ignore[arg-type]
        body_weight_counts=exercise.body_weight_counts,
    )


class WorkoutServicer(workout_service_pb2_grpc.WorkoutServiceServicer):
    """Workouts, strength sessions and the exercise dictionary."""

    def __init__(self, operations: RecordOperations, tokens: PageTokens) -> None:
        self._ops = operations
        self._tokens = tokens

    async def CreateWorkout(
        self, request: workout_service_pb2.CreateWorkoutRequest, context: Context
    ) -> workout_pb2.Workout:
        """Record a workout."""
        return await self._ops.create(WORKOUT, request.parent, request.workout, request.request_id, "workout")  # type: ignore[return-value]

    async def GetWorkout(
        self, request: workout_service_pb2.GetWorkoutRequest, context: Context
    ) -> workout_pb2.Workout:
        """One workout; with its route in the full view (the default for Get)."""
        workout: workout_pb2.Workout = await self._ops.get(WORKOUT, request.name)  # type: ignore[assignment]
        if request.view == workout_pb2.WORKOUT_VIEW_BASIC:
            workout.ClearField("route")
        return workout

    async def ListWorkouts(
        self, request: workout_service_pb2.ListWorkoutsRequest, context: Context
    ) -> workout_service_pb2.ListWorkoutsResponse:
        """Workouts, newest first; routes only in the full view."""
        filters: dict[str, Any] = {**_interval(request), "source": request.source}
        if request.activity_type:
            filters["body_filter"] = {"activityType": workout_pb2.ActivityType.Name(request.activity_type)}
        found, token = await self._ops.find(
            WORKOUT, request, default_desc=True, order_field="start_time", filters=filters
        )
        if request.view != workout_pb2.WORKOUT_VIEW_FULL:
            for workout in found:
                workout.ClearField("route")
        return workout_service_pb2.ListWorkoutsResponse(workouts=found, next_page_token=token)

    async def UpdateWorkout(
        self, request: workout_service_pb2.UpdateWorkoutRequest, context: Context
    ) -> workout_pb2.Workout:
        """Change a workout."""
        return await self._ops.update(WORKOUT, request.workout, list(request.update_mask.paths), "workout")  # type: ignore[return-value]

    async def DeleteWorkout(
        self, request: workout_service_pb2.DeleteWorkoutRequest, context: Context
    ) -> empty_pb2.Empty:
        """Delete a workout."""
        await self._ops.delete(WORKOUT, request.name, request.etag)
        return empty_pb2.Empty()

    async def CreateStrengthSession(
        self, request: workout_service_pb2.CreateStrengthSessionRequest, context: Context
    ) -> strength_session_pb2.StrengthSession:
        """Record a strength session."""
        return await self._ops.create(
            STRENGTH, request.parent, request.strength_session, request.request_id, "strength_session"
        )  # type: ignore[return-value]

    async def GetStrengthSession(
        self, request: workout_service_pb2.GetStrengthSessionRequest, context: Context
    ) -> strength_session_pb2.StrengthSession:
        """One strength session."""
        return await self._ops.get(STRENGTH, request.name)  # type: ignore[return-value]

    async def ListStrengthSessions(
        self, request: workout_service_pb2.ListStrengthSessionsRequest, context: Context
    ) -> workout_service_pb2.ListStrengthSessionsResponse:
        """Strength sessions, newest first."""
        filters: dict[str, Any] = _interval(request)
        if request.exercise:
            filters["body_filter"] = {"exercises": [{"exercise": request.exercise}]}
        found, token = await self._ops.find(
            STRENGTH, request, default_desc=True, order_field="start_time", filters=filters
        )
        return workout_service_pb2.ListStrengthSessionsResponse(
            strength_sessions=found, next_page_token=token
        )

    async def UpdateStrengthSession(
        self, request: workout_service_pb2.UpdateStrengthSessionRequest, context: Context
    ) -> strength_session_pb2.StrengthSession:
        """Change a strength session."""
        return await self._ops.update(
            STRENGTH, request.strength_session, list(request.update_mask.paths), "strength_session"
        )  # type: ignore[return-value]

    async def DeleteStrengthSession(
        self, request: workout_service_pb2.DeleteStrengthSessionRequest, context: Context
    ) -> empty_pb2.Empty:
        """Delete a strength session."""
        await self._ops.delete(STRENGTH, request.name, request.etag)
        return empty_pb2.Empty()

    async def GetExercise(
        self, request: workout_service_pb2.GetExerciseRequest, context: Context
    ) -> exercise_pb2.Exercise:
        """One exercise of the dictionary."""
        prefix, _, exercise_id = request.name.partition("/")
        if prefix != "exercises" or not exercise_id:
            raise InvalidArgument.for_field("name", "must be exercises/{exercise}")
        exercise = EXERCISES_BY_ID.get(exercise_id)
        if exercise is None:
            raise NotFound(f"{request.name!r} is not in the exercise dictionary", reason="EXERCISE_NOT_FOUND")
        return exercise_to_proto(exercise)

    async def ListExercises(
        self, request: workout_service_pb2.ListExercisesRequest, context: Context
    ) -> workout_service_pb2.ListExercisesResponse:
        """The dictionary, filtered by a name query and muscle group."""
        size = resolve_page_size(request.page_size, default=50, maximum=1000)
        fingerprint = {"op": "ListExercises", "q": request.query, "m": request.muscle_group}
        offset = int(self._tokens.decode(request.page_token, request=fingerprint).get("o", 0))
        query = request.query.lower().strip()
        matching = [
            e
            for e in EXERCISES
            if (not query or query in e.display_name.lower() or any(query in alias for alias in e.aliases))
            and (not request.muscle_group or request.muscle_group in e.muscle_groups)
        ]
        page = matching[offset : offset + size]
        token = (
            self._tokens.encode({"o": offset + size}, request=fingerprint)
            if len(matching) > offset + size
            else ""
        )
        return workout_service_pb2.ListExercisesResponse(
            exercises=[exercise_to_proto(e) for e in page], next_page_token=token
        )


class NutritionServicer(nutrition_service_pb2_grpc.NutritionServiceServicer):
    """Nutrition logs."""

    def __init__(self, operations: RecordOperations) -> None:
        self._ops = operations

    async def CreateNutritionLog(
        self, request: nutrition_service_pb2.CreateNutritionLogRequest, context: Context
    ) -> nutrition_log_pb2.NutritionLog:
        """Log a meal."""
        return await self._ops.create(
            NUTRITION, request.parent, request.nutrition_log, request.request_id, "nutrition_log"
        )  # type: ignore[return-value]

    async def GetNutritionLog(
        self, request: nutrition_service_pb2.GetNutritionLogRequest, context: Context
    ) -> nutrition_log_pb2.NutritionLog:
        """One log."""
        return await self._ops.get(NUTRITION, request.name)  # type: ignore[return-value]

    async def ListNutritionLogs(
        self, request: nutrition_service_pb2.ListNutritionLogsRequest, context: Context
    ) -> nutrition_service_pb2.ListNutritionLogsResponse:
        """Logs, newest first."""
        filters: dict[str, Any] = _interval(request)
        if request.meal_type:
            filters["body_filter"] = {"mealType": nutrition_log_pb2.MealType.Name(request.meal_type)}
        found, token = await self._ops.find(
            NUTRITION, request, default_desc=True, order_field="consume_time", filters=filters
        )
        return nutrition_service_pb2.ListNutritionLogsResponse(nutrition_logs=found, next_page_token=token)

    async def UpdateNutritionLog(
        self, request: nutrition_service_pb2.UpdateNutritionLogRequest, context: Context
    ) -> nutrition_log_pb2.NutritionLog:
        """Change a log."""
        return await self._ops.update(
            NUTRITION, request.nutrition_log, list(request.update_mask.paths), "nutrition_log"
        )  # type: ignore[return-value]

    async def DeleteNutritionLog(
        self, request: nutrition_service_pb2.DeleteNutritionLogRequest, context: Context
    ) -> empty_pb2.Empty:
        """Delete a log."""
        await self._ops.delete(NUTRITION, request.name, request.etag)
        return empty_pb2.Empty()


class ManualEntryServicer(manual_entry_service_pb2_grpc.ManualEntryServiceServicer):
    """Supplements, mood, journal, measurements and menstruation, and the cycles derived from them."""

    def __init__(
        self,
        operations: RecordOperations,
        db: Database,
        store: RecordStore,
        access: Access,
        tokens: PageTokens,
    ) -> None:
        self._ops = operations
        self._db = db
        self._store = store
        self._access = access
        self._tokens = tokens

    async def CreateManualEntry(
        self, request: manual_entry_service_pb2.CreateManualEntryRequest, context: Context
    ) -> manual_entry_pb2.ManualEntry:
        """Record an entry."""
        return await self._ops.create(
            MANUAL, request.parent, request.manual_entry, request.request_id, "manual_entry"
        )  # type: ignore[return-value]

    async def GetManualEntry(
        self, request: manual_entry_service_pb2.GetManualEntryRequest, context: Context
    ) -> manual_entry_pb2.ManualEntry:
        """One entry."""
        return await self._ops.get(MANUAL, request.name)  # type: ignore[return-value]

    async def ListManualEntries(
        self, request: manual_entry_service_pb2.ListManualEntriesRequest, context: Context
    ) -> manual_entry_service_pb2.ListManualEntriesResponse:
        """Entries, newest first."""
        filters: dict[str, Any] = {**_interval(request), "kinds": list(request.kinds)}
        found, token = await self._ops.find(
            MANUAL, request, default_desc=True, order_field="entry_time", filters=filters
        )
        return manual_entry_service_pb2.ListManualEntriesResponse(manual_entries=found, next_page_token=token)

    async def UpdateManualEntry(
        self, request: manual_entry_service_pb2.UpdateManualEntryRequest, context: Context
    ) -> manual_entry_pb2.ManualEntry:
        """Change an entry (its kind stays)."""
        return await self._ops.update(
            MANUAL, request.manual_entry, list(request.update_mask.paths), "manual_entry"
        )  # type: ignore[return-value]

    async def DeleteManualEntry(
        self, request: manual_entry_service_pb2.DeleteManualEntryRequest, context: Context
    ) -> empty_pb2.Empty:
        """Delete an entry."""
        await self._ops.delete(MANUAL, request.name, request.etag)
        return empty_pb2.Empty()

    async def _cycles(self, user_id: Any) -> list[manual_entry_pb2.MenstrualCycle]:
        async with self._db.transaction(user_id=user_id, readonly=True) as conn:
            entries = await self._store.find(
                conn,
                user_id,
                MANUAL.collection,
                kinds=[manual_entry_pb2.MANUAL_ENTRY_KIND_MENSTRUATION],
                descending=False,
                after=None,
                limit=100_000,
            )
        days = []
        for entry in entries:
            message = MANUAL.present(entry).menstruation
            days.append((from_proto_date(message.date, "date"), message.flow, message.cycle_start))
        result = []
        for cycle in menstrual_cycles([d for d in days if d[0] is not None]):  # type: ignore[misc]
            message = manual_entry_pb2.MenstrualCycle(
                name=f"users/{user_id}/menstrualCycles/{cycle.start.isoformat()}",
                start_date=proto_date(cycle.start),
                period_length_days=cycle.period_days,
            )
            if cycle.end is not None:
                message.end_date.CopyFrom(proto_date(cycle.end))
                message.cycle_length_days = (cycle.end - cycle.start + timedelta(days=1)).days
            result.append(message)
        return result

    async def GetMenstrualCycle(
        self, request: manual_entry_service_pb2.GetMenstrualCycleRequest, context: Context
    ) -> manual_entry_pb2.MenstrualCycle:
        """One cycle, named by its start date."""
        parsed = parse_name(request.name, "menstrualCycles")
        user_id = await self._access.readable(parsed.user_id)
        for cycle in await self._cycles(user_id):
            if cycle.name.rsplit("/", 1)[-1] == parsed.resource_id:
                return cycle
        raise NotFound(f"menstrual cycle {request.name!r} does not exist", reason="CYCLE_NOT_FOUND")

    async def ListMenstrualCycles(
        self, request: manual_entry_service_pb2.ListMenstrualCyclesRequest, context: Context
    ) -> manual_entry_service_pb2.ListMenstrualCyclesResponse:
        """Cycles, newest first."""
        user_id = await self._access.readable(parse_parent(request.parent))
        first = from_proto_date(request.start_date, "start_date")
        size = resolve_page_size(request.page_size, default=12, maximum=100)
        fingerprint = {"op": "ListMenstrualCycles", "user": str(user_id), "first": str(first)}
        offset = int(self._tokens.decode(request.page_token, request=fingerprint).get("o", 0))
        cycles = [
            c
            for c in reversed(await self._cycles(user_id))
            if first is None or c.name.rsplit("/", 1)[-1] >= first.isoformat()
        ]
        page = cycles[offset : offset + size]
        token = (
            self._tokens.encode({"o": offset + size}, request=fingerprint)
            if len(cycles) > offset + size
            else ""
        )
        return manual_entry_service_pb2.ListMenstrualCyclesResponse(
            menstrual_cycles=page, next_page_token=token
        )
