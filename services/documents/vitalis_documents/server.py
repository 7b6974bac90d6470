"""The documents service's composition root: wires real dependencies once."""

from __future__ import annotations

from dataclasses import replace

import grpc

from vitalis.documents.v1 import document_service_pb2, document_service_pb2_grpc
from vitalis_documents.api.documents import DocumentServicer
from vitalis_documents.library import DocumentLibrary
from vitalis_documents.ports import BiomarkerDirectory
from vitalis_documents.settings import DocumentsSettings
from vitalis_documents.storage.base import ObjectStorage
from vitalis_documents.storage.factory import open_storage
from vitalis_runtime.bootstrap import Dependencies, ServiceParts, create_service_server
from vitalis_runtime.events import StreamNames
from vitalis_runtime.pagination import PageTokens
from vitalis_runtime.relay import OutboxRelay
from vitalis_runtime.sharing import ShareGrantChecker

DOCUMENT_SERVICE = document_service_pb2.DESCRIPTOR.services_by_name["DocumentService"].full_name
SERVICE_NAMES = (DOCUMENT_SERVICE,)


class DocumentsApplication:
    """Everything the service's servicers and background loops share."""

    def __init__(
        self,
        settings: DocumentsSettings,
        deps: Dependencies,
        storage: ObjectStorage,
        *,
        grants: ShareGrantChecker | None,
        biomarkers: BiomarkerDirectory | None = None,
    ) -> None:
        """Wire the library and the servicers over ``deps`` and ``storage``."""
        self.settings = settings
        self.storage = storage
        self.library = DocumentLibrary(deps.db, storage, max_upload_bytes=settings.max_upload_bytes)
        self.pages = PageTokens(settings.page_token_secret.get_secret_value().encode())
        self.grants = grants
        self.biomarkers = biomarkers
        self.service_names = SERVICE_NAMES
        self.relay = OutboxRelay(
            deps.db,
            deps.redis,
            schema="documents",
            streams=StreamNames(producer="documents", shard_count=settings.event_shards),
        )

    def register(self, server: grpc.aio.Server) -> None:
        """Add every servicer of the contract to ``server``."""
        document_service_pb2_grpc.add_DocumentServiceServicer_to_server(
            DocumentServicer(self.library, self.pages, self.grants), server
        )

    async def stop(self) -> None:
        """Stop work in flight (parses) without closing the storage."""

    async def close(self) -> None:
        """Stop work in flight and release the storage client."""
        await self.stop()
        await self.storage.close()


async def create_documents_server(settings: DocumentsSettings, deps: Dependencies) -> ServiceParts:
    """Build the documents server bound to ``settings.grpc_port`` (0 → a free port)."""
    storage = await open_storage(settings)
    app = DocumentsApplication(settings, deps, storage, grants=None)
    parts = await create_service_server(settings, deps, register=app.register, service_names=SERVICE_NAMES)
    return replace(
        parts,
        background=[*parts.background, app.relay.run],
        on_stop=[*parts.on_stop, app.close],
    )
