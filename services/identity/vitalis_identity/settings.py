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
    deletion_grace_days: int = Field(
        default=30,
        ge=0,
        le=365,
        description="Days a soft-deleted user or account can be restored before erasure.",
    )
    clerk_webhook_secret: SecretStr | None = Field(
        default=None,
        description="Svix signing secret of the Clerk webhook endpoint "
        "(VITALIS_CLERK_WEBHOOK_SECRET, whsec_...).",
    )
    oidc_issuers: tuple[str, ...] = Field(
        default=(),
        description="Other OIDC issuers whose subjects map to users (VITALIS_OIDC_ISSUERS, a JSON list).",
    )
    oidc_provision_on_first_use: bool = Field(
        default=True,
        description="Provision a user on the first request of an unknown external subject "
        "(VITALIS_OIDC_PROVISION_ON_FIRST_USE).",
    )
    sign_in_max_failures: int = Field(
        default=10, ge=1, le=1000, description="Failed sign-ins per e-mail address before RESOURCE_EXHAUSTED."
    )
    sign_in_failure_window_seconds: int = Field(
        default=900, ge=1, le=86400, description="How long failed sign-ins are remembered."
    )
