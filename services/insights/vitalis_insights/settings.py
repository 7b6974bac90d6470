"""The insights service's settings."""

from __future__ import annotations

from pydantic import Field

from vitalis_runtime.settings import ServiceSettings


class InsightsSettings(ServiceSettings):
    """Everything insights reads from its environment (``VITALIS_*`` plus the common ones)."""

    service_name: str = "insights"
    grpc_port: int = Field(default=50055, ge=0, le=65535)
