"""Consents and their append-only history."""

from __future__ import annotations

import enum
import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime

from vitalis_runtime.errors import InvalidArgument

MAX_VERSION_LENGTH = 64


class ConsentType(enum.Enum):
    """What a consent is about; the value is the consent's id in resource names."""

    TERMS_OF_SERVICE = "terms-of-service"
    PRIVACY_POLICY = "privacy-policy"
    HEALTH_DATA_PROCESSING = "health-data-processing"
    LANGUAGE_MODEL_PROCESSING = "language-model-processing"
    RESEARCH = "research"
    MARKETING = "marketing"


@dataclass(frozen=True)
class Consent:
    """A user's current decision about one type of consent."""

    user_id: uuid.UUID
    type: ConsentType
    granted: bool
    version: str
    grant_time: datetime
    revoke_time: datetime | None
    update_time: datetime
    revision: int

    @property
    def name(self) -> str:
        """``users/{user}/consents/{type}``."""
        return f"users/{self.user_id}/consents/{self.type.value}"

    @property
    def etag(self) -> str:
        """Changes with every grant or revocation."""
        return hashlib.sha256(f"consent:{self.name}:{self.revision}".encode()).hexdigest()[:20]


@dataclass(frozen=True)
class ConsentEvent:
    """One grant or revocation, kept as evidence."""

    user_id: uuid.UUID
    event_id: uuid.UUID
    type: ConsentType
    action: str
    version: str
    occur_time: datetime
    user_agent: str
    client_ip: str

    @property
    def name(self) -> str:
        """``users/{user}/consents/{type}/events/{event}``."""
        return f"users/{self.user_id}/consents/{self.type.value}/events/{self.event_id}"


def consent_type_of(consent_id: str, *, field: str = "name") -> ConsentType:
    """The type named by a consent id such as ``health-data-processing``."""
    try:
        return ConsentType(consent_id)
    except ValueError:
        raise InvalidArgument.for_field(
            field,
            f"{consent_id!r} is not a consent type; use one of {', '.join(t.value for t in ConsentType)}",
        ) from None


def validate_version(version: str) -> str:
    """The version of the terms agreed to: required, at most 64 printable characters."""
    value = version.strip()
    if not value:
        raise InvalidArgument.for_field("version", "is required, for example 2025-01-15")
    if len(value) > MAX_VERSION_LENGTH or any(ord(ch) < 32 for ch in value):
        raise InvalidArgument.for_field(
            "version", f"must be at most {MAX_VERSION_LENGTH} printable characters"
        )
    return value
