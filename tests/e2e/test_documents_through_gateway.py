"""Documents through a real Envoy: REST upload and download, per-user dedup, type checks, and a lab
report PDF that becomes a panel in biomarkers (and an insight) on its own."""

from __future__ import annotations

import asyncio
import base64
import math
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from vitalis_documents.extraction_bench.corpus import generate_report

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]
PASSWORD = "correct horse battery staple"
CSV = b"date,steps\n2025-03-01,9000\n2025-03-02,10500\n"
# English names the dictionary knows, each in a unit it accepts.
PANEL_ANALYTES = (
    "Glucose",
    "Cholesterol, Total",
    "LDL Cholesterol",
    "HDL Cholesterol",
    "Triglycerides",
    "Creatinine",
    "Hemoglobin A1c",
    "Hemoglobin",
    "Platelets",
    "TSH",
    "Ferritin",
    "ALT",
    "AST",
    "Albumin",
    "Sodium",
    "Potassium",
)


async def sign_up(gateway: httpx.AsyncClient) -> dict[str, str]:
    """A new user's bearer header."""
    response = await gateway.post(
        "/v1/auth:signUp",
        json={
            "email": f"{uuid.uuid4().hex[:10]}@example.com",
            "password": PASSWORD,
            "givenName": "Ada",
            "timeZone": "Europe/London",
        },
    )
    assert response.status_code == 200, response.text
    return {"authorization": f"Bearer {response.json()['tokens']['accessToken']}"}


async def upload(
    gateway: httpx.AsyncClient, headers: dict[str, str], data: bytes, content_type: str, name: str
) -> httpx.Response:
    """POST the raw file to CreateDocument."""
    return await gateway.post(
        "/v1/users/me/documents",
        params={"document.displayName": name},
        content=data,
        headers={**headers, "content-type": content_type},
    )


async def test_rest_upload_download_and_per_user_dedup(gateway: httpx.AsyncClient) -> None:
    alice, bob = await sign_up(gateway), await sign_up(gateway)
    first = await upload(gateway, alice, CSV, "text/plain", "steps.csv")
    assert first.status_code == 200, first.text
    document = first.json()
    assert document["contentType"] == "text/csv"
    assert document["displayName"] == "steps.csv"
    assert int(document["sizeBytes"]) == len(CSV)
    assert document["parseState"] == "PARSE_STATE_SKIPPED"

    again = await upload(gateway, alice, CSV, "application/octet-stream", "again.csv")
    assert again.status_code == 200, again.text
    assert again.json()["name"] == document["name"]

    bobs = await upload(gateway, bob, CSV, "text/plain", "mine.csv")
    assert bobs.status_code == 200, bobs.text
    assert bobs.json()["name"] != document["name"]
    stranger = await gateway.get(f"/v1/{document['name']}", headers=bob)
    assert stranger.status_code == 404

    downloaded = await gateway.get(f"/v1/{document['name']}:download", headers=alice)
    assert downloaded.status_code == 200, downloaded.text
    assert downloaded.content == CSV
    assert downloaded.headers["content-type"].startswith("text/csv")

    listed = await gateway.get("/v1/users/me/documents", headers=alice)
    assert listed.status_code == 200
    assert [d["name"] for d in listed.json()["documents"]] == [document["name"]]

    deleted = await gateway.delete(f"/v1/{document['name']}", headers=alice)
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["deleteTime"]
    gone = await gateway.get(f"/v1/{document['name']}:download", headers=alice)
    assert gone.status_code == 400
    restored = await gateway.post(f"/v1/{document['name']}:undelete", json={}, headers=alice)
    assert restored.status_code == 200, restored.text


async def test_a_file_of_a_type_not_allowed_is_refused_with_a_reason(gateway: httpx.AsyncClient) -> None:
    user = await sign_up(gateway)
    response = await upload(gateway, user, b"MZ\x90\x00" + bytes(4000), "application/pdf", "tool.exe")
    assert response.status_code == 400, response.text
    details = response.json()["details"]
    assert any(d.get("reason") == "UNSUPPORTED_CONTENT_TYPE" for d in details), details


async def _until(check: Any, *, seconds: float) -> Any:
    async with asyncio.timeout(seconds):
        while True:
            result = await check()
            if result is not None:
                return result
            await asyncio.sleep(0.25)


