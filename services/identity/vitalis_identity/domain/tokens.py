"""Refresh tokens and the claims of access tokens.

A refresh token is ``vrt_`` followed by base64url(user id ‖ token id ‖ 32 random bytes). The ids let
the server find the stored row (and set the row-level-security user) without a lookup across users;
only a SHA-256 of the random part is stored, compared in constant time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime

from vitalis_runtime.errors import Unauthenticated

REFRESH_TOKEN_PREFIX = "vrt_"  # noqa: S105 - a format marker, not a secret
_SECRET_BYTES = 32
_RAW_LENGTH = 16 + 16 + _SECRET_BYTES


@dataclass(frozen=True)
class RefreshToken:
    """The parts of a refresh token."""

    user_id: uuid.UUID
    token_id: uuid.UUID
    secret: bytes

    @classmethod
    def issue(cls, user_id: uuid.UUID) -> RefreshToken:
        """A new token for ``user_id`` with a fresh id and secret."""
        return cls(user_id, uuid.uuid4(), secrets.token_bytes(_SECRET_BYTES))

    def encode(self) -> str:
        """The string handed to the client."""
        raw = self.user_id.bytes + self.token_id.bytes + self.secret
        return REFRESH_TOKEN_PREFIX + base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    @property
    def secret_hash(self) -> bytes:
        """What the server stores."""
        return hashlib.sha256(self.secret).digest()

    def matches(self, stored_hash: bytes) -> bool:
        """Constant-time comparison with the stored hash."""
        return hmac.compare_digest(self.secret_hash, stored_hash)

    @classmethod
    def decode(cls, value: str) -> RefreshToken:
        """Parse a client's token or raise :class:`Unauthenticated`."""
        if not value.startswith(REFRESH_TOKEN_PREFIX) or len(value) > 200:
            raise Unauthenticated("the refresh token is malformed", reason="INVALID_REFRESH_TOKEN")
        body = value[len(REFRESH_TOKEN_PREFIX) :]
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except (binascii.Error, ValueError):
            raise Unauthenticated("the refresh token is malformed", reason="INVALID_REFRESH_TOKEN") from None
        if len(raw) != _RAW_LENGTH:
            raise Unauthenticated("the refresh token is malformed", reason="INVALID_REFRESH_TOKEN")
        return cls(uuid.UUID(bytes=raw[:16]), uuid.UUID(bytes=raw[16:32]), raw[32:])


@dataclass(frozen=True)
class IssuedTokens:
    """An access token and a refresh token handed out together."""

    access_token: str
    access_expire_time: datetime
    refresh_token: str
    refresh_expire_time: datetime
    user_id: uuid.UUID
    session_id: uuid.UUID

    @property
    def session_name(self) -> str:
        """The session's resource name."""
        return f"users/{self.user_id}/sessions/{self.session_id}"
