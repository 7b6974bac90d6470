"""The biomarkers service's settings."""

from __future__ import annotations

from pydantic import Field

from vitalis_runtime.settings import ServiceSettings


class BiomarkersSettings(ServiceSettings):
    """Everything biomarkers reads from its environment (``VITALIS_*`` plus the common ones)."""

    service_name: str = "biomarkers"
    grpc_port: int = Field(default=50053, ge=0, le=65535)
