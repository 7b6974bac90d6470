"""The rules of the insights engine, as data, and the pure functions that apply them.

A rule is an id, a version, a category, a top severity, parameters and the events that make it
run. A change of a rule's logic or parameters bumps its version, which every insight records.
Adding a rule means adding a :class:`RuleSpec` to :data:`RULES` and a function that turns data
into :class:`Finding` objects; the engine stores each finding once per dedupe key.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Final

from vitalis.insights.v1 import common_pb2
from vitalis_insights.domain.series import (
    HRV_RMSSD,
    RESTING_HEART_RATE,
    TOTAL_SLEEP_TIME,
    SeriesValue,
)
from vitalis_insights.domain.statistics import robust_baseline

INFO: Final = common_pb2.SEVERITY_INFO
WARNING: Final = common_pb2.SEVERITY_WARNING
CRITICAL: Final = common_pb2.SEVERITY_CRITICAL

PANEL_EVENTS: Final = ("vitalis.biomarkers.v1.PanelCreated", "vitalis.biomarkers.v1.PanelUpdated")
SUMMARY_EVENTS: Final = ("vitalis.ingestion.v1.DailySummaryUpdated",)


@dataclass(frozen=True)
class RuleSpec:
    """A rule of the engine as published by ListRules."""

    id: str
    version: int
    display_name: str
    description: str
    category: int
    max_severity: int
    parameters: Mapping[str, float]
    trigger_event_types: tuple[str, ...]
    alerts: bool = False
    enabled: bool = True

    @property
    def name(self) -> str:
        """``rules/{id}``."""
        return f"rules/{self.id}"


@dataclass(frozen=True)
class EvidenceItem:
    """A resource a finding rests on."""

    resource: str
    description: str
    value: float | None = None
    unit: str = ""
    observe_time: datetime | None = None


@dataclass(frozen=True)
class Finding:
    """What a rule found; stored as an insight once per ``dedupe_key``."""

    rule: RuleSpec
    severity: int
    title: str
    summary: str
    dedupe_key: str
    evidence: tuple[EvidenceItem, ...]
    series_key: str | None = None
    observed: tuple[float, str] | None = None
    expected_range: tuple[float | None, float | None, str] | None = None
    period: tuple[datetime, datetime] | None = None
    raise_alert: bool = False
    extra: Mapping[str, str] = field(default_factory=dict)


def _night_rule(rule_id: str, display: str, direction: str, category: int) -> RuleSpec:
    return RuleSpec(
        id=rule_id,
        version=1,
        display_name=display,
        description=(
            f"The last 3 nights all {'above' if direction == 'high' else 'below'} the personal baseline: the "
            "median of up to 28 earlier nights +/- 3 scaled MADs (at least min_spread wide), "
            "needing at least 14 earlier nights of data."
        ),
        category=category,
        max_severity=WARNING,
        parameters={"baseline_nights": 28, "min_nights": 14, "run_nights": 3, "mad_multiplier": 3.0},
        trigger_event_types=SUMMARY_EVENTS,
        alerts=True,
    )


RESTING_HR_ANOMALY = _night_rule(
    "resting-heart-rate-anomaly",
    "Resting heart rate anomaly",
    "high",
    common_pb2.INSIGHT_CATEGORY_HEART,
)
HRV_ANOMALY = _night_rule(
    "hrv-anomaly", "Heart-rate variability drop", "low", common_pb2.INSIGHT_CATEGORY_HEART
)
SLEEP_ANOMALY = _night_rule(
    "short-sleep-anomaly", "Unusually short sleep", "low", common_pb2.INSIGHT_CATEGORY_SLEEP
)
BIOMARKER_OUT_OF_RANGE = RuleSpec(
    id="biomarker-out-of-range",
    version=1,
    display_name="Biomarker out of range",
    description="A marker of a new or changed panel is flagged low or high against its reference range.",
    category=common_pb2.INSIGHT_CATEGORY_BIOMARKERS,
    max_severity=WARNING,
    parameters={},
    trigger_event_types=PANEL_EVENTS,
)
BIOMARKER_CRITICAL = RuleSpec(
    id="biomarker-critical",
    version=1,
    display_name="Critical biomarker value",
    description="A marker of a new or changed panel is flagged critically low or high; always alerts.",
    category=common_pb2.INSIGHT_CATEGORY_BIOMARKERS,
    max_severity=CRITICAL,
    parameters={},
    trigger_event_types=PANEL_EVENTS,
    alerts=True,
)
SIGNIFICANT_CHANGE = RuleSpec(
    id="biomarker-significant-change",
    version=1,
    display_name="Significant change of a biomarker",
    description=(
        "A marker differs from the person's previous value of the same biomarker by more than the "
        "reference change value RCV = z x sqrt(2) x sqrt(CVa^2 + CVi^2), two-sided 95 % (z = 1.96), "
        "with published analytical (CVa) and within-subject (CVi) variation."
    ),
    category=common_pb2.INSIGHT_CATEGORY_BIOMARKERS,
    max_severity=INFO,
    parameters={"z": 1.96},
    trigger_event_types=PANEL_EVENTS,
)
SLEEP_DEBT = RuleSpec(
    id="sleep-debt",
    version=1,
    display_name="Sleep debt",
    description=(
        "The shortfall of sleep against the need (480 min a night) summed over the last 14 nights "
        "exceeds 300 min, with at least 7 of those nights recorded; once per week."
    ),
    category=common_pb2.INSIGHT_CATEGORY_SLEEP,
    max_severity=WARNING,
    parameters={"need_minutes": 480, "window_nights": 14, "min_nights": 7, "threshold_minutes": 300},
    trigger_event_types=SUMMARY_EVENTS,
)
GOAL_MILESTONE = RuleSpec(
    id="goal-milestone",
    version=1,
    display_name="Goal milestone",
    description="A goal reached 25 %, 50 %, 75 % or 100 % of the way from its baseline to its target.",
    category=common_pb2.INSIGHT_CATEGORY_GOALS,
    max_severity=INFO,
    parameters={},
    trigger_event_types=(*SUMMARY_EVENTS, *PANEL_EVENTS, "vitalis.insights.v1.GoalCreated"),
)
BIOLOGICAL_AGE_CHANGE = RuleSpec(
    id="biological-age-change",
    version=1,
    display_name="Biological age change",
    description="A new PhenoAge differs from the one it supersedes by at least 1 year.",
    category=common_pb2.INSIGHT_CATEGORY_AGING,
    max_severity=WARNING,
    parameters={"min_change_years": 1.0},
    trigger_event_types=("vitalis.biomarkers.v1.ScoreComputed",),
)

RULES: Final = (
    BIOLOGICAL_AGE_CHANGE,
    BIOMARKER_CRITICAL,
    BIOMARKER_OUT_OF_RANGE,
    SIGNIFICANT_CHANGE,
    GOAL_MILESTONE,
    HRV_ANOMALY,
    RESTING_HR_ANOMALY,
    SLEEP_ANOMALY,
    SLEEP_DEBT,
)
NIGHT_RULES: Final = {
    RESTING_HEART_RATE: (RESTING_HR_ANOMALY, "high"),
    HRV_RMSSD: (HRV_ANOMALY, "low"),
    TOTAL_SLEEP_TIME: (SLEEP_ANOMALY, "low"),
}
# Smallest band half-width per series, so a perfectly regular baseline does not flag noise.
MIN_SPREAD: Final = {RESTING_HEART_RATE: 1.0, HRV_RMSSD: 3.0, TOTAL_SLEEP_TIME: 20.0}
# Analytical and within-subject coefficients of variation (%), EFLM biological variation database.
BIOLOGICAL_VARIATION: Final = {
    "biomarkers/ldl-cholesterol-direct": (2.1, 7.8),
    "biomarkers/ldl-cholesterol-calculated": (2.1, 7.8),
    "biomarkers/hdl-cholesterol": (1.9, 5.6),
    "biomarkers/cholesterol-total": (1.6, 5.3),
    "biomarkers/triglycerides": (2.6, 19.9),
    "biomarkers/glucose": (1.9, 5.0),
    "biomarkers/hemoglobin-a1c": (1.5, 1.6),
    "biomarkers/creatinine": (2.5, 4.4),
    "biomarkers/c-reactive-protein-high-sensitivity": (4.2, 34.1),
    "biomarkers/ferritin": (3.1, 9.9),
    "biomarkers/thyroid-stimulating-hormone": (2.5, 17.7),
}


def rule_by_id(rule_id: str) -> RuleSpec | None:
    """The rule with this id, if any."""
    return next((rule for rule in RULES if rule.id == rule_id), None)


def _day(moment: datetime) -> date:
    return moment.date()


def night_anomaly(series: str, values: Sequence[SeriesValue]) -> Finding | None:
    """The anomaly of the latest nights of ``series`` against the personal baseline, if any.

    ``values`` are one per night, in any order. The trailing run of out-of-band nights is compared
    with the nights before the last ``run_nights``; its first night names the finding, so a run that
    goes on for a fourth night is still the same finding.
    """
    spec = NIGHT_RULES.get(series)
    if spec is None:
        return None
    rule, direction = spec
    nights = sorted(values, key=lambda value: value.observe_time)
    run_nights = int(rule.parameters["run_nights"])
    history = nights[:-run_nights][-int(rule.parameters["baseline_nights"]) :]
    if len(nights) < run_nights or len(history) < int(rule.parameters["min_nights"]):
        return None
    baseline = robust_baseline([night.value for night in history])
    low, high = baseline.band(float(rule.parameters["mad_multiplier"]), floor=MIN_SPREAD.get(series, 0.0))

    def outside(night: SeriesValue) -> bool:
        return night.value > high if direction == "high" else night.value < low

    run: list[SeriesValue] = []
    for night in reversed(nights):
        if not outside(night) or (run and (_day(run[-1].observe_time) - _day(night.observe_time)).days > 1):
            break
        run.append(night)
    if len(run) < run_nights:
        return None
    run.reverse()
    unit = run[-1].unit
    quoted = ", ".join(f"{night.value:.0f}" for night in run)
    word = "above" if direction == "high" else "below"
    label = rule.display_name.lower()
    return Finding(
        rule=rule,
        severity=WARNING,
        title=f"{rule.display_name} for {len(run)} nights",
        summary=(
            f"Your last {len(run)} nights ({quoted} {unit}) were all {word} your usual range "
            f"({low:.0f}-{high:.0f} {unit}, median {baseline.median:.0f} over {baseline.count} nights)."
        ),
        dedupe_key=f"{rule.id}:{_day(run[0].observe_time).isoformat()}",
        evidence=tuple(
            EvidenceItem(
                resource=night.evidence,
                description=f"{label}: {night.value:.0f} {night.unit} on {_day(night.observe_time):%Y-%m-%d}",
                value=night.value,
                unit=night.unit,
                observe_time=night.observe_time,
            )
            for night in reversed(run)
        ),
        series_key=series,
        observed=(run[-1].value, unit),
        expected_range=(low, high, unit),
        period=(run[0].observe_time, run[-1].observe_time + timedelta(days=1)),
        raise_alert=rule.alerts,
    )


def sleep_debt_of(values: Sequence[SeriesValue]) -> tuple[float, list[SeriesValue]] | None:
    """The shortfall against the need over the last 14 nights and those nights; None with too few."""
    rule = SLEEP_DEBT
    nights = sorted(values, key=lambda value: value.observe_time)
    if not nights:
        return None
    last = _day(nights[-1].observe_time)
    window = [
        night
        for night in nights
        if (last - _day(night.observe_time)).days < int(rule.parameters["window_nights"])
    ]
    if len(window) < int(rule.parameters["min_nights"]):
        return None
    need = float(rule.parameters["need_minutes"])
    return sum(max(0.0, need - night.value) for night in window), window


def sleep_debt(values: Sequence[SeriesValue]) -> Finding | None:
    """Sleep debt over the last 14 nights of total sleep time, if above the threshold."""
    rule = SLEEP_DEBT
    found = sleep_debt_of(values)
    if found is None:
        return None
    debt, window = found
    need = float(rule.parameters["need_minutes"])
    if debt <= float(rule.parameters["threshold_minutes"]):
        return None
    last = _day(window[-1].observe_time)
    year, week, _ = last.isocalendar()
    return Finding(
        rule=rule,
        severity=WARNING,
        title="You are building up sleep debt",
        summary=(
            f"Over the last {len(window)} nights you slept {debt:.0f} min less than the {need:.0f} min "
            f"a night you need, about {debt / 60:.1f} hours in all."
        ),
        dedupe_key=f"{rule.id}:{year}-W{week:02d}",
        evidence=tuple(
            EvidenceItem(
                night.evidence,
                f"slept {night.value:.0f} min on {_day(night.observe_time).isoformat()}",
                night.value,
                night.unit,
                night.observe_time,
            )
            for night in reversed(window)
        ),
        series_key=TOTAL_SLEEP_TIME,
        observed=(debt, "min"),
        expected_range=(None, float(rule.parameters["threshold_minutes"]), "min"),
        period=(window[0].observe_time, window[-1].observe_time + timedelta(days=1)),
    )


def reference_change_value(biomarker: str, z: float = 1.96) -> float | None:
    """The two-sided RCV in percent for a biomarker with known biological variation."""
    variation = BIOLOGICAL_VARIATION.get(biomarker)
    if variation is None:
        return None
    analytical, within_subject = variation
    return z * math.sqrt(2.0) * math.sqrt(analytical**2 + within_subject**2)


def significant_change(biomarker: str, previous: SeriesValue, current: SeriesValue) -> Finding | None:
    """A change between two measurements of a biomarker larger than its reference change value."""
    rule = SIGNIFICANT_CHANGE
    rcv = reference_change_value(biomarker, float(rule.parameters["z"]))
    if rcv is None or previous.value == 0 or previous.unit != current.unit:
        return None
    change = (current.value - previous.value) / abs(previous.value) * 100.0
    if abs(change) <= rcv:
        return None
    label = biomarker.removeprefix("biomarkers/").replace("-", " ")
    word = "rose" if change > 0 else "fell"
    return Finding(
        rule=rule,
        severity=INFO,
        title=f"{label.capitalize()} {word} significantly",
        summary=(
            f"Your {label} {word} from {previous.value:g} to {current.value:g} {current.unit} "
            f"({change:+.0f} %), more than the {rcv:.0f} % expected from measurement and "
            "day-to-day variation."
        ),
        dedupe_key=f"{rule.id}:{current.evidence}",
        evidence=(
            EvidenceItem(
                current.evidence,
                f"{label} {current.value:g} {current.unit}",
                current.value,
                current.unit,
                current.observe_time,
            ),
            EvidenceItem(
                previous.evidence,
                f"{label} {previous.value:g} {previous.unit}",
                previous.value,
                previous.unit,
                previous.observe_time,
            ),
        ),
        series_key=f"biomarker:{biomarker}",
        observed=(current.value, current.unit),
        period=(previous.observe_time, current.observe_time),
    )


def biological_age_change(previous: SeriesValue, current: SeriesValue) -> Finding | None:
    """A PhenoAge change of at least ``min_change_years`` against the superseded score."""
    rule = BIOLOGICAL_AGE_CHANGE
    change = current.value - previous.value
    if abs(change) < float(rule.parameters["min_change_years"]):
        return None
    word = "older" if change > 0 else "younger"
    return Finding(
        rule=rule,
        severity=WARNING if change > 0 else INFO,
        title=f"Your biological age is {abs(change):.1f} years {word}",
        summary=f"Your PhenoAge went from {previous.value:.1f} to {current.value:.1f} {current.unit}.",
        dedupe_key=f"{rule.id}:{current.evidence}",
        evidence=(
            EvidenceItem(
                current.evidence,
                f"PhenoAge {current.value:.1f}",
                current.value,
                current.unit,
                current.observe_time,
            ),
            EvidenceItem(
                previous.evidence,
                f"PhenoAge {previous.value:.1f}",
                previous.value,
                previous.unit,
                previous.observe_time,
            ),
        ),
        series_key="score:scoreFormulas/phenoage",
        observed=(current.value, current.unit),
        period=(previous.observe_time, current.observe_time),
    )
