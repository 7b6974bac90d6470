"""Who is calling: access tokens re-verified inside every service.

The gateway verifies each request's JWT, but a service port can also be reached directly, so a
service trusts no identity a caller could make up. It verifies the forwarded ``authorization:
Bearer`` token itself, against identity's JWKS held in a :class:`JwksCache`, and binds the resulting
:class:`Principal` to the request's context, where handlers read it with :func:`current_principal`.

Access-token claims: ``iss``, ``aud``, ``sub`` (the user id, a UUID), ``exp``, ``iat``, optionally
``nbf``, ``sid`` (session id), ``acc`` (account id) and ``scope`` (space-separated) or ``scp`` (a list).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import jwt

from vitalis_runtime.errors import Unauthenticated
from vitalis_runtime.request_context import reset_quietly

MAX_TOKEN_BYTES = 8 * 1024
REQUIRED_CLAIMS = ("exp", "iat", "iss", "aud", "sub")

logger = logging.getLogger(__name__)

_principal: contextvars.ContextVar[Principal | None] = contextvars.ContextVar(
    "vitalis_principal", default=None
)

JwksFetch = Callable[[], Awaitable[Mapping[str, Any]]]
Clock = Callable[[], float]


@dataclass(frozen=True)
class Principal:
    """The verified caller of the current request."""

    user_id: uuid.UUID
    subject: str
    session_id: str | None
    account_id: str | None
    scopes: frozenset[str]
    token: str = field(repr=False)
    expire_time: datetime
    service: str | None = None
    """The calling Vitalis service when a service token acts for ``user_id``; None for a user's own."""


def current_principal() -> Principal:
    """The caller of the current request; :class:`Unauthenticated` when none was verified."""
    principal = _principal.get()
    if principal is None:
        raise Unauthenticated("this request carries no verified identity")
    return principal


def optional_principal() -> Principal | None:
    """The caller of the current request, or None on a public method."""
    return _principal.get()


def bind_principal(principal: Principal | None) -> contextvars.Token[Principal | None]:
    """Make ``principal`` the current caller; pass the returned token to :func:`unbind_principal`."""
    return _principal.set(principal)


def unbind_principal(token: contextvars.Token[Principal | None]) -> None:
    """Restore the caller that was current before :func:`bind_principal`."""
    reset_quietly(_principal, token)


class JwksCache:
    """Identity's public signing keys, fetched on demand and kept for ``ttl_seconds``.

    An unknown key id triggers a refetch (at most once per ``min_refresh_interval`` seconds, so a
    stream of forged key ids cannot hammer identity). When a refetch fails, keys fetched within
    ``max_stale_seconds`` keep serving; with nothing usable cached, verification fails closed.
    """

    def __init__(
        self,
        fetch: JwksFetch,
        *,
        ttl_seconds: float = 300,
        min_refresh_interval: float = 5,
        max_stale_seconds: float = 3600,
        clock: Clock = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._ttl = ttl_seconds
        self._min_refresh_interval = min_refresh_interval
        self._max_stale = max_stale_seconds
        self._clock = clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._lock = asyncio.Lock()

    async def key_for(self, kid: str) -> jwt.PyJWK:
        """The public key with id ``kid``; :class:`Unauthenticated` when it is not (or cannot be) known."""
        if self._is_fresh() and kid in self._keys:
            return self._keys[kid]
        async with self._lock:
            if not (self._is_fresh() and kid in self._keys) and self._may_refetch():
                await self._refetch()
        if not self._is_usable():
            raise Unauthenticated(
                "the signing keys cannot be fetched, so no token can be verified", reason="JWKS_UNAVAILABLE"
            )
        key = self._keys.get(kid)
        if key is None:
            raise Unauthenticated(
                f"the token's signing key {kid!r} is not known", reason="UNKNOWN_SIGNING_KEY"
            )
        return key

    def _is_fresh(self) -> bool:
        return self._fetched_at is not None and self._clock() - self._fetched_at < self._ttl

    def _is_usable(self) -> bool:
        return self._fetched_at is not None and self._clock() - self._fetched_at < self._ttl + self._max_stale

    def _may_refetch(self) -> bool:
        return self._attempted_at is None or self._clock() - self._attempted_at >= self._min_refresh_interval

    async def _refetch(self) -> None:
        self._attempted_at = self._clock()
        try:
            document = await self._fetch()
        except Exception:
            logger.warning("fetching the JWKS failed; keeping %d cached keys", len(self._keys), exc_info=True)
            return
        self._keys = dict(_parse_keys(document.get("keys", ())))
        self._fetched_at = self._clock()
        logger.info("fetched the JWKS: %d signing keys", len(self._keys))


def _parse_keys(entries: Iterable[Any]) -> Iterable[tuple[str, jwt.PyJWK]]:
    for entry in entries:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("kid"), str):
            continue
        try:
            yield entry["kid"], jwt.PyJWK(dict(entry))
        except jwt.PyJWTError:
            logger.warning("skipping an unusable JWKS entry with kid %r", entry["kid"])


