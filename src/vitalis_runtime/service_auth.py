"""Service-to-service authentication: short-lived tokens signed with a secret the services share.

A service calling another outside a user's request (a parse finishing, a data-subject job, a rule
fetching a goal's progress) acts on behalf of one user. It sends a token it signs itself with
``VITALIS_SERVICE_TOKEN_SECRET`` (HS256, audience ``vitalis-internal``, a minute long) naming its
own service and that user. The receiving service verifies it and binds a :class:`Principal` whose
``user_id`` is that user and whose ``service`` is the caller, so row-level security and ownership
checks work exactly as for the user's own request.

These tokens never pass the gateway: Envoy accepts only identity's ES256 keys and the API
audience. Methods of ``*InternalService`` and ``UserDataService`` services accept nothing else.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

import jwt
from pydantic import SecretStr

from vitalis_runtime.auth import MAX_TOKEN_BYTES, Principal, TokenVerifier
from vitalis_runtime.errors import PermissionDenied, Unauthenticated

if TYPE_CHECKING:
    from vitalis_runtime.settings import ServiceSettings

# Claim values and the algorithm name, not secrets.
SERVICE_TOKEN_ALGORITHM = "HS256"  # noqa: S105
SERVICE_TOKEN_ISSUER = "vitalis-services"  # noqa: S105
SERVICE_TOKEN_AUDIENCE = "vitalis-internal"  # noqa: S105
SERVICE_SUBJECT_PREFIX = "service:"
SERVICE_TOKEN_TTL_SECONDS = 60
SERVICE_SCOPE = "service"
INTERNAL_SERVICE_SUFFIXES = ("InternalService", ".UserDataService")
MIN_SECRET_BYTES = 32


class CallerVerifier(Protocol):
    """Turns a bearer token into the principal it speaks for, or raises Unauthenticated."""

    async def verify(self, token: str) -> Principal:
        """The verified caller."""
        ...


def _secret_bytes(secret: SecretStr | str) -> bytes:
    value = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
    raw = value.encode()
    if len(raw) < MIN_SECRET_BYTES:
        raise ValueError(f"the service token secret must be at least {MIN_SECRET_BYTES} bytes")
    return raw


@dataclass(frozen=True)
class ServiceCredentials:
    """Signs the tokens one service presents when it calls another."""

    secret: SecretStr | str
    service_name: str
    ttl_seconds: int = SERVICE_TOKEN_TTL_SECONDS

    @classmethod
    def of(cls, settings: ServiceSettings) -> ServiceCredentials | None:
        """The credentials of the service ``settings`` describe; None without a service-token secret."""
        if settings.service_token_secret is None:
            return None
        return cls(settings.service_token_secret, settings.service_name)

    def token(self, on_behalf_of: uuid.UUID) -> str:
        """A fresh token for a call made on behalf of user ``on_behalf_of``."""
        now = int(time.time())
        claims = {
            "iss": SERVICE_TOKEN_ISSUER,
            "aud": SERVICE_TOKEN_AUDIENCE,
            "sub": f"{SERVICE_SUBJECT_PREFIX}{self.service_name}",
            "act_for": str(on_behalf_of),
            "iat": now,
            "exp": now + self.ttl_seconds,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, _secret_bytes(self.secret), algorithm=SERVICE_TOKEN_ALGORITHM)

    def metadata(self, on_behalf_of: uuid.UUID) -> tuple[tuple[str, str], ...]:
        """Call metadata carrying a fresh token: pass it as ``metadata=`` on a stub call."""
        return (("authorization", f"Bearer {self.token(on_behalf_of)}"),)


class ServiceTokenVerifier:
    """Verifies tokens signed by :class:`ServiceCredentials` with the same secret.

    ``previous_secrets`` are accepted too, so that during a rotation pods signing with the old
    secret and pods signing with the new one understand each other.
    """

    def __init__(
        self,
        secret: SecretStr | str,
        *,
        previous_secrets: Sequence[SecretStr | str] = (),
        leeway_seconds: float = 5,
    ) -> None:
        """Accept tokens signed with ``secret`` or any of ``previous_secrets`` (each at least 32 bytes)."""
        self._keys = tuple(_secret_bytes(key) for key in (secret, *previous_secrets))
        self._leeway = leeway_seconds

    def _decode(self, token: str) -> dict[str, Any]:
        """The token's claims, under the first key whose signature matches."""
        *earlier, last = self._keys
        for key in earlier:
            try:
                return self._decode_with(token, key)
            except jwt.InvalidSignatureError:
                continue
        return self._decode_with(token, last)

    def _decode_with(self, token: str, key: bytes) -> dict[str, Any]:
        claims: dict[str, Any] = jwt.decode(
            token,
            key=key,
            algorithms=[SERVICE_TOKEN_ALGORITHM],
            audience=SERVICE_TOKEN_AUDIENCE,
            issuer=SERVICE_TOKEN_ISSUER,
            leeway=self._leeway,
            options={"require": ["exp", "iat", "iss", "aud", "sub", "act_for"]},
        )
        return claims

    async def verify(self, token: str) -> Principal:
        """The user the calling service acts for, with ``service`` naming the caller."""
        if len(token.encode()) > MAX_TOKEN_BYTES:
            raise Unauthenticated("the service token is too large", reason="INVALID_TOKEN")
        try:
            claims = self._decode(token)
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("the service token has expired", reason="TOKEN_EXPIRED") from None
        except jwt.PyJWTError as error:
            raise Unauthenticated(f"the service token is invalid: {error}", reason="INVALID_TOKEN") from None
        subject = claims["sub"]
        if not isinstance(subject, str) or not subject.startswith(SERVICE_SUBJECT_PREFIX):
            raise Unauthenticated("the service token does not name a service", reason="INVALID_TOKEN")
        try:
            user_id = uuid.UUID(str(claims["act_for"]))
        except ValueError:
            raise Unauthenticated(
                "the service token's act_for is not a user id", reason="INVALID_TOKEN"
            ) from None
        return Principal(
            user_id=user_id,
            subject=subject,
            session_id=None,
            account_id=None,
            scopes=frozenset({SERVICE_SCOPE}),
            token=token,
            expire_time=datetime.fromtimestamp(int(claims["exp"]), UTC),
            service=subject.removeprefix(SERVICE_SUBJECT_PREFIX),
        )


