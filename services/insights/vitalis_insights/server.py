"""The insights service's composition root.

The service starts with the shared runtime (health tied to PostgreSQL and Redis, reflection, the
interceptors, its schema with the outbox and inbox); the servicers of its contract
(``protos/vitalis/insights/v1``) are registered here as they are implemented. Until then a call to
one of its RPCs is answered UNIMPLEMENTED (HTTP 501 through the gateway).
"""

from __future__ import annotations

import grpc

from vitalis_insights.settings import InsightsSettings
from vitalis_runtime.bootstrap import Dependencies, ServiceParts, create_service_server


def _register(server: grpc.aio.Server) -> None:
    """No servicer of the insights contract is implemented yet."""


async def create_insights_server(settings: InsightsSettings, deps: Dependencies) -> ServiceParts:
    """Build the insights server bound to ``settings.grpc_port`` (0 → a free port)."""
    return await create_service_server(settings, deps, register=_register, service_names=())
