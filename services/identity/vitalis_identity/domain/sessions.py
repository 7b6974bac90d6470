"""Sessions: one sign-in on one device and every refresh token descended from it."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import datetime


class RevokeReason(enum.Enum):
    """Why a session was revoked."""

    SIGN_OUT = "sign_out"
    USER_REVOKED = "user_revoked"
    REFRESH_TOKEN_REUSE = "refresh_token_reuse"  # noqa: S105 - a reason, not a secret
    PASSWORD_CHANGED = "password_changed"  # noqa: S105 - a reason, not a secret
    USER_DELETED = "user_deleted"


@dataclass(frozen=True)
class Session:
    """A session as stored."""

    user_id: uuid.UUID
    session_id: uuid.UUID
    auth_method: str
    user_agent: str
    client_ip: str
    create_time: datetime
    last_refresh_time: datetime
    expire_time: datetime
    revoke_time: datetime | None
    revoke_reason: str | None

    @property
    def name(self) -> str:
        """``users/{user}/sessions/{session}``."""
        return f"users/{self.user_id}/sessions/{self.session_id}"

    def state(self, now: datetime) -> str:
        """``active``, ``expired`` or ``revoked``."""
        if self.revoke_time is not None:
            return "revoked"
        if self.expire_time <= now:
            return "expired"
        return "active"
