"""Panels and markers between protobuf and the domain."""

from __future__ import annotations

import uuid
from datetime import datetime

from vitalis.biomarkers.v1 import panel_pb2
from vitalis_biomarkers.api.common import (
    duration,
    optional_duration,
    optional_moment,
    parse_id,
    required_moment,
    split_name,
    timestamp,
)
from vitalis_biomarkers.domain.flags import Flag, FlagBasis, LabRange, OptimalStatus
from vitalis_biomarkers.domain.panels import (
    Comparator,
    Fasting,
    Marker,
    MarkerDraft,
    Panel,
    PanelFields,
    Provenance,
    ProvenanceKind,
)
from vitalis_runtime.errors import InvalidArgument

# The contract's number of each domain enum member; a dictionary lookup is several times cheaper than
# reading ``.value`` (an Enum property), and a history turns hundreds of markers into messages.
_NUMBERS: dict[Comparator | Flag | FlagBasis | OptimalStatus, int] = {
    member: member.value for kind in (Comparator, Flag, FlagBasis, OptimalStatus) for member in kind
}


def provenance_to_proto(provenance: Provenance) -> panel_pb2.Provenance:
    """A Provenance message."""
    return panel_pb2.Provenance(
        kind=provenance.kind.value,  # type: ignore[arg-type]
        document=provenance.document,
        page=provenance.page,
        confidence=provenance.confidence,
        extracted_marker=provenance.extracted_marker,
        fhir_resource=provenance.fhir_resource,
        fhir_source=provenance.fhir_source,
    )


def provenance_from_proto(message: panel_pb2.Provenance, field: str) -> Provenance:
    """A domain Provenance; unspecified kind means manual."""
    try:
        kind = ProvenanceKind(message.kind)
    except ValueError:
        raise InvalidArgument.for_field(f"{field}.kind", f"unknown value {message.kind}") from None
    if not 0.0 <= message.confidence <= 1.0:
        raise InvalidArgument.for_field(f"{field}.confidence", "must be between 0 and 1")
    if message.page < 0:
        raise InvalidArgument.for_field(f"{field}.page", "must not be negative")
    return Provenance(
        kind=ProvenanceKind.MANUAL if kind is ProvenanceKind.UNSPECIFIED else kind,
        document=message.document,
        page=message.page,
        confidence=message.confidence,
        extracted_marker=message.extracted_marker,
        fhir_resource=message.fhir_resource,
        fhir_source=message.fhir_source,
    )


def marker_to_proto(panel_name: str, collection_time: datetime, marker: Marker) -> panel_pb2.Marker:
    """A Marker message."""
    numbers = _NUMBERS
    message = panel_pb2.Marker(
        name=f"{panel_name}/markers/{marker.id}",
        biomarker=f"biomarkers/{marker.biomarker_id}",
        reported_name=marker.reported_name,
        value=marker.value,
        comparator=numbers[marker.comparator],  # type: ignore[arg-type]
        reported_value=marker.reported_value,
        reported_unit=marker.reported_unit,
        canonical_unit=marker.canonical_unit,
        reported_flag=marker.reported_flag,
        flag=numbers[marker.flag],  # type: ignore[arg-type]
        flag_basis=numbers[marker.flag_basis],  # type: ignore[arg-type]
        optimal_status=numbers[marker.optimal_status],  # type: ignore[arg-type]
        note=marker.note,
        collection_time=timestamp(collection_time),
        dictionary_version=marker.dictionary_version,
        canonical_value=marker.canonical_value,
    )
    if marker.lab_range.is_set or marker.lab_range.text:
        message.lab_range.text = marker.lab_range.text
        if marker.lab_range.low is not None:
            message.lab_range.low = marker.lab_range.low
        if marker.lab_range.high is not None:
            message.lab_range.high = marker.lab_range.high
    if marker.provenance is not None:
        message.provenance.CopyFrom(provenance_to_proto(marker.provenance))
    return message


