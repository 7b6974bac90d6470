"""Accounts: the billing entity users belong to."""

from __future__ import annotations

import enum
import hashlib
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from vitalis_identity.domain.users import EMAIL_PATTERN, MAX_EMAIL_LENGTH
from vitalis_runtime.errors import FieldViolation, InvalidArgument

MAX_DISPLAY_NAME_LENGTH = 200
MUTABLE_ACCOUNT_FIELDS = frozenset({"display_name", "billing_email"})
READ_ONLY_ACCOUNT_FIELDS = frozenset(
    {
        "name",
        "tier",
        "owner",
        "state",
        "user_count",
        "create_time",
        "update_time",
        "delete_time",
        "expire_time",
        "etag",
    }
)


class AccountTier(enum.Enum):
    """A subscription tier."""

    FREE = "free"
    PREMIUM = "premium"
    PROFESSIONAL = "professional"


@dataclass(frozen=True)
class Account:
    """A billing entity and its lifecycle."""

    account_id: uuid.UUID
    display_name: str
    tier: AccountTier
    owner_user_id: uuid.UUID | None
    billing_email: str
    user_count: int
    version: int
    create_time: datetime
    update_time: datetime
    delete_time: datetime | None
    expire_time: datetime | None

    @property
    def name(self) -> str:
        """The resource name, ``accounts/{account}``."""
        return f"accounts/{self.account_id}"

    @property
    def etag(self) -> str:
        """Changes with every update."""
        return hashlib.sha256(f"account:{self.account_id}:{self.version}".encode()).hexdigest()[:20]


def apply_account_update(account: Account, changes: Mapping[str, Any], paths: Iterable[str]) -> Account:
    """Apply the masked fields, validating each."""
    violations: list[FieldViolation] = []
    updates: dict[str, Any] = {}
    for path in paths:
        if path == "*":
            updates.update({f: changes.get(f, "") for f in MUTABLE_ACCOUNT_FIELDS})
        elif path in READ_ONLY_ACCOUNT_FIELDS:
            violations.append(FieldViolation(f"update_mask.{path}", "this field cannot be changed"))
        elif path not in MUTABLE_ACCOUNT_FIELDS:
            violations.append(FieldViolation(f"update_mask.{path}", "no such field on Account"))
        else:
            updates[path] = changes.get(path, "")
    if violations:
        raise InvalidArgument("the update mask names fields that cannot be updated", violations=violations)
    if "display_name" in updates:
        value = str(updates["display_name"]).strip()
        if len(value) > MAX_DISPLAY_NAME_LENGTH or any(ord(ch) < 32 for ch in value):
            raise InvalidArgument.for_field(
                "account.display_name", f"must be at most {MAX_DISPLAY_NAME_LENGTH} printable characters"
            )
        updates["display_name"] = value
    if "billing_email" in updates:
        value = str(updates["billing_email"]).strip().lower()
        if value and (len(value) > MAX_EMAIL_LENGTH or not EMAIL_PATTERN.match(value)):
            raise InvalidArgument.for_field(
                "account.billing_email", f"{value!r} is not a valid e-mail address"
            )
        updates["billing_email"] = value
    return replace(account, **updates)
