"""HL7 FHIR R4: panels as a Bundle of DiagnosticReports and Observations, and back.

Export writes per panel a DiagnosticReport and one Observation per marker (LOINC coding, UCUM
quantity with comparator, the lab's reference range or else the dictionary's, v3 interpretation,
identifiers carrying the panel and marker names). Import reads such a Bundle, a DiagnosticReport
with contained Observations, or a Bundle of Observations alone (grouped by effective time), so an
export imported into another account gives the same panels.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Final

from vitalis_biomarkers.dictionary.model import Dictionary
from vitalis_biomarkers.domain.flags import Flag
from vitalis_biomarkers.domain.panels import (
    Comparator,
    Fasting,
    MarkerDraft,
    Panel,
    PanelFields,
    Provenance,
)
from vitalis_biomarkers.domain.people import PersonProfile

LOINC: Final = "http://loinc.org"
UCUM: Final = "http://unitsofmeasure.org"
INTERPRETATION: Final = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
OBSERVATION_CATEGORY: Final = "http://terminology.hl7.org/CodeSystem/observation-category"
VITALIS: Final = "https://vitalis.health/fhir"
PANEL_IDENTIFIER: Final = f"{VITALIS}/panel"
MARKER_IDENTIFIER: Final = f"{VITALIS}/marker"
FASTING_EXTENSION: Final = f"{VITALIS}/StructureDefinition/fasting-status"
RANGE_SOURCE_EXTENSION: Final = f"{VITALIS}/StructureDefinition/reference-range-source"
UTC_OFFSET_EXTENSION: Final = f"{VITALIS}/StructureDefinition/utc-offset-seconds"
LAB_REPORT_CODE: Final = "11502-2"
_INTERPRETATIONS: Final = {
    Flag.NORMAL: "N",
    Flag.LOW: "L",
    Flag.HIGH: "H",
    Flag.CRITICAL_LOW: "LL",
    Flag.CRITICAL_HIGH: "HH",
}
_COMPARATORS: Final = {
    Comparator.LESS_THAN: "<",
    Comparator.LESS_OR_EQUAL: "<=",
    Comparator.GREATER_THAN: ">",
    Comparator.GREATER_OR_EQUAL: ">=",
}
COMPARATORS_BACK: Final = {text: comparator for comparator, text in _COMPARATORS.items()}
_FASTING: Final = {Fasting.FASTING: "fasting", Fasting.NON_FASTING: "non-fasting"}
FASTING_BACK: Final = {text: fasting for fasting, text in _FASTING.items()}


class InvalidFhirError(ValueError):
    """The JSON is not a FHIR R4 resource this service imports."""


@dataclass(frozen=True)
class ImportIssue:
    """An Observation or report not imported, and why."""

    resource: str
    reason: str
    message: str


@dataclass(frozen=True)
class ImportedPanel:
    """A panel read from FHIR, keyed by its source resource."""

    source: str
    fields: PanelFields
    provenance: Provenance
    markers: tuple[MarkerDraft, ...]


@dataclass
class ImportResult:
    """Everything an import read."""

    panels: list[ImportedPanel] = field(default_factory=list)
    observation_count: int = 0
    issues: list[ImportIssue] = field(default_factory=list)


def _instant(moment: datetime, offset: timedelta | None = None) -> str:
    zone = timezone(offset) if offset is not None else UTC
    return moment.astimezone(zone).isoformat()


def _quantity(value: float, unit: str) -> dict[str, Any]:
    return {"value": value, "unit": unit, "system": UCUM, "code": unit}


def _reference_range(
    panel: Panel, marker_index: int, dictionary: Dictionary, person: PersonProfile
) -> list[Any]:
    marker = panel.markers[marker_index]
    if marker.lab_range.is_set or marker.lab_range.text:
        entry: dict[str, Any] = {}
        if marker.lab_range.low is not None:
            entry["low"] = _quantity(marker.lab_range.low, marker.reported_unit)
        if marker.lab_range.high is not None:
            entry["high"] = _quantity(marker.lab_range.high, marker.reported_unit)
        if marker.lab_range.text:
            entry["text"] = marker.lab_range.text
        return [entry]
    definition = dictionary.get(marker.biomarker_id)
    band = (
        None
        if definition is None
        else definition.reference_range(person.sex, person.age_at(panel.fields.collection_time))
    )
    if definition is None or band is None or (band.low is None and band.high is None):
        return []
    entry = {"extension": [{"url": RANGE_SOURCE_EXTENSION, "valueCode": "dictionary"}]}
    if band.low is not None:
        entry["low"] = _quantity(band.low, definition.canonical_unit)
    if band.high is not None:
        entry["high"] = _quantity(band.high, definition.canonical_unit)
    return [entry]


def _observation(panel: Panel, index: int, dictionary: Dictionary, person: PersonProfile) -> dict[str, Any]:
    marker = panel.markers[index]
    definition = dictionary.get(marker.biomarker_id)
    coding = {"system": LOINC, "code": definition.loinc_code if definition else "", "display": ""}
    if definition is not None:
        coding["display"] = definition.display_name
    code: dict[str, Any] = {"coding": [coding]}
    if marker.reported_name:
        code["text"] = marker.reported_name
    value = _quantity(marker.value, marker.reported_unit)
    if marker.comparator in _COMPARATORS:
        value["comparator"] = _COMPARATORS[marker.comparator]
    observation: dict[str, Any] = {
        "resourceType": "Observation",
        "id": str(marker.id),
        "identifier": [
            {"system": MARKER_IDENTIFIER, "value": panel.marker_name(marker)},
            {"system": PANEL_IDENTIFIER, "value": panel.name},
        ],
        "status": "final",
        "category": [{"coding": [{"system": OBSERVATION_CATEGORY, "code": "laboratory"}]}],
        "code": code,
        "effectiveDateTime": _instant(panel.fields.collection_time, panel.fields.utc_offset),
        "valueQuantity": value,
    }
    if marker.reported_value:
        observation["extension"] = [
            {"url": f"{VITALIS}/StructureDefinition/reported-value", "valueString": marker.reported_value}
        ]
    ranges = _reference_range(panel, index, dictionary, person)
    if ranges:
        observation["referenceRange"] = ranges
    if marker.flag in _INTERPRETATIONS or marker.reported_flag:
        interpretation: dict[str, Any] = {}
        if marker.flag in _INTERPRETATIONS:
            interpretation["coding"] = [{"system": INTERPRETATION, "code": _INTERPRETATIONS[marker.flag]}]
        if marker.reported_flag:
            interpretation["text"] = marker.reported_flag
        observation["interpretation"] = [interpretation]
    if marker.note:
        observation["note"] = [{"text": marker.note}]
    return observation


def export_bundle(
    panels: Sequence[Panel], dictionary: Dictionary, person: PersonProfile, *, now: datetime
) -> dict[str, Any]:
    """A FHIR R4 Bundle (type collection) of the panels."""
    entries: list[dict[str, Any]] = []
    for panel in panels:
        report = _report(panel)
        entries.append({"fullUrl": f"urn:uuid:{panel.id}", "resource": report})
        for index, marker in enumerate(panel.markers):
            entries.append(
                {
                    "fullUrl": f"urn:uuid:{marker.id}",
                    "resource": _observation(panel, index, dictionary, person),
                }
            )
    return {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "meta": {"lastUpdated": _instant(now), "source": VITALIS},
        "type": "collection",
        "timestamp": _instant(now),
        "entry": entries,
    }


def _report(panel: Panel) -> dict[str, Any]:
    fields = panel.fields
    code: dict[str, Any] = {
        "coding": [{"system": LOINC, "code": LAB_REPORT_CODE, "display": "Laboratory report"}]
    }
    if fields.display_name:
        code["text"] = fields.display_name
    report: dict[str, Any] = {
        "resourceType": "DiagnosticReport",
        "id": str(panel.id),
        "identifier": [{"system": PANEL_IDENTIFIER, "value": panel.name}],
        "status": "final",
        "category": [
            {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "LAB"}]}
        ],
        "code": code,
        "effectiveDateTime": _instant(fields.collection_time, fields.utc_offset),
        "result": [{"reference": f"urn:uuid:{marker.id}"} for marker in panel.markers],
    }
    extensions: list[dict[str, Any]] = []
    if fields.fasting in _FASTING:
        extensions.append({"url": FASTING_EXTENSION, "valueCode": _FASTING[fields.fasting]})
    if fields.utc_offset is not None:
        extensions.append(
            {"url": UTC_OFFSET_EXTENSION, "valueInteger": int(fields.utc_offset.total_seconds())}
        )
    if extensions:
        report["extension"] = extensions
    if fields.report_time is not None:
        report["issued"] = _instant(fields.report_time)
    if fields.lab_name:
        report["performer"] = [{"display": fields.lab_name}]
    if fields.note:
        report["conclusion"] = fields.note
    return report