def panel_to_proto(panel: Panel) -> panel_pb2.Panel:
    """A Panel message."""
    fields = panel.fields
    message = panel_pb2.Panel(
        name=panel.name,
        display_name=fields.display_name,
        collection_time=timestamp(fields.collection_time),
        fasting=fields.fasting.value,  # type: ignore[arg-type]
        lab_name=fields.lab_name,
        provenance=provenance_to_proto(panel.provenance),
        markers=[marker_to_proto(panel.name, fields.collection_time, marker) for marker in panel.markers],
        note=fields.note,
        create_time=timestamp(panel.create_time),
        update_time=timestamp(panel.update_time),
        etag=panel.etag,
    )
    if fields.utc_offset is not None:
        message.utc_offset.CopyFrom(duration(fields.utc_offset))
    if fields.report_time is not None:
        message.report_time.CopyFrom(timestamp(fields.report_time))
    return message


def panel_fields_from_proto(message: panel_pb2.Panel, field: str = "panel") -> PanelFields:
    """The panel-level fields of a Panel message."""
    try:
        fasting = Fasting(message.fasting)
    except ValueError:
        raise InvalidArgument.for_field(f"{field}.fasting", f"unknown value {message.fasting}") from None
    return PanelFields(
        collection_time=required_moment(message, "collection_time", f"{field}.collection_time"),
        display_name=message.display_name,
        utc_offset=optional_duration(message, "utc_offset"),
        report_time=optional_moment(message, "report_time"),
        fasting=fasting,
        lab_name=message.lab_name,
        note=message.note,
    )


def panel_changes_from_proto(message: panel_pb2.Panel, paths: list[str]) -> dict[str, object]:
    """The values of the masked panel-level fields."""
    changes: dict[str, object] = {}
    for path in paths:
        if path == "collection_time":
            changes[path] = required_moment(message, "collection_time", "panel.collection_time")
        elif path == "utc_offset":
            changes[path] = optional_duration(message, "utc_offset")
        elif path == "report_time":
            changes[path] = optional_moment(message, "report_time")
        elif path == "fasting":
            try:
                changes[path] = Fasting(message.fasting)
            except ValueError:
                raise InvalidArgument.for_field("panel.fasting", f"unknown value {message.fasting}") from None
        elif path in ("display_name", "lab_name", "note"):
            changes[path] = getattr(message, path)
    return changes


def marker_draft_from_proto(
    message: panel_pb2.Marker, field: str, *, panel_name: str | None = None
) -> MarkerDraft:
    """A marker draft; with ``panel_name`` a marker name must be one of that panel's."""
    marker_id: uuid.UUID | None = None
    if message.name and panel_name is not None:
        prefix = f"{panel_name}/markers/"
        if not message.name.startswith(prefix):
            raise InvalidArgument.for_field(f"{field}.name", f"must be a marker of {panel_name}")
        marker_id = parse_id(message.name.removeprefix(prefix), f"{field}.name")
    try:
        comparator = Comparator(message.comparator)
    except ValueError:
        raise InvalidArgument.for_field(
            f"{field}.comparator", f"unknown value {message.comparator}"
        ) from None
    if not message.reported_unit:
        raise InvalidArgument.for_field(f"{field}.reported_unit", "is required, as a UCUM unit such as mg/dL")
    lab_range = LabRange()
    if message.HasField("lab_range"):
        lab_range = LabRange(
            low=message.lab_range.low if message.lab_range.HasField("low") else None,
            high=message.lab_range.high if message.lab_range.HasField("high") else None,
            text=message.lab_range.text,
        )
    return MarkerDraft(
        biomarker=message.biomarker,
        value=message.value,
        reported_unit=message.reported_unit,
        marker_id=marker_id,
        reported_name=message.reported_name,
        comparator=comparator,
        reported_value=message.reported_value,
        lab_range=lab_range,
        reported_flag=message.reported_flag,
        provenance=provenance_from_proto(message.provenance, f"{field}.provenance")
        if message.HasField("provenance")
        else None,
        note=message.note,
    )


def parse_panel_name(name: str, field: str) -> tuple[str, uuid.UUID]:
    """The user segment and panel ID of ``users/{user}/panels/{panel}``."""
    user, panel = split_name(name, ("users", "panels"), field)
    return user, parse_id(panel, field)
