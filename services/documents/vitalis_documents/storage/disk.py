"""Objects as files under a root folder, written to a temporary file and renamed into place."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import BinaryIO

from vitalis_documents.storage.base import ObjectWriter

_STAGING = ".staging"


class DiskStorage:
    """Content-addressed files: ``<root>/<user>/<sha256>``; writes are atomic (rename after fsync)."""

    def __init__(self, root: Path) -> None:
        """Store under ``root`` (created if missing)."""
        self._root = root
        (root / _STAGING).mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        parts = key.split("/")
        if not key or any(part in {"", ".", ".."} or part.startswith(".") for part in parts):
            raise ValueError(f"{key!r} is not a storage key")
        return self._root.joinpath(*parts)

    async def open_writer(self) -> ObjectWriter:
        """A writer staging into ``<root>/.staging``."""
        path = self._root / _STAGING / uuid.uuid4().hex
        handle = await asyncio.to_thread(path.open, "xb")
        return _DiskWriter(self, path, handle)

    async def exists(self, key: str) -> bool:
        """Whether the file exists."""
        return await asyncio.to_thread(self._path(key).is_file)

    async def read(self, key: str, *, chunk_size: int) -> AsyncIterator[bytes]:
        """Stream the file."""
        path = self._path(key)
        try:
            handle = await asyncio.to_thread(path.open, "rb")
        except FileNotFoundError:
            raise KeyError(key) from None
        try:
            while chunk := await asyncio.to_thread(handle.read, chunk_size):
                yield chunk
        finally:
            handle.close()

    async def delete(self, key: str) -> bool:
        """Unlink the file."""
        try:
            await asyncio.to_thread(self._path(key).unlink)
        except FileNotFoundError:
            return False
        return True

    async def delete_prefix(self, prefix: str) -> int:
        """Remove a user's folder (``prefix`` is ``<user>/``)."""
        folder = self._path(prefix.rstrip("/"))
        if not folder.is_dir():
            return 0
        count = sum(1 for entry in folder.iterdir() if entry.is_file())
        await asyncio.to_thread(shutil.rmtree, folder, True)
        return count

    async def sweep_staging(self, older_than: timedelta) -> int:
        """Remove staged files not touched for ``older_than``."""

        def sweep() -> int:
            cutoff = time.time() - older_than.total_seconds()
            removed = 0
            for entry in (self._root / _STAGING).iterdir():
                with contextlib.suppress(FileNotFoundError):
                    if entry.stat().st_mtime <= cutoff:
                        entry.unlink()
                        removed += 1
            return removed

        return await asyncio.to_thread(sweep)

    async def close(self) -> None:
        """Nothing to release."""

    def _install(self, staged: Path, key: str) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged, target)
        directory = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


class _DiskWriter:
    def __init__(self, storage: DiskStorage, path: Path, handle: BinaryIO) -> None:
        self._storage = storage
        self._path = path
        self._handle = handle
        self._done = False

    async def write(self, chunk: bytes | memoryview) -> None:
        await asyncio.to_thread(self._handle.write, chunk)

    async def commit(self, key: str) -> None:
        def finish() -> None:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            # The bytes are on disk and seldom read back soon (a parse, a download): their cached
            # pages are let go, so uploads reuse a few pages instead of filling memory with new ones.
            os.posix_fadvise(self._handle.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
            self._handle.close()
            self._storage._install(self._path, key)

        await asyncio.to_thread(finish)
        self._done = True

    async def abort(self) -> None:
        if self._done:
            return
        self._done = True
        self._handle.close()
        await asyncio.to_thread(self._path.unlink, True)
