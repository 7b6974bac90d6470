"""PanelInternalService and UserDataService: only other services may call them."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from vitalis.biomarkers.v1 import (
    panel_internal_service_pb2,
    panel_internal_service_pb2_grpc,
    panel_pb2,
    panel_service_pb2,
    panel_service_pb2_grpc,
    user_data_service_pb2,
    user_data_service_pb2_grpc,
)

pytestmark = pytest.mark.timeout(60)
DRAWN = datetime(2026, 2, 20, 7, 0, tzinfo=UTC)


def ts(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def internal(platform: Any) -> panel_internal_service_pb2_grpc.PanelInternalServiceStub:
    return panel_internal_service_pb2_grpc.PanelInternalServiceStub(platform.biomarkers)


def upsert(document: str, key: str, biomarker: str, value: float, unit: str, page: int = 1) -> Any:
    return panel_internal_service_pb2.DocumentMarker(
        extracted_marker=f"{document}/extractedMarkers/{key}",
        marker=panel_pb2.Marker(
            biomarker=f"biomarkers/{biomarker}",
            value=value,
            reported_unit=unit,
            provenance=panel_pb2.Provenance(
                kind=panel_pb2.PROVENANCE_KIND_DOCUMENT, page=page, confidence=0.93
            ),
        ),
    )


async def test_document_results_become_one_panel_kept_in_step(platform: Any) -> None:
    person = await platform.person()
    document = f"{person.name}/documents/{uuid.uuid4()}"
    request = panel_internal_service_pb2.MergeDocumentMarkersRequest(
        user=person.name,
        document=document,
        collection_time=ts(DRAWN),
        lab_name="Synlab",
        upserts=[
            upsert(document, "a", "glucose", 5.2, "mmol/L"),
            upsert(document, "b", "sodium", 141, "mmol/L", 2),
        ],
    )
    first = await internal(platform).MergeDocumentMarkers(request, metadata=platform.as_service(person))
    assert first.created
    assert len(first.panel.markers) == 2
    assert first.panel.provenance.kind == panel_pb2.PROVENANCE_KIND_DOCUMENT
    assert first.panel.provenance.document == document
    glucose = first.panel.markers[0]
    assert glucose.provenance.extracted_marker == f"{document}/extractedMarkers/a"
    assert glucose.provenance.page == 1
    assert glucose.provenance.confidence == pytest.approx(0.93)
    assert [link.marker for link in first.links] == [m.name for m in first.panel.markers]

    repeated = await internal(platform).MergeDocumentMarkers(request, metadata=platform.as_service(person))
    assert not repeated.created
    assert repeated.panel == first.panel

    corrected = await internal(platform).MergeDocumentMarkers(
        panel_internal_service_pb2.MergeDocumentMarkersRequest(
            user=person.name,
            document=document,
            collection_time=ts(DRAWN),
            upserts=[upsert(document, "a", "glucose", 6.4, "mmol/L")],
            removals=[f"{document}/extractedMarkers/b"],
        ),
        metadata=platform.as_service(person),
    )
    assert [m.name for m in corrected.panel.markers] == [glucose.name]
    assert corrected.panel.markers[0].value == 6.4
    assert corrected.panel.etag != first.panel.etag
    gone = await internal(platform).MergeDocumentMarkers(
        panel_internal_service_pb2.MergeDocumentMarkersRequest(
            user=person.name,
            document=document,
            collection_time=ts(DRAWN),
            removals=[f"{document}/extractedMarkers/a"],
        ),
        metadata=platform.as_service(person),
    )
    assert not gone.HasField("panel")
    listed = await panel_service_pb2_grpc.PanelServiceStub(platform.biomarkers).ListPanels(
        panel_service_pb2.ListPanelsRequest(parent="users/me"), metadata=person.auth
    )
    assert list(listed.panels) == []


async def test_merge_refuses_users_tokens_and_foreign_documents(platform: Any) -> None:
    person, other = await platform.person(), await platform.person()
    document = f"{person.name}/documents/{uuid.uuid4()}"
    request = panel_internal_service_pb2.MergeDocumentMarkersRequest(
        user=person.name,
        document=document,
        collection_time=ts(DRAWN),
        upserts=[upsert(document, "a", "glucose", 90, "mg/dL")],
    )
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await internal(platform).MergeDocumentMarkers(request, metadata=person.auth)
    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await internal(platform).MergeDocumentMarkers(request, metadata=platform.as_service(other))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    foreign = f"{other.name}/documents/{uuid.uuid4()}"
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await internal(platform).MergeDocumentMarkers(
            panel_internal_service_pb2.MergeDocumentMarkersRequest(
                user=person.name,
                document=foreign,
                collection_time=ts(DRAWN),
                upserts=[upsert(foreign, "a", "glucose", 90, "mg/dL")],
            ),
            metadata=platform.as_service(person),
        )
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await internal(platform).MergeDocumentMarkers(
            panel_internal_service_pb2.MergeDocumentMarkersRequest(
                user=person.name,
                document=document,
                collection_time=ts(DRAWN),
                upserts=[
                    upsert(document, "a", "glucose", 90, "mg/dL"),
                    upsert(document, "b", "glucose", 5, "mmol/L"),
                ],
            ),
            metadata=platform.as_service(person),
        )
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_export_and_erase_a_users_data(platform: Any) -> None:
    person, bystander = await platform.person(), await platform.person()
    panels = panel_service_pb2_grpc.PanelServiceStub(platform.biomarkers)
    for owner in (person, bystander):
        await panels.CreatePanel(
            panel_service_pb2.CreatePanelRequest(
                parent="users/me",
                panel=panel_pb2.Panel(
                    collection_time=ts(DRAWN),
                    markers=[
                        panel_pb2.Marker(biomarker="biomarkers/creatinine", value=0.9, reported_unit="mg/dL")
                    ],
                ),
            ),
            metadata=owner.auth,
        )
    user_data = user_data_service_pb2_grpc.UserDataServiceStub(platform.biomarkers)
    entries: dict[str, bytes] = {}
    async for chunk in user_data.ExportUserData(
        user_data_service_pb2.ExportUserDataRequest(user=person.name), metadata=platform.as_service(person)
    ):
        entries[chunk.entry_path] = entries.get(chunk.entry_path, b"") + chunk.data
    assert set(entries) == {
        "panels.jsonl",
        "body_composition_scans.jsonl",
        "epigenetic_tests.jsonl",
        "scores.jsonl",
        "fhir_bundle.json",
    }
    assert len(entries["panels.jsonl"].splitlines()) == 1
    assert len(entries["scores.jsonl"].splitlines()) == 1  # eGFR from the creatinine
    assert json.loads(entries["fhir_bundle.json"])["resourceType"] == "Bundle"
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await user_data.EraseUserData(
            user_data_service_pb2.EraseUserDataRequest(user=person.name), metadata=person.auth
        )
    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED

    erased = await user_data.EraseUserData(
        user_data_service_pb2.EraseUserDataRequest(user=person.name), metadata=platform.as_service(person)
    )
    assert erased.erased_item_count >= 3
    again = await user_data.EraseUserData(
        user_data_service_pb2.EraseUserDataRequest(user=person.name), metadata=platform.as_service(person)
    )
    assert again.erased_item_count == 0
    admin = await asyncpg.connect(platform.database_url)
    try:
        left = await admin.fetchval(
            "SELECT (SELECT count(*) FROM biomarkers.panels WHERE user_id = $1)"
            " + (SELECT count(*) FROM biomarkers.scores WHERE user_id = $1)"
            " + (SELECT count(*) FROM biomarkers.outbox WHERE event_user_id = $1 AND published_at IS NULL)",
            person.user_id,
        )
        kept = await admin.fetchval(
            "SELECT count(*) FROM biomarkers.panels WHERE user_id = $1", bystander.user_id
        )
    finally:
        await admin.close()
    assert (left, kept) == (0, 1)
