"""The storage backend the settings name."""

from __future__ import annotations

from pathlib import Path

from vitalis_documents.settings import DocumentsSettings
from vitalis_documents.storage.base import ObjectStorage
from vitalis_documents.storage.disk import DiskStorage
from vitalis_documents.storage.s3 import S3Location, S3Storage


async def open_storage(settings: DocumentsSettings) -> ObjectStorage:
    """Local disk under ``storage_root`` or the configured S3-compatible bucket."""
    if settings.storage_backend == "s3":
        return await S3Storage.connect(
            S3Location(
                bucket=settings.s3_bucket,
                region=settings.s3_region,
                endpoint_url=settings.s3_endpoint_url,
                access_key_id=settings.s3_access_key_id.get_secret_value()
                if settings.s3_access_key_id
                else None,
                secret_access_key=(
                    settings.s3_secret_access_key.get_secret_value()
                    if settings.s3_secret_access_key
                    else None
                ),
                key_prefix=settings.s3_key_prefix,
            )
        )
    return DiskStorage(Path(settings.storage_root))
