"""The identity service's settings."""

from __future__ import annotations

from pydantic import Field, SecretStr

from vitalis_runtime.settings import ServiceSettings


class IdentitySettings(ServiceSettings):
    """Everything identity reads from its environment (``VITALIS_*`` plus the common ones)."""

    service_name: str = "identity"
    grpc_port: int = Field(default=50051, ge=0, le=65535)
    signing_key_secret: SecretStr = Field(
        description="Encrypts the signing keys at rest (VITALIS_SIGNING_KEY_SECRET); at least 32 characters.",
        min_length=32,
    )
    access_token_ttl_seconds: int = Field(default=900, ge=60, le=3600)
    refresh_token_ttl_days: int = Field(default=30, ge=1, le=365)
    session_ttl_days: int = Field(default=90, ge=1, le=730)
    key_rotation_days: int = Field(default=30, ge=1, le=365)
