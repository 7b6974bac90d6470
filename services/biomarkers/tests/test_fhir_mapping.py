"""The FHIR mapping as pure functions: a Bundle written from panels reads back as the same panels."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from vitalis_biomarkers.dictionary.loader import load_packaged_dictionary
from vitalis_biomarkers.dictionary.model import Dictionary
from vitalis_biomarkers.dictionary.units import Units
from vitalis_biomarkers.domain.fhir import export_bundle
from vitalis_biomarkers.domain.fhir_import import FhirReader
from vitalis_biomarkers.domain.flags import LabRange
from vitalis_biomarkers.domain.panels import (
    Comparator,
    Fasting,
    MarkerDraft,
    Panel,
    PanelFields,
    Provenance,
    ProvenanceKind,
    evaluate_markers,
)
from vitalis_biomarkers.domain.people import PersonProfile, Sex

DRAWN = datetime(2026, 1, 5, 7, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def units() -> Units:
    return Units()


@pytest.fixture(scope="module")
def dictionary(units: Units) -> Dictionary:
    return load_packaged_dictionary(units)


def test_written_bundle_reads_back_as_the_same_panel(dictionary: Dictionary, units: Units) -> None:
    person = PersonProfile(Sex.MALE, None)
    drafts = [
        MarkerDraft(
            biomarker="biomarkers/glucose",
            value=101,
            reported_unit="mg/dL",
            reported_name="GLU",
            lab_range=LabRange(70, 99, "70-99"),
            reported_flag="H",
            note="repeat",
        ),
        MarkerDraft(
            biomarker="biomarkers/c-reactive-protein",
            value=0.2,
            reported_unit="mg/L",
            comparator=Comparator.LESS_THAN,
            reported_value="<0.2",
        ),
    ]
    fields = PanelFields(
        collection_time=DRAWN,
        display_name="Fasting labs",
        utc_offset=timedelta(hours=-5),
        report_time=DRAWN + timedelta(hours=30),
        fasting=Fasting.FASTING,
        lab_name="Quest",
        note="all good",
    )
    markers = evaluate_markers(dictionary, drafts, person=person, collection_time=DRAWN)
    panel = Panel(uuid.uuid4(), uuid.uuid4(), fields, Provenance(), tuple(markers), DRAWN, DRAWN, 1)
    bundle = export_bundle([panel], dictionary, person, now=DRAWN)
    result = FhirReader(dictionary, units.normalize).read(bundle)
    assert result.issues == []
    assert result.observation_count == 2
    (read,) = result.panels
    assert read.fields == fields
    assert read.source == f"DiagnosticReport/{panel.id}"
    assert read.provenance.kind is ProvenanceKind.FHIR
    stripped = [MarkerDraft(**{**draft.__dict__, "provenance": None}) for draft in read.markers]
    assert stripped == drafts


def test_a_report_without_an_effective_time_is_reported_not_imported(
    dictionary: Dictionary, units: Units
) -> None:
    report = {
        "resourceType": "DiagnosticReport",
        "id": "r1",
        "contained": [
            {
                "resourceType": "Observation",
                "id": "o1",
                "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7"}]},
                "valueQuantity": {"value": 90, "unit": "mg/dL"},
            }
        ],
        "result": [{"reference": "#o1"}],
    }
    result = FhirReader(dictionary, units.normalize).read(report)
    assert result.panels == []
    assert [(issue.resource, issue.reason) for issue in result.issues] == [
        ("DiagnosticReport/r1", "MISSING_EFFECTIVE_TIME")
    ]
