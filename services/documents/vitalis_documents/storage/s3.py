"""Objects in an S3-compatible store (AWS S3, Cloudflare R2, MinIO) through aiobotocore.

A new object is sent as a multipart upload to a staging key while it streams in, parts of
``part_size`` bytes buffered at a time (S3's minimum part size is 5 MiB), then copied server-side
to its content-addressed key and the staging object removed: a reader never sees half an object.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aiobotocore.session import get_session  # type: ignore[import-untyped]
from botocore.config import Config  # type: ignore[import-untyped]
from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

from vitalis_documents.storage.base import ObjectWriter
from vitalis_runtime.errors import Unavailable

MIN_PART_SIZE = 5 * 1024 * 1024
_STAGING = ".staging/"


@dataclass(frozen=True)
class S3Location:
    """Where and how to reach the bucket."""

    bucket: str
    region: str = "us-east-1"
    endpoint_url: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    key_prefix: str = ""


def _unavailable(error: Exception) -> Unavailable:
    return Unavailable(f"The object store cannot be reached: {error}", reason="STORAGE_UNAVAILABLE")


class S3Storage:
    """An S3 bucket holding ``<prefix><user>/<sha256>`` objects."""

    def __init__(self, client: Any, stack: AsyncExitStack, location: S3Location, part_size: int) -> None:
        """Use :meth:`connect`."""
        self._client = client
        self._stack = stack
        self._bucket = location.bucket
        self._prefix = location.key_prefix
        self._part_size = max(part_size, MIN_PART_SIZE)

    @classmethod
    async def connect(cls, location: S3Location, *, part_size: int = MIN_PART_SIZE) -> S3Storage:
        """Open a client for ``location``."""
        stack = AsyncExitStack()
        client = await stack.enter_async_context(
            get_session().create_client(
                "s3",
                region_name=location.region,
                endpoint_url=location.endpoint_url,
                aws_access_key_id=location.access_key_id,
                aws_secret_access_key=location.secret_access_key,
                config=Config(
                    retries={"max_attempts": 3, "mode": "standard"}, s3={"addressing_style": "path"}
                ),
            )
        )
        return cls(client, stack, location, part_size)

    def _key(self, key: str) -> str:
        return f"{self._prefix}{key}"

    async def open_writer(self) -> ObjectWriter:
        """Start a multipart upload to a staging key."""
        staging = self._key(f"{_STAGING}{uuid.uuid4().hex}")
        try:
            created = await self._client.create_multipart_upload(Bucket=self._bucket, Key=staging)
        except (BotoCoreError, ClientError) as error:
            raise _unavailable(error) from error
        return _S3Writer(self, staging, created["UploadId"])

    async def exists(self, key: str) -> bool:
        """HEAD the object."""
        try:
            await self._client.head_object(Bucket=self._bucket, Key=self._key(key))
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
                return False
            raise _unavailable(error) from error
        except BotoCoreError as error:
            raise _unavailable(error) from error
        return True

    async def read(self, key: str, *, chunk_size: int) -> AsyncIterator[bytes]:
        """Stream the object's body."""
        try:
            response = await self._client.get_object(Bucket=self._bucket, Key=self._key(key))
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
                raise KeyError(key) from None
            raise _unavailable(error) from error
        except BotoCoreError as error:
            raise _unavailable(error) from error
        async with response["Body"] as body:
            buffer = b""
            async for piece in body.iter_chunks(chunk_size):
                buffer += piece
                while len(buffer) >= chunk_size:
                    yield buffer[:chunk_size]
                    buffer = buffer[chunk_size:]
            if buffer:
                yield buffer

    async def delete(self, key: str) -> bool:
        """Delete the object."""
        existed = await self.exists(key)
        if existed:
            await self._delete_raw(self._key(key))
        return existed

    async def _delete_raw(self, full_key: str) -> None:
        try:
            await self._client.delete_object(Bucket=self._bucket, Key=full_key)
        except (BotoCoreError, ClientError) as error:
            raise _unavailable(error) from error

    async def delete_prefix(self, prefix: str) -> int:
        """Delete every object under the prefix, a thousand per request."""
        deleted = 0
        paginator = self._client.get_paginator("list_objects_v2")
        try:
            async for page in paginator.paginate(Bucket=self._bucket, Prefix=self._key(prefix)):
                keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
                if keys:
                    await self._client.delete_objects(
                        Bucket=self._bucket, Delete={"Objects": keys, "Quiet": True}
                    )
                    deleted += len(keys)
        except (BotoCoreError, ClientError) as error:
            raise _unavailable(error) from error
        return deleted

    async def sweep_staging(self, older_than: timedelta) -> int:
        """Abort multipart uploads to staging keys started more than ``older_than`` ago."""
        cutoff = datetime.now(UTC) - older_than
        aborted = 0
        try:
            listed = await self._client.list_multipart_uploads(
                Bucket=self._bucket, Prefix=self._key(_STAGING)
            )
            for upload in listed.get("Uploads", []):
                if upload["Initiated"] <= cutoff:
                    await self._client.abort_multipart_upload(
                        Bucket=self._bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                    )
                    aborted += 1
        except (BotoCoreError, ClientError) as error:
            raise _unavailable(error) from error
        return aborted

    async def close(self) -> None:
        """Close the client."""
        await self._stack.aclose()


class _S3Writer:
    def __init__(self, storage: S3Storage, staging_key: str, upload_id: str) -> None:
        self._storage = storage
        self._client = storage._client
        self._bucket = storage._bucket
        self._staging = staging_key
        self._upload_id = upload_id
        self._buffer = bytearray()
        self._parts: list[dict[str, Any]] = []
        self._done = False

    async def write(self, chunk: bytes | memoryview) -> None:
        self._buffer += chunk
        if len(self._buffer) >= self._storage._part_size:
            await self._flush()

    async def _flush(self) -> None:
        number = len(self._parts) + 1
        try:
            part = await self._client.upload_part(
                Bucket=self._bucket,
                Key=self._staging,
                UploadId=self._upload_id,
                PartNumber=number,
                Body=bytes(self._buffer),
            )
        except (BotoCoreError, ClientError) as error:
            raise _unavailable(error) from error
        self._parts.append({"PartNumber": number, "ETag": part["ETag"]})
        self._buffer = bytearray()

    async def commit(self, key: str) -> None:
        if self._buffer or not self._parts:
            await self._flush()
        try:
            await self._client.complete_multipart_upload(
                Bucket=self._bucket,
                Key=self._staging,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": self._parts},
            )
            self._done = True
            await self._client.copy_object(
                Bucket=self._bucket,
                Key=self._storage._key(key),
                CopySource={"Bucket": self._bucket, "Key": self._staging},
            )
        except (BotoCoreError, ClientError) as error:
            raise _unavailable(error) from error
        finally:
            if self._done:
                with contextlib.suppress(Unavailable):
                    await self._storage._delete_raw(self._staging)

    async def abort(self) -> None:
        if self._done:
            return
        self._done = True
        with contextlib.suppress(BotoCoreError, ClientError):
            await self._client.abort_multipart_upload(
                Bucket=self._bucket, Key=self._staging, UploadId=self._upload_id
            )
