"""PanelService against a real PostgreSQL and a real identity: canonical values, flags, etags, history,
idempotency, validation, events and isolation between users."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import grpc
import pytest
from google.protobuf import field_mask_pb2
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from vitalis.biomarkers.v1 import events_pb2, panel_pb2, panel_service_pb2, panel_service_pb2_grpc

pytestmark = pytest.mark.timeout(60)
DRAWN = datetime(2026, 3, 2, 7, 30, tzinfo=UTC)


def ts(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def marker(biomarker: str, value: float, unit: str, **extra: Any) -> panel_pb2.Marker:
    return panel_pb2.Marker(biomarker=f"biomarkers/{biomarker}", value=value, reported_unit=unit, **extra)


def panel(*markers: panel_pb2.Marker, drawn: datetime = DRAWN, **extra: Any) -> panel_pb2.Panel:
    return panel_pb2.Panel(collection_time=ts(drawn), markers=list(markers), **extra)


def reason(error: grpc.aio.AioRpcError) -> str:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return str(info.reason)
    return ""


def stub(platform: Any) -> panel_service_pb2_grpc.PanelServiceStub:
    return panel_service_pb2_grpc.PanelServiceStub(platform.biomarkers)


async def create(platform: Any, person: Any, body: panel_pb2.Panel, **extra: Any) -> panel_pb2.Panel:
    return await stub(platform).CreatePanel(
        panel_service_pb2.CreatePanelRequest(parent="users/me", panel=body, **extra), metadata=person.auth
    )


async def test_create_panel_computes_canonical_values_flags_and_names(platform: Any) -> None:
    person = await platform.person(sex="female")
    created = await create(
        platform,
        person,
        panel(
            marker("glucose", 5.0, "mmol/L", reported_name="Glucose, serum"),
            marker("creatinine", 1.2, "mg/dL"),
            marker("lipoprotein-a", 75, "nmol/L"),
            display_name="Check-up",
            fasting=panel_pb2.FASTING_STATUS_FASTING,
            lab_name="Quest",
        ),
    )
    assert created.name.startswith(f"users/{person.user_id}/panels/")
    assert created.etag
    assert created.provenance.kind == panel_pb2.PROVENANCE_KIND_MANUAL
    glucose, creatinine, lpa = created.markers
    assert glucose.name.startswith(f"{created.name}/markers/")
    assert glucose.canonical_value == pytest.approx(90.078, abs=1e-3)
    assert glucose.canonical_unit == "mg/dL"
    assert (glucose.flag, glucose.flag_basis) == (
        panel_pb2.MARKER_FLAG_NORMAL,
        panel_pb2.FLAG_BASIS_DICTIONARY_RANGE,
    )
    assert creatinine.flag == panel_pb2.MARKER_FLAG_HIGH  # 1.2 mg/dL is above the female range
    assert not lpa.HasField("canonical_value")
    assert lpa.flag == panel_pb2.MARKER_FLAG_UNSPECIFIED
    assert glucose.dictionary_version
    assert glucose.collection_time == created.collection_time
    fetched = await stub(platform).GetPanel(
        panel_service_pb2.GetPanelRequest(name=created.name), metadata=person.auth
    )
    assert fetched == created


async def test_mmol_and_mg_panels_give_the_same_canonical_value_and_flag(platform: Any) -> None:
    person = await platform.person(sex="male")
    molar = await create(platform, person, panel(marker("glucose", 6.0, "mmol/L")))
    mass = await create(
        platform, person, panel(marker("glucose", 6.0 * 18.0156, "mg/dL"), drawn=DRAWN - timedelta(days=1))
    )
    assert molar.markers[0].canonical_value == pytest.approx(mass.markers[0].canonical_value, rel=1e-12)
    assert molar.markers[0].flag == mass.markers[0].flag == panel_pb2.MARKER_FLAG_HIGH


async def test_sex_decides_the_flag_of_the_same_value(platform: Any) -> None:
    woman, man = await platform.person(sex="female"), await platform.person(sex="male")
    for person, flag in ((woman, panel_pb2.MARKER_FLAG_HIGH), (man, panel_pb2.MARKER_FLAG_NORMAL)):
        created = await create(platform, person, panel(marker("creatinine", 106.1, "umol/L")))
        assert created.markers[0].flag == flag


async def test_lab_range_decides_the_flag_when_given(platform: Any) -> None:
    person = await platform.person()
    created = await create(
        platform,
        person,
        panel(marker("glucose", 105, "mg/dL", lab_range=panel_pb2.LabRange(low=70, high=110, text="70-110"))),
    )
    assert (created.markers[0].flag, created.markers[0].flag_basis) == (
        panel_pb2.MARKER_FLAG_NORMAL,
        panel_pb2.FLAG_BASIS_LAB_RANGE,
    )


async def test_repeated_request_id_returns_the_first_panel(platform: Any) -> None:
    person = await platform.person()
    request_id = str(uuid.uuid4())
    first = await create(platform, person, panel(marker("sodium", 140, "mmol/L")), request_id=request_id)
    again = await create(platform, person, panel(marker("sodium", 150, "mmol/L")), request_id=request_id)
    assert again == first
    listed = await stub(platform).ListPanels(
        panel_service_pb2.ListPanelsRequest(parent="users/me"), metadata=person.auth
    )
    assert [p.name for p in listed.panels] == [first.name]


@pytest.mark.parametrize(
    ("body", "code", "expected_reason"),
    [
        (panel(), grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT"),
        (
            panel(marker("glucose", 90, "mg/dL"), marker("glucose", 5, "mmol/L")),
            grpc.StatusCode.INVALID_ARGUMENT,
            "DUPLICATE_BIOMARKER",
        ),
        (panel(marker("glucose", 90, "g/dL")), grpc.StatusCode.INVALID_ARGUMENT, "UNKNOWN_UNIT"),
        (panel(marker("glucose", 9000, "mg/dL")), grpc.StatusCode.INVALID_ARGUMENT, "IMPLAUSIBLE_VALUE"),
        (panel(marker("unobtainium", 1, "mg/dL")), grpc.StatusCode.NOT_FOUND, "BIOMARKER_NOT_FOUND"),
        (
            panel(marker("glucose", 90, "mg/dL"), drawn=datetime.now(UTC) + timedelta(days=2)),
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_ARGUMENT",
        ),
    ],
    ids=["no-markers", "duplicate", "unit", "implausible", "unknown-biomarker", "future"],
)
async def test_create_refuses_bad_panels_and_stores_nothing(
    platform: Any, body: panel_pb2.Panel, code: grpc.StatusCode, expected_reason: str
) -> None:
    person = await platform.person()
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await create(platform, person, body)
    assert raised.value.code() == code
    assert reason(raised.value) == expected_reason
    listed = await stub(platform).ListPanels(
        panel_service_pb2.ListPanelsRequest(parent="users/me"), metadata=person.auth
    )
    assert list(listed.panels) == []


async def test_list_panels_pages_in_collection_order(platform: Any) -> None:
    person = await platform.person()
    names = []
    for day in range(5):
        created = await create(
            platform,
            person,
            panel(marker("potassium", 4.0 + day / 10, "mmol/L"), drawn=DRAWN - timedelta(days=day)),
        )
        names.append(created.name)
    seen: list[str] = []
    token = ""
    while True:
        page = await stub(platform).ListPanels(
            panel_service_pb2.ListPanelsRequest(parent=person.name, page_size=2, page_token=token),
            metadata=person.auth,
        )
        seen += [p.name for p in page.panels]
        token = page.next_page_token
        if not token:
            break
    assert seen == names
    ascending = await stub(platform).ListPanels(
        panel_service_pb2.ListPanelsRequest(parent="users/me", order_by="collection_time"),
        metadata=person.auth,
    )
    assert [p.name for p in ascending.panels] == names[::-1]
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub(platform).ListPanels(
            panel_service_pb2.ListPanelsRequest(parent="users/me", page_size=-1), metadata=person.auth
        )
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub(platform).ListPanels(
            panel_service_pb2.ListPanelsRequest(parent="users/me", page_token="forged.token"),
            metadata=person.auth,
        )
    assert reason(raised.value) == "INVALID_PAGE_TOKEN"


async def test_update_applies_the_mask_keeps_marker_identity_and_refuses_stale_etags(platform: Any) -> None:
    person = await platform.person()
    created = await create(
        platform, person, panel(marker("glucose", 90, "mg/dL"), marker("sodium", 140, "mmol/L"))
    )
    glucose = created.markers[0]
    changed = panel_pb2.Panel(
        name=created.name,
        etag=created.etag,
        display_name="Renamed",
        markers=[
            panel_pb2.Marker(
                name=glucose.name, biomarker=glucose.biomarker, value=130, reported_unit="mg/dL"
            ),
            marker("potassium", 4.2, "mmol/L"),
        ],
    )
    updated = await stub(platform).UpdatePanel(
        panel_service_pb2.UpdatePanelRequest(
            panel=changed, update_mask=field_mask_pb2.FieldMask(paths=["display_name", "markers"])
        ),
        metadata=person.auth,
    )
    assert updated.display_name == "Renamed"
    assert updated.etag != created.etag
    assert [m.biomarker for m in updated.markers] == ["biomarkers/glucose", "biomarkers/potassium"]
    assert updated.markers[0].name == glucose.name
    assert updated.markers[0].flag == panel_pb2.MARKER_FLAG_HIGH
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub(platform).UpdatePanel(
            panel_service_pb2.UpdatePanelRequest(
                panel=panel_pb2.Panel(name=created.name, etag=created.etag, note="late"),
                update_mask=field_mask_pb2.FieldMask(paths=["note"]),
            ),
            metadata=person.auth,
        )
    assert raised.value.code() == grpc.StatusCode.ABORTED
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub(platform).UpdatePanel(
            panel_service_pb2.UpdatePanelRequest(
                panel=panel_pb2.Panel(name=created.name),
                update_mask=field_mask_pb2.FieldMask(paths=["provenance"]),
            ),
            metadata=person.auth,
        )
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    again = await stub(platform).GetPanel(
        panel_service_pb2.GetPanelRequest(name=created.name), metadata=person.auth
    )
    assert again == updated


async def test_delete_with_etag(platform: Any) -> None:
    person = await platform.person()
    created = await create(platform, person, panel(marker("chloride", 100, "mmol/L")))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub(platform).DeletePanel(
            panel_service_pb2.DeletePanelRequest(name=created.name, etag="v999"), metadata=person.auth
        )
    assert raised.value.code() == grpc.StatusCode.ABORTED
    await stub(platform).DeletePanel(
        panel_service_pb2.DeletePanelRequest(name=created.name, etag=created.etag), metadata=person.auth
    )
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub(platform).GetPanel(
            panel_service_pb2.GetPanelRequest(name=created.name), metadata=person.auth
        )
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


async def test_marker_history_across_panels_in_canonical_units(platform: Any) -> None:
    person = await platform.person()
    await create(platform, person, panel(marker("glucose", 5.0, "mmol/L"), marker("sodium", 140, "mmol/L")))
    await create(platform, person, panel(marker("glucose", 110, "mg/dL"), drawn=DRAWN - timedelta(days=30)))
    await create(platform, person, panel(marker("glucose", 4.8, "mmol/L"), drawn=DRAWN - timedelta(days=60)))
    history = await stub(platform).ListMarkers(
        panel_service_pb2.ListMarkersRequest(parent="users/me/panels/-", biomarker="biomarkers/glucose"),
        metadata=person.auth,
    )
    assert [round(m.canonical_value, 1) for m in history.markers] == [90.1, 110.0, 86.5]
    assert all(m.canonical_unit == "mg/dL" for m in history.markers)
    high = await stub(platform).ListMarkers(
        panel_service_pb2.ListMarkersRequest(parent="users/me/panels/-", flags=[panel_pb2.MARKER_FLAG_HIGH]),
        metadata=person.auth,
    )
    assert [m.value for m in high.markers] == [110.0]
    page = await stub(platform).ListMarkers(
        panel_service_pb2.ListMarkersRequest(
            parent="users/me/panels/-", page_size=2, order_by="collection_time"
        ),
        metadata=person.auth,
    )
    assert len(page.markers) == 2
    assert page.next_page_token
    one = await stub(platform).GetMarker(
        panel_service_pb2.GetMarkerRequest(name=history.markers[1].name), metadata=person.auth
    )
    assert one == history.markers[1]
    of_panel = await stub(platform).ListMarkers(
        panel_service_pb2.ListMarkersRequest(parent=history.markers[0].name.rsplit("/markers/", 1)[0]),
        metadata=person.auth,
    )
    assert sorted(m.biomarker for m in of_panel.markers) == ["biomarkers/glucose", "biomarkers/sodium"]


async def test_user_cannot_read_or_change_another_users_panel(platform: Any) -> None:
    owner, stranger = await platform.person(), await platform.person()
    created = await create(platform, owner, panel(marker("glucose", 90, "mg/dL")))
    never = f"users/{owner.user_id}/panels/{uuid.uuid4()}"
    calls = [
        lambda name: stub(platform).GetPanel(
            panel_service_pb2.GetPanelRequest(name=name), metadata=stranger.auth
        ),
        lambda name: stub(platform).DeletePanel(
            panel_service_pb2.DeletePanelRequest(name=name), metadata=stranger.auth
        ),
        lambda name: stub(platform).ListMarkers(
            panel_service_pb2.ListMarkersRequest(parent=name), metadata=stranger.auth
        ),
        lambda name: stub(platform).UpdatePanel(
            panel_service_pb2.UpdatePanelRequest(
                panel=panel_pb2.Panel(name=name, note="x"),
                update_mask=field_mask_pb2.FieldMask(paths=["note"]),
            ),
            metadata=stranger.auth,
        ),
    ]
    for call in calls:
        answers = []
        for name in (created.name, never):
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await call(name)
            answers.append((raised.value.code(), raised.value.details()))
        assert answers[0] == answers[1]
        assert answers[0][0] == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub(platform).ListPanels(
            panel_service_pb2.ListPanelsRequest(parent=owner.name), metadata=stranger.auth
        )
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub(platform).CreatePanel(
            panel_service_pb2.CreatePanelRequest(
                parent=owner.name, panel=panel(marker("glucose", 90, "mg/dL"))
            ),
            metadata=stranger.auth,
        )
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    mine = await stub(platform).ListPanels(
        panel_service_pb2.ListPanelsRequest(parent="users/me"), metadata=stranger.auth
    )
    assert list(mine.panels) == []
    still = await stub(platform).GetPanel(
        panel_service_pb2.GetPanelRequest(name=created.name), metadata=owner.auth
    )
    assert still == created


async def test_panel_changes_are_written_to_the_outbox(platform: Any) -> None:
    person = await platform.person()
    created = await create(platform, person, panel(marker("glucose", 130, "mg/dL")))
    await stub(platform).UpdatePanel(
        panel_service_pb2.UpdatePanelRequest(
            panel=panel_pb2.Panel(name=created.name, note="fasting uncertain"),
            update_mask=field_mask_pb2.FieldMask(paths=["note"]),
        ),
        metadata=person.auth,
    )
    await stub(platform).DeletePanel(
        panel_service_pb2.DeletePanelRequest(name=created.name), metadata=person.auth
    )
    admin = await asyncpg.connect(platform.database_url)
    try:
        rows = await admin.fetch(
            "SELECT event_type, payload FROM biomarkers.outbox WHERE event_user_id = $1 ORDER BY position",
            person.user_id,
        )
    finally:
        await admin.close()
    types = [row["event_type"] for row in rows]
    assert types == [
        "vitalis.biomarkers.v1.PanelCreated",
        "vitalis.biomarkers.v1.PanelUpdated",
        "vitalis.biomarkers.v1.PanelDeleted",
    ]
    announced = events_pb2.PanelCreated.FromString(rows[0]["payload"])
    assert announced.panel == created.name
    assert [m.flag for m in announced.flagged_markers] == [panel_pb2.MARKER_FLAG_HIGH]
    assert list(events_pb2.PanelUpdated.FromString(rows[1]["payload"]).changed_fields) == ["note"]


async def test_concurrent_retries_with_one_request_id_create_one_panel(platform: Any) -> None:
    person = await platform.person()
    request_id = str(uuid.uuid4())
    created = await asyncio.gather(
        *(
            create(platform, person, panel(marker("sodium", 140, "mmol/L")), request_id=request_id)
            for _ in range(5)
        )
    )
    assert len({p.name for p in created}) == 1
    listed = await stub(platform).ListPanels(
        panel_service_pb2.ListPanelsRequest(parent="users/me"), metadata=person.auth
    )
    assert len(listed.panels) == 1
