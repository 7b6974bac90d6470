"""The rules as pure functions: baselines, enough-data rules, dedupe keys, reference change values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from vitalis.biomarkers.v1 import panel_pb2
from vitalis_insights.domain.goals import GoalTarget, compute_progress, milestone_findings
from vitalis_insights.domain.panel_rules import FlaggedMarker, MarkerReading, flagged_marker_findings
from vitalis_insights.domain.rules import (
    RULES,
    biological_age_change,
    night_anomaly,
    reference_change_value,
    significant_change,
    sleep_debt,
    sleep_debt_of,
)
from vitalis_insights.domain.series import HRV_RMSSD, RESTING_HEART_RATE, TOTAL_SLEEP_TIME, SeriesValue

START = datetime(2025, 1, 1, tzinfo=UTC)


def nights(series: str, values: list[float], unit: str = "/min") -> list[SeriesValue]:
    return [
        SeriesValue(series, START + timedelta(days=index), value, unit, f"users/u/dailySummaries/{index}")
        for index, value in enumerate(values)
    ]


def test_three_nights_of_data_never_alert() -> None:
    assert night_anomaly(RESTING_HEART_RATE, nights(RESTING_HEART_RATE, [90, 95, 99])) is None


def test_thirteen_nights_of_baseline_are_not_enough() -> None:
    assert night_anomaly(RESTING_HEART_RATE, nights(RESTING_HEART_RATE, [55] * 13 + [70, 70, 70])) is None


def test_a_run_of_elevated_nights_keeps_its_first_night_as_dedupe_key() -> None:
    three = night_anomaly(RESTING_HEART_RATE, nights(RESTING_HEART_RATE, [55] * 14 + [70, 70, 70]))
    four = night_anomaly(RESTING_HEART_RATE, nights(RESTING_HEART_RATE, [55] * 14 + [70, 70, 70, 71]))
    assert three is not None
    assert four is not None
    assert three.dedupe_key == four.dedupe_key == "resting-heart-rate-anomaly:2025-01-15"
    assert three.expected_range is not None
    assert three.expected_range[1] == pytest.approx(58.0)


def test_a_single_high_night_within_noise_is_no_anomaly() -> None:
    values = [54, 57, 55, 53, 58, 56, 55, 54, 57, 56, 55, 53, 58, 55, 59, 60, 58]
    assert night_anomaly(RESTING_HEART_RATE, nights(RESTING_HEART_RATE, values)) is None


def test_hrv_anomaly_looks_for_a_drop() -> None:
    found = night_anomaly(
        HRV_RMSSD,
        nights(HRV_RMSSD, [60, 62, 58, 61, 59, 60, 63, 60, 61, 59, 58, 62, 60, 61, 35, 33, 30], "ms"),
    )
    assert found is not None
    assert found.rule.id == "hrv-anomaly"
    assert night_anomaly(HRV_RMSSD, nights(HRV_RMSSD, [60] * 14 + [90, 95, 99], "ms")) is None


def test_sleep_debt_needs_a_real_shortfall() -> None:
    assert sleep_debt(nights(TOTAL_SLEEP_TIME, [470] * 14, "min")) is None
    found = sleep_debt(nights(TOTAL_SLEEP_TIME, [420] * 14, "min"))
    assert found is not None
    assert found.observed == (840.0, "min")
    assert sleep_debt(nights(TOTAL_SLEEP_TIME, [300] * 6, "min")) is None


def test_reference_change_value_of_ldl() -> None:
    assert reference_change_value("biomarkers/ldl-cholesterol-direct") == pytest.approx(
        1.96 * 2**0.5 * (2.1**2 + 7.8**2) ** 0.5
    )
    assert reference_change_value("biomarkers/unknown") is None
    before = SeriesValue(
        "biomarker:biomarkers/ldl-cholesterol-direct", START, 130, "mg/dL", "users/u/panels/a/markers/1"
    )
    small = SeriesValue(
        "biomarker:biomarkers/ldl-cholesterol-direct",
        START + timedelta(days=90),
        140,
        "mg/dL",
        "users/u/panels/b/markers/1",
    )
    large = SeriesValue(
        "biomarker:biomarkers/ldl-cholesterol-direct",
        START + timedelta(days=90),
        170,
        "mg/dL",
        "users/u/panels/b/markers/1",
    )
    assert significant_change("biomarkers/ldl-cholesterol-direct", before, small) is None
    found = significant_change("biomarkers/ldl-cholesterol-direct", before, large)
    assert found is not None
    assert [item.resource for item in found.evidence] == [
        "users/u/panels/b/markers/1",
        "users/u/panels/a/markers/1",
    ]


def test_biological_age_change_of_at_least_a_year() -> None:
    older = SeriesValue("score:scoreFormulas/phenoage", START, 41.0, "a", "users/u/scores/1")
    assert (
        biological_age_change(
            older, SeriesValue("score:scoreFormulas/phenoage", START, 41.5, "a", "users/u/scores/2")
        )
        is None
    )
    found = biological_age_change(
        older, SeriesValue("score:scoreFormulas/phenoage", START, 43.0, "a", "users/u/scores/2")
    )
    assert found is not None
    assert found.severity == 2


def test_flagged_markers_become_findings_with_the_panel_as_evidence() -> None:
    findings = flagged_marker_findings(
        panel="users/u/panels/p",
        collection_time=START,
        flagged=[
            FlaggedMarker(
                "users/u/panels/p/markers/ldl",
                "biomarkers/ldl-cholesterol-direct",
                panel_pb2.MARKER_FLAG_HIGH,
            ),
            FlaggedMarker(
                "users/u/panels/p/markers/k", "biomarkers/potassium", panel_pb2.MARKER_FLAG_CRITICAL_LOW
            ),
        ],
        readings={"users/u/panels/p/markers/ldl": MarkerReading(162, "mg/dL", None, 116)},
    )
    high, critical = findings
    assert (
        high.summary
        == "Your ldl cholesterol direct was 162 mg/dL on 2025-01-01, above the reference range (< 116 mg/dL)."
    )
    assert high.evidence[0].resource == "users/u/panels/p"
    assert critical.rule.id == "biomarker-critical"
    assert critical.raise_alert


def test_goal_milestones_are_found_once() -> None:
    target = GoalTarget(
        "users/u/goals/g", "Fewer beats", 2, 60.0, None, None, "/min", 3, START.date(), None, True
    )
    values = nights(RESTING_HEART_RATE, [70, 70, 70, 66, 65, 64])
    now = START + timedelta(days=6)
    progress = compute_progress(target, values, now=now, reached={})
    assert progress.fraction == pytest.approx(0.5)
    assert sorted(progress.milestones) == [0.25, 0.5]
    assert [f.dedupe_key for f in milestone_findings(target, {}, progress)] == [
        "goal-milestone:users/u/goals/g:25",
        "goal-milestone:users/u/goals/g:50",
    ]
    assert milestone_findings(target, progress.milestones, progress) == []
    assert progress.on_track


def test_every_rule_has_a_unique_id_and_a_version() -> None:
    assert len({rule.id for rule in RULES}) == len(RULES)
    assert all(rule.version >= 1 and rule.trigger_event_types for rule in RULES)


def test_sleep_debt_sums_the_shortfall_of_the_last_fourteen_nights() -> None:
    found = sleep_debt_of(nights(TOTAL_SLEEP_TIME, [300] * 5 + [420] * 14 + [480, 500], "min"))
    assert found is not None
    debt, window = found
    assert len(window) == 14
    assert debt == pytest.approx(12 * 60)
