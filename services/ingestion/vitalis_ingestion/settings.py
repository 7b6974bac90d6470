"""The ingestion service's settings."""

from __future__ import annotations

from pydantic import Field

from vitalis_runtime.settings import ServiceSettings


class IngestionSettings(ServiceSettings):
    """Everything ingestion reads from its environment (``VITALIS_*`` plus the common ones)."""

    service_name: str = "ingestion"
    grpc_port: int = Field(default=50052, ge=0, le=65535)
