"""The documents service's composition root: wires real dependencies once."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import timedelta

import grpc
from google.protobuf import json_format

from vitalis.documents.v1 import (
    document_internal_service_pb2,
    document_internal_service_pb2_grpc,
    document_service_pb2,
    extraction_service_pb2,
    extraction_service_pb2_grpc,
    user_data_service_pb2,
    user_data_service_pb2_grpc,
)
from vitalis_documents.api.convert import document_to_proto, marker_to_proto
from vitalis_documents.api.documents import DocumentServicer
from vitalis_documents.api.extraction import ExtractionServicer
from vitalis_documents.api.internal import DocumentInternalServicer, UserDataServicer
from vitalis_documents.api.upload_messages import add_document_service
from vitalis_documents.library import DocumentLibrary
from vitalis_documents.parsing.engines import tesseract_available
from vitalis_documents.parsing.sandbox import ParseBudget
from vitalis_documents.pipeline import ParsePipeline
from vitalis_documents.ports import BiomarkerDirectory
from vitalis_documents.review import ReviewDesk
from vitalis_documents.settings import DocumentsSettings
from vitalis_documents.storage.base import ObjectStorage
from vitalis_documents.storage.factory import open_storage
from vitalis_documents.user_data import UserData
from vitalis_runtime.background import run_until_stopped
from vitalis_runtime.bootstrap import Dependencies, ServiceParts, create_service_server
from vitalis_runtime.events import StreamNames
from vitalis_runtime.pagination import page_tokens_from
from vitalis_runtime.relay import OutboxRelay
from vitalis_runtime.server import BOUNDED_RECEIVE_OPTIONS, service_full_names
from vitalis_runtime.sharing import ShareGrantChecker

SERVICE_NAMES = service_full_names(
    (document_service_pb2, "DocumentService"),
    (extraction_service_pb2, "ExtractionService"),
    (document_internal_service_pb2, "DocumentInternalService"),
    (user_data_service_pb2, "UserDataService"),
)
PURGE_INTERVAL_SECONDS = 3600.0
STAGING_RETENTION = timedelta(days=1)


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
        """Wire the library, the parse pipeline and the servicers over ``deps`` and ``storage``."""
        self.settings = settings
        self.storage = storage
        self.grants = grants
        self.biomarkers = biomarkers
        self.service_names = SERVICE_NAMES
        self.library = DocumentLibrary(
            deps.db,
            storage,
            max_upload_bytes=settings.max_upload_bytes,
            ocr_available=tesseract_available(),
            on_parse_requested=self._wake,
        )
        self.pipeline = ParsePipeline(
            self.library,
            biomarkers,
            budget=ParseBudget(
                seconds=settings.parse_timeout_seconds,
                memory_bytes=settings.parse_memory_bytes,
                max_pages=settings.parse_max_pages,
            ),
            confidence_threshold=settings.confidence_threshold,
            concurrency=settings.parse_concurrency,
        )
        self.review = ReviewDesk(self.library, self.pipeline, biomarkers)
        self.user_data = UserData(
            self.library,
            document_json=lambda d: json_format.MessageToDict(document_to_proto(d)),
            marker_json=lambda m: json_format.MessageToDict(marker_to_proto(m)),
        )
        self.pages = page_tokens_from(settings)
        self.relay = OutboxRelay(
            deps.db,
            deps.redis,
            schema="documents",
            streams=StreamNames.of("documents", settings),
        )
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Future[None]] = []

    def _wake(self) -> None:
        self.pipeline.wake()

    def register(self, server: grpc.aio.Server) -> None:
        """Add every servicer of the contract to ``server``."""
        add_document_service(DocumentServicer(self.library, self.pages, self.grants), server)
        extraction_service_pb2_grpc.add_ExtractionServiceServicer_to_server(
            ExtractionServicer(self.review, self.pages, self.grants), server
        )
        document_internal_service_pb2_grpc.add_DocumentInternalServiceServicer_to_server(
            DocumentInternalServicer(self.library), server
        )
        user_data_service_pb2_grpc.add_UserDataServiceServicer_to_server(
            UserDataServicer(self.user_data), server
        )

    async def purge_expired(self, stop: asyncio.Event) -> None:
        """Purge soft-deleted documents whose retention ended, hourly."""

        async def step() -> bool:
            return await self.library.purge_due() > 0

        async def sweep() -> None:
            await self.storage.sweep_staging(STAGING_RETENTION)

        await run_until_stopped(
            step,
            stop,
            name="document purge",
            idle_delay=PURGE_INTERVAL_SECONDS,
            housekeeping=sweep,
            housekeeping_interval=PURGE_INTERVAL_SECONDS,
        )

    @property
    def background(self) -> list[Callable[[asyncio.Event], Awaitable[None]]]:
        """The loops that run beside the server."""
        return [self.relay.run, self.pipeline.run, self.purge_expired]

    def start_background(self) -> None:
        """Run the background loops as tasks of this application (tests; the service uses ``serve``)."""
        self._tasks = [asyncio.ensure_future(loop(self._stop)) for loop in self.background]

    async def stop(self) -> None:
        """Stop background loops this application started."""
        self._stop.set()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self._tasks = []

    async def close(self) -> None:
        """Stop work in flight and release the storage client."""
        await self.stop()
        await self.storage.close()


async def create_documents_server(settings: DocumentsSettings, deps: Dependencies) -> ServiceParts:
    """Build the documents server bound to ``settings.grpc_port`` (0 → a free port)."""
    from vitalis_client import create_channel
    from vitalis_documents.biomarkers_client import GrpcBiomarkerDirectory
    from vitalis_runtime.service_auth import ServiceCredentials
    from vitalis_runtime.sharing import RemoteShareGrantChecker

    storage = await open_storage(settings)
    channels: list[grpc.aio.Channel] = []
    biomarkers: BiomarkerDirectory | None = None
    grants: ShareGrantChecker | None = None
    credentials = ServiceCredentials.of(settings)
    if credentials is not None:
        if settings.biomarkers_target:
            channels.append(create_channel(settings.biomarkers_target))
            biomarkers = GrpcBiomarkerDirectory(channels[-1], credentials)
        if settings.identity_target:
            channels.append(create_channel(settings.identity_target))
            grants = RemoteShareGrantChecker(channels[-1], credentials)
    app = DocumentsApplication(settings, deps, storage, grants=grants, biomarkers=biomarkers)
    # Uploads arrive as large client streams.
    parts = await create_service_server(
        settings,
        deps,
        register=app.register,
        service_names=SERVICE_NAMES,
        server_options=BOUNDED_RECEIVE_OPTIONS,
    )

    async def close_channels() -> None:
        for channel in channels:
            await channel.close()

    return replace(
        parts,
        background=[*parts.background, *app.background],
        on_stop=[*parts.on_stop, app.close, close_channels],
    )
