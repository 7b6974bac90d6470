"""HL7 FHIR R4: panels as a Bundle of DiagnosticReports and Observations, and back.

Export writes per panel a DiagnosticReport and one Observation per marker (LOINC coding, UCUM
quantity with comparator, the lab's reference range or else the dictionary's, v3 interpretation,
identifiers carrying the panel and marker names). Import reads such a Bundle, a DiagnosticReport
with contained Observations, or a Bundle of Observations alone (grouped by effective time), so an
export imported into another account gives the same panels.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Final

from vitalis_biomarkers.dictionary.model import Dictionary
from vitalis_biomarkers.domain.flags import Flag, LabRange
from vitalis_biomarkers.domain.panels import (
    Comparator,
    Fasting,
    MarkerDraft,
    Panel,
    PanelFields,
    Provenance,
    ProvenanceKind,
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
_COMPARATORS_BACK: Final = {text: comparator for comparator, text in _COMPARATORS.items()}
_FASTING: Final = {Fasting.FASTING: "fasting", Fasting.NON_FASTING: "non-fasting"}
_FASTING_BACK: Final = {text: fasting for fasting, text in _FASTING.items()}


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


def _parse_time(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _effective(resource: Mapping[str, Any]) -> datetime | None:
    if "effectiveDateTime" in resource:
        return _parse_time(resource["effectiveDateTime"])
    period = resource.get("effectivePeriod")
    if isinstance(period, Mapping):
        return _parse_time(period.get("start"))
    return None


def _extension(resource: Mapping[str, Any], url: str) -> Mapping[str, Any] | None:
    for extension in resource.get("extension") or []:
        if isinstance(extension, Mapping) and extension.get("url") == url:
            return extension
    return None


class FhirReader:
    """Turns FHIR JSON into panel drafts against a dictionary."""

    def __init__(self, dictionary: Dictionary, normalize_unit: Any) -> None:
        """``normalize_unit(printed, known=...)`` maps a printed unit to UCUM (or None)."""
        self._dictionary = dictionary
        self._normalize = normalize_unit
        self._known_units = sorted(
            {unit for definition in dictionary.biomarkers for unit in definition.units}
        )

    def read(self, document: Any) -> ImportResult:
        """Read a Bundle or a DiagnosticReport; raise InvalidFhirError for anything else."""
        if not isinstance(document, Mapping):
            raise InvalidFhirError("the body is not a JSON object")
        kind = document.get("resourceType")
        result = ImportResult()
        if kind == "DiagnosticReport":
            contained = {
                f"#{item.get('id')}": item
                for item in document.get("contained") or []
                if isinstance(item, Mapping) and item.get("resourceType") == "Observation"
            }
            self._read_report(document, contained, "", result)
            return result
        if kind != "Bundle":
            raise InvalidFhirError(f"resourceType {kind!r} is not a Bundle or a DiagnosticReport")
        entries = document.get("entry") or []
        if not isinstance(entries, list):
            raise InvalidFhirError("Bundle.entry must be an array")
        source = str((document.get("meta") or {}).get("source") or "")
        observations: dict[str, Mapping[str, Any]] = {}
        reports: list[Mapping[str, Any]] = []
        for index, entry in enumerate(entries):
            resource = entry.get("resource") if isinstance(entry, Mapping) else None
            if not isinstance(resource, Mapping):
                raise InvalidFhirError(f"entry[{index}] has no resource")
            if resource.get("resourceType") == "Observation":
                located = {**resource, "_position": f"entry[{index}]"}
                for key in (
                    str(entry.get("fullUrl") or ""),
                    f"Observation/{resource.get('id')}",
                    f"entry[{index}]",
                ):
                    observations[key] = located
            elif resource.get("resourceType") == "DiagnosticReport":
                reports.append(resource)
        used: set[str] = set()
        for report in reports:
            used |= self._read_report(report, observations, source, result)
        distinct = {str(resource["_position"]): resource for resource in observations.values()}
        unreported = [resource for position, resource in distinct.items() if position not in used]
        self._read_loose(unreported, source, result)
        return result

    def _read_report(
        self,
        report: Mapping[str, Any],
        observations: Mapping[str, Mapping[str, Any]],
        source: str,
        result: ImportResult,
    ) -> set[str]:
        report_id = f"DiagnosticReport/{report.get('id') or uuid.uuid4()}"
        collection_time = _effective(report)
        found = []
        for reference in report.get("result") or []:
            target = observations.get(str((reference or {}).get("reference") or ""))
            if target is not None:
                found.append(target)
        used = {str(item.get("_position", "")) for item in found}
        if collection_time is None:
            result.issues.append(
                ImportIssue(
                    report_id, "MISSING_EFFECTIVE_TIME", "the report has no effectiveDateTime; add one"
                )
            )
            result.observation_count += len(found)
            return used
        offset_extension = _extension(report, UTC_OFFSET_EXTENSION)
        fasting_extension = _extension(report, FASTING_EXTENSION)
        performers = report.get("performer") or []
        fields = PanelFields(
            collection_time=collection_time,
            display_name=str((report.get("code") or {}).get("text") or ""),
            utc_offset=None
            if offset_extension is None
            else timedelta(seconds=int(offset_extension["valueInteger"])),
            report_time=_parse_time(report.get("issued")),
            fasting=_FASTING_BACK.get(str((fasting_extension or {}).get("valueCode")), Fasting.UNSPECIFIED),
            lab_name=str(performers[0].get("display") or "")
            if performers and isinstance(performers[0], Mapping)
            else "",
            note=str(report.get("conclusion") or ""),
        )
        markers = self._markers(found, source, result)
        if markers:
            provenance = Provenance(kind=ProvenanceKind.FHIR, fhir_resource=report_id, fhir_source=source)
            result.panels.append(ImportedPanel(report_id, fields, provenance, tuple(markers)))
        return used

    def _read_loose(
        self, observations: Sequence[Mapping[str, Any]], source: str, result: ImportResult
    ) -> None:
        groups: dict[datetime, list[Mapping[str, Any]]] = {}
        for observation in observations:
            moment = _effective(observation)
            if moment is None:
                result.observation_count += 1
                result.issues.append(
                    ImportIssue(
                        _resource_label(observation),
                        "MISSING_EFFECTIVE_TIME",
                        "the Observation has no effective time",
                    )
                )
                continue
            groups.setdefault(moment, []).append(observation)
        for moment, members in sorted(groups.items()):
            key = "Observation/" + ",".join(sorted(_resource_label(item) for item in members))
            markers = self._markers(members, source, result)
            if markers:
                provenance = Provenance(kind=ProvenanceKind.FHIR, fhir_resource=key[:500], fhir_source=source)
                result.panels.append(
                    ImportedPanel(key, PanelFields(collection_time=moment), provenance, tuple(markers))
                )

    def _markers(
        self, observations: Sequence[Mapping[str, Any]], source: str, result: ImportResult
    ) -> list[MarkerDraft]:
        markers: list[MarkerDraft] = []
        seen: set[str] = set()
        for observation in observations:
            result.observation_count += 1
            draft = self._marker(observation, source, result)
            if draft is None:
                continue
            if draft.biomarker in seen:
                result.issues.append(
                    ImportIssue(
                        _resource_label(observation),
                        "DUPLICATE_BIOMARKER",
                        f"the report already holds a result of {draft.biomarker}; only the first is kept",
                    )
                )
                continue
            seen.add(draft.biomarker)
            markers.append(draft)
        return markers

    def _marker(
        self, observation: Mapping[str, Any], source: str, result: ImportResult
    ) -> MarkerDraft | None:
        label = _resource_label(observation)
        code = observation.get("code") or {}
        codes = [
            str(coding.get("code"))
            for coding in code.get("coding") or []
            if isinstance(coding, Mapping) and coding.get("system") == LOINC
        ]
        definition = next((d for d in (self._dictionary.by_loinc(c) for c in codes) if d is not None), None)
        if definition is None:
            result.issues.append(
                ImportIssue(
                    label,
                    "UNKNOWN_CODE",
                    f"no dictionary biomarker has the LOINC code {', '.join(codes) or '(none)'}",
                )
            )
            return None
        quantity = observation.get("valueQuantity")
        value = quantity.get("value") if isinstance(quantity, Mapping) else None
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            result.issues.append(
                ImportIssue(label, "NO_NUMERIC_VALUE", "the Observation has no numeric valueQuantity")
            )
            return None
        assert isinstance(quantity, Mapping)
        unit = self._unit(quantity)
        if unit is None or not definition.accepts(unit):
            result.issues.append(
                ImportIssue(
                    label,
                    "UNKNOWN_UNIT",
                    f"{quantity.get('code') or quantity.get('unit')!r} is not a unit "
                    f"{definition.display_name} is "
                    f"reported in ({', '.join(definition.units)})",
                )
            )
            return None
        canonical = definition.to_canonical(float(value), unit)
        if canonical is not None and not definition.is_plausible(canonical):
            result.issues.append(
                ImportIssue(
                    label, "IMPLAUSIBLE_VALUE", f"{value} {unit} is not a plausible {definition.display_name}"
                )
            )
            return None
        interpretation = (observation.get("interpretation") or [{}])[0]
        reported_value = _extension(observation, f"{VITALIS}/StructureDefinition/reported-value")
        notes = observation.get("note") or []
        return MarkerDraft(
            biomarker=definition.name,
            value=float(value),
            reported_unit=unit,
            reported_name=str(code.get("text") or ""),
            comparator=_COMPARATORS_BACK.get(str(quantity.get("comparator") or ""), Comparator.EXACT),
            reported_value=str((reported_value or {}).get("valueString") or ""),
            lab_range=self._lab_range(observation, unit),
            reported_flag=str(interpretation.get("text") or "")
            if isinstance(interpretation, Mapping)
            else "",
            provenance=Provenance(kind=ProvenanceKind.FHIR, fhir_resource=label, fhir_source=source),
            note=str(notes[0].get("text") or "") if notes and isinstance(notes[0], Mapping) else "",
        )

    def _unit(self, quantity: Mapping[str, Any]) -> str | None:
        if quantity.get("system") == UCUM and quantity.get("code"):
            return str(quantity["code"])
        printed = quantity.get("unit") or quantity.get("code")
        if not printed:
            return None
        normalized: str | None = self._normalize(str(printed), known=self._known_units)
        return normalized

    def _lab_range(self, observation: Mapping[str, Any], unit: str) -> LabRange:
        for entry in observation.get("referenceRange") or []:
            if not isinstance(entry, Mapping) or _extension(entry, RANGE_SOURCE_EXTENSION) is not None:
                continue
            low, high = entry.get("low") or {}, entry.get("high") or {}
            return LabRange(
                low=self._bound(low, unit),
                high=self._bound(high, unit),
                text=str(entry.get("text") or ""),
            )
        return LabRange()

    def _bound(self, quantity: Mapping[str, Any], unit: str) -> float | None:
        """A range bound in the value's unit; bounds in another unit are left out."""
        value = quantity.get("value")
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        if (quantity.get("code") or quantity.get("unit")) and self._unit(quantity) != unit:
            return None
        return float(value)


def _resource_label(resource: Mapping[str, Any]) -> str:
    if resource.get("id"):
        return f"{resource.get('resourceType', 'Observation')}/{resource['id']}"
    return str(resource.get("_position") or "Observation")
