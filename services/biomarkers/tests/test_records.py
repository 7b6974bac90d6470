"""BodyCompositionService and EpigeneticTestService: create, read, history, update, delete, isolation."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import grpc
import pytest
from google.protobuf import field_mask_pb2
from google.protobuf.timestamp_pb2 import Timestamp

from vitalis.biomarkers.v1 import (
    body_composition_scan_pb2,
    body_composition_service_pb2,
    body_composition_service_pb2_grpc,
    epigenetic_test_pb2,
    epigenetic_test_service_pb2,
    epigenetic_test_service_pb2_grpc,
    events_pb2,
    panel_pb2,
)

pytestmark = pytest.mark.timeout(60)
SCANNED = datetime(2026, 2, 10, 9, 0, tzinfo=UTC)


def ts(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def scans(platform: Any) -> body_composition_service_pb2_grpc.BodyCompositionServiceStub:
    return body_composition_service_pb2_grpc.BodyCompositionServiceStub(platform.biomarkers)


def epigenetic(platform: Any) -> epigenetic_test_service_pb2_grpc.EpigeneticTestServiceStub:
    return epigenetic_test_service_pb2_grpc.EpigeneticTestServiceStub(platform.biomarkers)


def dexa(moment: datetime = SCANNED, fat: float = 18.5) -> body_composition_scan_pb2.BodyCompositionScan:
    return body_composition_scan_pb2.BodyCompositionScan(
        scan_time=ts(moment),
        method=body_composition_scan_pb2.SCAN_METHOD_DEXA,
        facility="City Imaging",
        total_mass_kg=72.4,
        fat_mass_kg=fat,
        lean_mass_kg=50.9,
        body_fat_percentage=25.6,
        visceral_fat_mass_grams=410,
        regions=[
            body_composition_scan_pb2.RegionalComposition(
                region=body_composition_scan_pb2.BODY_REGION_TRUNK, fat_mass_kg=8.1, lean_mass_kg=24.0
            ),
            body_composition_scan_pb2.RegionalComposition(
                region=body_composition_scan_pb2.BODY_REGION_LEGS, fat_mass_kg=7.0, lean_mass_kg=17.2
            ),
        ],
        bone_densities=[
            body_composition_scan_pb2.BoneDensity(
                site=body_composition_scan_pb2.BONE_SITE_LUMBAR_SPINE,
                bone_mineral_density=1.05,
                t_score=-0.4,
                z_score=0.1,
            )
        ],
    )


async def test_body_composition_scan_lifecycle(platform: Any) -> None:
    person = await platform.person()
    request_id = str(uuid.uuid4())
    created = await scans(platform).CreateBodyCompositionScan(
        body_composition_service_pb2.CreateBodyCompositionScanRequest(
            parent="users/me", body_composition_scan=dexa(), request_id=request_id
        ),
        metadata=person.auth,
    )
    assert created.name.startswith(f"users/{person.user_id}/bodyCompositionScans/")
    assert created.regions[0].fat_mass_kg == pytest.approx(8.1)
    assert created.bone_densities[0].t_score == pytest.approx(-0.4)
    assert created.provenance.kind == panel_pb2.PROVENANCE_KIND_MANUAL
    retried = await scans(platform).CreateBodyCompositionScan(
        body_composition_service_pb2.CreateBodyCompositionScanRequest(
            parent="users/me", body_composition_scan=dexa(fat=30), request_id=request_id
        ),
        metadata=person.auth,
    )
    assert retried == created
    older = await scans(platform).CreateBodyCompositionScan(
        body_composition_service_pb2.CreateBodyCompositionScanRequest(
            parent="users/me", body_composition_scan=dexa(SCANNED - timedelta(days=90), fat=20.0)
        ),
        metadata=person.auth,
    )
    history = await scans(platform).ListBodyCompositionScans(
        body_composition_service_pb2.ListBodyCompositionScansRequest(parent="users/me"), metadata=person.auth
    )
    assert [s.name for s in history.body_composition_scans] == [created.name, older.name]
    assert [s.fat_mass_kg for s in history.body_composition_scans] == [18.5, 20.0]
    updated = await scans(platform).UpdateBodyCompositionScan(
        body_composition_service_pb2.UpdateBodyCompositionScanRequest(
            body_composition_scan=body_composition_scan_pb2.BodyCompositionScan(
                name=created.name, etag=created.etag, fat_mass_kg=18.0, note="repeat scan"
            ),
            update_mask=field_mask_pb2.FieldMask(paths=["fat_mass_kg", "note"]),
        ),
        metadata=person.auth,
    )
    assert (updated.fat_mass_kg, updated.note, updated.lean_mass_kg) == (
        18.0,
        "repeat scan",
        pytest.approx(50.9),
    )
    assert updated.etag != created.etag
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await scans(platform).DeleteBodyCompositionScan(
            body_composition_service_pb2.DeleteBodyCompositionScanRequest(
                name=created.name, etag=created.etag
            ),
            metadata=person.auth,
        )
    assert raised.value.code() == grpc.StatusCode.ABORTED
    await scans(platform).DeleteBodyCompositionScan(
        body_composition_service_pb2.DeleteBodyCompositionScanRequest(name=created.name, etag=updated.etag),
        metadata=person.auth,
    )
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await scans(platform).GetBodyCompositionScan(
            body_composition_service_pb2.GetBodyCompositionScanRequest(name=created.name),
            metadata=person.auth,
        )
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    admin = await asyncpg.connect(platform.database_url)
    try:
        rows = await admin.fetch(
            "SELECT payload FROM biomarkers.outbox WHERE event_user_id = $1 AND event_type = $2"
            " ORDER BY position",
            person.user_id,
            "vitalis.biomarkers.v1.BodyCompositionScanRecorded",
        )
    finally:
        await admin.close()
    recorded = [events_pb2.BodyCompositionScanRecorded.FromString(row["payload"]) for row in rows]
    assert [(event.body_composition_scan, event.created) for event in recorded] == [
        (created.name, True),
        (older.name, True),
        (created.name, False),
    ]


@pytest.mark.parametrize(
    "change",
    [
        {"method": body_composition_scan_pb2.SCAN_METHOD_UNSPECIFIED},
        {"body_fat_percentage": 140.0},
        {"scan_time": datetime.now(UTC) + timedelta(days=3)},
    ],
    ids=["no-method", "percentage", "future"],
)
async def test_invalid_scans_are_refused(platform: Any, someone: Any, change: dict[str, Any]) -> None:
    person = someone
    scan = dexa()
    for key, value in change.items():
        if isinstance(value, datetime):
            scan.scan_time.CopyFrom(ts(value))
        else:
            setattr(scan, key, value)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await scans(platform).CreateBodyCompositionScan(
            body_composition_service_pb2.CreateBodyCompositionScanRequest(
                parent="users/me", body_composition_scan=scan
            ),
            metadata=person.auth,
        )
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_epigenetic_test_lifecycle_with_chronological_age(platform: Any) -> None:
    person = await platform.person(birth_date=date(1980, 2, 10))
    created = await epigenetic(platform).CreateEpigeneticTest(
        epigenetic_test_service_pb2.CreateEpigeneticTestRequest(
            parent="users/me",
            epigenetic_test=epigenetic_test_pb2.EpigeneticTest(
                collection_time=ts(SCANNED),
                provider="TruDiagnostic",
                specimen=epigenetic_test_pb2.SPECIMEN_BLOOD,
                biological_age_years=43.2,
                biological_age_clock="GrimAge2",
                pace_of_aging=0.91,
                pace_of_aging_clock="DunedinPACE",
                organ_ages=[
                    epigenetic_test_pb2.OrganAge(
                        organ_system=epigenetic_test_pb2.ORGAN_SYSTEM_HEART, age_years=44.0
                    )
                ],
                clock_results=[epigenetic_test_pb2.ClockResult(clock="DunedinPACE", value=0.91, unit="1")],
            ),
        ),
        metadata=person.auth,
    )
    assert created.chronological_age_years == pytest.approx(46.0, abs=0.01)
    assert created.pace_of_aging == pytest.approx(0.91)
    fetched = await epigenetic(platform).GetEpigeneticTest(
        epigenetic_test_service_pb2.GetEpigeneticTestRequest(name=created.name), metadata=person.auth
    )
    assert fetched == created
    updated = await epigenetic(platform).UpdateEpigeneticTest(
        epigenetic_test_service_pb2.UpdateEpigeneticTestRequest(
            epigenetic_test=epigenetic_test_pb2.EpigeneticTest(name=created.name, biological_age_years=42.0),
            update_mask=field_mask_pb2.FieldMask(paths=["biological_age_years"]),
        ),
        metadata=person.auth,
    )
    assert updated.biological_age_years == 42.0
    assert updated.pace_of_aging == pytest.approx(0.91)
    listed = await epigenetic(platform).ListEpigeneticTests(
        epigenetic_test_service_pb2.ListEpigeneticTestsRequest(parent="users/me"), metadata=person.auth
    )
    assert [t.name for t in listed.epigenetic_tests] == [created.name]
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await epigenetic(platform).CreateEpigeneticTest(
            epigenetic_test_service_pb2.CreateEpigeneticTestRequest(
                parent="users/me",
                epigenetic_test=epigenetic_test_pb2.EpigeneticTest(
                    collection_time=ts(SCANNED), pace_of_aging=9.0
                ),
            ),
            metadata=person.auth,
        )
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    await epigenetic(platform).DeleteEpigeneticTest(
        epigenetic_test_service_pb2.DeleteEpigeneticTestRequest(name=created.name), metadata=person.auth
    )
    listed = await epigenetic(platform).ListEpigeneticTests(
        epigenetic_test_service_pb2.ListEpigeneticTestsRequest(parent="users/me"), metadata=person.auth
    )
    assert list(listed.epigenetic_tests) == []


async def test_records_of_another_user_are_not_found(platform: Any) -> None:
    owner, stranger = await platform.person(), await platform.person()
    scan = await scans(platform).CreateBodyCompositionScan(
        body_composition_service_pb2.CreateBodyCompositionScanRequest(
            parent="users/me", body_composition_scan=dexa()
        ),
        metadata=owner.auth,
    )
    for call in (
        scans(platform).GetBodyCompositionScan(
            body_composition_service_pb2.GetBodyCompositionScanRequest(name=scan.name), metadata=stranger.auth
        ),
        scans(platform).DeleteBodyCompositionScan(
            body_composition_service_pb2.DeleteBodyCompositionScanRequest(name=scan.name),
            metadata=stranger.auth,
        ),
        scans(platform).ListBodyCompositionScans(
            body_composition_service_pb2.ListBodyCompositionScansRequest(parent=owner.name),
            metadata=stranger.auth,
        ),
        epigenetic(platform).ListEpigeneticTests(
            epigenetic_test_service_pb2.ListEpigeneticTestsRequest(parent=owner.name), metadata=stranger.auth
        ),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call
        assert raised.value.code() == grpc.StatusCode.NOT_FOUND
