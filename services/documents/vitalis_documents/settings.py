"""The documents service's settings."""

from __future__ import annotations

from pydantic import Field

from vitalis_runtime.settings import ServiceSettings


class DocumentsSettings(ServiceSettings):
    """Everything documents reads from its environment (``VITALIS_*`` plus the common ones)."""

    service_name: str = "documents"
    grpc_port: int = Field(default=50054, ge=0, le=65535)
