"""Resource names of the insights contract: parsing and the owner check."""

from __future__ import annotations

import uuid

from vitalis_runtime.auth import current_principal
from vitalis_runtime.errors import InvalidArgument, NotFound
from vitalis_runtime.sharing import ShareGrantChecker, authorize_read

INSIGHTS_SCOPE = "insights"


def _user_id(ident: str, field: str, name: str) -> uuid.UUID:
    principal = current_principal()
    if ident == "me":
        return principal.user_id
    try:
        user_id = uuid.UUID(ident)
    except ValueError:
        raise InvalidArgument.for_field(field, f"{ident!r} is not a user id") from None
    if user_id != principal.user_id:
        raise NotFound(f"{name!r} was not found", reason="NOT_FOUND", metadata={"name": name})
    return user_id


def resolve_parent(name: str, *, field: str = "parent") -> uuid.UUID:
    """The caller's user id for ``users/{user}`` or ``users/me``; another user's is NOT_FOUND."""
    prefix, _, ident = name.partition("/")
    if prefix != "users" or not ident or "/" in ident:
        raise InvalidArgument.for_field(
            field, f"{name!r} is not a user name; expected users/{{user}} or users/me"
        )
    return _user_id(ident, field, name)


def resolve_child(name: str, collection: str, *, field: str = "name") -> tuple[uuid.UUID, str]:
    """``(user id, id)`` of ``users/{user}/{collection}/{id}``; another user's is NOT_FOUND."""
    parts = name.split("/")
    if len(parts) != 4 or parts[0] != "users" or parts[2] != collection or not parts[1] or not parts[3]:
        raise InvalidArgument.for_field(
            field, f"{name!r} is not a name like users/{{user}}/{collection}/{{id}}"
        )
    return _user_id(parts[1], field, name), parts[3]


def resolve_uuid_child(name: str, collection: str, *, field: str = "name") -> tuple[uuid.UUID, uuid.UUID]:
    """As :func:`resolve_child`, for server-assigned UUID ids; a malformed id is simply not found."""
    user_id, ident = resolve_child(name, collection, field=field)
    try:
        return user_id, uuid.UUID(ident)
    except ValueError:
        raise NotFound(f"{name!r} was not found", reason="NOT_FOUND", metadata={"name": name}) from None


def not_found(name: str) -> NotFound:
    """The one answer for a resource that does not exist or that the caller may not see."""
    return NotFound(f"{name!r} was not found", reason="NOT_FOUND", metadata={"name": name})


def parse_request_id(value: str, *, field: str = "request_id") -> uuid.UUID | None:
    """A request id (a UUID) or None when unset."""
    if not value:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidArgument.for_field(field, "must be a UUID") from None


class ReadAccess:
    """Resolves names on read paths: the owner, or a grantee holding a live ``insights`` share grant."""

    def __init__(self, checker: ShareGrantChecker | None) -> None:
        self._checker = checker

    async def _owner(self, ident: str, field: str, name: str) -> uuid.UUID:
        principal = current_principal()
        if ident == "me":
            return principal.user_id
        try:
            owner = uuid.UUID(ident)
        except ValueError:
            raise InvalidArgument.for_field(field, f"{ident!r} is not a user id") from None
        try:
            await authorize_read(principal, owner, INSIGHTS_SCOPE, self._checker)
        except NotFound:
            raise not_found(name) from None
        return owner

    async def parent(self, name: str, *, field: str = "parent") -> uuid.UUID:
        """The user whose data ``users/{user}`` names, if the caller may read it."""
        prefix, _, ident = name.partition("/")
        if prefix != "users" or not ident or "/" in ident:
            raise InvalidArgument.for_field(
                field, f"{name!r} is not a user name; expected users/{{user}} or users/me"
            )
        return await self._owner(ident, field, name)

    async def child(self, name: str, collection: str, *, field: str = "name") -> tuple[uuid.UUID, uuid.UUID]:
        """``(owner, id)`` of ``users/{user}/{collection}/{uuid}``, if the caller may read it."""
        parts = name.split("/")
        if len(parts) != 4 or parts[0] != "users" or parts[2] != collection or not parts[1] or not parts[3]:
            raise InvalidArgument.for_field(
                field, f"{name!r} is not a name like users/{{user}}/{collection}/{{id}}"
            )
        owner = await self._owner(parts[1], field, name)
        try:
            return owner, uuid.UUID(parts[3])
        except ValueError:
            raise not_found(name) from None

    async def child_text(self, name: str, collection: str, *, field: str = "name") -> tuple[uuid.UUID, str]:
        """``(owner, id)`` of ``users/{user}/{collection}/{id}`` with a client-chosen id."""
        parts = name.split("/")
        if len(parts) != 4 or parts[0] != "users" or parts[2] != collection or not parts[1] or not parts[3]:
            raise InvalidArgument.for_field(
                field, f"{name!r} is not a name like users/{{user}}/{collection}/{{id}}"
            )
        return await self._owner(parts[1], field, name), parts[3]
