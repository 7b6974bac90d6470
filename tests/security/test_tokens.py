"""Forged, stale and malformed tokens are refused at the gateway and again at every service."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from vitalis_cli.local_secrets import SIGNING_KEY_SECRET
from vitalis_cli.platform import Platform
from vitalis_cli.project import find_project_root
from vitalis_cli.testing import SignedUpUser, import_generated_modules, message_class, sign_up
from vitalis_gateway.api import Method, load_api_surface
from vitalis_identity.domain.keys import KeySchedule
from vitalis_identity.keyring import KeyRing
from vitalis_runtime.auth import JwksCache, TokenVerifier
from vitalis_runtime.catalog import SERVICES, ServiceSpec
from vitalis_runtime.db import Database

pytestmark = [pytest.mark.security, pytest.mark.timeout(300)]

Forge = Callable[[SignedUpUser, Platform], Awaitable[str]]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    return header, claims


async def _identity_signed(
    platform: Platform,
    user: SignedUpUser,
    *,
    at: datetime,
    issuer: str = "vitalis",
    audience: str = "vitalis-api",
) -> str:
    db = await Database.connect(platform.config.database_url, role="vitalis_identity_app", schema="identity")
    try:
        keyring = KeyRing(
            db,
            secret=platform.config.secrets[SIGNING_KEY_SECRET],
            schedule=KeySchedule(),
            issuer=issuer,
            audience=audience,
            clock=lambda: at,
        )
        await keyring.refresh()
        token, _ = await keyring.sign_access_token(
            user_id=uuid.UUID(user.user_id), session_id=uuid.uuid4(), account_id=uuid.uuid4()
        )
        return token
    finally:
        await db.close()


async def alg_none(user: SignedUpUser, platform: Platform) -> str:
    header, claims = _parts(user.access_token)
    return f"{_b64(json.dumps({**header, 'alg': 'none'}).encode())}.{_b64(json.dumps(claims).encode())}."


async def hs256_with_the_public_key(user: SignedUpUser, platform: Platform) -> str:
    async with httpx.AsyncClient(base_url=platform.gateway_url) as client:
        jwks = (await client.get("/.well-known/jwks.json")).json()
    header, claims = _parts(user.access_token)
    jwk = next(key for key in jwks["keys"] if key["kid"] == header["kid"])
    public = jwt.PyJWK(jwk).key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = (
        f"{_b64(json.dumps({**header, 'alg': 'HS256'}).encode())}.{_b64(json.dumps(claims).encode())}"
    )
    signature = hmac.new(public, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


async def unknown_kid(user: SignedUpUser, platform: Platform) -> str:
    _, claims = _parts(user.access_token)
    return jwt.encode(claims, ec.generate_private_key(ec.SECP256R1()), "ES256", headers={"kid": "unknown"})


async def tampered_payload(user: SignedUpUser, platform: Platform) -> str:
    header_part, _, signature = user.access_token.split(".")
    _, claims = _parts(user.access_token)
    claims["sub"] = str(uuid.uuid4())
    return f"{header_part}.{_b64(json.dumps(claims).encode())}.{signature}"


async def expired(user: SignedUpUser, platform: Platform) -> str:
    return await _identity_signed(platform, user, at=datetime.now(UTC) - timedelta(hours=2))


async def not_yet_valid(user: SignedUpUser, platform: Platform) -> str:
    return await _identity_signed(platform, user, at=datetime.now(UTC) + timedelta(hours=2))


async def wrong_issuer(user: SignedUpUser, platform: Platform) -> str:
    return await _identity_signed(platform, user, at=datetime.now(UTC), issuer="https://evil.example")


async def wrong_audience(user: SignedUpUser, platform: Platform) -> str:
    return await _identity_signed(platform, user, at=datetime.now(UTC), audience="another-api")


async def oversize(user: SignedUpUser, platform: Platform) -> str:
    header_part, payload, signature = user.access_token.split(".")
    return f"{header_part}.{payload}{'A' * 64 * 1024}.{signature}"


async def garbage(user: SignedUpUser, platform: Platform) -> str:
    return "not.a.jwt"


FORGERIES: dict[str, Forge] = {
    "alg=none": alg_none,
    "HS256 signed with the public key": hs256_with_the_public_key,
    "unknown kid": unknown_kid,
    "tampered payload": tampered_payload,
    "expired": expired,
    "not yet valid": not_yet_valid,
    "wrong issuer": wrong_issuer,
    "wrong audience": wrong_audience,
    "oversize": oversize,
    "garbage": garbage,
}


def service_probes() -> list[tuple[ServiceSpec, Method]]:
    """One public unary method of every service, to present tokens to."""
    import_generated_modules()
    surface = load_api_surface(find_project_root(Path.cwd()) / "gen" / "descriptors" / "vitalis.binpb")
    probes = []
    for spec in SERVICES:
        methods = [
            m
            for m in surface.methods()
            if m.service.startswith(f"{spec.proto_package}.") and m.is_public and not m.is_streaming
        ]
        probes.append((spec, methods[0]))
    return probes


@pytest.fixture
async def victim(gateway: httpx.AsyncClient) -> SignedUpUser:
    return await sign_up(gateway)


@pytest.mark.parametrize("forgery", FORGERIES, ids=list(FORGERIES))
async def test_a_forged_token_is_refused_by_the_gateway_and_by_every_service(
    forgery: str,
    gateway: httpx.AsyncClient,
    platform: Platform,
    victim: SignedUpUser,
    figure: Callable[[str, object, str, bool], None],
) -> None:
    token = await FORGERIES[forgery](victim, platform)
    response = await gateway.get("/v1/users/me", headers={"authorization": f"Bearer {token}"})
    accepted = int(response.status_code < 400)
    # Envoy answers 403 for a token meant for another audience: refused either way.
    assert response.status_code in (400, 401, 403, 431), response.text
    bearer = (("authorization", f"Bearer {token}"),)
    for spec, method in service_probes():
        async with grpc.aio.insecure_channel(platform.service_target(spec.name)) as channel:
            call = channel.unary_unary(
                method.grpc_path,
                message_class(method.input_type).SerializeToString,
                message_class(method.output_type).FromString,
            )
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await call(message_class(method.input_type)(), metadata=bearer, timeout=10)
        # gRPC itself refuses metadata beyond its limit before any code of the service runs.
        refusals = {grpc.StatusCode.UNAUTHENTICATED} | (
            {grpc.StatusCode.RESOURCE_EXHAUSTED} if forgery == "oversize" else set()
        )
        assert raised.value.code() in refusals, (spec.name, raised.value)
    figure(f"token accepted: {forgery}", accepted, "0", accepted == 0)


async def test_the_genuine_token_is_accepted(gateway: httpx.AsyncClient, victim: SignedUpUser) -> None:
    response = await gateway.get("/v1/users/me", headers=victim.headers)
    assert response.status_code == 200, response.text


FORGED_HEADERS = {
    "x-vitalis-user-id": str(uuid.uuid4()),
    "x-jwt-payload": _b64(json.dumps({"sub": str(uuid.uuid4())}).encode()),
    "x-user-id": str(uuid.uuid4()),
    "x-forwarded-user": "admin",
}
EXEMPT_ROUTES = [
    ("GET", "/healthz", None),
    ("GET", "/.well-known/jwks.json", None),
    ("POST", "/v1/auth:signIn", {"email": "nobody@example.com", "password": "wrong password 123"}),
]


@pytest.mark.parametrize(("verb", "path", "body"), EXEMPT_ROUTES, ids=[r[1] for r in EXEMPT_ROUTES])
async def test_forged_identity_headers_change_nothing_on_exempt_routes(
    gateway: httpx.AsyncClient, verb: str, path: str, body: dict[str, str] | None
) -> None:
    plain = await gateway.request(verb, path, json=body)
    forged = await gateway.request(verb, path, json=body, headers=FORGED_HEADERS)
    assert forged.status_code == plain.status_code


async def test_forged_identity_headers_without_a_token_are_401(gateway: httpx.AsyncClient) -> None:
    response = await gateway.get("/v1/users/me", headers=FORGED_HEADERS)
    assert response.status_code == 401


PATH_TRICKS = [
    "/v1/auth:signIn/../users/me",
    "/v1/auth:signIn/..%2Fusers/me",
    "//v1/users/me",
    "/v1//users/me",
    "/healthz/../v1/users/me",
    "/.well-known/jwks.json/../../v1/users/me",
    "/v1/users/me%2F",
    "/v1/users/./me",
    "/V1/users/me",
]


@pytest.mark.parametrize("path", PATH_TRICKS)
async def test_path_tricks_do_not_bypass_the_jwt_rules(
    gateway: httpx.AsyncClient, path: str, figure: Callable[[str, object, str, bool], None]
) -> None:
    response = await gateway.get(path)
    figure(
        f"path trick reached a user: {path}",
        int(response.status_code < 300),
        "0",
        response.status_code >= 400,
    )
    assert response.status_code in (400, 401, 404), (path, response.status_code, response.text)


@pytest.fixture
def unreachable_jwks() -> TokenVerifier:
    async def fetch() -> dict[str, Any]:
        raise ConnectionError("identity is unreachable")

    return TokenVerifier(JwksCache(fetch), issuer="vitalis", audience="vitalis-api")


async def test_services_fail_closed_when_the_jwks_cannot_be_fetched(
    unreachable_jwks: TokenVerifier, victim: SignedUpUser
) -> None:
    from vitalis_runtime.errors import Unauthenticated

    with pytest.raises(Unauthenticated) as raised:
        await unreachable_jwks.verify(victim.access_token)
    assert raised.value.reason == "JWKS_UNAVAILABLE"
