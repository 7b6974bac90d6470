"""Reading FHIR R4 JSON (a Bundle, or a DiagnosticReport with contained Observations) into panels."""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from vitalis_biomarkers.dictionary.model import Dictionary
from vitalis_biomarkers.domain.fhir import (
    COMPARATORS_BACK,
    FASTING_BACK,
    FASTING_EXTENSION,
    LOINC,
    RANGE_SOURCE_EXTENSION,
    UCUM,
    UTC_OFFSET_EXTENSION,
    VITALIS,
    ImportedPanel,
    ImportIssue,
    ImportResult,
    InvalidFhirError,
)
from vitalis_biomarkers.domain.flags import LabRange
from vitalis_biomarkers.domain.panels import (
    Comparator,
    Fasting,
    MarkerDraft,
    PanelFields,
    Provenance,
    ProvenanceKind,
)


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
            fasting=FASTING_BACK.get(str((fasting_extension or {}).get("valueCode")), Fasting.UNSPECIFIED),
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
            comparator=COMPARATORS_BACK.get(str(quantity.get("comparator") or ""), Comparator.EXACT),
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
