"""Parsing resource names of requests: ``users/{user}``, ``users/{user}/<collection>/{id}``."""

from __future__ import annotations

import uuid

from vitalis_runtime.auth import current_principal
from vitalis_runtime.errors import InvalidArgument, NotFound


def any_user(ident: str, *, field: str) -> uuid.UUID:
    """The user id of a ``{user}`` segment (``me`` is the caller), whoever it is."""
    if ident == "me":
        return current_principal().user_id
    try:
        return uuid.UUID(ident)
    except ValueError:
        raise InvalidArgument.for_field(field, f"{ident!r} is not a user id") from None


def own_user(ident: str, *, field: str, name: str) -> uuid.UUID:
    """The caller's id when ``{user}`` names the caller; NOT_FOUND for anyone else."""
    user_id = any_user(ident, field=field)
    if user_id != current_principal().user_id:
        raise NotFound(f"{name!r} was not found", reason="NOT_FOUND", metadata={"name": name})
    return user_id


def split_user(name: str, *, field: str) -> str:
    """The ``{user}`` of ``users/{user}``."""
    prefix, _, ident = name.partition("/")
    if prefix != "users" or not ident or "/" in ident:
        raise InvalidArgument.for_field(
            field, f"{name!r} is not a user name; expected users/{{user}} or users/me"
        )
    return ident


def split_child(name: str, collection: str, *, field: str) -> tuple[str, str]:
    """The ``{user}`` and ``{id}`` of ``users/{user}/<collection>/{id}``."""
    parts = name.split("/")
    if len(parts) != 4 or parts[0] != "users" or parts[2] != collection or not parts[1] or not parts[3]:
        raise InvalidArgument.for_field(
            field, f"{name!r} is not a name of the form users/{{user}}/{collection}/{{id}}"
        )
    return parts[1], parts[3]


def child_uuid(value: str, *, name: str) -> uuid.UUID:
    """A server-assigned id segment; a malformed one cannot exist, so it is NOT_FOUND."""
    try:
        return uuid.UUID(value)
    except ValueError:
        raise NotFound(f"{name!r} was not found", reason="NOT_FOUND", metadata={"name": name}) from None


def own_parent(parent: str, *, field: str = "parent") -> uuid.UUID:
    """The caller's id for a ``parent`` of ``users/{user}`` naming the caller."""
    return own_user(split_user(parent, field=field), field=field, name=parent)


def own_child(name: str, collection: str, *, field: str = "name") -> tuple[uuid.UUID, str]:
    """The caller's id and the raw id of ``users/{caller}/<collection>/{id}``."""
    user, child = split_child(name, collection, field=field)
    return own_user(user, field=field, name=name), child
