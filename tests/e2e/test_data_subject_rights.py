"""Data-subject rights across the platform: data seeded in every service is exported in one archive,
and after erasure no row of the user is left in any service's schema but identity's tombstone."""

from __future__ import annotations

import asyncio
import io
import json
import time
import uuid
import zipfile
from typing import Any

import asyncpg
import httpx
import pytest

from vitalis_cli.platform import Platform
from vitalis_cli.testing import SignedUpUser, sign_up
from vitalis_runtime.catalog import SERVICES

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

TERMINAL = {"JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED"}
# What erasure keeps on purpose: the record that it happened (the job) and the audit trail.
TOMBSTONE_TABLES = {("identity", "erasure_jobs"), ("identity", "audit_log")}


async def ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def finished(gateway: httpx.AsyncClient, name: str, user: SignedUpUser) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while True:
        job = await ok(await gateway.get(f"/v1/{name}", headers=user.headers))
        if job["state"] in TERMINAL:
            return job
        assert time.monotonic() < deadline, job
        await asyncio.sleep(0.5)


async def seed_every_service(gateway: httpx.AsyncClient, user: SignedUpUser) -> dict[str, str]:
    """One resource of the user in each data service; the text each leaves in the archive."""
    source = await ok(
        await gateway.post(
            "/v1/users/me/sources",
            params={"sourceId": "erasure-watch"},
            headers=user.headers,
            json={"displayName": "Erasure Watch", "platform": "SOURCE_PLATFORM_API"},
        )
    )
    samples = [
        {
            "source": source["name"],
            "metricType": "METRIC_TYPE_HEART_RATE",
            "value": 61 + i,
            "startTime": f"2025-02-01T06:{i:02d}:00Z",
            "utcOffset": "3600s",
        }
        for i in range(5)
    ]
    await ok(
        await gateway.post(
            "/v1/users/me/samples:batchCreate", headers=user.headers, json={"samples": samples}
        )
    )
    found = await ok(
        await gateway.get("/v1/biomarkers:search", params={"query": "glucose"}, headers=user.headers)
    )
    panel = await ok(
        await gateway.post(
            "/v1/users/me/panels",
            headers=user.headers,
            json={
                "collectionTime": "2025-03-01T08:00:00Z",
                "provenance": {"kind": "PROVENANCE_KIND_MANUAL"},
                "markers": [
                    {
                        "biomarker": found["results"][0]["biomarker"]["name"],
                        "value": 5.2,
                        "reportedUnit": "mmol/L",
                    }
                ],
            },
        )
    )
    document = await ok(
        await gateway.post(
            "/v1/users/me/documents",
            params={"document.displayName": "erasure-notes.csv"},
            content=b"date,note\n2025-03-01,fasting glucose checked\n",
            headers={**user.headers, "content-type": "text/csv"},
        )
    )
    return {"ingestion": "Erasure Watch", "biomarkers": panel["name"], "documents": document["name"]}


async def rows_left(platform: Platform, user_id: uuid.UUID) -> dict[tuple[str, str], int]:
    """Rows of the user in every table with a user_id column, in every service's schema."""
    admin = await asyncpg.connect(platform.config.database_url)
    try:
        tables = await admin.fetch(
            """SELECT n.nspname AS schema, c.relname AS table FROM pg_class c
               JOIN pg_namespace n ON n.oid = c.relnamespace
               JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'user_id' AND NOT a.attisdropped
               WHERE n.nspname = ANY($1::text[]) AND c.relkind IN ('r', 'p') AND NOT c.relispartition""",
            [spec.schema for spec in SERVICES],
        )
        left: dict[tuple[str, str], int] = {}
        for row in tables:
            count = await admin.fetchval(
                f'SELECT count(*) FROM "{row["schema"]}"."{row["table"]}" WHERE user_id = $1', user_id
            )
            if count:
                left[(row["schema"], row["table"])] = int(count)
        return left
    finally:
        await admin.close()


async def test_export_holds_every_services_data_and_erasure_leaves_only_the_tombstone(
    gateway: httpx.AsyncClient, platform: Platform
) -> None:
    user = await sign_up(gateway)
    seeded = await seed_every_service(gateway, user)
    export = await finished(
        gateway,
        (await ok(await gateway.post("/v1/users/me/exportJobs", headers=user.headers, json={})))["name"],
        user,
    )
    assert export["state"] == "JOB_STATE_SUCCEEDED", export
    download = await gateway.get(f"/v1/{export['name']}:download", headers=user.headers)
    assert download.status_code == 200, download.text
    with zipfile.ZipFile(io.BytesIO(download.content)) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        paths = [entry["path"] for entry in manifest["entries"]]
        contents = {path: archive.read(path) for path in paths}
    for service in ("identity", "ingestion", "biomarkers", "documents", "insights"):
        assert any(path.startswith(f"{service}/") for path in paths), (service, paths)
    for service, text in seeded.items():
        held = b"".join(data for path, data in contents.items() if path.startswith(f"{service}/"))
        assert text.encode() in held, (service, text)

    user_id = uuid.UUID(user.user_id)
    before = await rows_left(platform, user_id)
    assert {schema for schema, _ in before} >= {"identity", "ingestion", "biomarkers", "documents"}
    erasure = await ok(
        await gateway.post(
            "/v1/users/me/erasureJobs", headers=user.headers, json={}, params={"confirmEmail": user.email}
        )
    )
    done = await finished(gateway, erasure["name"], user)
    assert done["state"] == "JOB_STATE_SUCCEEDED", done
    left = await rows_left(platform, user_id)
    assert set(left) <= TOMBSTONE_TABLES, left
