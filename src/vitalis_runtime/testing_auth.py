"""Test support for authentication: a local signing key, its JWKS and tokens it signs.

Services' tests use it to run a server with a real :class:`~vitalis_runtime.auth.TokenVerifier`
and call it with real ES256 access tokens, without an identity service::

    key = LocalSigningKey.generate()
    server, port, health = await create_server(..., verifier=key.verifier())
    metadata = (("authorization", f"Bearer {key.mint(user_id)}"),)
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from vitalis_runtime.auth import JwksCache, TokenVerifier

DEFAULT_ISSUER = "vitalis"
DEFAULT_AUDIENCE = "vitalis-api"


@dataclass(frozen=True)
class LocalSigningKey:
    """An ES256 key pair standing in for identity's current signing key."""

    kid: str
    private_key: ec.EllipticCurvePrivateKey

    @classmethod
    def generate(cls, kid: str | None = None) -> LocalSigningKey:
        """A fresh P-256 key with the given (or a random) key id."""
        return cls(
            kid=kid or f"test-{uuid.uuid4().hex[:8]}", private_key=ec.generate_private_key(ec.SECP256R1())
        )

    def public_jwk(self) -> dict[str, Any]:
        """The public key as a JWK, the way identity publishes it."""
        jwk: dict[str, Any] = json.loads(ECAlgorithm.to_jwk(self.private_key.public_key()))
        return {**jwk, "kid": self.kid, "alg": "ES256", "use": "sig"}

    def jwks(self) -> dict[str, Any]:
        """A JWKS holding only this key."""
        return {"keys": [self.public_jwk()]}

    def verifier(self, *, issuer: str = DEFAULT_ISSUER, audience: str = DEFAULT_AUDIENCE) -> TokenVerifier:
        """A verifier that trusts exactly this key."""
        jwks = self.jwks()

        async def fetch() -> Mapping[str, Any]:
            return jwks

        return TokenVerifier(JwksCache(fetch), issuer=issuer, audience=audience)

    def mint(
        self,
        user_id: uuid.UUID | str | None = None,
        *,
        issuer: str = DEFAULT_ISSUER,
        audience: str = DEFAULT_AUDIENCE,
        lifetime: timedelta = timedelta(minutes=5),
        issued_at: datetime | None = None,
        headers: Mapping[str, Any] | None = None,
        **claims: Any,
    ) -> str:
        """An access token for ``user_id`` (a random one by default); ``claims`` add or override claims."""
        now = issued_at or datetime.now(UTC)
        payload: dict[str, Any] = {
            "iss": issuer,
            "aud": audience,
            "sub": str(user_id or uuid.uuid4()),
            "sid": str(uuid.uuid4()),
            "acc": str(uuid.uuid4()),
            "iat": int(now.timestamp()),
            "nbf": int(now.timestamp()),
            "exp": int((now + lifetime).timestamp()),
            "jti": uuid.uuid4().hex,
            **claims,
        }
        return jwt.encode(
            payload, self.private_key, algorithm="ES256", headers={"kid": self.kid, **(headers or {})}
        )
