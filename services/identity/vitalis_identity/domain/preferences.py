"""A user's preferences: language, week start, unit overrides and notifications."""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, time
from typing import Any

from vitalis_runtime.errors import FieldViolation, InvalidArgument

LANGUAGE_TAG = re.compile(r"^[a-z]{2,3}(-[A-Z][a-z]{3})?(-([A-Z]{2}|[0-9]{3}))?$")
# The quantities a unit override may name, with the UCUM units that measure each.
UNIT_CHOICES: Mapping[str, frozenset[str]] = {
    "glucose": frozenset({"mmol/L", "mg/dL"}),
    "cholesterol": frozenset({"mmol/L", "mg/dL"}),
    "triglycerides": frozenset({"mmol/L", "mg/dL"}),
    "creatinine": frozenset({"umol/L", "mg/dL"}),
    "body_weight": frozenset({"kg", "[lb_av]", "[stone_av]"}),
    "height": frozenset({"cm", "m", "[in_i]", "[ft_i]"}),
    "distance": frozenset({"km", "m", "[mi_i]"}),
    "energy": frozenset({"kcal", "kJ"}),
    "temperature": frozenset({"Cel", "[degF]"}),
}
NOTIFICATION_FIELDS = frozenset(
    {
        "alert_push_enabled",
        "alert_email_enabled",
        "weekly_summary_email_enabled",
        "quiet_hours_start",
        "quiet_hours_end",
    }
)
TOP_LEVEL_FIELDS = frozenset({"language_code", "first_day_of_week", "unit_overrides"})
READ_ONLY_FIELDS = frozenset({"name", "update_time", "etag"})


@dataclass(frozen=True)
class Preferences:
    """How values are presented to a user and which notifications they receive."""

    user_id: uuid.UUID
    language_code: str
    first_day_of_week: int
    unit_overrides: Mapping[str, str]
    alert_push_enabled: bool
    alert_email_enabled: bool
    weekly_summary_email_enabled: bool
    quiet_hours_start: time | None
    quiet_hours_end: time | None
    version: int
    update_time: datetime

    @property
    def name(self) -> str:
        """The resource name, ``users/{user}/preferences``."""
        return f"users/{self.user_id}/preferences"

    @property
    def etag(self) -> str:
        """Changes with every update."""
        return hashlib.sha256(f"preferences:{self.user_id}:{self.version}".encode()).hexdigest()[:20]


def _field_paths(paths: Iterable[str]) -> tuple[set[str], list[FieldViolation]]:
    chosen: set[str] = set()
    violations: list[FieldViolation] = []
    for path in paths:
        if path == "*":
            chosen |= TOP_LEVEL_FIELDS | NOTIFICATION_FIELDS
        elif path == "notifications":
            chosen |= NOTIFICATION_FIELDS
        elif path.startswith("notifications.") and path.removeprefix("notifications.") in NOTIFICATION_FIELDS:
            chosen.add(path.removeprefix("notifications."))
        elif path in TOP_LEVEL_FIELDS:
            chosen.add(path)
        elif path in READ_ONLY_FIELDS:
            violations.append(FieldViolation(f"update_mask.{path}", "this field cannot be changed"))
        else:
            violations.append(FieldViolation(f"update_mask.{path}", "no such field on Preferences"))
    return chosen, violations


def apply_preferences_update(
    current: Preferences, changes: Mapping[str, Any], paths: Iterable[str]
) -> Preferences:
    """Apply the masked fields of ``changes`` (domain values keyed by field), validating each."""
    chosen, violations = _field_paths(paths)
    if violations:
        raise InvalidArgument("the update mask names fields that cannot be updated", violations=violations)
    updates: dict[str, Any] = {name: changes.get(name) for name in chosen}
    if "language_code" in updates:
        tag = updates["language_code"] or "en-US"
        if not LANGUAGE_TAG.match(tag):
            raise InvalidArgument.for_field(
                "preferences.language_code", f"{tag!r} is not a BCP-47 language tag such as en-GB"
            )
        updates["language_code"] = tag
    if "first_day_of_week" in updates:
        day = updates["first_day_of_week"] or 1
        if not 1 <= day <= 7:
            raise InvalidArgument.for_field("preferences.first_day_of_week", "must be a day of the week")
        updates["first_day_of_week"] = day
    if "unit_overrides" in updates:
        updates["unit_overrides"] = validate_unit_overrides(updates["unit_overrides"] or {})
    for flag in ("alert_push_enabled", "alert_email_enabled", "weekly_summary_email_enabled"):
        if flag in updates:
            updates[flag] = bool(updates[flag])
    return replace(current, **updates)


def validate_unit_overrides(overrides: Mapping[str, str]) -> dict[str, str]:
    """Each key a known quantity, each value a unit that measures it."""
    for quantity, unit in overrides.items():
        if quantity not in UNIT_CHOICES:
            raise InvalidArgument.for_field(
                f"preferences.unit_overrides[{quantity}]",
                f"unknown quantity; use one of {', '.join(sorted(UNIT_CHOICES))}",
            )
        if unit not in UNIT_CHOICES[quantity]:
            raise InvalidArgument.for_field(
                f"preferences.unit_overrides[{quantity}]",
                f"{unit!r} does not measure {quantity}; "
                f"use one of {', '.join(sorted(UNIT_CHOICES[quantity]))}",
            )
    return dict(overrides)
