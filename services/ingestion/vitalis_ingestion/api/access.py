"""Resource names and who may act on them: ``users/me``, the caller's own id, or a share grant for reads."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from vitalis_runtime.auth import current_principal
from vitalis_runtime.errors import InvalidArgument, NotFound
from vitalis_runtime.sharing import ShareGrantChecker, authorize_read

WEARABLES_SCOPE = "wearables"


@dataclass(frozen=True)
class ParsedName:
    """A resource name split into the user it belongs to and the resource's own ID."""

    user_id: uuid.UUID
    resource_id: str


def _user_id(segment: str, name: str, field: str) -> uuid.UUID:
    if segment == "me":
        return current_principal().user_id
    try:
        return uuid.UUID(segment)
    except ValueError:
        raise InvalidArgument.for_field(
            field, f"{name!r} does not name a user (users/me or users/{{uuid}})"
        ) from None


def parse_parent(parent: str, *, field: str = "parent") -> uuid.UUID:
    """The user of ``users/{user}``."""
    prefix, _, rest = parent.partition("/")
    if prefix != "users" or not rest or "/" in rest:
        raise InvalidArgument.for_field(
            field, f"{parent!r} is not a user; expected users/{{user}} or users/me"
        )
    return _user_id(rest, parent, field)


def parse_name(name: str, collection: str, *, field: str = "name") -> ParsedName:
    """``users/{user}/{collection}/{id}`` split into its user and ID."""
    parts = name.split("/")
    if len(parts) != 4 or parts[0] != "users" or parts[2] != collection or not parts[3]:
        raise InvalidArgument.for_field(
            field, f"{name!r} is not a name of the form users/{{user}}/{collection}/{{id}}"
        )
    return ParsedName(_user_id(parts[1], name, field), parts[3])


def parse_singleton(name: str, singleton: str, *, field: str = "name") -> uuid.UUID:
    """The user of ``users/{user}/{singleton}``."""
    parts = name.split("/")
    if len(parts) != 3 or parts[0] != "users" or parts[2] != singleton:
        raise InvalidArgument.for_field(
            field, f"{name!r} is not a name of the form users/{{user}}/{singleton}"
        )
    return _user_id(parts[1], name, field)


def short_source_id(name: str, user_id: uuid.UUID, *, field: str) -> str:
    """The source ID of ``users/{user}/sources/{source}``; a source of another user is INVALID_ARGUMENT."""
    parsed = parse_name(name, "sources", field=field)
    if parsed.user_id != user_id:
        raise InvalidArgument.for_field(field, "must be a source of the same user")
    return parsed.resource_id


def short_device_id(name: str, user_id: uuid.UUID, *, field: str) -> str:
    """The device ID of ``users/{user}/devices/{device}`` of the same user."""
    parsed = parse_name(name, "devices", field=field)
    if parsed.user_id != user_id:
        raise InvalidArgument.for_field(field, "must be a device of the same user")
    return parsed.resource_id


class Access:
    """Decides whose data a request may touch: writes only the caller's, reads also a granter's."""

    def __init__(self, checker: ShareGrantChecker | None) -> None:
        self._checker = checker

    @staticmethod
    def owned(user_id: uuid.UUID) -> uuid.UUID:
        """``user_id`` when it is the caller; NOT_FOUND otherwise (indistinguishable from absence)."""
        if user_id != current_principal().user_id:
            raise NotFound("the requested resource does not exist")
        return user_id

    async def readable(self, user_id: uuid.UUID) -> uuid.UUID:
        """``user_id`` when the caller is that user or holds a live wearables share grant."""
        await authorize_read(current_principal(), user_id, WEARABLES_SCOPE, self._checker)
        return user_id
