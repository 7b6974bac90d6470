"""Whose data a request may touch: the caller's own, or another user's read under a share grant."""

from __future__ import annotations

import uuid

from vitalis_runtime.auth import current_principal
from vitalis_runtime.errors import InvalidArgument, NotFound
from vitalis_runtime.sharing import ShareGrantChecker, authorize_read

SCOPE = "biomarkers"


def parse_user_segment(segment: str, field: str) -> uuid.UUID | None:
    """The user ID of a name segment; None for ``me``."""
    if segment == "me":
        return None
    try:
        return uuid.UUID(segment)
    except ValueError:
        raise InvalidArgument.for_field(field, f"{segment!r} is not a user ID or 'me'") from None


class Access:
    """Resolves the user a request names and checks the caller may act on their data."""

    def __init__(self, grants: ShareGrantChecker | None) -> None:
        """Check reads of other users' data with ``grants`` (None: only owners may read)."""
        self._grants = grants

    def owner(self, segment: str, field: str) -> uuid.UUID:
        """The user for a write: only the caller's own data; anyone else's looks like nothing."""
        principal = current_principal()
        user_id = parse_user_segment(segment, field)
        if user_id is None or user_id == principal.user_id:
            return principal.user_id
        raise NotFound("the requested resource does not exist")

    async def reader(self, segment: str, field: str) -> uuid.UUID:
        """The user for a read: the caller, or a user who granted the caller the biomarkers scope."""
        principal = current_principal()
        user_id = parse_user_segment(segment, field)
        if user_id is None:
            return principal.user_id
        await authorize_read(principal, user_id, SCOPE, self._grants)
        return user_id
