"""Panels (blood draws) and their markers: validation, canonical values and flags."""

from __future__ import annotations

import enum
import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from vitalis_biomarkers.dictionary.model import BiomarkerDefinition, Dictionary, UnitNotAcceptedError
from vitalis_biomarkers.domain.flags import (
    Flag,
    FlagBasis,
    LabRange,
    OptimalStatus,
    flag_value,
    optimal_status,
)
from vitalis_biomarkers.domain.people import PersonProfile
from vitalis_runtime.errors import FieldViolation, InvalidArgument, NotFound

MAX_MARKERS = 500
MAX_TITLE_LENGTH = 200
MAX_NOTE_LENGTH = 2000
CLOCK_SKEW = timedelta(minutes=5)


class ProvenanceKind(enum.Enum):
    """Where a panel or marker came from (values match the contract)."""

    UNSPECIFIED = 0
    MANUAL = 1
    DOCUMENT = 2
    FHIR = 3


class Fasting(enum.Enum):
    """Whether the person had fasted (values match the contract)."""

    UNSPECIFIED = 0
    FASTING = 1
    NON_FASTING = 2


class Comparator(enum.Enum):
    """How the true value compares with the reported number (values match the contract)."""

    EXACT = 0
    LESS_THAN = 1
    LESS_OR_EQUAL = 2
    GREATER_THAN = 3
    GREATER_OR_EQUAL = 4