class DualVerifier:
    """Accepts user access tokens (identity's JWKS) and, when configured, service tokens."""

    def __init__(self, users: CallerVerifier | None, services: ServiceTokenVerifier | None) -> None:
        self._users = users
        self._services = services

    async def verify(self, token: str) -> Principal:
        """Route the token to the verifier its algorithm belongs to."""
        try:
            algorithm = jwt.get_unverified_header(token).get("alg")
        except jwt.PyJWTError:
            raise Unauthenticated("the token is not a well-formed JWT", reason="INVALID_TOKEN") from None
        if algorithm == SERVICE_TOKEN_ALGORITHM and self._services is not None:
            return await self._services.verify(token)
        if self._users is None:
            raise Unauthenticated("this service accepts no user tokens", reason="NO_VERIFIER")
        return await self._users.verify(token)


def accepting_service_tokens(
    users: TokenVerifier | CallerVerifier | None,
    secret: SecretStr | str | None,
    *,
    previous_secrets: Sequence[SecretStr | str] = (),
) -> CallerVerifier | None:
    """``users`` extended to service tokens when a secret is configured; unchanged otherwise.

    Tokens signed with one of ``previous_secrets`` are accepted as well (a rotation in progress).
    """
    if secret is None:
        return users
    return DualVerifier(users, ServiceTokenVerifier(secret, previous_secrets=previous_secrets))


def is_internal_method(method: str, suffixes: Collection[str] = INTERNAL_SERVICE_SUFFIXES) -> bool:
    """Whether a full gRPC path (``/pkg.Service/Method``) belongs to a service-only service."""
    service = method.lstrip("/").partition("/")[0]
    return any(service.endswith(suffix) for suffix in suffixes)


def require_service_caller(method: str, principal: Principal | None) -> None:
    """Refuse a user's own token on a service-only method."""
    if principal is not None and principal.service is None and is_internal_method(method):
        raise PermissionDenied(
            "this method is internal to Vitalis and only callable by its services", reason="INTERNAL_METHOD"
        )
