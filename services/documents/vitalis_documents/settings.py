"""The documents service's settings."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator

from vitalis_runtime.settings import ServiceSettings

MIB = 1024 * 1024


class DocumentsSettings(ServiceSettings):
    """Everything documents reads from its environment (``VITALIS_*`` plus the common ones)."""

    service_name: str = "documents"
    grpc_port: int = Field(default=50054, ge=0, le=65535)
    storage_backend: Literal["disk", "s3"] = Field(
        default="disk", description="Where uploaded bytes live: local disk or an S3-compatible store."
    )
    storage_root: str = Field(
        default="", description="Folder of the disk backend (VITALIS_STORAGE_ROOT); required for disk."
    )
    s3_bucket: str = Field(default="", description="Bucket of the S3 backend; required for s3.")
    s3_endpoint_url: str | None = Field(default=None, description="S3 endpoint (R2, MinIO); unset for AWS.")
    s3_region: str = Field(default="us-east-1", min_length=1)
    s3_access_key_id: SecretStr | None = None
    s3_secret_access_key: SecretStr | None = None
    s3_key_prefix: str = Field(default="documents/", description="Prefix of every object key.")
    max_upload_bytes: int = Field(default=50 * MIB, ge=1, description="Largest file accepted, in bytes.")
    parse_timeout_seconds: float = Field(default=60.0, gt=0, description="Wall-clock budget of one parse.")
    parse_memory_bytes: int = Field(
        default=1024 * MIB, ge=64 * MIB, description="Address-space budget of the parser process."
    )
    parse_max_pages: int = Field(default=200, ge=1, description="PDFs with more pages are not parsed.")
    parse_concurrency: int = Field(default=2, ge=1, le=64, description="Documents parsed at the same time.")
    confidence_threshold: float = Field(
        default=0.8, ge=0, le=1, description="Results at or above it are accepted without review."
    )

    @model_validator(mode="after")
    def _backend_is_configured(self) -> DocumentsSettings:
        if self.storage_backend == "disk" and not self.storage_root:
            raise ValueError("VITALIS_STORAGE_ROOT is required when VITALIS_STORAGE_BACKEND is disk")
        if self.storage_backend == "s3" and not self.s3_bucket:
            raise ValueError("VITALIS_S3_BUCKET is required when VITALIS_STORAGE_BACKEND is s3")
        return self
