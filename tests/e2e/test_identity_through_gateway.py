"""The first vertical slice through a real Envoy: sign-up, sign-in, the caller's profile, and the
edge's guarantees — JWT verification, stripped identity headers, precise errors, no way around it."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from grpc_status import rpc_status

from vitalis.identity.v1 import (
    auth_service_pb2,
    auth_service_pb2_grpc,
    user_service_pb2,
    user_service_pb2_grpc,
)
from vitalis_cli.platform import Platform
from vitalis_identity.domain.keys import KeySchedule
from vitalis_identity.keyring import KeyRing
from vitalis_runtime.db import Database

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]
PASSWORD = "correct horse battery staple"


async def sign_up(gateway: httpx.AsyncClient, *, given_name: str = "Ada") -> dict[str, Any]:
    email = f"{uuid.uuid4().hex[:10]}@example.com"
    response = await gateway.post(
        "/v1/auth:signUp",
        json={"email": email, "password": PASSWORD, "givenName": given_name, "timeZone": "Europe/London"},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    body["email"] = email
    return body


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def unsigned_token(claims: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


async def test_healthz_answers_without_a_token(gateway: httpx.AsyncClient) -> None:
    response = await gateway.get("/healthz")
    assert response.status_code == 200


async def test_sign_up_sign_in_and_read_my_profile(gateway: httpx.AsyncClient) -> None:
    created = await sign_up(gateway, given_name="Grace")
    assert created["user"]["givenName"] == "Grace"
    signed_in = await gateway.post("/v1/auth:signIn", json={"email": created["email"], "password": PASSWORD})
    assert signed_in.status_code == 200, signed_in.text
    tokens = signed_in.json()["tokens"]
    assert tokens["tokenType"] == "Bearer"

    me = await gateway.get("/v1/users/me", headers=bearer(tokens["accessToken"]))

    assert me.status_code == 200, me.text
    assert me.json()["name"] == created["user"]["name"]
    assert me.json()["email"] == created["email"]
    assert me.json()["timeZone"] == "Europe/London"


async def test_jwks_is_public_and_lists_the_signing_key(gateway: httpx.AsyncClient) -> None:
    created = await sign_up(gateway)
    kid = jwt.get_unverified_header(created["tokens"]["accessToken"])["kid"]

    response = await gateway.get("/.well-known/jwks.json")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert kid in {key["kid"] for key in response.json()["keys"]}


async def test_missing_token_is_401(gateway: httpx.AsyncClient) -> None:
    response = await gateway.get("/v1/users/me")
    assert response.status_code == 401


async def test_alg_none_token_is_401(gateway: httpx.AsyncClient) -> None:
    created = await sign_up(gateway)
    claims = jwt.decode(created["tokens"]["accessToken"], options={"verify_signature": False})
    response = await gateway.get("/v1/users/me", headers=bearer(unsigned_token(claims)))
    assert response.status_code == 401


async def test_token_signed_by_another_key_is_401(gateway: httpx.AsyncClient) -> None:
    created = await sign_up(gateway)
    real = created["tokens"]["accessToken"]
    claims = jwt.decode(real, options={"verify_signature": False})
    forged = jwt.encode(
        claims,
        ec.generate_private_key(ec.SECP256R1()),
        algorithm="ES256",
        headers={"kid": jwt.get_unverified_header(real)["kid"]},
    )
    response = await gateway.get("/v1/users/me", headers=bearer(forged))
    assert response.status_code == 401


async def test_expired_token_is_401_even_with_a_valid_signature(
    gateway: httpx.AsyncClient, platform: Platform, signing_secret: str
) -> None:
    created = await sign_up(gateway)
    db = await Database.connect(platform.config.database_url, role="vitalis_identity_app", schema="identity")
    try:
        two_hours_ago = datetime.now(UTC) - timedelta(hours=2)
        keyring = KeyRing(
            db,
            secret=signing_secret,
            schedule=KeySchedule(),
            issuer="vitalis",
            audience="vitalis-api",
            clock=lambda: two_hours_ago,
        )
        await keyring.refresh()
        user_id = uuid.UUID(created["user"]["name"].removeprefix("users/"))
        expired, expire_time = await keyring.sign_access_token(
            user_id=user_id, session_id=uuid.uuid4(), account_id=uuid.uuid4()
        )
    finally:
        await db.close()
    assert expire_time < datetime.now(UTC)
    response = await gateway.get("/v1/users/me", headers=bearer(expired))
    assert response.status_code == 401


async def test_forged_identity_header_is_ignored(gateway: httpx.AsyncClient) -> None:
    victim = await sign_up(gateway, given_name="Victim")
    attacker = await sign_up(gateway, given_name="Attacker")
    victim_id = victim["user"]["name"].removeprefix("users/")
    forged = {"x-vitalis-user-id": victim_id, "x-user-id": victim_id, "x-jwt-payload": "e30"}

    response = await gateway.get(
        "/v1/users/me", headers={**bearer(attacker["tokens"]["accessToken"]), **forged}
    )

    assert response.status_code == 200
    assert response.json()["name"] == attacker["user"]["name"]


async def test_another_users_profile_is_not_found(gateway: httpx.AsyncClient) -> None:
    owner = await sign_up(gateway)
    other = await sign_up(gateway)
    response = await gateway.get(
        f"/v1/{owner['user']['name']}", headers=bearer(other["tokens"]["accessToken"])
    )
    assert response.status_code == 404
    never_existed = await gateway.get(
        f"/v1/users/{uuid.uuid4()}", headers=bearer(other["tokens"]["accessToken"])
    )
    assert never_existed.status_code == 404
    assert response.json()["message"].replace(owner["user"]["name"], "X") == never_existed.json()[
        "message"
    ].replace(never_existed.url.path.removeprefix("/v1/"), "X")


async def test_malformed_json_body_is_400(gateway: httpx.AsyncClient) -> None:
    response = await gateway.post(
        "/v1/auth:signUp",
        content=b'{"email": "a@example.com", "password": ',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    assert response.text
    assert response.json()["code"] == 3  # INVALID_ARGUMENT, as google.rpc.Status JSON
    assert "Expected a value" in response.json()["message"]


async def test_invalid_field_is_400_with_the_field_named(gateway: httpx.AsyncClient) -> None:
    response = await gateway.post("/v1/auth:signUp", json={"email": "not-an-email", "password": PASSWORD})
    assert response.status_code == 400
    body = response.json()
    assert "email" in body["message"]
    violations = [v for detail in body.get("details", []) for v in detail.get("fieldViolations", [])]
    assert [v["field"] for v in violations] == ["email"]


async def test_unknown_path_is_404(gateway: httpx.AsyncClient) -> None:
    response = await gateway.get("/v1/no/such/thing")
    assert response.status_code == 404


async def test_grpc_errors_map_to_aip_http_statuses(gateway: httpx.AsyncClient) -> None:
    created = await sign_up(gateway)
    duplicate = await gateway.post("/v1/auth:signUp", json={"email": created["email"], "password": PASSWORD})
    assert duplicate.status_code == 409
    wrong_password = await gateway.post(
        "/v1/auth:signIn", json={"email": created["email"], "password": "wrong password!"}
    )
    assert wrong_password.status_code == 401
    stale = await gateway.patch(
        f"/v1/{created['user']['name']}",
        params={"updateMask": "givenName"},
        json={"givenName": "Changed", "etag": "stale"},
        headers=bearer(created["tokens"]["accessToken"]),
    )
    assert stale.status_code == 409
    assert stale.json()["details"][0]["reason"] == "ETAG_MISMATCH"


async def test_get_user_over_grpc_returns_the_profile(gateway: httpx.AsyncClient, platform: Platform) -> None:
    created = await sign_up(gateway, given_name="Lin")
    async with grpc.aio.insecure_channel(platform.service_target("identity")) as channel:
        users = user_service_pb2_grpc.UserServiceStub(channel)
        user = await users.GetUser(
            user_service_pb2.GetUserRequest(name="users/me"),
            metadata=[("authorization", f"Bearer {created['tokens']['accessToken']}")],
            timeout=10,
        )
    assert user.name == created["user"]["name"]
    assert user.given_name == "Lin"


async def test_direct_call_with_made_up_identity_metadata_is_unauthenticated(platform: Platform) -> None:
    async with grpc.aio.insecure_channel(platform.service_target("identity")) as channel:
        users = user_service_pb2_grpc.UserServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await users.GetUser(
                user_service_pb2.GetUserRequest(name="users/me"),
                metadata=[("x-vitalis-user-id", str(uuid.uuid4())), ("x-user-id", str(uuid.uuid4()))],
                timeout=10,
            )
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_refresh_token_reuse_revokes_the_session(platform: Platform) -> None:
    async with grpc.aio.insecure_channel(platform.service_target("identity")) as channel:
        auth = auth_service_pb2_grpc.AuthServiceStub(channel)
        created = await auth.SignUp(
            auth_service_pb2.SignUpRequest(email=f"{uuid.uuid4().hex[:10]}@example.com", password=PASSWORD),
            timeout=10,
        )
        first = created.tokens.refresh_token
        rotated = await auth.RefreshSession(
            auth_service_pb2.RefreshSessionRequest(refresh_token=first), timeout=10
        )
        with pytest.raises(grpc.aio.AioRpcError) as reused:
            await auth.RefreshSession(auth_service_pb2.RefreshSessionRequest(refresh_token=first), timeout=10)
        assert reused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        status = rpc_status.from_call(reused.value)
        assert status is not None
        with pytest.raises(grpc.aio.AioRpcError) as revoked:
            await auth.RefreshSession(
                auth_service_pb2.RefreshSessionRequest(refresh_token=rotated.tokens.refresh_token), timeout=10
            )
        assert revoked.value.code() == grpc.StatusCode.UNAUTHENTICATED
