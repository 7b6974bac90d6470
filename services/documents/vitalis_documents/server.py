"""The documents service's composition root.

The service starts with the shared runtime (health tied to PostgreSQL and Redis, reflection, the
interceptors, its schema with the outbox and inbox); the servicers of its contract
(``protos/vitalis/documents/v1``) are registered here as they are implemented. Until then a call to
one of its RPCs is answered UNIMPLEMENTED (HTTP 501 through the gateway).
"""

from __future__ import annotations

import grpc

from vitalis_documents.settings import DocumentsSettings
from vitalis_runtime.bootstrap import Dependencies, ServiceParts, create_service_server


def _register(server: grpc.aio.Server) -> None:
    """No servicer of the documents contract is implemented yet."""


async def create_documents_server(settings: DocumentsSettings, deps: Dependencies) -> ServiceParts:
    """Build the documents server bound to ``settings.grpc_port`` (0 → a free port)."""
    return await create_service_server(settings, deps, register=_register, service_names=())
