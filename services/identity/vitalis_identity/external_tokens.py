"""Tokens of external OIDC issuers (Clerk or any other configured one), accepted by identity itself.

A token whose ``iss`` is a configured external issuer is verified against that issuer's JWKS
(fetched over HTTPS and cached like identity's own) and its subject is resolved to the linked
Vitalis user, provisioned on first use when configured. Every other token goes to the verifier of
Vitalis's own tokens. The caller then acts as the internal user, so every handler works unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import httpx
import jwt

from vitalis_identity.external import ExternalIdentities, ExternalProfile
from vitalis_runtime.auth import MAX_TOKEN_BYTES, JwksCache, Principal
from vitalis_runtime.errors import Unauthenticated, VitalisError
from vitalis_runtime.service_auth import CallerVerifier

ACCEPTED_ALGORITHMS = ("RS256", "ES256", "EdDSA")
JWKS_FETCH_TIMEOUT_SECONDS = 5.0


def _rejected(message: str, reason: str = "INVALID_TOKEN") -> Unauthenticated:
    return Unauthenticated(message, reason=reason)


def http_jwks(uri: str) -> Any:
    """A fetcher of the JWKS document at ``uri``."""

    async def fetch() -> Mapping[str, Any]:
        async with httpx.AsyncClient(timeout=JWKS_FETCH_TIMEOUT_SECONDS) as client:
            response = await client.get(uri)
            response.raise_for_status()
            document: Mapping[str, Any] = response.json()
            return document

    return fetch


class ExternalTokenVerifier:
    """Routes a token by its issuer: external ones are verified here, Vitalis ones by ``vitalis``."""

    def __init__(
        self,
        vitalis: CallerVerifier,
        identities: ExternalIdentities,
        jwks_uris: Mapping[str, str],
        *,
        audience: str | None = None,
        leeway_seconds: float = 30,
    ) -> None:
        self._vitalis = vitalis
        self._identities = identities
        self._caches = {issuer: JwksCache(http_jwks(uri)) for issuer, uri in jwks_uris.items()}
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
            user_id, _ = await self._identities.resolve(issuer, str(claims["sub"]), profile)
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
