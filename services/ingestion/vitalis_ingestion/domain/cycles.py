"""Menstrual cycles derived from menstruation entries."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

NO_FLOW = 1


@dataclass(frozen=True)
class Cycle:
    """One cycle: from a first day of bleeding to the day before the next (open while none followed)."""

    start: date
    end: date | None
    period_days: int


def menstrual_cycles(days: Sequence[tuple[date, int, bool]]) -> list[Cycle]:
    """Cycles, oldest first, from (date, flow, cycle_start) entries; a start is an explicit
    ``cycle_start`` or the first day with flow after at least three days without."""
    flowing = sorted({day for day, flow, _ in days if flow > NO_FLOW})
    flowing_days = set(flowing)
    starts = sorted({day for day, _, start in days if start})
    previous: date | None = None
    for day in flowing:
        gap = previous is None or (day - previous).days > 3
        if gap and not any(abs((day - start).days) <= 3 for start in starts):
            starts.append(day)
        previous = day
    starts = sorted(set(starts))
    cycles = []
    for index, start in enumerate(starts):
        end = starts[index + 1] - timedelta(days=1) if index + 1 < len(starts) else None
        period = 0
        while start + timedelta(days=period) in flowing_days:
            period += 1
        cycles.append(Cycle(start, end, period))
    return cycles
