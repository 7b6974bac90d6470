"""Identity's resources through a real Envoy: every REST binding, browser cookies, key rotation,
share grants honoured by the biomarkers service, and export/erasure across the running services."""

from __future__ import annotations

import asyncio
import io
import json
import uuid
import zipfile
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import asyncpg
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from vitalis.identity.v1 import signing_key_internal_service_pb2 as keys_pb2
from vitalis.identity.v1 import signing_key_internal_service_pb2_grpc as keys_grpc
from vitalis_cli.local_secrets import SERVICE_TOKEN_SECRET
from vitalis_cli.platform import Platform
from vitalis_client import create_channel
from vitalis_identity.keyring import fernet_for
from vitalis_runtime.service_auth import ServiceCredentials

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]
PASSWORD = "correct horse battery staple"


async def sign_up(gateway: httpx.AsyncClient, given_name: str = "Ada") -> dict[str, Any]:
    email = f"{uuid.uuid4().hex[:10]}@example.com"
    response = await gateway.post(
        "/v1/auth:signUp", json={"email": email, "password": PASSWORD, "givenName": given_name}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return {
        "email": email,
        "name": body["user"]["name"],
        "account": body["user"]["account"],
        "headers": {"authorization": f"Bearer {body['tokens']['accessToken']}"},
        "tokens": body["tokens"],
    }


def without_request_id(body: dict[str, Any]) -> dict[str, Any]:
    details = [d for d in body.get("details", []) if not d.get("@type", "").endswith("RequestInfo")]
    return {**body, "details": details}


def status_reason(response: httpx.Response) -> tuple[int, str]:
    body = response.json()
    reasons = [d.get("reason", "") for d in body.get("details", []) if "reason" in d]
    return response.status_code, reasons[0] if reasons else ""


async def test_users_preferences_and_accounts_through_the_gateway(gateway: httpx.AsyncClient) -> None:
    ada = await sign_up(gateway)
    h = ada["headers"]
    me = (await gateway.get("/v1/users/me", headers=h)).json()
    stale = await gateway.patch(
        "/v1/users/me?updateMask=givenName", headers=h, json={"givenName": "X", "etag": "stale"}
    )
    assert stale.status_code == 409
    updated = await gateway.patch(
        "/v1/users/me?updateMask=givenName", headers=h, json={"givenName": "Augusta", "etag": me["etag"]}
    )
    assert updated.json()["givenName"] == "Augusta"
    weak = await gateway.post(
        "/v1/users/me:changePassword", headers=h, json={"currentPassword": PASSWORD, "newPassword": "short"}
    )
    assert status_reason(weak) == (400, "PASSWORD_TOO_SHORT")
    wrong = await gateway.post(
        "/v1/users/me:changePassword",
        headers=h,
        json={"currentPassword": "not my password", "newPassword": "another long passphrase"},
    )
    assert wrong.status_code == 401
    changed = await gateway.post(
        "/v1/users/me:changePassword",
        headers=h,
        json={"currentPassword": PASSWORD, "newPassword": "another long passphrase"},
    )
    assert changed.status_code == 200, changed.text
    prefs = (await gateway.get("/v1/users/me/preferences", headers=h)).json()
    assert prefs["languageCode"] == "en-US"
    new_prefs = await gateway.patch(
        "/v1/users/me/preferences?updateMask=unitOverrides,notifications.alertEmailEnabled",
        headers=h,
        json={"unitOverrides": {"glucose": "mg/dL"}, "notifications": {"alertEmailEnabled": True}},
    )
    assert new_prefs.json()["unitOverrides"] == {"glucose": "mg/dL"}
    bad_unit = await gateway.patch(
        "/v1/users/me/preferences?updateMask=unitOverrides",
        headers=h,
        json={"unitOverrides": {"glucose": "kg"}},
    )
    assert bad_unit.status_code == 400
    account = (await gateway.get(f"/v1/{ada['account']}", headers=h)).json()
    assert account["tier"] == "ACCOUNT_TIER_FREE"
    renamed = await gateway.patch(
        f"/v1/{ada['account']}?updateMask=displayName",
        headers=h,
        json={"displayName": "Lovelace household", "etag": account["etag"]},
    )
    assert renamed.json()["displayName"] == "Lovelace household"
    assert (
        await gateway.patch(
            f"/v1/{ada['account']}?updateMask=displayName",
            headers=h,
            json={"displayName": "x", "etag": account["etag"]},
        )
    ).status_code == 409
    deleted = (await gateway.delete(f"/v1/{ada['account']}", headers=h)).json()
    assert deleted["state"] == "ACCOUNT_STATE_DELETED"
    restored = (await gateway.post(f"/v1/{ada['account']}:undelete", headers=h, json={})).json()
    assert restored["state"] == "ACCOUNT_STATE_ACTIVE"
    soft = (await gateway.delete("/v1/users/me", headers=h)).json()
    assert soft["state"] == "USER_STATE_DELETED"
    back = (await gateway.post("/v1/users/me:undelete", headers=h, json={})).json()
    assert back["state"] == "USER_STATE_ACTIVE"
    bob = await sign_up(gateway, "Bob")
    assert (await gateway.get(f"/v1/{ada['account']}", headers=bob["headers"])).status_code == 404


async def test_sessions_consents_and_audit_log_through_the_gateway(gateway: httpx.AsyncClient) -> None:
    ada = await sign_up(gateway)
    h = ada["headers"]
    second = (
        await gateway.post("/v1/auth:signIn", json={"email": ada["email"], "password": PASSWORD})
    ).json()
    sessions = (await gateway.get("/v1/users/me/sessions", headers=h)).json()["sessions"]
    assert len(sessions) == 2
    assert [s["current"] for s in sessions].count(True) == 1
    one = (await gateway.get(f"/v1/{second['tokens']['session']}", headers=h)).json()
    assert one["state"] == "SESSION_STATE_ACTIVE"
    revoked = (await gateway.post(f"/v1/{second['tokens']['session']}:revoke", headers=h, json={})).json()
    assert revoked["revokeReason"] == "SESSION_REVOKE_REASON_USER_REVOKED"
    refused = await gateway.post("/v1/auth:refresh", json={"refreshToken": second["tokens"]["refreshToken"]})
    assert refused.status_code == 401
    consent = (
        await gateway.post(
            "/v1/users/me/consents:grant",
            headers=h,
            json={"type": "CONSENT_TYPE_HEALTH_DATA_PROCESSING", "version": "2025-01-15"},
        )
    ).json()
    assert consent["state"] == "CONSENT_STATE_GRANTED"
    assert (await gateway.get(f"/v1/{consent['name']}", headers=h)).json()["version"] == "2025-01-15"
    listed = (await gateway.get("/v1/users/me/consents", headers=h)).json()["consents"]
    assert [c["name"] for c in listed] == [consent["name"]]
    assert (
        await gateway.post(f"/v1/{consent['name']}:revoke", headers=h, json={"etag": "old"})
    ).status_code == 409
    withdrawn = (await gateway.post(f"/v1/{consent['name']}:revoke", headers=h, json={})).json()
    assert withdrawn["state"] == "CONSENT_STATE_REVOKED"
    events = (await gateway.get("/v1/users/me/consents/-/events", headers=h)).json()["consentEvents"]
    assert [e["action"] for e in events] == ["CONSENT_ACTION_REVOKE", "CONSENT_ACTION_GRANT"]
    audit = (await gateway.get("/v1/users/me/auditLogEntries", headers=h, params={"pageSize": 50})).json()
    assert {e["action"] for e in audit["auditLogEntries"]} >= {"AUDIT_ACTION_PERMISSION_CHANGE"}
    bad = await gateway.get("/v1/users/me/auditLogEntries", headers=h, params={"filter": "bogus = 1"})
    assert bad.status_code == 400


async def test_sign_up_with_an_existing_email_is_409_and_wrong_password_says_nothing_more(
    gateway: httpx.AsyncClient,
) -> None:
    ada = await sign_up(gateway)
    again = await gateway.post("/v1/auth:signUp", json={"email": ada["email"].upper(), "password": PASSWORD})
    assert again.status_code == 409
    wrong = await gateway.post("/v1/auth:signIn", json={"email": ada["email"], "password": "wrong password"})
    unknown = await gateway.post(
        "/v1/auth:signIn", json={"email": "x" + ada["email"], "password": "wrong password"}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert without_request_id(wrong.json()) == without_request_id(unknown.json())


async def test_browser_tokens_travel_as_httponly_cookies_accepted_by_the_gateway(
    gateway: httpx.AsyncClient,
) -> None:
    email = f"{uuid.uuid4().hex[:10]}@example.com"
    response = await gateway.post(
        "/v1/auth:signUp",
        json={"email": email, "password": PASSWORD, "tokenDelivery": "TOKEN_DELIVERY_COOKIE"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["tokens"]["accessToken"] == ""
    cookies = response.headers.get_list("set-cookie")
    access = next(c for c in cookies if c.startswith("vitalis_access_token="))
    refresh = next(c for c in cookies if c.startswith("vitalis_refresh_token="))
    for cookie in (access, refresh):
        assert "HttpOnly" in cookie
        assert "Secure" in cookie
        assert "SameSite=Strict" in cookie
    assert "Path=/v1/auth" in refresh
    access_token = access.split(";")[0].split("=", 1)[1]
    refresh_token = refresh.split(";")[0].split("=", 1)[1]
    me = await gateway.get("/v1/users/me", headers={"cookie": f"vitalis_access_token={access_token}"})
    assert me.status_code == 200, me.text
    assert me.json()["email"] == email
    forged = await gateway.get("/v1/users/me", headers={"cookie": "vitalis_access_token=not.a.token"})
    assert forged.status_code == 401
    refreshed = await gateway.post(
        "/v1/auth:refresh", json={}, headers={"cookie": f"vitalis_refresh_token={refresh_token}"}
    )
    assert refreshed.status_code == 200, refreshed.text
    renewed = refreshed.headers.get_list("set-cookie")
    assert any(c.startswith("vitalis_access_token=") and "Max-Age=0" not in c for c in renewed)
    new_access = (
        next(c for c in renewed if c.startswith("vitalis_access_token=")).split(";")[0].split("=", 1)[1]
    )
    new_refresh = (
        next(c for c in renewed if c.startswith("vitalis_refresh_token=")).split(";")[0].split("=", 1)[1]
    )
    out = await gateway.post(
        "/v1/auth:signOut",
        json={},
        headers={"cookie": f"vitalis_access_token={new_access}; vitalis_refresh_token={new_refresh}"},
    )
    assert out.status_code == 200, out.text
    assert all("Max-Age=0" in c for c in out.headers.get_list("set-cookie"))
    after = await gateway.post(
        "/v1/auth:refresh", json={}, headers={"cookie": f"vitalis_refresh_token={new_refresh}"}
    )
    assert after.status_code == 401


async def test_tokens_signed_before_and_after_a_rotation_both_pass_envoy(
    gateway: httpx.AsyncClient, platform: Platform, signing_secret: str
) -> None:
    ada = await sign_up(gateway)
    before = ada["headers"]
    credentials = ServiceCredentials(platform.config.secrets[SERVICE_TOKEN_SECRET], "operator")
    async with create_channel(platform.service_target("identity")) as channel:
        rotated = await keys_grpc.SigningKeyInternalServiceStub(channel).RotateSigningKey(
            keys_pb2.RotateSigningKeyRequest(request_id=str(uuid.uuid4())),
            metadata=credentials.metadata(uuid.uuid4()),
        )
    # The new key is published at once and signs from its activation time; a token it signs now
    # (with the private key as stored, decrypted with the service's secret) must pass as soon as
    # Envoy has refetched the JWKS, without a restart.
    conn = await asyncpg.connect(platform.config.database_url)
    try:
        encrypted = await conn.fetchval(
            "SELECT private_key FROM identity.signing_keys WHERE kid = $1", rotated.key_id
        )
    finally:
        await conn.close()
    private_key = serialization.load_pem_private_key(
        fernet_for(signing_secret).decrypt(encrypted), password=None
    )
    now = datetime.now(UTC)
    user_id = ada["name"].removeprefix("users/")
    claims = {
        "iss": "vitalis",
        "aud": "vitalis-api",
        "sub": user_id,
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(minutes=5)).timestamp()),
        "sid": str(uuid.uuid4()),
    }
    assert isinstance(private_key, ec.EllipticCurvePrivateKey)
    token = jwt.encode(claims, private_key, algorithm="ES256", headers={"kid": rotated.key_id})
    after = {"authorization": f"Bearer {token}"}
    status = 0
    for _ in range(90):
        status = (await gateway.get("/v1/users/me", headers=after)).status_code
        if status == 200:
            break
        await asyncio.sleep(1)
    assert status == 200
    assert (await gateway.get("/v1/users/me", headers=before)).status_code == 200


async def create_panel(gateway: httpx.AsyncClient, owner: dict[str, Any]) -> str:
    found = await gateway.get("/v1/biomarkers:search", params={"query": "glucose"}, headers=owner["headers"])
    assert found.status_code == 200, found.text
    biomarker = found.json()["results"][0]["biomarker"]["name"]
    created = await gateway.post(
        "/v1/users/me/panels",
        headers=owner["headers"],
        json={
            "collectionTime": "2025-03-01T08:00:00Z",
            "provenance": {"kind": "PROVENANCE_KIND_MANUAL"},
            "markers": [{"biomarker": biomarker, "value": 5.2, "reportedUnit": "mmol/L"}],
        },
    )
    assert created.status_code == 200, created.text
    return str(created.json()["name"])


async def test_a_grantee_reads_panels_only_within_scope_and_time(gateway: httpx.AsyncClient) -> None:
    owner, grantee = await sign_up(gateway), await sign_up(gateway, "Dr Lee")
    panel = await create_panel(gateway, owner)
    assert (await gateway.get(f"/v1/{panel}", headers=grantee["headers"])).status_code == 404
    expire = (datetime.now(UTC) + timedelta(days=7)).isoformat().replace("+00:00", "Z")
    wearables_only = await gateway.post(
        "/v1/users/me/shareGrants",
        headers=owner["headers"],
        json={"grantee": grantee["name"], "scopes": ["SHARE_SCOPE_WEARABLES"], "expireTime": expire},
    )
    assert wearables_only.status_code == 200, wearables_only.text
    assert (await gateway.get(f"/v1/{panel}", headers=grantee["headers"])).status_code == 404
    grant = (
        await gateway.post(
            "/v1/users/me/shareGrants",
            headers=owner["headers"],
            json={
                "granteeEmail": grantee["email"],
                "scopes": ["SHARE_SCOPE_BIOMARKERS"],
                "expireTime": expire,
            },
        )
    ).json()
    read = await gateway.get(f"/v1/{panel}", headers=grantee["headers"])
    assert read.status_code == 200, read.text
    received = (await gateway.get("/v1/users/me/shareGrants:received", headers=grantee["headers"])).json()
    assert {g["name"] for g in received["shareGrants"]} == {grant["name"], wearables_only.json()["name"]}
    assert (await gateway.get(f"/v1/{grant['name']}", headers=grantee["headers"])).status_code == 200
    # Spaces as %20: the transcoder keeps a '+' in a query value literally.
    given_response = await gateway.get(
        f"/v1/users/me/shareGrants?filter={quote('scopes: SHARE_SCOPE_BIOMARKERS')}", headers=owner["headers"]
    )
    assert given_response.status_code == 200, given_response.text
    given = given_response.json()
    assert [g["name"] for g in given["shareGrants"]] == [grant["name"]]
    assert (
        await gateway.post(f"/v1/{grant['name']}:revoke", headers=owner["headers"], json={"etag": "x"})
    ).status_code == 409
    revoked = (await gateway.post(f"/v1/{grant['name']}:revoke", headers=owner["headers"], json={})).json()
    assert revoked["state"] == "SHARE_GRANT_STATE_REVOKED"
    assert (await gateway.get(f"/v1/{panel}", headers=grantee["headers"])).status_code == 404


ALL_SERVICES = {"identity", "ingestion", "biomarkers", "documents", "insights"}


async def finished(
    gateway: httpx.AsyncClient, name: str, headers: dict[str, str], done: set[str]
) -> dict[str, Any]:
    job: dict[str, Any] = {}
    for _ in range(240):
        job = (await gateway.get(f"/v1/{name}", headers=headers)).json()
        if job["state"] in done:
            return job
        await asyncio.sleep(0.25)
    raise AssertionError(f"{name} did not finish: {job}")


def failed_services(job: dict[str, Any]) -> dict[str, int]:
    return {s["service"]: s["error"]["code"] for s in job["services"] if s["state"] == "JOB_STATE_FAILED"}


async def test_export_and_erasure_reach_every_running_service(gateway: httpx.AsyncClient) -> None:
    ada = await sign_up(gateway)
    h = ada["headers"]
    panel = await create_panel(gateway, ada)
    created = (await gateway.post("/v1/users/me/exportJobs", headers=h, json={})).json()
    job = await finished(gateway, created["name"], h, {"JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED"})
    assert {s["service"] for s in job["services"]} == ALL_SERVICES
    assert failed_services(job) == {}, job
    listed = (await gateway.get("/v1/users/me/exportJobs", headers=h)).json()["exportJobs"]
    assert [j["name"] for j in listed] == [job["name"]]
    download = await gateway.get(f"/v1/{job['name']}:download", headers=h)
    assert job["state"] == "JOB_STATE_SUCCEEDED"
    assert download.status_code == 200, download.text
    with zipfile.ZipFile(io.BytesIO(download.content)) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        paths = [e["path"] for e in manifest["entries"]]
        assert "identity/profile.json" in paths
        biomarker_text = b"".join(archive.read(p) for p in paths if p.startswith("biomarkers/"))
        assert panel.encode() in biomarker_text
    bad = await gateway.post(
        "/v1/users/me/erasureJobs", headers=h, json={}, params={"confirmEmail": "someone@else.com"}
    )
    assert bad.status_code == 400
    erasure = (
        await gateway.post(
            "/v1/users/me/erasureJobs", headers=h, json={}, params={"confirmEmail": ada["email"]}
        )
    ).json()
    assert erasure["trigger"] == "ERASURE_TRIGGER_USER_REQUEST"
    assert (await gateway.get("/v1/users/me/erasureJobs", headers=h)).json()["erasureJobs"][0][
        "name"
    ] == erasure["name"]
    erasure = await finished(gateway, erasure["name"], h, {"JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED"})
    assert {s["service"] for s in erasure["services"]} == ALL_SERVICES
    # Every service has erased its part: the panel is gone.
    assert (await gateway.get(f"/v1/{panel}", headers=h)).status_code in {401, 404}
    signed_in = await gateway.post("/v1/auth:signIn", json={"email": ada["email"], "password": PASSWORD})
    assert signed_in.status_code == 401
    assert failed_services(erasure) == {}, erasure
    assert erasure["state"] == "JOB_STATE_SUCCEEDED"
