"""Findings about the markers of a blood panel: flagged out of range or critical."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from vitalis.biomarkers.v1 import panel_pb2
from vitalis_insights.domain.rules import (
    BIOMARKER_CRITICAL,
    BIOMARKER_OUT_OF_RANGE,
    CRITICAL,
    WARNING,
    EvidenceItem,
    Finding,
)

_CRITICAL_FLAGS = {panel_pb2.MARKER_FLAG_CRITICAL_LOW, panel_pb2.MARKER_FLAG_CRITICAL_HIGH}
_HIGH_FLAGS = {panel_pb2.MARKER_FLAG_HIGH, panel_pb2.MARKER_FLAG_CRITICAL_HIGH}
_OUT_OF_RANGE_FLAGS = {panel_pb2.MARKER_FLAG_LOW, panel_pb2.MARKER_FLAG_HIGH, *_CRITICAL_FLAGS}


@dataclass(frozen=True)
class FlaggedMarker:
    """A marker flagged by the biomarkers service, as carried by a panel event."""

    marker: str
    biomarker: str
    flag: int


@dataclass(frozen=True)
class MarkerReading:
    """What the biomarkers service says about a marker's value, when it could be read."""

    value: float
    unit: str
    range_low: float | None
    range_high: float | None


def _label(biomarker: str, names: Mapping[str, str]) -> str:
    return names.get(biomarker) or biomarker.removeprefix("biomarkers/").replace("-", " ")


def flagged_marker_findings(
    *,
    panel: str,
    collection_time: datetime,
    flagged: Sequence[FlaggedMarker],
    readings: Mapping[str, MarkerReading],
    names: Mapping[str, str] | None = None,
) -> list[Finding]:
    """One finding per flagged marker; the panel and the marker are its evidence."""
    findings: list[Finding] = []
    for marker in flagged:
        if marker.flag not in _OUT_OF_RANGE_FLAGS:
            continue
        critical = marker.flag in _CRITICAL_FLAGS
        rule = BIOMARKER_CRITICAL if critical else BIOMARKER_OUT_OF_RANGE
        label = _label(marker.biomarker, names or {})
        direction = "above" if marker.flag in _HIGH_FLAGS else "below"
        reading = readings.get(marker.marker)
        day = collection_time.date().isoformat()
        if reading is not None:
            bounds = _describe_range(reading)
            summary = (
                f"Your {label} was {reading.value:g} {reading.unit} on {day}, {direction} the reference "
                f"range{bounds}."
            )
            marker_description = f"{label} {reading.value:g} {reading.unit} on {day}"
        else:
            summary = f"Your {label} on {day} was {direction} the reference range."
            marker_description = f"{label} {direction} range on {day}"
        findings.append(
            Finding(
                rule=rule,
                severity=CRITICAL if critical else WARNING,
                title=f"{label[:1].upper()}{label[1:]} {'critically ' if critical else ''}{direction} range",
                summary=summary,
                dedupe_key=f"{rule.id}:{marker.marker}",
                evidence=(
                    EvidenceItem(
                        panel,
                        f"blood panel collected on {day}",
                        observe_time=collection_time,
                    ),
                    EvidenceItem(
                        marker.marker,
                        marker_description,
                        value=None if reading is None else reading.value,
                        unit="" if reading is None else reading.unit,
                        observe_time=collection_time,
                    ),
                ),
                series_key=f"biomarker:{marker.biomarker}",
                observed=None if reading is None else (reading.value, reading.unit),
                expected_range=(
                    None
                    if reading is None or (reading.range_low is None and reading.range_high is None)
                    else (reading.range_low, reading.range_high, reading.unit)
                ),
                period=(collection_time, collection_time),
                raise_alert=rule.alerts,
            )
        )
    return findings


def _describe_range(reading: MarkerReading) -> str:
    if reading.range_low is not None and reading.range_high is not None:
        return f" ({reading.range_low:g}-{reading.range_high:g} {reading.unit})"
    if reading.range_high is not None:
        return f" (< {reading.range_high:g} {reading.unit})"
    if reading.range_low is not None:
        return f" (> {reading.range_low:g} {reading.unit})"
    return ""
