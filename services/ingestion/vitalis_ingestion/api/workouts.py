"""vitalis.ingestion.v1.WorkoutService: workouts, strength sessions and the exercise dictionary."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import empty_pb2

from vitalis.ingestion.v1 import (
    exercise_pb2,
    strength_session_pb2,
    workout_pb2,
    workout_service_pb2,
    workout_service_pb2_grpc,
)
from vitalis_ingestion.api.convert import enum_name, interval_filter
from vitalis_ingestion.api.record_operations import RecordOperations
from vitalis_ingestion.api.record_types import STRENGTH, WORKOUT
from vitalis_ingestion.domain.exercises import EXERCISES, EXERCISES_BY_ID, Exercise
from vitalis_runtime.errors import InvalidArgument, NotFound
from vitalis_runtime.pagination import PageTokens, resolve_page_size

Context = grpc.aio.ServicerContext[object, object]


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
        filters: dict[str, Any] = {**interval_filter(request), "source": request.source}
        if request.activity_type:
            filters["body_filter"] = {
                "activityType": enum_name(workout_pb2.ActivityType, request.activity_type, "activity_type")
            }
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
        filters: dict[str, Any] = interval_filter(request)
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
