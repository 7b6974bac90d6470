"""The biomarkers service through a real Envoy: the dictionary, panels and history, scores, body
composition, epigenetic tests and FHIR over REST, with isolation between users and share grants."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from vitalis.biomarkers.v1 import panel_internal_service_pb2, panel_internal_service_pb2_grpc, panel_pb2
from vitalis_cli.local_secrets import SERVICE_TOKEN_SECRET
from vitalis_cli.platform import Platform
from vitalis_client import create_channel
from vitalis_runtime.service_auth import ServiceCredentials

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]
PASSWORD = "correct horse battery staple"
CRP_MG_PER_L = math.exp(-4.20) * 10
PHENOAGE_MARKERS = [
    ("albumin", 50, "g/L"),
    ("creatinine", 75.14, "umol/L"),
    ("glucose", 4.44, "mmol/L"),
    ("c-reactive-protein", CRP_MG_PER_L, "mg/L"),
    ("lymphocytes-percent", 40, "%"),
    ("mean-corpuscular-volume", 88, "fL"),
    ("red-cell-distribution-width", 12, "%"),
    ("alkaline-phosphatase", 45, "U/L"),
    ("leukocytes", 4.2, "10*3/uL"),
]


async def sign_up(
    gateway: httpx.AsyncClient, *, sex: str = "SEX_FEMALE", birth_date: str = "1979-03-02"
) -> dict[str, Any]:
    email = f"{uuid.uuid4().hex[:10]}@example.com"
    response = await gateway.post(
        "/v1/auth:signUp", json={"email": email, "password": PASSWORD, "givenName": "Ada"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    person = {
        "email": email,
        "name": body["user"]["name"],
        "headers": {"authorization": f"Bearer {body['tokens']['accessToken']}"},
    }
    year, month, day = (int(part) for part in birth_date.split("-"))
    updated = await gateway.patch(
        f"/v1/{person['name']}",
        params={"updateMask": "sex,birthDate"},
        headers=person["headers"],
        json={"sex": sex, "birthDate": {"year": year, "month": month, "day": day}},
    )
    assert updated.status_code == 200, updated.text
    return person


def reason_of(response: httpx.Response) -> str:
    details = response.json().get("details", [])
    return next((d["reason"] for d in details if "reason" in d), "")


def marker(biomarker: str, value: float, unit: str, **extra: Any) -> dict[str, Any]:
    return {"biomarker": f"biomarkers/{biomarker}", "value": value, "reportedUnit": unit, **extra}


async def create_panel(
    gateway: httpx.AsyncClient,
    person: dict[str, Any],
    markers: list[dict[str, Any]],
    when: str = "2026-03-02T07:30:00Z",
) -> dict[str, Any]:
    response = await gateway.post(
        "/v1/users/me/panels", headers=person["headers"], json={"collectionTime": when, "markers": markers}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_dictionary_over_rest(gateway: httpx.AsyncClient) -> None:
    person = await sign_up(gateway)
    h = person["headers"]
    dictionary = await gateway.get("/v1/dictionary", headers=h)
    assert dictionary.status_code == 200, dictionary.text
    assert dictionary.json()["biomarkerCount"] >= 59
    glucose = (await gateway.get("/v1/biomarkers/glucose", headers=h)).json()
    assert (glucose["loincCode"], glucose["canonicalUnit"]) == ("2345-7", "mg/dL")
    lipids = await gateway.get("/v1/biomarkers", params={"category": "BIOMARKER_CATEGORY_LIPIDS"}, headers=h)
    assert "Lipoprotein(a)" in {b["displayName"] for b in lipids.json()["biomarkers"]}
    found = (await gateway.get("/v1/biomarkers:search", params={"query": "HbA1c"}, headers=h)).json()
    assert found["results"][0]["biomarker"]["name"] == "biomarkers/hemoglobin-a1c"
    converted = await gateway.get(
        "/v1/biomarkers/hemoglobin-a1c:convert",
        params={"value": 5.7, "fromUnit": "%", "toUnit": "mmol/mol"},
        headers=h,
    )
    assert converted.status_code == 200, converted.text
    assert converted.json()["value"] == pytest.approx(38.8, abs=0.05)
    refused = await gateway.get(
        "/v1/biomarkers/lipoprotein-a:convert",
        params={"value": 75, "fromUnit": "nmol/L", "toUnit": "mg/dL"},
        headers=h,
    )
    assert (refused.status_code, reason_of(refused)) == (400, "NO_FIXED_CONVERSION")
    assert (await gateway.get("/v1/biomarkers/unobtainium", headers=h)).status_code == 404


async def test_panels_history_and_isolation_over_rest(gateway: httpx.AsyncClient) -> None:
    person, stranger = await sign_up(gateway), await sign_up(gateway)
    h = person["headers"]
    first = await create_panel(
        gateway, person, [marker("glucose", 5.0, "mmol/L"), marker("creatinine", 1.2, "mg/dL")]
    )
    await create_panel(gateway, person, [marker("glucose", 110, "mg/dL")], when="2026-01-02T07:30:00Z")
    assert first["markers"][0]["canonicalValue"] == pytest.approx(90.078, abs=1e-3)
    assert first["markers"][1]["flag"] == "MARKER_FLAG_HIGH"
    history = await gateway.get(
        "/v1/users/me/panels/-/markers", params={"biomarker": "biomarkers/glucose"}, headers=h
    )
    assert history.status_code == 200, history.text
    assert [round(m["canonicalValue"]) for m in history.json()["markers"]] == [90, 110]
    one = await gateway.get(f"/v1/{first['markers'][0]['name']}", headers=h)
    assert one.status_code == 200
    assert one.json()["flag"] == "MARKER_FLAG_NORMAL"
    patched = await gateway.patch(
        f"/v1/{first['name']}",
        params={"updateMask": "displayName"},
        headers=h,
        json={"displayName": "Check-up", "etag": first["etag"]},
    )
    assert patched.status_code == 200, patched.text
    stale = await gateway.patch(
        f"/v1/{first['name']}",
        params={"updateMask": "note"},
        headers=h,
        json={"note": "x", "etag": first["etag"]},
    )
    assert stale.status_code == 409
    invalid = await gateway.post(
        "/v1/users/me/panels",
        headers=h,
        json={"collectionTime": "2026-03-02T07:30:00Z", "markers": [marker("glucose", 5, "g/dL")]},
    )
    assert (invalid.status_code, reason_of(invalid)) == (400, "UNKNOWN_UNIT")
    for path in (
        f"/v1/{first['name']}",
        f"/v1/{person['name']}/panels",
        f"/v1/{first['markers'][0]['name']}",
    ):
        response = await gateway.get(path, headers=stranger["headers"])
        assert response.status_code == 404, path
    assert (await gateway.delete(f"/v1/{first['name']}", headers=stranger["headers"])).status_code == 404
    assert (await gateway.delete(f"/v1/{first['name']}", headers=h)).status_code == 200
    assert (await gateway.get(f"/v1/{first['name']}", headers=h)).status_code == 404


async def test_scores_over_rest(gateway: httpx.AsyncClient) -> None:
    person = await sign_up(gateway, birth_date="1979-03-02")
    h = person["headers"]
    evaluated = await gateway.post(
        "/v1/scoreFormulas/phenoage:evaluate",
        headers=h,
        json={
            "coefficientSet": "levine-2018-rounded-0.090165",
            "values": [
                {"parameter": name, "value": value, "unit": unit}
                for name, value, unit in (
                    ("albumin", 50, ""),
                    ("creatinine", 75.14, ""),
                    ("glucose", 4.44, ""),
                    ("crp", math.exp(-4.20), ""),
                    ("lymphocytes", 40, ""),
                    ("mcv", 88, ""),
                    ("rdw", 12, ""),
                    ("alp", 45, ""),
                    ("wbc", 4.2, ""),
                    ("age", 47, ""),
                )
            ],
        },
    )
    assert evaluated.status_code == 200, evaluated.text
    assert evaluated.json()["value"] == pytest.approx(26.41, abs=0.01)
    formulas = (await gateway.get("/v1/scoreFormulas", headers=h)).json()["scoreFormulas"]
    assert "scoreFormulas/egfr-ckd-epi-2021" in {f["name"] for f in formulas}
    phenoage = await gateway.get("/v1/scoreFormulas/phenoage", headers=h)
    assert phenoage.status_code == 200, phenoage.text
    assert phenoage.json()["versions"][0]["defaultCoefficientSet"] == "levine-2018-full-0.090165"
    await create_panel(gateway, person, [marker(*row) for row in PHENOAGE_MARKERS])
    scores = (
        await gateway.get("/v1/users/me/scores", params={"formula": "scoreFormulas/phenoage"}, headers=h)
    ).json()
    assert scores["scores"][0]["value"] == pytest.approx(26.35, abs=0.01)
    computed = await gateway.post(
        "/v1/users/me/scores:compute",
        headers=h,
        json={"formula": "scoreFormulas/phenoage", "coefficientSet": "levine-2018-rounded-0.09165"},
    )
    assert computed.status_code == 200, computed.text
    assert computed.json()["value"] == pytest.approx(28.28, abs=0.01)
    recomputed = await gateway.post(
        "/v1/users/me/scores:recompute", headers=h, json={"formula": "scoreFormulas/phenoage"}
    )
    assert recomputed.status_code == 200, recomputed.text
    assert (await gateway.get(f"/v1/{computed.json()['name']}", headers=h)).status_code == 200


async def test_body_composition_and_epigenetic_tests_over_rest(gateway: httpx.AsyncClient) -> None:
    person = await sign_up(gateway)
    h = person["headers"]
    scan = await gateway.post(
        "/v1/users/me/bodyCompositionScans",
        headers=h,
        json={
            "scanTime": "2026-02-10T09:00:00Z",
            "method": "SCAN_METHOD_DEXA",
            "fatMassKg": 18.5,
            "boneDensities": [{"site": "BONE_SITE_FEMORAL_NECK", "boneMineralDensity": 0.91, "tScore": -1.2}],
        },
    )
    assert scan.status_code == 200, scan.text
    listed = (await gateway.get("/v1/users/me/bodyCompositionScans", headers=h)).json()
    assert [s["name"] for s in listed["bodyCompositionScans"]] == [scan.json()["name"]]
    fetched = await gateway.get(f"/v1/{scan.json()['name']}", headers=h)
    assert fetched.status_code == 200
    assert fetched.json()["boneDensities"][0]["tScore"] == pytest.approx(-1.2)
    changed = await gateway.patch(
        f"/v1/{scan.json()['name']}",
        params={"updateMask": "fatMassKg"},
        headers=h,
        json={"fatMassKg": 17.9, "etag": scan.json()["etag"]},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["fatMassKg"] == pytest.approx(17.9)
    test = await gateway.post(
        "/v1/users/me/epigeneticTests",
        headers=h,
        json={"collectionTime": "2026-02-10T09:00:00Z", "biologicalAgeYears": 43.5, "paceOfAging": 0.92},
    )
    assert test.status_code == 200, test.text
    assert test.json()["chronologicalAgeYears"] == pytest.approx(46.9, abs=0.1)
    patched = await gateway.patch(
        f"/v1/{test.json()['name']}",
        params={"updateMask": "paceOfAging"},
        headers=h,
        json={"paceOfAging": 0.88},
    )
    assert patched.status_code == 200
    assert patched.json()["paceOfAging"] == pytest.approx(0.88)
    assert (await gateway.get(f"/v1/{test.json()['name']}", headers=h)).json()[
        "paceOfAging"
    ] == pytest.approx(0.88)
    tests = (await gateway.get("/v1/users/me/epigeneticTests", headers=h)).json()["epigeneticTests"]
    assert [t["name"] for t in tests] == [test.json()["name"]]
    assert (await gateway.delete(f"/v1/{test.json()['name']}", headers=h)).status_code == 200
    assert (await gateway.delete(f"/v1/{scan.json()['name']}", headers=h)).status_code == 200


async def test_fhir_export_and_import_over_rest(gateway: httpx.AsyncClient) -> None:
    source, target = await sign_up(gateway), await sign_up(gateway)
    original = await create_panel(
        gateway,
        source,
        [
            marker("glucose", 5.6, "mmol/L", labRange={"low": 3.9, "high": 5.5}),
            marker("sodium", 140, "mmol/L"),
        ],
    )
    exported = await gateway.get("/v1/users/me/panels:exportFhir", headers=source["headers"])
    assert exported.status_code == 200, exported.text
    assert exported.headers["content-type"].startswith("application/fhir+json")
    imported = await gateway.post(
        "/v1/users/me/panels:importFhir",
        headers={**target["headers"], "content-type": "application/fhir+json"},
        content=exported.content,
    )
    assert imported.status_code == 200, imported.text
    body = imported.json()
    assert body["createdPanelCount"] == 1
    copy = body["panels"][0]
    assert [(m["biomarker"], m["value"], m["flag"]) for m in copy["markers"]] == [
        (m["biomarker"], m["value"], m["flag"]) for m in original["markers"]
    ]
    refused = await gateway.post(
        "/v1/users/me/panels:importFhir",
        headers={**target["headers"], "content-type": "application/fhir+json"},
        content=b'{"resourceType": "Patient"}',
    )
    assert (refused.status_code, reason_of(refused)) == (400, "INVALID_FHIR")


async def test_a_grantee_reads_history_scores_and_fhir_of_the_owner(gateway: httpx.AsyncClient) -> None:
    owner, grantee = await sign_up(gateway), await sign_up(gateway)
    await create_panel(gateway, owner, [marker(*row) for row in PHENOAGE_MARKERS])
    history = f"/v1/{owner['name']}/panels/-/markers"
    assert (await gateway.get(history, headers=grantee["headers"])).status_code == 404
    expire = (datetime.now(UTC) + timedelta(days=1)).isoformat().replace("+00:00", "Z")
    grant = await gateway.post(
        "/v1/users/me/shareGrants",
        headers=owner["headers"],
        json={"grantee": grantee["name"], "scopes": ["SHARE_SCOPE_BIOMARKERS"], "expireTime": expire},
    )
    assert grant.status_code == 200, grant.text
    read = await gateway.get(history, headers=grantee["headers"])
    assert read.status_code == 200, read.text
    assert len(read.json()["markers"]) == len(PHENOAGE_MARKERS)
    scores = await gateway.get(f"/v1/{owner['name']}/scores", headers=grantee["headers"])
    assert scores.status_code == 200
    assert scores.json()["scores"]
    exported = await gateway.get(f"/v1/{owner['name']}/panels:exportFhir", headers=grantee["headers"])
    assert exported.status_code == 200
    written = await gateway.post(
        f"/v1/{owner['name']}/panels",
        headers=grantee["headers"],
        json={"collectionTime": "2026-03-02T07:30:00Z", "markers": [marker("sodium", 140, "mmol/L")]},
    )
    assert written.status_code == 404


async def test_internal_services_are_not_reachable_through_the_gateway(
    gateway: httpx.AsyncClient, platform: Platform
) -> None:
    person = await sign_up(gateway)
    user_id = uuid.UUID(person["name"].removeprefix("users/"))
    document = f"{person['name']}/documents/{uuid.uuid4()}"
    request = panel_internal_service_pb2.MergeDocumentMarkersRequest(
        user=person["name"],
        document=document,
        collection_time=Timestamp(seconds=1_770_000_000),
        upserts=[
            panel_internal_service_pb2.DocumentMarker(
                extracted_marker=f"{document}/extractedMarkers/1",
                marker=panel_pb2.Marker(biomarker="biomarkers/glucose", value=92, reported_unit="mg/dL"),
            )
        ],
    )
    user_metadata = tuple(person["headers"].items())
    async with create_channel(platform.gateway_url.removeprefix("http://")) as through_gateway:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await panel_internal_service_pb2_grpc.PanelInternalServiceStub(
                through_gateway
            ).MergeDocumentMarkers(request, metadata=user_metadata)
        assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED
    async with create_channel(platform.service_target("biomarkers")) as direct:
        stub = panel_internal_service_pb2_grpc.PanelInternalServiceStub(direct)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.MergeDocumentMarkers(request, metadata=user_metadata)
        assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
        credentials = ServiceCredentials(platform.config.secrets[SERVICE_TOKEN_SECRET], "documents")
        merged = await stub.MergeDocumentMarkers(request, metadata=credentials.metadata(user_id))
        assert merged.created
    panel = await gateway.get(f"/v1/{merged.panel.name}", headers=person["headers"])
    assert panel.status_code == 200
    assert panel.json()["provenance"]["document"] == document