async def test_a_lab_report_pdf_becomes_a_panel_whose_markers_equal_the_ground_truth(
    gateway: httpx.AsyncClient,
) -> None:
    user = await sign_up(gateway)
    report = generate_report("table", 11, analytes=PANEL_ANALYTES)
    created = await upload(gateway, user, report.pdf, "application/pdf", "labs.pdf")
    assert created.status_code == 200, created.text
    name = created.json()["name"]

    async def finished() -> dict[str, Any] | None:
        document: dict[str, Any] = (await gateway.get(f"/v1/{name}", headers=user)).json()
        return (
            document if document["parseState"] not in {"PARSE_STATE_PENDING", "PARSE_STATE_PARSING"} else None
        )

    document = await _until(finished, seconds=60)
    assert document["parseState"] == "PARSE_STATE_PARSED", document
    assert document["panel"], document
    panel = await gateway.get(f"/v1/{document['panel']}", headers=user)
    assert panel.status_code == 200, panel.text
    markers = panel.json()["markers"]
    assert len(markers) == len(report.rows)
    by_name = {m["reportedName"]: m for m in markers}
    for row in report.rows:
        marker = by_name[row.printed_name]
        assert math.isclose(marker["value"], row.value), row.printed_name
        assert marker["reportedUnit"] == row.unit, row.printed_name
        assert marker["provenance"]["document"] == name
    extracted = await gateway.get(f"/v1/{name}/extractedMarkers", headers=user)
    assert extracted.status_code == 200
    assert {m["marker"] for m in extracted.json()["extractedMarkers"]} == {m["name"] for m in markers}

    async def insight() -> list[dict[str, Any]] | None:
        found = (await gateway.get("/v1/users/me/insights", headers=user)).json().get("insights", [])
        return found or None

    assert await _until(insight, seconds=60)


async def test_a_rest_upload_over_the_unary_limit_is_refused_with_a_clear_status(
    gateway: httpx.AsyncClient,
) -> None:
    user = await sign_up(gateway)
    big = b"%PDF-1.7\n" + bytes(9 * 1024 * 1024)
    response = await upload(gateway, user, big, "application/pdf", "big.pdf")
    assert response.status_code in {413, 429}, response.text
    assert "larger than" in response.text or "too large" in response.text.lower(), response.text
    listed = await gateway.get("/v1/users/me/documents", headers=user)
    assert listed.json().get("documents", []) == []


async def test_the_streaming_upload_takes_a_json_array_of_messages_through_the_gateway(
    gateway: httpx.AsyncClient,
) -> None:
    user = await sign_up(gateway)
    data = b"day,kcal\n" + b"".join(f"2025-01-{day:02d},{1800 + day}\n".encode() for day in range(1, 29))
    messages = [
        {
            "parent": "users/me",
            "metadata": {"document": {"displayName": "energy.csv"}, "sizeBytes": len(data)},
        },
        *(
            {"parent": "users/me", "chunk": base64.b64encode(data[offset : offset + 100]).decode()}
            for offset in range(0, len(data), 100)
        ),
    ]
    response = await gateway.post("/v1/users/me/documents:upload", json=messages, headers=user)
    assert response.status_code == 200, response.text
    document = response.json()
    assert document["contentType"] == "text/csv"
    assert int(document["sizeBytes"]) == len(data)
    downloaded = await gateway.get(f"/v1/{document['name']}:download", headers=user)
    assert downloaded.content == data


async def test_a_grantee_with_scope_documents_reads_the_owners_documents_and_nothing_more(
    gateway: httpx.AsyncClient,
) -> None:
    owner, grantee = await sign_up(gateway), await sign_up(gateway)
    me = (await gateway.get("/v1/users/me", headers=owner)).json()["name"]
    grantee_name = (await gateway.get("/v1/users/me", headers=grantee)).json()["name"]
    created = await upload(gateway, owner, CSV + b"2025-03-03,1\n", "text/csv", "shared.csv")
    assert created.status_code == 200, created.text
    name = created.json()["name"]
    assert (await gateway.get(f"/v1/{name}", headers=grantee)).status_code == 404

    expire = (datetime.now(UTC) + timedelta(days=1)).isoformat().replace("+00:00", "Z")
    wrong_scope = await gateway.post(
        "/v1/users/me/shareGrants",
        headers=owner,
        json={"grantee": grantee_name, "scopes": ["SHARE_SCOPE_BIOMARKERS"], "expireTime": expire},
    )
    assert wrong_scope.status_code == 200, wrong_scope.text
    assert (await gateway.get(f"/v1/{name}", headers=grantee)).status_code == 404

    grant = await gateway.post(
        "/v1/users/me/shareGrants",
        headers=owner,
        json={"grantee": grantee_name, "scopes": ["SHARE_SCOPE_DOCUMENTS"], "expireTime": expire},
    )
    assert grant.status_code == 200, grant.text
    read = await gateway.get(f"/v1/{name}", headers=grantee)
    assert read.status_code == 200, read.text
    listed = await gateway.get(f"/v1/{me}/documents", headers=grantee)
    assert [d["name"] for d in listed.json()["documents"]] == [name]
    downloaded = await gateway.get(f"/v1/{name}:download", headers=grantee)
    assert downloaded.content.endswith(b"2025-03-03,1\n")
    assert (await gateway.delete(f"/v1/{name}", headers=grantee)).status_code == 404
    assert (await gateway.get(f"/v1/{name}", headers=owner)).json().get("deleteTime") is None
