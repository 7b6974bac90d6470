"""The exercise dictionary strength sessions refer to (values equal the protobuf enums)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

BODY_WEIGHT, BARBELL, DUMBBELL, KETTLEBELL, MACHINE, CABLE = 1, 2, 3, 4, 5, 6
CHEST, BACK, SHOULDERS, BICEPS, TRICEPS, CORE, GLUTES, QUADS, HAMSTRINGS, CALVES, FULL_BODY = range(1, 12)


@dataclass(frozen=True)
class Exercise:
    """One exercise of the dictionary."""

    exercise_id: str
    display_name: str
    aliases: tuple[str, ...]
    equipment: int
    muscle_groups: tuple[int, ...]
    body_weight_counts: bool = False


EXERCISES: Final[tuple[Exercise, ...]] = (
    Exercise("back-squat", "Back squat", ("squat", "barbell squat"), BARBELL, (QUADS, GLUTES, HAMSTRINGS)),
    Exercise("front-squat", "Front squat", (), BARBELL, (QUADS, GLUTES, CORE)),
    Exercise("deadlift", "Deadlift", ("conventional deadlift",), BARBELL, (HAMSTRINGS, GLUTES, BACK)),
    Exercise("romanian-deadlift", "Romanian deadlift", ("rdl",), BARBELL, (HAMSTRINGS, GLUTES)),
    Exercise("bench-press", "Bench press", ("barbell bench press",), BARBELL, (CHEST, TRICEPS, SHOULDERS)),
    Exercise("incline-dumbbell-press", "Incline dumbbell press", (), DUMBBELL, (CHEST, SHOULDERS)),
    Exercise("overhead-press", "Overhead press", ("military press", "ohp"), BARBELL, (SHOULDERS, TRICEPS)),
    Exercise("barbell-row", "Barbell row", ("bent-over row",), BARBELL, (BACK, BICEPS)),
    Exercise("pull-up", "Pull-up", ("chin-up",), BODY_WEIGHT, (BACK, BICEPS), True),
    Exercise("push-up", "Push-up", ("press-up",), BODY_WEIGHT, (CHEST, TRICEPS), True),
    Exercise("dip", "Dip", ("parallel bar dip",), BODY_WEIGHT, (TRICEPS, CHEST), True),
    Exercise("lat-pulldown", "Lat pulldown", (), CABLE, (BACK, BICEPS)),
    Exercise("leg-press", "Leg press", (), MACHINE, (QUADS, GLUTES)),
    Exercise("hip-thrust", "Hip thrust", ("barbell hip thrust",), BARBELL, (GLUTES, HAMSTRINGS)),
    Exercise("walking-lunge", "Walking lunge", ("lunge",), DUMBBELL, (QUADS, GLUTES)),
    Exercise("bicep-curl", "Biceps curl", ("curl", "dumbbell curl"), DUMBBELL, (BICEPS,)),
    Exercise("triceps-pushdown", "Triceps pushdown", (), CABLE, (TRICEPS,)),
    Exercise("calf-raise", "Calf raise", (), MACHINE, (CALVES,)),
    Exercise("plank", "Plank", (), BODY_WEIGHT, (CORE,), True),
    Exercise("kettlebell-swing", "Kettlebell swing", (), KETTLEBELL, (GLUTES, HAMSTRINGS, FULL_BODY)),
)
EXERCISES_BY_ID: Final = {exercise.exercise_id: exercise for exercise in EXERCISES}
