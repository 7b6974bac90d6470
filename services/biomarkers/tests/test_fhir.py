"""FhirService: export a user's panels as a FHIR R4 Bundle and import it into another user."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from google.api import httpbody_pb2
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from vitalis.biomarkers.v1 import (
    fhir_service_pb2,
    fhir_service_pb2_grpc,
    panel_pb2,
    panel_service_pb2,
    panel_service_pb2_grpc,
)

pytestmark = pytest.mark.timeout(60)
DRAWN = datetime(2026, 1, 12, 8, 15, tzinfo=UTC)
IDENTITY_FIELDS = ("name", "create_time", "update_time", "etag", "provenance")


def ts(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def reason(error: grpc.aio.AioRpcError) -> str:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    for detail in status.details:
        found = error_details_pb2.ErrorInfo()
        if detail.Unpack(found):
            return str(found.reason)
    return ""


def fhir(platform: Any) -> fhir_service_pb2_grpc.FhirServiceStub:
    return fhir_service_pb2_grpc.FhirServiceStub(platform.biomarkers)


def panels(platform: Any) -> panel_service_pb2_grpc.PanelServiceStub:
    return panel_service_pb2_grpc.PanelServiceStub(platform.biomarkers)


def content(panel: panel_pb2.Panel) -> panel_pb2.Panel:
    """A panel without what identifies its copy: names, times, etag and provenance."""
    copy = panel_pb2.Panel()
    copy.CopyFrom(panel)
    for field in IDENTITY_FIELDS:
        copy.ClearField(field)
    for marker in copy.markers:
        marker.ClearField("name")
        marker.ClearField("provenance")
    return copy


async def import_body(
    platform: Any, person: Any, document: Any, **extra: Any
) -> fhir_service_pb2.ImportFhirBundleResponse:
    return await fhir(platform).ImportFhirBundle(
        fhir_service_pb2.ImportFhirBundleRequest(
            parent="users/me",
            http_body=httpbody_pb2.HttpBody(
                content_type="application/fhir+json", data=json.dumps(document).encode()
            ),
            **extra,
        ),
        metadata=person.auth,
    )


async def test_export_then_import_into_another_user_gives_identical_panels(platform: Any) -> None:
    source, target = await platform.person(sex="male"), await platform.person(sex="male")
    bodies = [
        panel_pb2.Panel(
            display_name="Annual",
            collection_time=ts(DRAWN),
            utc_offset=Duration(seconds=3600),
            report_time=ts(DRAWN + timedelta(days=1)),
            fasting=panel_pb2.FASTING_STATUS_FASTING,
            lab_name="Labcorp",
            note="morning draw",
            markers=[
                panel_pb2.Marker(
                    biomarker="biomarkers/glucose",
                    value=5.6,
                    reported_unit="mmol/L",
                    reported_name="Glucose, plasma",
                    reported_value="5.60",
                    lab_range=panel_pb2.LabRange(low=3.9, high=5.5, text="3.9 - 5.5"),
                    reported_flag="H",
                    note="fasting",
                ),
                panel_pb2.Marker(
                    biomarker="biomarkers/c-reactive-protein-high-sensitivity",
                    value=0.3,
                    reported_unit="mg/L",
                    comparator=panel_pb2.VALUE_COMPARATOR_LESS_THAN,
                    reported_value="<0.3",
                ),
                panel_pb2.Marker(biomarker="biomarkers/hemoglobin-a1c", value=38, reported_unit="mmol/mol"),
                panel_pb2.Marker(biomarker="biomarkers/lipoprotein-a", value=75, reported_unit="nmol/L"),
            ],
        ),
        panel_pb2.Panel(
            collection_time=ts(DRAWN - timedelta(days=200)),
            markers=[panel_pb2.Marker(biomarker="biomarkers/creatinine", value=80, reported_unit="umol/L")],
        ),
    ]
    originals = [
        await panels(platform).CreatePanel(
            panel_service_pb2.CreatePanelRequest(parent="users/me", panel=body), metadata=source.auth
        )
        for body in bodies
    ]
    exported = await fhir(platform).ExportFhirBundle(
        fhir_service_pb2.ExportFhirBundleRequest(parent="users/me"), metadata=source.auth
    )
    assert exported.content_type == "application/fhir+json"
    bundle = json.loads(exported.data)
    assert bundle["resourceType"] == "Bundle"
    assert bundle["type"] == "collection"
    observations = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation"]
    glucose = next(o for o in observations if o["code"]["coding"][0]["code"] == "2345-7")
    assert glucose["valueQuantity"] == {
        "value": 5.6,
        "unit": "mmol/L",
        "system": "http://unitsofmeasure.org",
        "code": "mmol/L",
    }
    assert glucose["interpretation"][0]["coding"][0]["code"] == "H"
    assert glucose["referenceRange"][0]["high"]["value"] == 5.5
    creatinine = next(o for o in observations if o["code"]["coding"][0]["code"] == "2160-0")
    assert (
        creatinine["referenceRange"][0]["high"]["code"] == "mg/dL"
    )  # the dictionary's range when the lab gave none

    imported = await import_body(platform, target, bundle)
    assert imported.created_panel_count == 2
    assert imported.observation_count == imported.imported_observation_count == 5
    assert list(imported.issues) == []
    copies = await panels(platform).ListPanels(
        panel_service_pb2.ListPanelsRequest(parent="users/me"), metadata=target.auth
    )
    assert [content(p) for p in copies.panels] == [content(p) for p in originals]
    assert all(p.provenance.kind == panel_pb2.PROVENANCE_KIND_FHIR for p in copies.panels)
    assert (
        copies.panels[0].provenance.fhir_resource == f"DiagnosticReport/{originals[0].name.rsplit('/', 1)[1]}"
    )

    again = await import_body(platform, target, bundle)
    assert again.created_panel_count == 0
    assert sorted(p.name for p in again.panels) == sorted(p.name for p in copies.panels)


async def test_export_of_named_panels_checks_their_owner(platform: Any) -> None:
    owner, other = await platform.person(), await platform.person()
    created = await panels(platform).CreatePanel(
        panel_service_pb2.CreatePanelRequest(
            parent="users/me",
            panel=panel_pb2.Panel(
                collection_time=ts(DRAWN),
                markers=[panel_pb2.Marker(biomarker="biomarkers/sodium", value=140, reported_unit="mmol/L")],
            ),
        ),
        metadata=owner.auth,
    )
    named = await fhir(platform).ExportFhirBundle(
        fhir_service_pb2.ExportFhirBundleRequest(parent=owner.name, panels=[created.name]),
        metadata=owner.auth,
    )
    assert len(json.loads(named.data)["entry"]) == 2
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await fhir(platform).ExportFhirBundle(
            fhir_service_pb2.ExportFhirBundleRequest(parent="users/me", panels=[created.name]),
            metadata=other.auth,
        )
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await fhir(platform).ExportFhirBundle(
            fhir_service_pb2.ExportFhirBundleRequest(
                parent="users/me", panels=[f"{owner.name}/panels/{uuid.uuid4()}"]
            ),
            metadata=owner.auth,
        )
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await fhir(platform).ExportFhirBundle(
            fhir_service_pb2.ExportFhirBundleRequest(parent=owner.name), metadata=other.auth
        )
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


async def test_import_of_a_report_with_contained_observations_reports_what_it_skips(platform: Any) -> None:
    person = await platform.person()
    report = {
        "resourceType": "DiagnosticReport",
        "id": "rep-77",
        "status": "final",
        "code": {"text": "Metabolic panel"},
        "effectiveDateTime": "2025-11-03T07:45:00+01:00",
        "contained": [
            {
                "resourceType": "Observation",
                "id": "o1",
                "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7"}], "text": "GLU"},
                "valueQuantity": {"value": 101, "unit": "mg/dl"},
                "referenceRange": [
                    {"low": {"value": 70, "unit": "mg/dl"}, "high": {"value": 99, "unit": "mg/dl"}}
                ],
            },
            {
                "resourceType": "Observation",
                "id": "o2",
                "code": {"coding": [{"system": "http://loinc.org", "code": "99999-9"}]},
                "valueQuantity": {"value": 1, "unit": "mg/dL"},
            },
            {
                "resourceType": "Observation",
                "id": "o3",
                "code": {"coding": [{"system": "http://loinc.org", "code": "2951-2"}]},
                "valueString": "hemolysed",
            },
            {
                "resourceType": "Observation",
                "id": "o4",
                "code": {"coding": [{"system": "http://loinc.org", "code": "2823-3"}]},
                "valueQuantity": {"value": 4, "unit": "furlongs"},
            },
        ],
        "result": [{"reference": "#o1"}, {"reference": "#o2"}, {"reference": "#o3"}, {"reference": "#o4"}],
    }
    imported = await import_body(platform, person, report, request_id=str(uuid.uuid4()))
    assert imported.created_panel_count == 1
    assert imported.observation_count == 4
    assert imported.imported_observation_count == 1
    assert sorted((i.resource, i.reason) for i in imported.issues) == [
        ("Observation/o2", "UNKNOWN_CODE"),
        ("Observation/o3", "NO_NUMERIC_VALUE"),
        ("Observation/o4", "UNKNOWN_UNIT"),
    ]
    glucose = imported.panels[0].markers[0]
    assert (glucose.reported_unit, glucose.flag, glucose.flag_basis) == (
        "mg/dL",
        panel_pb2.MARKER_FLAG_HIGH,
        panel_pb2.FLAG_BASIS_LAB_RANGE,
    )
    assert imported.panels[0].utc_offset.seconds == 0
    assert imported.panels[0].collection_time.ToDatetime(tzinfo=UTC) == datetime(
        2025, 11, 3, 6, 45, tzinfo=UTC
    )


async def test_a_bundle_of_observations_alone_is_grouped_by_effective_time(platform: Any) -> None:
    person = await platform.person()

    def observation(code: str, value: float, unit: str, when: str) -> dict[str, Any]:
        return {
            "resource": {
                "resourceType": "Observation",
                "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
                "valueQuantity": {
                    "value": value,
                    "unit": unit,
                    "system": "http://unitsofmeasure.org",
                    "code": unit,
                },
                "effectiveDateTime": when,
            }
        }

    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            observation("2345-7", 92, "mg/dL", "2025-10-01T08:00:00Z"),
            observation("2951-2", 139, "mmol/L", "2025-10-01T08:00:00Z"),
            observation("2345-7", 5.1, "mmol/L", "2025-06-01T08:00:00Z"),
        ],
    }
    imported = await import_body(platform, person, bundle)
    assert imported.created_panel_count == 2
    assert sorted(len(p.markers) for p in imported.panels) == [1, 2]


@pytest.mark.parametrize("body", [b"not json", b'{"resourceType": "Patient"}', b"[]"])
async def test_import_refuses_what_is_not_a_fhir_bundle_or_report(platform: Any, body: bytes) -> None:
    person = await platform.person()
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await fhir(platform).ImportFhirBundle(
            fhir_service_pb2.ImportFhirBundleRequest(
                parent="users/me", http_body=httpbody_pb2.HttpBody(content_type="application/json", data=body)
            ),
            metadata=person.auth,
        )
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason(raised.value) == "INVALID_FHIR"
