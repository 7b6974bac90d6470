"""Users and their profiles."""

from __future__ import annotations

import enum
import hashlib
import re
import uuid
import zoneinfo
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any

from vitalis_runtime.errors import FieldViolation, InvalidArgument

EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MAX_EMAIL_LENGTH = 254
MAX_NAME_LENGTH = 100


class Sex(enum.Enum):
    """Sex recorded for reference ranges and formulas (not gender identity)."""

    UNSPECIFIED = "unspecified"
    FEMALE = "female"
    MALE = "male"
    OTHER = "other"


class UnitSystem(enum.Enum):
    """The units a person prefers to see."""

    METRIC = "metric"
    IMPERIAL = "imperial"


@dataclass(frozen=True)
class ExternalIdentity:
    """A subject of an external identity provider linked to a user."""

    issuer: str
    subject: str
    provider: str
    link_time: datetime


@dataclass(frozen=True)
class User:
    """A person using Vitalis and their profile."""

    user_id: uuid.UUID
    account_id: uuid.UUID
    email: str
    given_name: str
    family_name: str
    birth_date: date | None
    sex: Sex
    time_zone: str
    unit_system: UnitSystem
    version: int
    create_time: datetime
    update_time: datetime
    delete_time: datetime | None = None
    expire_time: datetime | None = None
    email_verified: bool = False
    has_password: bool = True
    external_identities: tuple[ExternalIdentity, ...] = ()
    signup_request_id: str | None = None

    @property
    def deleted(self) -> bool:
        """Whether the user is soft-deleted (or being erased)."""
        return self.delete_time is not None

    @property
    def display_name(self) -> str:
        """Given and family name, or the e-mail address when both are empty."""
        return " ".join(p for p in (self.given_name, self.family_name) if p) or self.email

    @property
    def name(self) -> str:
        """The resource name, ``users/{user}``."""
        return f"users/{self.user_id}"

    @property
    def etag(self) -> str:
        """An opaque value that changes with every update (optimistic concurrency)."""
        return hashlib.sha256(f"{self.user_id}:{self.version}".encode()).hexdigest()[:20]


MUTABLE_PROFILE_FIELDS = frozenset(
    {"given_name", "family_name", "birth_date", "sex", "time_zone", "unit_system"}
)
READ_ONLY_FIELDS = frozenset({"name", "account", "email", "create_time", "update_time", "etag"})


def normalize_email(email: str) -> str:
    """Trim and lower-case an e-mail address, or raise naming the ``email`` field."""
    value = email.strip().lower()
    if not value:
        raise InvalidArgument.for_field("email", "an e-mail address is required")
    if len(value) > MAX_EMAIL_LENGTH or not EMAIL_PATTERN.match(value):
        raise InvalidArgument.for_field("email", f"{email!r} is not a valid e-mail address")
    return value


def validate_time_zone(time_zone: str, *, field: str = "time_zone") -> str:
    """An IANA time zone name such as ``Europe/Berlin``; empty means UTC."""
    if not time_zone:
        return "UTC"
    try:
        zoneinfo.ZoneInfo(time_zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise InvalidArgument.for_field(
            field, f"{time_zone!r} is not an IANA time zone name (for example Europe/Berlin)"
        ) from None
    return time_zone


def validate_name(value: str, field: str) -> str:
    """A display name part: trimmed, bounded, no control characters."""
    value = value.strip()
    if len(value) > MAX_NAME_LENGTH:
        raise InvalidArgument.for_field(field, f"must be at most {MAX_NAME_LENGTH} characters")
    if any(ord(ch) < 32 for ch in value):
        raise InvalidArgument.for_field(field, "must not contain control characters")
    return value


def validate_birth_date(value: date | None, *, today: date) -> date | None:
    """A birth date in the past, within a human lifespan."""
    if value is None:
        return None
    if value > today:
        raise InvalidArgument.for_field("user.birth_date", "must not be in the future")
    if value.year < today.year - 130:
        raise InvalidArgument.for_field("user.birth_date", "must be within the last 130 years")
    return value


def apply_profile_update(
    user: User, changes: Mapping[str, Any], paths: Iterable[str], *, today: date
) -> User:
    """Apply the fields named by an update mask to ``user``, validating each one."""
    violations: list[FieldViolation] = []
    updates: dict[str, Any] = {}
    for path in paths:
        if path in READ_ONLY_FIELDS:
            violations.append(FieldViolation(f"update_mask.{path}", "this field cannot be changed"))
            continue
        if path not in MUTABLE_PROFILE_FIELDS:
            violations.append(FieldViolation(f"update_mask.{path}", "no such field on User"))
            continue
        updates[path] = changes.get(path)
    if violations:
        raise InvalidArgument("the update mask names fields that cannot be updated", violations=violations)
    if "given_name" in updates:
        updates["given_name"] = validate_name(updates["given_name"] or "", "user.given_name")
    if "family_name" in updates:
        updates["family_name"] = validate_name(updates["family_name"] or "", "user.family_name")
    if "time_zone" in updates:
        updates["time_zone"] = validate_time_zone(updates["time_zone"] or "", field="user.time_zone")
    if "birth_date" in updates:
        updates["birth_date"] = validate_birth_date(updates["birth_date"], today=today)
    if "sex" in updates:
        updates["sex"] = updates["sex"] or Sex.UNSPECIFIED
    if "unit_system" in updates:
        updates["unit_system"] = updates["unit_system"] or UnitSystem.METRIC
    return replace(user, **updates)
