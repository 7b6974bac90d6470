"""Signing keys and their rotation schedule.

Keys are ES256 (P-256). A key is *published* in the JWKS from its creation, *used for signing* from
its activation time, and *retired* (removed from the JWKS) once every token it could have signed has
expired. A successor is created ``publish_ahead`` before the current key's rotation is due, so the
gateway and the services have fetched it before the first token signed with it arrives.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any


@dataclass(frozen=True)
class KeySchedule:
    """How often keys rotate and how long they stay published."""

    rotation_period: timedelta = timedelta(days=30)
    publish_ahead: timedelta = timedelta(minutes=10)
    access_token_ttl: timedelta = timedelta(minutes=15)

    def lifetime(self) -> timedelta:
        """From activation to retirement: signing for one period, then verifying its tokens."""
        return self.rotation_period + self.access_token_ttl + self.publish_ahead


@dataclass(frozen=True)
class KeyInfo:
    """When a stored key activates and retires."""

    kid: str
    activate_time: datetime
    retire_time: datetime


@dataclass(frozen=True)
class StoredKey:
    """A key as an operator sees it (never the private half)."""

    kid: str
    algorithm: str
    public_jwk: Mapping[str, Any]
    create_time: datetime
    activate_time: datetime
    retire_time: datetime
    revoke_time: datetime | None

    def state(self, now: datetime, signing_kid: str | None) -> str:
        """``pending``, ``active``, ``retired``, ``expired`` or ``revoked``."""
        if self.revoke_time is not None:
            return "revoked"
        if self.retire_time <= now:
            return "expired"
        if self.activate_time > now:
            return "pending"
        return "active" if self.kid == signing_kid else "retired"


def signing_key(keys: Sequence[KeyInfo], now: datetime) -> KeyInfo | None:
    """The newest key already active and not retired."""
    usable = [k for k in keys if k.activate_time <= now < k.retire_time]
    return max(usable, key=lambda k: k.activate_time, default=None)


def successor_due(keys: Sequence[KeyInfo], now: datetime, schedule: KeySchedule) -> datetime | None:
    """When a new key should activate, if one must be created now; ``None`` if not yet."""
    current = signing_key(keys, now)
    if current is None:
        return now
    if any(k.activate_time > current.activate_time for k in keys):
        return None
    rotate_at = current.activate_time + schedule.rotation_period
    if now >= rotate_at - schedule.publish_ahead:
        return max(rotate_at, now + schedule.publish_ahead)
    return None
