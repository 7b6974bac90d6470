"""Access-token verification against a cached JWKS: what is accepted, what is refused, and why."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from vitalis_runtime.auth import (
    JwksCache,
    Principal,
    TokenVerifier,
    bind_principal,
    current_principal,
    optional_principal,
    unbind_principal,
)
from vitalis_runtime.errors import Unauthenticated
from vitalis_runtime.testing_auth import LocalSigningKey


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Jwks:
    """A JWKS endpoint whose keys and availability a test controls, counting fetches."""

    def __init__(self, *keys: LocalSigningKey) -> None:
        self.keys = list(keys)
        self.fetches = 0
        self.failing = False

    async def fetch(self) -> Mapping[str, Any]:
        self.fetches += 1
        await asyncio.sleep(0)
        if self.failing:
            raise ConnectionError("identity is down")
        return {"keys": [key.public_jwk() for key in self.keys]}


@pytest.fixture
def key() -> LocalSigningKey:
    return LocalSigningKey.generate()


@pytest.fixture
def verifier(key: LocalSigningKey) -> TokenVerifier:
    return key.verifier()


def unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part(header)}.{part(claims)}."


def claims_of(token: str) -> dict[str, Any]:
    decoded: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return decoded


async def refused(verifier: TokenVerifier, token: str) -> Unauthenticated:
    with pytest.raises(Unauthenticated) as raised:
        await asyncio.wait_for(verifier.verify(token), timeout=5)
    return raised.value


async def test_a_valid_token_yields_its_principal(key: LocalSigningKey, verifier: TokenVerifier) -> None:
    user_id = uuid.uuid4()
    token = key.mint(user_id, scope="samples:read samples:write")

    principal = await asyncio.wait_for(verifier.verify(token), timeout=5)

    claims = claims_of(token)
    assert principal.user_id == user_id
    assert principal.subject == str(user_id)
    assert principal.session_id == claims["sid"]
    assert principal.account_id == claims["acc"]
    assert principal.scopes == frozenset({"samples:read", "samples:write"})
    assert principal.token == token
    assert principal.expire_time == datetime.fromtimestamp(claims["exp"], UTC)


async def test_the_token_never_appears_in_a_principals_repr(
    key: LocalSigningKey, verifier: TokenVerifier
) -> None:
    token = key.mint()

    principal = await asyncio.wait_for(verifier.verify(token), timeout=5)

    assert token not in repr(principal)


async def test_an_expired_token_is_refused(key: LocalSigningKey, verifier: TokenVerifier) -> None:
    token = key.mint(issued_at=datetime.now(UTC) - timedelta(minutes=10), lifetime=timedelta(minutes=5))

    error = await refused(verifier, token)

    assert error.reason == "TOKEN_EXPIRED"
    assert "expired" in error.message


async def test_a_token_expired_within_the_leeway_is_still_accepted(
    key: LocalSigningKey, verifier: TokenVerifier
) -> None:
    token = key.mint(issued_at=datetime.now(UTC) - timedelta(seconds=70), lifetime=timedelta(seconds=60))

    principal = await asyncio.wait_for(verifier.verify(token), timeout=5)

    assert principal.expire_time < datetime.now(UTC)


async def test_a_token_not_valid_yet_is_refused(key: LocalSigningKey, verifier: TokenVerifier) -> None:
    later = int((datetime.now(UTC) + timedelta(minutes=5)).timestamp())
    token = key.mint(nbf=later)

    error = await refused(verifier, token)

    assert "not valid yet" in error.message


async def test_a_token_from_another_issuer_is_refused(key: LocalSigningKey, verifier: TokenVerifier) -> None:
    error = await refused(verifier, key.mint(issuer="https://evil.example"))

    assert "issuer" in error.message


async def test_a_token_for_another_audience_is_refused(key: LocalSigningKey, verifier: TokenVerifier) -> None:
    error = await refused(verifier, key.mint(audience="another-api"))

    assert "audience" in error.message


async def test_an_unsigned_alg_none_token_is_refused(key: LocalSigningKey, verifier: TokenVerifier) -> None:
    claims = claims_of(key.mint())

    error = await refused(verifier, unsigned({"alg": "none", "typ": "JWT", "kid": key.kid}, claims))

    assert "algorithm 'none' is not accepted" in error.message


async def test_an_hmac_token_keyed_with_the_public_key_is_refused(
    key: LocalSigningKey, verifier: TokenVerifier
) -> None:
    public_pem = key.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = base64.urlsafe_b64encode(
        json.dumps({"alg": "HS256", "typ": "JWT", "kid": key.kid}).encode()
    ).rstrip(b"=")
    payload = base64.urlsafe_b64encode(json.dumps(claims_of(key.mint())).encode()).rstrip(b"=")
    signature = hmac.new(public_pem, header + b"." + payload, hashlib.sha256).digest()
    token = b".".join([header, payload, base64.urlsafe_b64encode(signature).rstrip(b"=")]).decode()

    error = await refused(verifier, token)

    assert "algorithm 'HS256' is not accepted" in error.message


async def test_a_token_signed_by_an_unknown_key_is_refused(verifier: TokenVerifier) -> None:
    stranger = LocalSigningKey.generate(kid="stranger")

    error = await refused(verifier, stranger.mint())

    assert error.reason == "UNKNOWN_SIGNING_KEY"


async def test_a_token_signed_by_another_key_under_a_known_kid_is_refused(
    key: LocalSigningKey, verifier: TokenVerifier
) -> None:
    impostor = LocalSigningKey.generate(kid=key.kid)

    error = await refused(verifier, impostor.mint())

    assert "signature does not verify" in error.message


async def test_a_token_whose_claims_were_altered_is_refused(
    key: LocalSigningKey, verifier: TokenVerifier
) -> None:
    header, _, signature = key.mint().split(".")
    altered = dict(claims_of(key.mint()), sub=str(uuid.uuid4()))
    payload = base64.urlsafe_b64encode(json.dumps(altered).encode()).rstrip(b"=").decode()

    error = await refused(verifier, f"{header}.{payload}.{signature}")

    assert "signature does not verify" in error.message


async def test_an_oversized_token_is_refused_before_any_parsing(
    key: LocalSigningKey, verifier: TokenVerifier
) -> None:
    error = await refused(verifier, key.mint(padding="x" * 9000))

    assert "larger than 8 KiB" in error.message


async def test_a_subject_that_is_not_a_user_id_is_refused(
    key: LocalSigningKey, verifier: TokenVerifier
) -> None:
    error = await refused(verifier, key.mint("service-account"))

    assert "subject is not a user id" in error.message


async def test_a_token_without_an_expiry_is_refused(key: LocalSigningKey, verifier: TokenVerifier) -> None:
    claims = claims_of(key.mint())
    del claims["exp"]
    token = jwt.encode(claims, key.private_key, algorithm="ES256", headers={"kid": key.kid})

    error = await refused(verifier, token)

    assert "lacks the 'exp' claim" in error.message


@pytest.mark.parametrize("garbage", ["", "abc", "a.b.c", "Bearer x"])
async def test_garbage_is_refused_as_malformed(verifier: TokenVerifier, garbage: str) -> None:
    error = await refused(verifier, garbage)

    assert error.reason == "INVALID_TOKEN"


def test_a_verifier_cannot_be_configured_with_symmetric_or_no_algorithms(key: LocalSigningKey) -> None:
    async def fetch() -> Mapping[str, Any]:
        return key.jwks()

    for algorithms in (("HS256",), ("none",), ("ES256", "HS512")):
        with pytest.raises(ValueError, match="cannot verify"):
            TokenVerifier(JwksCache(fetch), issuer="vitalis", audience="vitalis-api", algorithms=algorithms)


async def test_a_new_signing_key_is_fetched_when_a_token_names_it() -> None:
    old, new = LocalSigningKey.generate(), LocalSigningKey.generate()
    endpoint = Jwks(old)
    clock = FakeClock()
    verifier = TokenVerifier(JwksCache(endpoint.fetch, clock=clock), issuer="vitalis", audience="vitalis-api")
    await asyncio.wait_for(verifier.verify(old.mint()), timeout=5)

    endpoint.keys.append(new)
    clock.now += 6
    principal = await asyncio.wait_for(verifier.verify(new.mint()), timeout=5)

    assert isinstance(principal, Principal)
    assert endpoint.fetches == 2


async def test_unknown_key_ids_refetch_at_most_once_per_interval() -> None:
    known = LocalSigningKey.generate()
    endpoint = Jwks(known)
    clock = FakeClock()
    cache = JwksCache(endpoint.fetch, min_refresh_interval=5, clock=clock)
    await asyncio.wait_for(cache.key_for(known.kid), timeout=5)

    for attempt in range(20):
        with pytest.raises(Unauthenticated):
            await asyncio.wait_for(cache.key_for(f"forged-{attempt}"), timeout=5)
    assert endpoint.fetches == 1

    clock.now += 5
    with pytest.raises(Unauthenticated):
        await asyncio.wait_for(cache.key_for("forged-again"), timeout=5)
    assert endpoint.fetches == 2


async def test_concurrent_lookups_share_one_fetch() -> None:
    key = LocalSigningKey.generate()
    endpoint = Jwks(key)
    cache = JwksCache(endpoint.fetch, clock=FakeClock())

    found = await asyncio.wait_for(asyncio.gather(*(cache.key_for(key.kid) for _ in range(10))), timeout=5)

    assert len({id(jwk) for jwk in found}) == 1
    assert endpoint.fetches == 1


async def test_keys_are_refetched_after_their_ttl() -> None:
    key = LocalSigningKey.generate()
    endpoint = Jwks(key)
    clock = FakeClock()
    cache = JwksCache(endpoint.fetch, ttl_seconds=300, clock=clock)
    await asyncio.wait_for(cache.key_for(key.kid), timeout=5)

    clock.now += 299
    await asyncio.wait_for(cache.key_for(key.kid), timeout=5)
    assert endpoint.fetches == 1
    clock.now += 2
    await asyncio.wait_for(cache.key_for(key.kid), timeout=5)
    assert endpoint.fetches == 2


async def test_verification_fails_closed_when_the_jwks_was_never_fetched() -> None:
    key = LocalSigningKey.generate()
    endpoint = Jwks(key)
    endpoint.failing = True
    verifier = TokenVerifier(JwksCache(endpoint.fetch), issuer="vitalis", audience="vitalis-api")

    error = await refused(verifier, key.mint())

    assert error.reason == "JWKS_UNAVAILABLE"


async def test_cached_keys_keep_serving_through_a_short_identity_outage() -> None:
    key = LocalSigningKey.generate()
    endpoint = Jwks(key)
    clock = FakeClock()
    cache = JwksCache(endpoint.fetch, ttl_seconds=300, max_stale_seconds=3600, clock=clock)
    await asyncio.wait_for(cache.key_for(key.kid), timeout=5)

    endpoint.failing = True
    clock.now += 600
    assert (await asyncio.wait_for(cache.key_for(key.kid), timeout=5)).key_id == key.kid

    clock.now += 3600
    with pytest.raises(Unauthenticated) as raised:
        await asyncio.wait_for(cache.key_for(key.kid), timeout=5)
    assert raised.value.reason == "JWKS_UNAVAILABLE"


async def test_no_principal_is_current_outside_an_authenticated_call() -> None:
    assert optional_principal() is None
    with pytest.raises(Unauthenticated):
        current_principal()


async def test_a_bound_principal_is_current_until_unbound(
    key: LocalSigningKey, verifier: TokenVerifier
) -> None:
    principal = await asyncio.wait_for(verifier.verify(key.mint()), timeout=5)

    token = bind_principal(principal)
    try:
        assert current_principal() is principal
    finally:
        unbind_principal(token)

    assert optional_principal() is None
