"""Ingestion through a real Envoy: every REST binding of the contract, for a user signed up at the gateway."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]
PASSWORD = "correct horse battery staple"
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


async def signed_in(gateway: httpx.AsyncClient) -> dict[str, str]:
    email = f"{uuid.uuid4().hex[:10]}@example.com"
    response = await gateway.post(
        "/v1/auth:signUp",
        json={"email": email, "password": PASSWORD, "givenName": "Ada", "timeZone": "Europe/Paris"},
    )
    assert response.status_code == 200, response.text
    return {"authorization": f"Bearer {response.json()['tokens']['accessToken']}"}


async def ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, f"{response.request.method} {response.request.url}: {response.text}"
    return response.json()


async def test_sources_devices_priority_and_metric_catalogue(gateway: httpx.AsyncClient) -> None:
    auth = await signed_in(gateway)
    device = await ok(
        await gateway.post(
            "/v1/users/me/devices",
            params={"deviceId": "fenix"},
            headers=auth,
            json={"displayName": "Fenix 5", "deviceType": "DEVICE_TYPE_WATCH"},
        )
    )
    source = await ok(
        await gateway.post(
            "/v1/users/me/sources",
            params={"sourceId": "garmin"},
            headers=auth,
            json={"displayName": "Garmin", "platform": "SOURCE_PLATFORM_GARMIN", "devices": [device["name"]]},
        )
    )
    assert (await ok(await gateway.get(f"/v1/{source['name']}", headers=auth)))["devices"] == [device["name"]]
    assert [
        s["name"] for s in (await ok(await gateway.get("/v1/users/me/sources", headers=auth)))["sources"]
    ] == [source["name"]]
    renamed = await ok(
        await gateway.patch(
            f"/v1/{source['name']}",
            params={"updateMask": "displayName"},
            headers=auth,
            json={"displayName": "My Garmin", "etag": source["etag"]},
        )
    )
    stale = await gateway.patch(
        f"/v1/{source['name']}",
        params={"updateMask": "displayName"},
        headers=auth,
        json={"displayName": "Old", "etag": source["etag"]},
    )
    assert stale.status_code == 409
    assert renamed["displayName"] == "My Garmin"
    assert (await ok(await gateway.get(f"/v1/{device['name']}", headers=auth)))["displayName"] == "Fenix 5"
    assert len((await ok(await gateway.get("/v1/users/me/devices", headers=auth)))["devices"]) == 1
    await ok(
        await gateway.patch(
            f"/v1/{device['name']}",
            params={"updateMask": "firmwareVersion"},
            headers=auth,
            json={"firmwareVersion": "21"},
        )
    )
    priority = await ok(
        await gateway.patch(
            "/v1/users/me/sourcePriority",
            params={"updateMask": "defaultOrder"},
            headers=auth,
            json={"defaultOrder": [source["name"]]},
        )
    )
    assert priority["defaultOrder"] == [source["name"]]
    assert (await ok(await gateway.get("/v1/users/me/sourcePriority", headers=auth)))["etag"] == priority[
        "etag"
    ]
    hr = await ok(await gateway.get("/v1/metricDescriptors/heart-rate", headers=auth))
    assert hr["canonicalUnit"] == "/min"
    assert (
        len((await ok(await gateway.get("/v1/metricDescriptors", headers=auth)))["metricDescriptors"]) == 31
    )
    assert (await gateway.delete(f"/v1/{device['name']}", headers=auth)).status_code == 200
    assert (await gateway.delete(f"/v1/{source['name']}", headers=auth)).status_code == 200
    assert (await gateway.get(f"/v1/{source['name']}", headers=auth)).status_code == 404


async def test_samples_batch_stream_queries_and_delete(gateway: httpx.AsyncClient) -> None:
    auth = await signed_in(gateway)
    source = await ok(
        await gateway.post(
            "/v1/users/me/sources",
            params={"sourceId": "watch"},
            headers=auth,
            json={"displayName": "Watch", "platform": "SOURCE_PLATFORM_API"},
        )
    )
    samples = [
        {
            "source": source["name"],
            "metricType": "METRIC_TYPE_HEART_RATE",
            "value": 60 + i,
            "startTime": f"2024-05-01T06:{i:02d}:00Z",
            "utcOffset": "7200s",
        }
        for i in range(30)
    ]
    body = {"samples": samples}
    first = await ok(await gateway.post("/v1/users/me/samples:batchCreate", headers=auth, json=body))
    again = await ok(await gateway.post("/v1/users/me/samples:batchCreate", headers=auth, json=body))
    assert first["counts"]["newCount"] == "30"
    assert again["counts"]["duplicateCount"] == "30"
    streamed = await ok(
        await gateway.post(
            "/v1/users/me/samples:stream",
            headers=auth,
            json=[
                {"parent": "users/me", "samples": samples[:10]},
                {"parent": "users/me", "samples": samples[10:]},
            ],
        )
    )
    assert streamed["chunkCount"] == "2"
    assert streamed["counts"]["duplicateCount"] == "30"
    bad = await gateway.post(
        "/v1/users/me/samples:batchCreate",
        headers=auth,
        json={
            "samples": [
                {
                    "source": source["name"],
                    "metricType": "METRIC_TYPE_HEART_RATE_VARIABILITY",
                    "value": 40,
                    "startTime": "2024-05-01T06:00:00Z",
                }
            ]
        },
    )
    assert bad.status_code == 400
    assert "hrv.method" in bad.text
    listed = await ok(
        await gateway.get(
            "/v1/users/me/samples",
            headers=auth,
            params={
                "metricType": "METRIC_TYPE_HEART_RATE",
                "pageSize": 10,
                "interval.startTime": "2024-05-01T06:00:00Z",
                "interval.endTime": "2024-05-01T07:00:00Z",
            },
        )
    )
    assert len(listed["samples"]) == 10
    assert listed["nextPageToken"]
    name = listed["samples"][0]["name"]
    assert (await ok(await gateway.get(f"/v1/{name}", headers=auth)))["value"] == 60
    buckets = await ok(
        await gateway.get(
            "/v1/users/me/samples:queryBuckets",
            headers=auth,
            params={
                "metricType": "METRIC_TYPE_HEART_RATE",
                "width": "BUCKET_WIDTH_HOUR",
                "timeZone": "Europe/Paris",
                "interval.startTime": "2024-05-01T00:00:00Z",
                "interval.endTime": "2024-05-02T00:00:00Z",
            },
        )
    )
    [bucket] = buckets["buckets"]
    assert bucket["count"] == "30"
    assert bucket["min"] == 60
    assert bucket["max"] == 89
    assert bucket["avg"] == 74.5
    assert (await gateway.delete(f"/v1/{name}", headers=auth)).status_code == 200
    assert (await gateway.get(f"/v1/{name}", headers=auth)).status_code == 404
    summary = await ok(await gateway.get("/v1/users/me/dailySummaries/2024-05-01", headers=auth))
    assert summary["metrics"][0]["count"] == "29"
    per_source = await ok(await gateway.get(f"/v1/{source['name']}/dailySummaries/2024-05-01", headers=auth))
    assert per_source["source"] == source["name"]
    listed_days = await ok(await gateway.get("/v1/users/me/dailySummaries", headers=auth))
    assert [d["date"] for d in listed_days["dailySummaries"]] == [{"year": 2024, "month": 5, "day": 1}]
    per_source_days = await ok(await gateway.get(f"/v1/{source['name']}/dailySummaries", headers=auth))
    assert len(per_source_days["dailySummaries"]) == 1
    policy = await ok(await gateway.get("/v1/users/me/dayAttributionPolicy", headers=auth))
    assert policy["sleepSessions"] == "DAY_ATTRIBUTION_SLEEP_DAY"


async def test_import_upload_watch_list_and_cancel(gateway: httpx.AsyncClient) -> None:
    auth = await signed_in(gateway)
    data = (FIXTURES / "apple-health" / "export-small.xml").read_bytes()
    job = await ok(
        await gateway.post(
            "/v1/users/me/importJobs:upload",
            params={"fileName": "export.xml"},
            headers={**auth, "content-type": "application/xml"},
            content=data,
        )
    )
    async with gateway.stream("GET", f"/v1/{job['name']}:watch", headers=auth, timeout=60) as response:
        assert response.status_code == 200
        snapshots = [json.loads(line) async for line in response.aiter_lines() if line.strip()]
    last = snapshots[-1].get("result", snapshots[-1])
    assert last["state"] == "IMPORT_JOB_STATE_SUCCEEDED"
    assert last["counts"]["receivedCount"] == "5"
    again = await ok(
        await gateway.post(
            "/v1/users/me/importJobs:upload",
            headers={**auth, "content-type": "application/xml"},
            content=data,
        )
    )
    assert again["name"] == job["name"]
    assert (await ok(await gateway.get(f"/v1/{job['name']}", headers=auth)))[
        "state"
    ] == "IMPORT_JOB_STATE_SUCCEEDED"
    jobs = await ok(await gateway.get("/v1/users/me/importJobs", headers=auth))
    assert [j["name"] for j in jobs["importJobs"]] == [job["name"]]
    cancel = await gateway.post(f"/v1/{job['name']}:cancel", headers=auth, json={})
    assert cancel.status_code == 400
    fit = (FIXTURES / "fit" / "garmin-fenix-5-run.fit").read_bytes()
    import base64

    streamed = await ok(
        await gateway.post(
            "/v1/users/me/importJobs:streamUpload",
            headers=auth,
            json=[
                {"parent": "users/me", "metadata": {"fileName": "run.fit"}},
                {"parent": "users/me", "chunk": base64.b64encode(fit).decode()},
            ],
        )
    )
    assert streamed["format"] == "IMPORT_FORMAT_GARMIN_FIT"
    document = await gateway.post(
        "/v1/users/me/importJobs", headers=auth, json={"document": "users/me/documents/does-not-exist"}
    )
    assert document.status_code in (404, 503)


async def test_sleep_workouts_strength_nutrition_and_manual_entries(gateway: httpx.AsyncClient) -> None:
    auth = await signed_in(gateway)
    source = await ok(
        await gateway.post(
            "/v1/users/me/sources",
            params={"sourceId": "ring"},
            headers=auth,
            json={"displayName": "Ring", "platform": "SOURCE_PLATFORM_OURA"},
        )
    )
    session = await ok(
        await gateway.post(
            "/v1/users/me/sleepSessions",
            headers=auth,
            json={
                "source": source["name"],
                "startTime": "2024-05-01T21:00:00Z",
                "endTime": "2024-05-02T05:00:00Z",
                "utcOffset": "7200s",
                "stages": [
                    {
                        "stage": "SLEEP_STAGE_TYPE_DEEP",
                        "startTime": "2024-05-01T22:00:00Z",
                        "endTime": "2024-05-01T23:00:00Z",
                    }
                ],
            },
        )
    )
    assert session["sleepDate"] == {"year": 2024, "month": 5, "day": 2}
    assert (await ok(await gateway.get(f"/v1/{session['name']}", headers=auth)))["deepDuration"] == "3600s"
    assert (
        len((await ok(await gateway.get("/v1/users/me/sleepSessions", headers=auth)))["sleepSessions"]) == 1
    )
    nap = await ok(
        await gateway.patch(
            f"/v1/{session['name']}", params={"updateMask": "nap"}, headers=auth, json={"nap": True}
        )
    )
    assert nap["nap"] is True
    assert (await gateway.delete(f"/v1/{session['name']}", headers=auth)).status_code == 200

    workout = await ok(
        await gateway.post(
            "/v1/users/me/workouts",
            headers=auth,
            json={
                "source": source["name"],
                "activityType": "ACTIVITY_TYPE_RUNNING",
                "startTime": "2024-05-02T07:00:00Z",
                "endTime": "2024-05-02T07:30:00Z",
                "route": [{"time": "2024-05-02T07:00:00Z", "position": {"latitude": 48.8, "longitude": 2.3}}],
            },
        )
    )
    assert workout["routePointCount"] == 1
    basic = await ok(
        await gateway.get(f"/v1/{workout['name']}", params={"view": "WORKOUT_VIEW_BASIC"}, headers=auth)
    )
    assert not basic.get("route")
    assert basic["routePointCount"] == 1
    assert len((await ok(await gateway.get("/v1/users/me/workouts", headers=auth)))["workouts"]) == 1
    await ok(
        await gateway.patch(
            f"/v1/{workout['name']}",
            params={"updateMask": "displayName"},
            headers=auth,
            json={"displayName": "Run"},
        )
    )
    assert (await gateway.delete(f"/v1/{workout['name']}", headers=auth)).status_code == 200

    exercises = await ok(await gateway.get("/v1/exercises", params={"query": "bench"}, headers=auth))
    bench = exercises["exercises"][0]["name"]
    assert (await ok(await gateway.get(f"/v1/{bench}", headers=auth)))["name"] == bench
    strength = await ok(
        await gateway.post(
            "/v1/users/me/strengthSessions",
            headers=auth,
            json={
                "source": source["name"],
                "startTime": "2024-05-02T17:00:00Z",
                "exercises": [
                    {"exercise": bench, "sets": [{"reps": 5, "loadKg": 80}, {"reps": 5, "loadKg": 80}]}
                ],
            },
        )
    )
    assert strength["totalVolumeKg"] == 800
    assert (await ok(await gateway.get(f"/v1/{strength['name']}", headers=auth)))["totalVolumeKg"] == 800
    assert (
        len((await ok(await gateway.get("/v1/users/me/strengthSessions", headers=auth)))["strengthSessions"])
        == 1
    )
    await ok(
        await gateway.patch(
            f"/v1/{strength['name']}", params={"updateMask": "note"}, headers=auth, json={"note": "ok"}
        )
    )
    assert (await gateway.delete(f"/v1/{strength['name']}", headers=auth)).status_code == 200

    meal = await ok(
        await gateway.post(
            "/v1/users/me/nutritionLogs",
            headers=auth,
            json={
                "source": source["name"],
                "consumeTime": "2024-05-02T12:00:00Z",
                "mealType": "MEAL_TYPE_LUNCH",
                "items": [{"displayName": "Rice", "per100Grams": {"energyKcal": 130}, "quantity": 200}],
            },
        )
    )
    assert meal["total"]["energyKcal"] == 260
    assert (await ok(await gateway.get(f"/v1/{meal['name']}", headers=auth)))["name"] == meal["name"]
    assert (
        len((await ok(await gateway.get("/v1/users/me/nutritionLogs", headers=auth)))["nutritionLogs"]) == 1
    )
    await ok(
        await gateway.patch(
            f"/v1/{meal['name']}", params={"updateMask": "note"}, headers=auth, json={"note": "x"}
        )
    )
    assert (await gateway.delete(f"/v1/{meal['name']}", headers=auth)).status_code == 200

    entry = await ok(
        await gateway.post(
            "/v1/users/me/manualEntries",
            headers=auth,
            json={
                "entryTime": "2024-05-02T08:00:00Z",
                "menstruation": {
                    "date": {"year": 2024, "month": 5, "day": 2},
                    "flow": "MENSTRUAL_FLOW_MEDIUM",
                    "cycleStart": True,
                },
            },
        )
    )
    assert entry["kind"] == "MANUAL_ENTRY_KIND_MENSTRUATION"
    assert (await ok(await gateway.get(f"/v1/{entry['name']}", headers=auth)))["name"] == entry["name"]
    assert (
        len((await ok(await gateway.get("/v1/users/me/manualEntries", headers=auth)))["manualEntries"]) == 1
    )
    await ok(
        await gateway.patch(
            f"/v1/{entry['name']}", params={"updateMask": "note"}, headers=auth, json={"note": "n"}
        )
    )
    cycles = await ok(await gateway.get("/v1/users/me/menstrualCycles", headers=auth))
    cycle = cycles["menstrualCycles"][0]["name"]
    assert (await ok(await gateway.get(f"/v1/{cycle}", headers=auth)))["periodLengthDays"] == 1
    assert (await gateway.delete(f"/v1/{entry['name']}", headers=auth)).status_code == 200


async def test_another_user_cannot_read_my_samples(gateway: httpx.AsyncClient) -> None:
    mine, theirs = await signed_in(gateway), await signed_in(gateway)
    me = await ok(await gateway.get("/v1/users/me", headers=mine))
    response = await gateway.get(
        f"/v1/{me['name']}/samples", params={"metricType": "METRIC_TYPE_HEART_RATE"}, headers=theirs
    )
    assert response.status_code == 404


async def test_a_wearables_grantee_reads_the_owners_samples_but_cannot_write(
    gateway: httpx.AsyncClient,
) -> None:
    owner, grantee = await signed_in(gateway), await signed_in(gateway)
    owner_name = (await ok(await gateway.get("/v1/users/me", headers=owner)))["name"]
    grantee_name = (await ok(await gateway.get("/v1/users/me", headers=grantee)))["name"]
    source = await ok(
        await gateway.post(
            "/v1/users/me/sources",
            params={"sourceId": "watch"},
            headers=owner,
            json={"displayName": "Watch", "platform": "SOURCE_PLATFORM_API"},
        )
    )
    sample = {
        "source": source["name"],
        "metricType": "METRIC_TYPE_HEART_RATE",
        "value": 61,
        "startTime": "2024-05-01T06:00:00Z",
    }
    await ok(
        await gateway.post("/v1/users/me/samples:batchCreate", headers=owner, json={"samples": [sample]})
    )
    samples = f"/v1/{owner_name}/samples"
    params = {"metricType": "METRIC_TYPE_HEART_RATE"}
    assert (await gateway.get(samples, params=params, headers=grantee)).status_code == 404
    expire = (datetime.now(UTC) + timedelta(days=1)).isoformat().replace("+00:00", "Z")
    await ok(
        await gateway.post(
            "/v1/users/me/shareGrants",
            headers=owner,
            json={"grantee": grantee_name, "scopes": ["SHARE_SCOPE_WEARABLES"], "expireTime": expire},
        )
    )
    shared = await ok(await gateway.get(samples, params=params, headers=grantee))
    assert [s["value"] for s in shared["samples"]] == [61]
    summary = await ok(await gateway.get(f"/v1/{owner_name}/dailySummaries/2024-05-01", headers=grantee))
    assert summary["metrics"][0]["count"] == "1"
    written = await gateway.post(
        f"/v1/{owner_name}/samples:batchCreate", headers=grantee, json={"samples": [sample]}
    )
    assert written.status_code == 404


async def test_buckets_default_to_the_time_zone_of_the_users_profile(gateway: httpx.AsyncClient) -> None:
    auth = await signed_in(gateway)
    source = await ok(
        await gateway.post(
            "/v1/users/me/sources",
            params={"sourceId": "watch"},
            headers=auth,
            json={"displayName": "Watch", "platform": "SOURCE_PLATFORM_API"},
        )
    )
    # 23:30 UTC on 1 May is 01:30 on 2 May in Paris (UTC+02:00).
    sample = {
        "source": source["name"],
        "metricType": "METRIC_TYPE_HEART_RATE",
        "value": 58,
        "startTime": "2024-05-01T23:30:00Z",
    }
    await ok(await gateway.post("/v1/users/me/samples:batchCreate", headers=auth, json={"samples": [sample]}))
    buckets = await ok(
        await gateway.get(
            "/v1/users/me/samples:queryBuckets",
            headers=auth,
            params={
                "metricType": "METRIC_TYPE_HEART_RATE",
                "width": "BUCKET_WIDTH_DAY",
                "interval.startTime": "2024-05-01T00:00:00Z",
                "interval.endTime": "2024-05-03T00:00:00Z",
            },
        )
    )
    assert buckets["timeZone"] == "Europe/Paris"
    assert [b["startTime"] for b in buckets["buckets"]] == ["2024-05-01T22:00:00Z"]
    policy = await ok(await gateway.get("/v1/users/me/dayAttributionPolicy", headers=auth))
    assert policy["timeZone"] == "Europe/Paris"
    assert (await ok(await gateway.get("/v1/users/me/dailySummaries/2024-05-02", headers=auth)))["metrics"]
