"""Share grants: read access to chosen scopes of one user's data, given to another until a time."""

from __future__ import annotations

import enum
import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from vitalis_runtime.errors import InvalidArgument

MAX_NOTE_LENGTH = 500
MAX_GRANT_DURATION = timedelta(days=366)


class ShareScope(enum.Enum):
    """A part of a user's data that can be shared."""

    PROFILE = "profile"
    WEARABLES = "wearables"
    BIOMARKERS = "biomarkers"
    DOCUMENTS = "documents"
    INSIGHTS = "insights"


class GrantState(enum.Enum):
    """Whether a grant is in force."""

    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"


@dataclass(frozen=True)
class ShareGrant:
    """One grant from an owner to a grantee."""

    owner_id: uuid.UUID
    grant_id: uuid.UUID
    grantee_id: uuid.UUID
    grantee_email: str
    grantee_display_name: str
    owner_display_name: str
    scopes: tuple[ShareScope, ...]
    expire_time: datetime
    note: str
    create_time: datetime
    revoke_time: datetime | None
    version: int

    @property
    def name(self) -> str:
        """``users/{owner}/shareGrants/{grant}``."""
        return f"users/{self.owner_id}/shareGrants/{self.grant_id}"

    @property
    def etag(self) -> str:
        """Changes when the grant is revoked."""
        return hashlib.sha256(f"grant:{self.name}:{self.version}".encode()).hexdigest()[:20]

    def state(self, now: datetime) -> GrantState:
        """Revoked, expired or active at ``now``."""
        if self.revoke_time is not None:
            return GrantState.REVOKED
        if self.expire_time <= now:
            return GrantState.EXPIRED
        return GrantState.ACTIVE

    def allows(self, scope: ShareScope, now: datetime) -> bool:
        """Whether the grant lets its grantee read ``scope`` at ``now``."""
        return self.state(now) is GrantState.ACTIVE and scope in self.scopes


def validate_new_grant(
    *, scopes: Sequence[ShareScope], expire_time: datetime | None, note: str, now: datetime
) -> tuple[tuple[ShareScope, ...], datetime, str]:
    """Check what a new grant may contain; the scopes, expire time and note to store."""
    if not scopes:
        raise InvalidArgument.for_field("share_grant.scopes", "name at least one scope")
    if len(set(scopes)) != len(scopes):
        raise InvalidArgument.for_field("share_grant.scopes", "must not name a scope twice")
    if expire_time is None:
        raise InvalidArgument.for_field("share_grant.expire_time", "is required")
    if expire_time <= now:
        raise InvalidArgument.for_field("share_grant.expire_time", "must be in the future")
    if expire_time > now + MAX_GRANT_DURATION:
        raise InvalidArgument.for_field("share_grant.expire_time", "must be at most one year away")
    note = note.strip()
    if len(note) > MAX_NOTE_LENGTH:
        raise InvalidArgument.for_field("share_grant.note", f"must be at most {MAX_NOTE_LENGTH} characters")
    return tuple(scopes), expire_time, note
