"""Goal progress: baseline, current value, fraction of the way, trend toward the target, milestones."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Final

from vitalis.insights.v1 import goal_pb2
from vitalis_insights.domain.rules import GOAL_MILESTONE, INFO, EvidenceItem, Finding
from vitalis_insights.domain.series import SeriesValue
from vitalis_insights.domain.statistics import theil_sen

MILESTONES: Final = (0.25, 0.5, 0.75, 1.0)
AT_LEAST: Final = goal_pb2.GOAL_DIRECTION_AT_LEAST
AT_MOST: Final = goal_pb2.GOAL_DIRECTION_AT_MOST
WITHIN_RANGE: Final = goal_pb2.GOAL_DIRECTION_WITHIN_RANGE


@dataclass(frozen=True)
class GoalTarget:
    """What a goal aims at."""

    goal: str
    display_name: str
    direction: int
    target_value: float | None
    target_low: float | None
    target_high: float | None
    unit: str
    window_days: int
    start_date: date
    deadline: date | None
    daily: bool


@dataclass(frozen=True)
class Progress:
    """Computed progress of a goal."""

    state: int
    baseline: float | None
    current: float | None
    fraction: float
    on_track: bool
    projected: date | None
    count: int
    milestones: Mapping[float, datetime] = field(default_factory=dict)


def _met(target: GoalTarget, value: float) -> bool:
    if target.direction == AT_LEAST:
        return target.target_value is not None and value >= target.target_value
    if target.direction == AT_MOST:
        return target.target_value is not None and value <= target.target_value
    low = target.target_low if target.target_low is not None else float("-inf")
    high = target.target_high if target.target_high is not None else float("inf")
    return low <= value <= high


def _aim(target: GoalTarget, baseline: float) -> float:
    if target.direction in (AT_LEAST, AT_MOST):
        return float(target.target_value or 0.0)
    low = target.target_low if target.target_low is not None else baseline
    high = target.target_high if target.target_high is not None else baseline
    return low if baseline < low else high


def _mean(values: Sequence[SeriesValue]) -> float | None:
    return sum(value.value for value in values) / len(values) if values else None


def compute_progress(
    target: GoalTarget, values: Sequence[SeriesValue], *, now: datetime, reached: Mapping[float, datetime]
) -> Progress:
    """Progress from the series' values; ``reached`` are milestones already reached (kept)."""
    points = sorted(values, key=lambda value: value.observe_time)
    start = datetime.combine(target.start_date, datetime.min.time(), tzinfo=now.tzinfo)
    window = timedelta(days=target.window_days)
    if target.daily:
        before = [p for p in points if start - window <= p.observe_time <= start]
        after = [p for p in points if p.observe_time >= start]
        baseline = _mean(before) if before else (after[0].value if after else None)
        # The window ends at the latest day with data (today's is often not recorded yet), unless
        # that day is itself older than the window: then there is no current value.
        latest = points[-1].observe_time if points else None
        fresh = latest is not None and latest > now - 2 * window
        recent = [p for p in points if latest is not None and fresh and p.observe_time > latest - window]
        current = _mean(recent)
        count = len(recent)
    else:
        before = [p for p in points if p.observe_time <= start]
        baseline = before[-1].value if before else (points[0].value if points else None)
        current = points[-1].value if points else None
        count = len(points)
    fraction = 0.0
    if current is not None and _met(target, current):
        fraction = 1.0
    elif current is not None and baseline is not None:
        aim = _aim(target, baseline)
        if aim != baseline:
            fraction = min(1.0, max(0.0, (current - baseline) / (aim - baseline)))
    since_start = [p for p in points if p.observe_time >= start]
    on_track, projected = _trend_toward(target, since_start, current, baseline, fraction)
    milestones = dict(reached)
    for milestone in MILESTONES:
        if fraction >= milestone and milestone not in milestones:
            milestones[milestone] = now
    today = now.date()
    if fraction >= 1.0:
        state = goal_pb2.GOAL_STATE_ACHIEVED
    elif target.deadline is not None and today > target.deadline:
        state = goal_pb2.GOAL_STATE_MISSED
    else:
        state = goal_pb2.GOAL_STATE_ACTIVE
    return Progress(state, baseline, current, fraction, on_track, projected, count, milestones)


def _trend_toward(
    target: GoalTarget,
    points: Sequence[SeriesValue],
    current: float | None,
    baseline: float | None,
    fraction: float,
) -> tuple[bool, date | None]:
    if fraction >= 1.0:
        return True, None
    if current is None or baseline is None or len(points) < 3:
        return False, None
    origin = points[0].observe_time
    days = [(p.observe_time - origin).total_seconds() / 86400.0 for p in points]
    if days[-1] == days[0]:
        return False, None
    slope, _, _ = theil_sen(days, [p.value for p in points])
    gap = _aim(target, baseline) - current
    if slope == 0 or gap / slope < 0:
        return False, None
    projected = (points[-1].observe_time + timedelta(days=gap / slope)).date()
    return (target.deadline is None or projected <= target.deadline), projected


def milestone_findings(
    target: GoalTarget, before: Mapping[float, datetime], after: Progress
) -> list[Finding]:
    """One finding per milestone newly reached."""
    findings = []
    for milestone, reach_time in sorted(after.milestones.items()):
        if milestone in before:
            continue
        percent = round(milestone * 100)
        current = (
            "" if after.current is None else f" Your current value is {after.current:.4g} {target.unit}."
        )
        findings.append(
            Finding(
                rule=GOAL_MILESTONE,
                severity=INFO,
                title=(
                    f"Goal reached: {target.display_name}"
                    if milestone >= 1.0
                    else f"{percent} % of the way: {target.display_name}"
                ),
                summary=f"You are {percent} % of the way to your goal '{target.display_name}'.{current}",
                dedupe_key=f"{GOAL_MILESTONE.id}:{target.goal}:{percent}",
                evidence=(
                    EvidenceItem(target.goal, target.display_name, after.current, target.unit, reach_time),
                ),
                observed=None if after.current is None else (after.current, target.unit),
                period=(reach_time, reach_time),
            )
        )
    return findings
