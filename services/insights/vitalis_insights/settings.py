"""The insights service's settings."""

from __future__ import annotations

import os
import socket

from pydantic import Field, SecretStr

from vitalis_runtime.settings import ServiceSettings


def _default_consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class InsightsSettings(ServiceSettings):
    """Everything insights reads from its environment (``VITALIS_*`` plus the common ones)."""

    service_name: str = "insights"
    grpc_port: int = Field(default=50055, ge=0, le=65535)
    consumer_name: str = Field(
        default_factory=_default_consumer_name,
        pattern=r"^[A-Za-z0-9._-]+$",
        description="This replica's name in the event consumer groups; unique among live replicas.",
    )
    event_lease_ms: int = Field(
        default=15000, ge=1000, description="How long a replica holds an event shard."
    )
    watch_heartbeat_seconds: float = Field(default=15.0, gt=0)
    llm_base_url: str | None = Field(
        default=None, description="Base URL of an OpenAI-compatible API (…/v1); unset: template texts."
    )
    llm_api_key: SecretStr | None = None
    llm_model: str = "gpt-4o-mini"
    llm_provider_name: str = "openai-compatible"
    text_allowance_free: int = Field(default=20, ge=0, description="Texts a day for the free tier.")
    text_allowance_premium: int = Field(default=200, ge=0, description="Texts a day for the premium tier.")
    text_allowance_professional: int = Field(
        default=2000, ge=0, description="Texts a day, professional tier."
    )
