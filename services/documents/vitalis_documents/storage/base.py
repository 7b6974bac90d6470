"""The storage interface: content-addressed objects written by streaming, read by streaming."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Protocol


def content_key(user_id: uuid.UUID, sha256: str) -> str:
    """The key of a user's object with this digest: content-addressed within the user.

    Keys never cross users, so one user's upload can neither reveal nor disturb another's bytes,
    and erasing a user removes exactly the objects under their prefix.
    """
    return f"{user_prefix(user_id)}{sha256}"


def user_prefix(user_id: uuid.UUID) -> str:
    """The prefix of every object of one user."""
    return f"{user_id}/"


class ObjectWriter(Protocol):
    """An object being written; invisible under any key until :meth:`commit`."""

    async def write(self, chunk: bytes | memoryview) -> None:
        """Append the next bytes (the caller does not change them until this returns)."""
        ...

    async def commit(self, key: str) -> None:
        """Make the bytes written so far the object ``key``, atomically (replacing an equal one)."""
        ...

    async def abort(self) -> None:
        """Discard the bytes written; safe to call after commit or twice."""
        ...


class ObjectStorage(Protocol):
    """A store of immutable objects addressed by key."""

    async def open_writer(self) -> ObjectWriter:
        """Start writing a new object."""
        ...

    async def exists(self, key: str) -> bool:
        """Whether ``key`` holds an object."""
        ...

    def read(self, key: str, *, chunk_size: int) -> AsyncIterator[bytes]:
        """The object's bytes in chunks of at most ``chunk_size``; ``KeyError`` when it is missing."""
        ...

    async def delete(self, key: str) -> bool:
        """Remove ``key``; return whether it existed."""
        ...

    async def delete_prefix(self, prefix: str) -> int:
        """Remove every object whose key starts with ``prefix``; return how many."""
        ...

    async def sweep_staging(self, older_than: timedelta) -> int:
        """Discard writes abandoned longer than ``older_than`` ago (a process died mid-upload)."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...