@dataclass(frozen=True)
class Provenance:
    """Where a value came from, with what lets a person trace it back."""

    kind: ProvenanceKind = ProvenanceKind.MANUAL
    document: str = ""
    page: int = 0
    confidence: float = 0.0
    extracted_marker: str = ""
    fhir_resource: str = ""
    fhir_source: str = ""

    def to_json(self) -> dict[str, Any]:
        """A JSON object for storage."""
        return {
            "kind": self.kind.name,
            "document": self.document,
            "page": self.page,
            "confidence": self.confidence,
            "extracted_marker": self.extracted_marker,
            "fhir_resource": self.fhir_resource,
            "fhir_source": self.fhir_source,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Provenance | None:
        """The provenance stored by :meth:`to_json` (None stays None)."""
        if data is None:
            return None
        return cls(
            kind=ProvenanceKind[data["kind"]],
            document=data.get("document", ""),
            page=int(data.get("page", 0)),
            confidence=float(data.get("confidence", 0.0)),
            extracted_marker=data.get("extracted_marker", ""),
            fhir_resource=data.get("fhir_resource", ""),
            fhir_source=data.get("fhir_source", ""),
        )


@dataclass(frozen=True)
class MarkerDraft:
    """A marker as a client sends it; ``marker_id`` set when it is an existing marker."""

    biomarker: str
    value: float
    reported_unit: str
    marker_id: uuid.UUID | None = None
    reported_name: str = ""
    comparator: Comparator = Comparator.EXACT
    reported_value: str = ""
    lab_range: LabRange = field(default_factory=LabRange)
    reported_flag: str = ""
    provenance: Provenance | None = None
    note: str = ""
    extracted_marker: str = ""


@dataclass(frozen=True)
class Marker:
    """A stored marker with its canonical value and flags."""

    id: uuid.UUID
    biomarker_id: str
    value: float
    reported_unit: str
    canonical_value: float | None
    canonical_unit: str
    flag: Flag
    flag_basis: FlagBasis
    optimal_status: OptimalStatus
    dictionary_version: str
    reported_name: str = ""
    comparator: Comparator = Comparator.EXACT
    reported_value: str = ""
    lab_range: LabRange = field(default_factory=LabRange)
    reported_flag: str = ""
    provenance: Provenance | None = None
    note: str = ""
    extracted_marker: str = ""


@dataclass(frozen=True)
class PanelFields:
    """The mutable fields of a panel other than its markers."""

    collection_time: datetime
    display_name: str = ""
    utc_offset: timedelta | None = None
    report_time: datetime | None = None
    fasting: Fasting = Fasting.UNSPECIFIED
    lab_name: str = ""
    note: str = ""


@dataclass(frozen=True)
class Panel:
    """A stored panel with its markers."""

    user_id: uuid.UUID
    id: uuid.UUID
    fields: PanelFields
    provenance: Provenance
    markers: tuple[Marker, ...]
    create_time: datetime
    update_time: datetime
    version: int

    @property
    def name(self) -> str:
        """``users/{user}/panels/{panel}``."""
        return panel_name(self.user_id, self.id)

    @property
    def etag(self) -> str:
        """The version as an opaque etag."""
        return f"v{self.version}"

    def marker_name(self, marker: Marker) -> str:
        """The resource name of one of the panel's markers."""
        return f"{self.name}/markers/{marker.id}"


def panel_name(user_id: uuid.UUID | str, panel_id: uuid.UUID | str) -> str:
    """``users/{user}/panels/{panel}`` (IDs as UUIDs or their text)."""
    return f"users/{user_id}/panels/{panel_id}"


def validate_fields(fields: PanelFields, *, now: datetime, prefix: str = "panel") -> None:
    """Raise InvalidArgument naming every problem of the panel-level fields."""
    violations = []
    if fields.collection_time > now + CLOCK_SKEW:
        violations.append(FieldViolation(f"{prefix}.collection_time", "must not be in the future"))
    if len(fields.display_name) > MAX_TITLE_LENGTH:
        violations.append(
            FieldViolation(f"{prefix}.display_name", f"must be at most {MAX_TITLE_LENGTH} characters")
        )
    if len(fields.lab_name) > MAX_TITLE_LENGTH:
        violations.append(
            FieldViolation(f"{prefix}.lab_name", f"must be at most {MAX_TITLE_LENGTH} characters")
        )
    if len(fields.note) > MAX_NOTE_LENGTH:
        violations.append(FieldViolation(f"{prefix}.note", f"must be at most {MAX_NOTE_LENGTH} characters"))
    if fields.utc_offset is not None and abs(fields.utc_offset) > timedelta(hours=18):
        violations.append(FieldViolation(f"{prefix}.utc_offset", "must be within ±18 hours"))
    if violations:
        raise InvalidArgument(
            "; ".join(f"{v.field}: {v.description}" for v in violations), violations=violations
        )


def evaluate_marker(
    dictionary: Dictionary,
    draft: MarkerDraft,
    *,
    marker_id: uuid.UUID,
    person: PersonProfile,
    collection_time: datetime,
    field_path: str,
) -> Marker:
    """Check a marker draft and compute its canonical value, flag and optimal status."""
    definition = _definition(dictionary, draft.biomarker, f"{field_path}.biomarker")
    if not math.isfinite(draft.value):
        raise InvalidArgument.for_field(f"{field_path}.value", "must be a finite number")
    if len(draft.note) > MAX_NOTE_LENGTH:
        raise InvalidArgument.for_field(f"{field_path}.note", f"must be at most {MAX_NOTE_LENGTH} characters")
    try:
        canonical = definition.to_canonical(draft.value, draft.reported_unit)
    except UnitNotAcceptedError as error:
        raise InvalidArgument.for_field(
            f"{field_path}.reported_unit", str(error), reason="UNKNOWN_UNIT"
        ) from None
    _check_plausible(definition, draft, canonical, field_path)
    _check_lab_range(draft.lab_range, f"{field_path}.lab_range")
    age = person.age_at(collection_time)
    flag, basis = flag_value(
        definition,
        reported_value=draft.value,
        canonical_value=canonical,
        lab_range=draft.lab_range,
        sex=person.sex,
        age=age,
    )
    return Marker(
        id=marker_id,
        biomarker_id=definition.id,
        value=draft.value,
        reported_unit=draft.reported_unit,
        canonical_value=canonical,
        canonical_unit=definition.canonical_unit,
        flag=flag,
        flag_basis=basis,
        optimal_status=optimal_status(definition, canonical, sex=person.sex, age=age),
        dictionary_version=dictionary.version,
        reported_name=draft.reported_name,
        comparator=draft.comparator,
        reported_value=draft.reported_value,
        lab_range=draft.lab_range,
        reported_flag=draft.reported_flag,
        provenance=draft.provenance,
        note=draft.note,
        extracted_marker=draft.extracted_marker,
    )


def evaluate_markers(
    dictionary: Dictionary,
    drafts: Sequence[MarkerDraft],
    *,
    person: PersonProfile,
    collection_time: datetime,
    existing_ids: frozenset[uuid.UUID] = frozenset(),
    prefix: str = "panel.markers",
) -> list[Marker]:
    """Evaluate every marker of a panel; at least one, at most 500, one per biomarker.

    A draft naming a marker in ``existing_ids`` keeps its identity; one naming any other marker is
    an error, and a draft without a name gets a new ID.
    """
    if not drafts:
        raise InvalidArgument.for_field(prefix, "a panel needs at least one marker")
    if len(drafts) > MAX_MARKERS:
        raise InvalidArgument.for_field(prefix, f"a panel holds at most {MAX_MARKERS} markers")
    markers: list[Marker] = []
    seen: dict[str, int] = {}
    for index, draft in enumerate(drafts):
        path = f"{prefix}[{index}]"
        if draft.marker_id is not None and draft.marker_id not in existing_ids:
            raise InvalidArgument.for_field(
                f"{path}.name", "names no marker of this panel; leave it empty for a new one"
            )
        marker = evaluate_marker(
            dictionary,
            draft,
            marker_id=draft.marker_id or uuid.uuid4(),
            person=person,
            collection_time=collection_time,
            field_path=path,
        )
        if marker.biomarker_id in seen:
            raise InvalidArgument.for_field(
                f"{path}.biomarker",
                f"biomarkers/{marker.biomarker_id} is already measured by "
                f"{prefix}[{seen[marker.biomarker_id]}]; "
                "a panel holds one marker per biomarker",
                reason="DUPLICATE_BIOMARKER",
            )
        seen[marker.biomarker_id] = index
        markers.append(marker)
    return markers


def _definition(dictionary: Dictionary, name: str, field_path: str) -> BiomarkerDefinition:
    if not name:
        raise InvalidArgument.for_field(field_path, "is required, for example biomarkers/glucose")
    definition = dictionary.by_name(name)
    if definition is None:
        if not name.startswith("biomarkers/"):
            raise InvalidArgument.for_field(
                field_path, f"{name!r} is not a biomarker name like biomarkers/glucose"
            )
        raise NotFound(f"{field_path}: the dictionary has no biomarker {name}", reason="BIOMARKER_NOT_FOUND")
    return definition


def _check_plausible(
    definition: BiomarkerDefinition, draft: MarkerDraft, canonical: float | None, field_path: str
) -> None:
    if canonical is None:
        if draft.value < 0:
            raise InvalidArgument.for_field(
                f"{field_path}.value", "must not be negative", reason="IMPLAUSIBLE_VALUE"
            )
        return
    if not definition.is_plausible(canonical):
        raise InvalidArgument.for_field(
            f"{field_path}.value",
            f"{draft.value:g} {draft.reported_unit} is not a plausible {definition.display_name} "
            f"({_plausible_text(definition)}); check the value and its unit",
            reason="IMPLAUSIBLE_VALUE",
        )


def _check_lab_range(lab_range: LabRange, field_path: str) -> None:
    for name, bound in (("low", lab_range.low), ("high", lab_range.high)):
        if bound is not None and not math.isfinite(bound):
            raise InvalidArgument.for_field(f"{field_path}.{name}", "must be a finite number")
    if lab_range.low is not None and lab_range.high is not None and lab_range.low > lab_range.high:
        raise InvalidArgument.for_field(field_path, "low must not be above high")


def _plausible_text(definition: BiomarkerDefinition) -> str:
    low = "" if definition.plausible_min is None else f"from {definition.plausible_min:g} "
    high = "" if definition.plausible_max is None else f"up to {definition.plausible_max:g} "
    return f"plausible {low}{high}{definition.canonical_unit}"
