"""Specifications of the identity domain, without servers."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import pytest

from vitalis_identity.domain.keys import KeyInfo, KeySchedule, signing_key, successor_due
from vitalis_identity.domain.passwords import Passwords, check_password_rules
from vitalis_identity.domain.tokens import RefreshToken
from vitalis_identity.domain.users import (
    Sex,
    UnitSystem,
    User,
    apply_profile_update,
    normalize_email,
    validate_time_zone,
)
from vitalis_runtime.errors import InvalidArgument, Unauthenticated

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def a_user() -> User:
    return User(
        user_id=uuid.uuid4(),
        account_id=uuid.uuid4(),
        email="ada@example.com",
        given_name="Ada",
        family_name="Lovelace",
        birth_date=None,
        sex=Sex.UNSPECIFIED,
        time_zone="UTC",
        unit_system=UnitSystem.METRIC,
        version=1,
        create_time=NOW,
        update_time=NOW,
    )


def test_refresh_token_round_trips_and_matches_only_its_own_hash() -> None:
    token = RefreshToken.issue(uuid.uuid4())
    decoded = RefreshToken.decode(token.encode())
    assert decoded == token
    assert decoded.matches(token.secret_hash)
    assert not decoded.matches(RefreshToken.issue(token.user_id).secret_hash)


@pytest.mark.parametrize("value", ["", "vrt_", "vrt_!!!!", "abc", "vrt_" + "A" * 300])
def test_malformed_refresh_token_is_unauthenticated(value: str) -> None:
    with pytest.raises(Unauthenticated):
        RefreshToken.decode(value)


def test_first_key_is_created_at_once() -> None:
    assert successor_due([], NOW, KeySchedule()) == NOW


def test_successor_is_published_ahead_of_rotation() -> None:
    schedule = KeySchedule(rotation_period=timedelta(days=30), publish_ahead=timedelta(minutes=10))
    current = KeyInfo("a", NOW, NOW + schedule.lifetime())
    assert successor_due([current], NOW + timedelta(days=29), schedule) is None
    due = successor_due([current], NOW + timedelta(days=30) - timedelta(minutes=5), schedule)
    # Activation waits until the successor has been published for the full publish_ahead.
    assert due == NOW + timedelta(days=30, minutes=5)
    successor = KeyInfo("b", due, due + schedule.lifetime())
    assert successor_due([current, successor], NOW + timedelta(days=30), schedule) is None
    assert signing_key([current, successor], due - timedelta(seconds=1)) == current
    assert signing_key([current, successor], due) == successor


def test_previous_key_stays_published_while_its_tokens_are_valid() -> None:
    schedule = KeySchedule()
    current = KeyInfo("a", NOW, NOW + schedule.lifetime())
    last_token_expiry = NOW + schedule.rotation_period + schedule.access_token_ttl
    assert current.retire_time >= last_token_expiry


def test_email_is_normalised_and_validated() -> None:
    assert normalize_email("  Ada@Example.COM ") == "ada@example.com"
    with pytest.raises(InvalidArgument) as raised:
        normalize_email("ada-at-example")
    assert [v.field for v in raised.value.violations] == ["email"]


def test_unknown_time_zone_is_rejected_with_an_example() -> None:
    assert validate_time_zone("Europe/Berlin") == "Europe/Berlin"
    with pytest.raises(InvalidArgument, match="Europe/Berlin"):
        validate_time_zone("Mars/Olympus")


def test_short_password_is_rejected() -> None:
    with pytest.raises(InvalidArgument) as raised:
        check_password_rules("short")
    assert raised.value.reason == "PASSWORD_TOO_SHORT"


def test_update_mask_may_not_touch_read_only_fields() -> None:
    with pytest.raises(InvalidArgument) as raised:
        apply_profile_update(a_user(), {"email": "x@example.com"}, ["email"], today=NOW.date())
    assert [v.field for v in raised.value.violations] == ["update_mask.email"]


def test_update_applies_only_masked_fields() -> None:
    user = a_user()
    updated = apply_profile_update(
        user,
        {"given_name": "Augusta", "family_name": "ignored", "birth_date": date(1815, 12, 10)},
        ["given_name"],
        today=NOW.date(),
    )
    assert updated.given_name == "Augusta"
    assert updated.family_name == "Lovelace"
    assert updated.birth_date is None


def test_birth_date_in_the_future_is_rejected() -> None:
    with pytest.raises(InvalidArgument, match="future"):
        apply_profile_update(a_user(), {"birth_date": date(2030, 1, 1)}, ["birth_date"], today=NOW.date())


async def test_password_verification_fails_for_unknown_users_and_wrong_passwords() -> None:
    passwords = Passwords()
    stored = await passwords.hash("correct horse battery")
    assert await passwords.verify(stored, "correct horse battery")
    assert not await passwords.verify(stored, "wrong horse battery")
    assert not await passwords.verify(None, "correct horse battery")
