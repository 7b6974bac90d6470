"""Conversions between identity domain objects and protobuf messages."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from google.type import date_pb2  # type: ignore[import-untyped]

from vitalis.identity.v1 import auth_service_pb2, user_pb2
from vitalis_identity.domain.tokens import IssuedTokens
from vitalis_identity.domain.users import Sex, UnitSystem, User
from vitalis_runtime.auth import current_principal
from vitalis_runtime.errors import InvalidArgument, NotFound

_SEX_TO_PROTO = {
    Sex.UNSPECIFIED: user_pb2.SEX_UNSPECIFIED,
    Sex.FEMALE: user_pb2.SEX_FEMALE,
    Sex.MALE: user_pb2.SEX_MALE,
    Sex.OTHER: user_pb2.SEX_OTHER,
}
_SEX_FROM_PROTO = {v: k for k, v in _SEX_TO_PROTO.items()}
_UNITS_TO_PROTO = {
    UnitSystem.METRIC: user_pb2.UNIT_SYSTEM_METRIC,
    UnitSystem.IMPERIAL: user_pb2.UNIT_SYSTEM_IMPERIAL,
}
_UNITS_FROM_PROTO = {v: k for k, v in _UNITS_TO_PROTO.items()}


def timestamp(value: datetime) -> Timestamp:
    """A protobuf Timestamp."""
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


def user_to_proto(user: User) -> user_pb2.User:
    """The public representation of a user."""
    message = user_pb2.User(
        name=user.name,
        account=f"accounts/{user.account_id}",
        email=user.email,
        given_name=user.given_name,
        family_name=user.family_name,
        sex=_SEX_TO_PROTO[user.sex],
        time_zone=user.time_zone,
        unit_system=_UNITS_TO_PROTO[user.unit_system],
        create_time=timestamp(user.create_time),
        update_time=timestamp(user.update_time),
        etag=user.etag,
        state=user_pb2.USER_STATE_DELETED if user.deleted else user_pb2.USER_STATE_ACTIVE,
        email_verified=user.email_verified,
        has_password=user.has_password,
        external_identities=[
            user_pb2.ExternalIdentity(
                issuer=link.issuer,
                subject=link.subject,
                provider=link.provider,
                link_time=timestamp(link.link_time),
            )
            for link in user.external_identities
        ],
    )
    if user.delete_time is not None:
        message.delete_time.CopyFrom(timestamp(user.delete_time))
    if user.expire_time is not None:
        message.expire_time.CopyFrom(timestamp(user.expire_time))
    if user.birth_date is not None:
        message.birth_date.CopyFrom(
            date_pb2.Date(year=user.birth_date.year, month=user.birth_date.month, day=user.birth_date.day)
        )
    return message


def profile_changes(message: user_pb2.User) -> dict[str, Any]:
    """The mutable profile fields of a User message as domain values."""
    birth_date: date | None = None
    if message.HasField("birth_date") and message.birth_date.year:
        try:
            birth_date = date(message.birth_date.year, message.birth_date.month, message.birth_date.day)
        except ValueError:
            raise InvalidArgument.for_field("user.birth_date", "is not a valid calendar date") from None
    if message.sex not in _SEX_FROM_PROTO:
        raise InvalidArgument.for_field("user.sex", f"unknown value {message.sex}")
    if message.unit_system and message.unit_system not in _UNITS_FROM_PROTO:
        raise InvalidArgument.for_field("user.unit_system", f"unknown value {message.unit_system}")
    return {
        "given_name": message.given_name,
        "family_name": message.family_name,
        "birth_date": birth_date,
        "sex": _SEX_FROM_PROTO[message.sex],
        "time_zone": message.time_zone,
        "unit_system": _UNITS_FROM_PROTO.get(message.unit_system, UnitSystem.METRIC),
    }


def populated_profile_fields(message: user_pb2.User) -> list[str]:
    """AIP-134: without an update mask, the populated fields are the mask."""
    return [field.name for field, _ in message.ListFields() if field.name not in {"name", "etag"}]


def resolve_user_name(name: str, *, field: str = "name") -> uuid.UUID:
    """The user id of ``users/{user}`` (``users/me`` is the caller); another user's is NOT_FOUND."""
    principal = current_principal()
    prefix, _, ident = name.partition("/")
    if prefix != "users" or not ident or "/" in ident:
        raise InvalidArgument.for_field(
            field, f"{name!r} is not a user name; expected users/{{user}} or users/me"
        )
    if ident == "me":
        return principal.user_id
    try:
        user_id = uuid.UUID(ident)
    except ValueError:
        raise InvalidArgument.for_field(field, f"{ident!r} is not a user id") from None
    if user_id != principal.user_id:
        raise NotFound(f"user {name!r} was not found", reason="USER_NOT_FOUND", metadata={"name": name})
    return user_id


def tokens_to_proto(tokens: IssuedTokens, message: auth_service_pb2.AuthTokens) -> None:
    """Fill an AuthTokens message."""
    message.access_token = tokens.access_token
    message.refresh_token = tokens.refresh_token
    message.token_type = "Bearer"  # noqa: S105 - the OAuth token type, not a secret
    message.access_token_expire_time.CopyFrom(timestamp(tokens.access_expire_time))
    message.refresh_token_expire_time.CopyFrom(timestamp(tokens.refresh_expire_time))
    message.session = tokens.session_name
