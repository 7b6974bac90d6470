"""Resource names of the documents contract, resolved against the caller."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from vitalis_documents.library import not_found_name
from vitalis_runtime.auth import Principal, current_principal
from vitalis_runtime.errors import InvalidArgument, NotFound
from vitalis_runtime.sharing import ShareGrantChecker, authorize_read

SCOPE = "documents"


@dataclass(frozen=True)
class DocumentRef:
    """A document named in a request."""

    user_id: uuid.UUID
    document_id: uuid.UUID


def _uuid(text: str, field: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise InvalidArgument.for_field(field, f"{text!r} is not a {what} id") from None


def _user(ident: str, field: str, principal: Principal, *, allow_me: bool = True) -> uuid.UUID:
    if ident == "me" and allow_me:
        return principal.user_id
    return _uuid(ident, field, "user")


def parse_user(name: str, field: str, *, allow_me: bool = True) -> uuid.UUID:
    """The user id of ``users/{user}`` (``users/me`` is the caller when allowed)."""
    parts = name.split("/")
    if len(parts) != 2 or parts[0] != "users" or not parts[1]:
        raise InvalidArgument.for_field(field, f"{name!r} is not a user name; expected users/{{user}}")
    return _user(parts[1], field, current_principal(), allow_me=allow_me)


def parse_document(name: str, field: str = "name") -> DocumentRef:
    """``users/{user}/documents/{document}``."""
    parts = name.split("/")
    if len(parts) != 4 or parts[0] != "users" or parts[2] != "documents" or not parts[1] or not parts[3]:
        raise InvalidArgument.for_field(
            field, f"{name!r} is not a document name; expected users/{{user}}/documents/{{document}}"
        )
    return DocumentRef(_user(parts[1], field, current_principal()), _uuid(parts[3], field, "document"))


def parse_marker(name: str, field: str = "name") -> tuple[DocumentRef, uuid.UUID]:
    """``users/{user}/documents/{document}/extractedMarkers/{extracted_marker}``."""
    parts = name.split("/")
    if len(parts) != 6 or parts[4] != "extractedMarkers" or not parts[5]:
        raise InvalidArgument.for_field(
            field,
            f"{name!r} is not an extracted marker name; expected "
            "users/{user}/documents/{document}/extractedMarkers/{extracted_marker}",
        )
    return parse_document("/".join(parts[:4]), field), _uuid(parts[5], field, "extracted marker")


def require_owner(user_id: uuid.UUID, name: str) -> None:
    """Writes are the owner's alone; anyone else learns only that nothing is there."""
    if current_principal().user_id != user_id:
        raise not_found_name(name)


async def require_reader(user_id: uuid.UUID, name: str, checker: ShareGrantChecker | None) -> None:
    """The owner, or a grantee with scope documents; NotFound for anyone else."""
    try:
        await authorize_read(current_principal(), user_id, SCOPE, checker)
    except NotFound:
        raise not_found_name(name) from None