class TokenVerifier:
    """Verifies access tokens: signature by a JWKS key, algorithm, issuer, audience and lifetime."""

    def __init__(
        self,
        jwks: JwksCache,
        *,
        issuer: str,
        audience: str,
        leeway_seconds: float = 30,
        algorithms: Iterable[str] = ("ES256",),
    ) -> None:
        self._jwks = jwks
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway_seconds
        self._algorithms = tuple(algorithms)
        unsafe = [a for a in self._algorithms if a.lower() == "none" or a.upper().startswith("HS")]
        if unsafe:
            raise ValueError(f"algorithms {unsafe} cannot verify tokens signed with a published key")

    async def verify(self, token: str) -> Principal:
        """The principal a token speaks for; :class:`Unauthenticated` saying why when it is not valid."""
        if len(token.encode()) > MAX_TOKEN_BYTES:
            raise _invalid(f"the token is larger than {MAX_TOKEN_BYTES // 1024} KiB")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise _invalid("the token is not a well-formed JWT") from None
        algorithm = header.get("alg")
        if algorithm not in self._algorithms:
            raise _invalid(f"the token's algorithm {algorithm!r} is not accepted")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise _invalid("the token does not name its signing key (kid)")
        key = await self._jwks.key_for(kid)
        claims = self._decode(token, key, algorithm)
        return _principal_from(claims, token)

    def _decode(self, token: str, key: jwt.PyJWK, algorithm: str) -> dict[str, Any]:
        try:
            return jwt.decode(
                token,
                key=key,
                algorithms=[algorithm],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": list(REQUIRED_CLAIMS)},
            )
        except jwt.ExpiredSignatureError:
            raise _invalid("the token has expired", reason="TOKEN_EXPIRED") from None
        except jwt.ImmatureSignatureError:
            raise _invalid("the token is not valid yet (nbf or iat lies in the future)") from None
        except jwt.InvalidIssuerError:
            raise _invalid("the token was issued by an issuer this service does not accept") from None
        except jwt.InvalidAudienceError:
            raise _invalid("the token is meant for another audience") from None
        except jwt.MissingRequiredClaimError as error:
            raise _invalid(f"the token lacks the {error.claim!r} claim") from None
        except jwt.InvalidSignatureError:
            raise _invalid("the token's signature does not verify") from None
        except jwt.InvalidAlgorithmError:
            raise _invalid("the token's algorithm does not match its signing key") from None
        except jwt.PyJWTError as error:
            raise _invalid(f"the token is invalid: {error}") from None


def _principal_from(claims: Mapping[str, Any], token: str) -> Principal:
    subject = claims["sub"]
    try:
        user_id = uuid.UUID(subject) if isinstance(subject, str) else None
    except ValueError:
        user_id = None
    if user_id is None:
        raise _invalid("the token's subject is not a user id")
    return Principal(
        user_id=user_id,
        subject=subject,
        session_id=_optional_string(claims.get("sid")),
        account_id=_optional_string(claims.get("acc")),
        scopes=_scopes(claims),
        token=token,
        expire_time=datetime.fromtimestamp(int(claims["exp"]), UTC),
    )


def _optional_string(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _scopes(claims: Mapping[str, Any]) -> frozenset[str]:
    scope = claims.get("scope")
    if isinstance(scope, str):
        return frozenset(scope.split())
    listed = claims.get("scp")
    if isinstance(listed, list):
        return frozenset(s for s in listed if isinstance(s, str))
    return frozenset()


def _invalid(message: str, *, reason: str = "INVALID_TOKEN") -> Unauthenticated:
    return Unauthenticated(message, reason=reason)
