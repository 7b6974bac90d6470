"""Tokens of external OIDC issuers (Clerk, or any issuer configured), accepted by every service.

The gateway verifies such a token against its issuer's JWKS and forwards it; each service verifies
it again (it trusts nothing a caller could forge) and resolves the issuer's subject to the linked
Vitalis user, which identity alone knows: identity resolves locally, every other service asks
identity's ``ExternalIdentityInternalService`` with a service token and keeps the answer for a
minute. The caller then acts as that internal user, so every handler works unchanged. A token of
any other issuer goes to the verifier of Vitalis's own tokens.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import grpc
import httpx
import jwt

from vitalis.identity.v1 import external_identity_internal_service_pb2 as resolve_messages
from vitalis.identity.v1 import external_identity_internal_service_pb2_grpc as resolve_stubs
from vitalis_runtime.auth import MAX_TOKEN_BYTES, JwksCache, Principal
from vitalis_runtime.errors import Unauthenticated, VitalisError
from vitalis_runtime.service_auth import CallerVerifier, ServiceCredentials

ACCEPTED_ALGORITHMS = ("RS256", "ES256", "EdDSA")
JWKS_FETCH_TIMEOUT_SECONDS = 5.0
RESOLUTION_TTL_SECONDS = 60.0
# Resolving a subject happens before any user is known; the service token acts for no one.
NO_USER = uuid.UUID(int=0)

JwksFetcher = Callable[[], Awaitable[Mapping[str, Any]]]


@dataclass(frozen=True)
class ExternalProfile:
    """What an external issuer's token tells about its subject."""

    email: str
    given_name: str
    family_name: str
    email_verified: bool


class SubjectResolver(Protocol):
    """Maps an issuer's subject to the internal user, provisioning one where identity allows it."""

    async def resolve(self, issuer: str, subject: str, profile: ExternalProfile) -> uuid.UUID:
        """The internal user id; a VitalisError when the subject cannot be used."""
        ...


def http_jwks(uri: str) -> JwksFetcher:
    """A fetcher of the JWKS document at ``uri``."""

    async def fetch() -> Mapping[str, Any]:
        async with httpx.AsyncClient(timeout=JWKS_FETCH_TIMEOUT_SECONDS) as client:
            response = await client.get(uri)
            response.raise_for_status()
            document: Mapping[str, Any] = response.json()
            return document

    return fetch


def _rejected(message: str, reason: str = "INVALID_TOKEN") -> Unauthenticated:
    return Unauthenticated(message, reason=reason)


class ExternalTokenVerifier:
    """Routes a token by its issuer: external ones are verified here, Vitalis ones by ``vitalis``."""

    def __init__(
        self,
        vitalis: CallerVerifier,
        resolver: SubjectResolver,
        jwks: Mapping[str, JwksFetcher],
        *,
        audience: str | None = None,
        leeway_seconds: float = 30,
    ) -> None:
        self._vitalis = vitalis
        self._resolver = resolver
        self._caches = {issuer: JwksCache(fetch) for issuer, fetch in jwks.items()}
        self._audience = audience
        self._leeway = leeway_seconds

    async def verify(self, token: str) -> Principal:
        """The internal user an external token speaks for, or Vitalis's own verification."""
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            return await self._vitalis.verify(token)
        issuer = unverified.get("iss")
        cache = self._caches.get(issuer) if isinstance(issuer, str) else None
        if cache is None or not isinstance(issuer, str):
            return await self._vitalis.verify(token)
        claims = await self._claims(token, header, cache, issuer)
        profile = ExternalProfile(
            email=str(claims.get("email") or ""),
            given_name=str(claims.get("given_name") or ""),
            family_name=str(claims.get("family_name") or ""),
            email_verified=claims.get("email_verified") is True,
        )
        try:
            user_id = await self._resolver.resolve(issuer, str(claims["sub"]), profile)
        except VitalisError as error:
            raise _rejected(
                f"the external identity cannot be used: {error.message}", "EXTERNAL_IDENTITY_REJECTED"
            ) from None
        return Principal(
            user_id=user_id,
            subject=f"{issuer}|{claims['sub']}",
            session_id=None,
            account_id=None,
            scopes=frozenset(),
            token=token,
            expire_time=datetime.fromtimestamp(int(claims["exp"]), UTC),
        )

    async def _claims(
        self, token: str, header: Mapping[str, Any], cache: JwksCache, issuer: str
    ) -> dict[str, Any]:
        if len(token.encode()) > MAX_TOKEN_BYTES:
            raise _rejected("the token is too large")
        algorithm = header.get("alg")
        if algorithm not in ACCEPTED_ALGORITHMS:
            raise _rejected(f"the token's algorithm {algorithm!r} is not accepted")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise _rejected("the token does not name its signing key (kid)")
        key = await cache.key_for(kid)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=[algorithm],
                issuer=issuer,
                audience=self._audience,
                leeway=self._leeway,
                options={"require": ["exp", "iat", "iss", "sub"], "verify_aud": self._audience is not None},
            )
        except jwt.ExpiredSignatureError:
            raise _rejected("the token has expired", "TOKEN_EXPIRED") from None
        except jwt.PyJWTError as error:
            raise _rejected(f"the external token is invalid: {error}") from None
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise _rejected("the token names no subject")
        return claims


class RemoteSubjectResolver:
    """Asks identity's ``ResolveExternalIdentity`` and remembers each answer for a short while."""

    def __init__(
        self,
        channel: grpc.aio.Channel,
        credentials: ServiceCredentials,
        *,
        ttl_seconds: float = RESOLUTION_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stub = resolve_stubs.ExternalIdentityInternalServiceStub(channel)
        self._credentials = credentials
        self._ttl = ttl_seconds
        self._clock = clock
        self._known: dict[tuple[str, str], tuple[uuid.UUID, float]] = {}

    async def resolve(self, issuer: str, subject: str, profile: ExternalProfile) -> uuid.UUID:
        """The internal user of ``issuer``'s ``subject``; identity's refusal propagates as an error."""
        known = self._known.get((issuer, subject))
        if known is not None and self._clock() - known[1] < self._ttl:
            return known[0]
        try:
            response = await self._stub.ResolveExternalIdentity(
                resolve_messages.ResolveExternalIdentityRequest(
                    issuer=issuer,
                    subject=subject,
                    email=profile.email if profile.email_verified else "",
                    given_name=profile.given_name,
                    family_name=profile.family_name,
                ),
                metadata=self._credentials.metadata(NO_USER),
            )
        except grpc.aio.AioRpcError as error:
            raise _rejected(
                f"identity could not resolve the external subject: {error.details()}",
                "EXTERNAL_IDENTITY_UNRESOLVED",
            ) from None
        user_id = uuid.UUID(response.user.removeprefix("users/"))
        self._known[(issuer, subject)] = (user_id, self._clock())
        return user_id
