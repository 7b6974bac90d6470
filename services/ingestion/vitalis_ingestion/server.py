"""The ingestion service's composition root: wires real dependencies once."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

import grpc

from vitalis.ingestion.v1 import (
    daily_summary_service_pb2,
    daily_summary_service_pb2_grpc,
    import_service_pb2,
    import_service_pb2_grpc,
    manual_entry_service_pb2,
    manual_entry_service_pb2_grpc,
    metric_service_pb2,
    metric_service_pb2_grpc,
    nutrition_service_pb2,
    nutrition_service_pb2_grpc,
    sample_service_pb2,
    sample_service_pb2_grpc,
    sleep_service_pb2,
    sleep_service_pb2_grpc,
    source_service_pb2,
    source_service_pb2_grpc,
    user_data_service_pb2,
    user_data_service_pb2_grpc,
    workout_service_pb2,
    workout_service_pb2_grpc,
)
from vitalis_client import create_channel
from vitalis_ingestion import events
from vitalis_ingestion.api.access import Access
from vitalis_ingestion.api.imports import ImportServicer
from vitalis_ingestion.api.manual_entries import ManualEntryServicer
from vitalis_ingestion.api.metrics import MetricServicer
from vitalis_ingestion.api.nutrition import NutritionServicer
from vitalis_ingestion.api.record_operations import RecordOperations
from vitalis_ingestion.api.samples import SampleServicer
from vitalis_ingestion.api.sleep import SleepServicer
from vitalis_ingestion.api.sources import SourceServicer
from vitalis_ingestion.api.summaries import DailySummaryServicer
from vitalis_ingestion.api.user_data import UserDataServicer
from vitalis_ingestion.api.workouts import WorkoutServicer
from vitalis_ingestion.documents import DocumentReader, RemoteDocumentReader, UnconfiguredDocumentReader
from vitalis_ingestion.domain.time_zones import FixedTimeZone, TimeZoneLookup
from vitalis_ingestion.events import SCHEMA
from vitalis_ingestion.identity_client import IdentityTimeZones
from vitalis_ingestion.importers.json_file import json_items
from vitalis_ingestion.importing import STALL_TIMEOUT, ImportRunner
from vitalis_ingestion.settings import IngestionSettings
from vitalis_ingestion.store.import_jobs import ImportJobStore
from vitalis_ingestion.store.records import RecordStore
from vitalis_ingestion.store.samples import SampleStore
from vitalis_ingestion.store.sources import SourceStore
from vitalis_ingestion.store.summaries import SummaryStore
from vitalis_ingestion.writing import SampleWriter
from vitalis_runtime.bootstrap import Dependencies, ServiceParts, create_service_server
from vitalis_runtime.db import Database
from vitalis_runtime.events import StreamNames
from vitalis_runtime.pagination import PageTokens, page_tokens_from
from vitalis_runtime.relay import OutboxRelay
from vitalis_runtime.server import BOUNDED_RECEIVE_OPTIONS, service_full_names
from vitalis_runtime.service_auth import ServiceCredentials
from vitalis_runtime.sharing import RemoteShareGrantChecker, ShareGrantChecker

SERVICE_NAMES = service_full_names(
    (source_service_pb2, "SourceService"),
    (sample_service_pb2, "SampleService"),
    (metric_service_pb2, "MetricService"),
    (import_service_pb2, "ImportService"),
    (sleep_service_pb2, "SleepService"),
    (workout_service_pb2, "WorkoutService"),
    (nutrition_service_pb2, "NutritionService"),
    (manual_entry_service_pb2, "ManualEntryService"),
    (daily_summary_service_pb2, "DailySummaryService"),
    (user_data_service_pb2, "UserDataService"),
)


@dataclass
class IngestionApp:
    """Everything the servicers share, built once per process."""

    db: Database
    tokens: PageTokens
    access: Access
    time_zones: TimeZoneLookup
    spool_dir: Path
    samples: SampleStore
    sources: SourceStore
    writer: SampleWriter
    records: RecordStore
    jobs: ImportJobStore
    runner: ImportRunner
    documents: DocumentReader

    @classmethod
    def assemble(
        cls,
        db: Database,
        *,
        page_tokens: PageTokens,
        spool_dir: Path,
        checker: ShareGrantChecker | None = None,
        time_zones: TimeZoneLookup | None = None,
        documents: DocumentReader | None = None,
        import_batch_size: int = 10_000,
        import_stall_timeout: timedelta = STALL_TIMEOUT,
    ) -> IngestionApp:
        """Wire the stores and services over one database pool."""
        samples = SampleStore(db)
        sources = SourceStore()
        records = RecordStore()
        jobs = ImportJobStore()
        spool_dir.mkdir(parents=True, exist_ok=True)
        runner = ImportRunner(
            db,
            jobs=jobs,
            samples=samples,
            sources=sources,
            records=records,
            spool_dir=spool_dir,
            json_items=json_items,
            batch_size=import_batch_size,
            stall_timeout=import_stall_timeout,
        )
        return cls(
            db=db,
            tokens=page_tokens,
            access=Access(checker),
            time_zones=time_zones or FixedTimeZone(),
            spool_dir=spool_dir,
            samples=samples,
            sources=sources,
            writer=SampleWriter(db, samples, sources),
            records=records,
            jobs=jobs,
            runner=runner,
            documents=documents or UnconfiguredDocumentReader(),
        )

    async def close(self) -> None:
        """Stop background work started by the servicers."""
        await self.runner.close()

    def register(self, server: grpc.aio.Server) -> None:
        """Add every servicer of the ingestion contract to ``server``."""
        source_service_pb2_grpc.add_SourceServiceServicer_to_server(
            SourceServicer(self.db, self.sources, self.access, self.tokens), server
        )
        sample_service_pb2_grpc.add_SampleServiceServicer_to_server(
            SampleServicer(
                db=self.db,
                store=self.samples,
                writer=self.writer,
                access=self.access,
                tokens=self.tokens,
                time_zones=self.time_zones,
                sources=self.sources,
            ),
            server,
        )
        metric_service_pb2_grpc.add_MetricServiceServicer_to_server(MetricServicer(self.tokens), server)
        import_service_pb2_grpc.add_ImportServiceServicer_to_server(
            ImportServicer(
                db=self.db,
                store=self.jobs,
                sources=self.sources,
                runner=self.runner,
                documents=self.documents,
                access=self.access,
                tokens=self.tokens,
                spool_dir=self.spool_dir,
            ),
            server,
        )
        operations = RecordOperations(
            db=self.db,
            store=self.records,
            sources=self.sources,
            access=self.access,
            tokens=self.tokens,
            time_zones=self.time_zones,
            on_change=events.record_changed,
        )
        sleep_service_pb2_grpc.add_SleepServiceServicer_to_server(SleepServicer(operations), server)
        workout_service_pb2_grpc.add_WorkoutServiceServicer_to_server(
            WorkoutServicer(operations, self.tokens), server
        )
        nutrition_service_pb2_grpc.add_NutritionServiceServicer_to_server(
            NutritionServicer(operations), server
        )
        manual_entry_service_pb2_grpc.add_ManualEntryServiceServicer_to_server(
            ManualEntryServicer(operations, self.db, self.records, self.access, self.tokens), server
        )
        daily_summary_service_pb2_grpc.add_DailySummaryServiceServicer_to_server(
            DailySummaryServicer(
                db=self.db,
                summaries=SummaryStore(),
                records=self.records,
                sources=self.sources,
                access=self.access,
                tokens=self.tokens,
                time_zones=self.time_zones,
            ),
            server,
        )
        user_data_service_pb2_grpc.add_UserDataServiceServicer_to_server(
            UserDataServicer(
                db=self.db,
                sources=self.sources,
                samples=self.samples,
                records=self.records,
                jobs=self.jobs,
                runner=self.runner,
            ),
            server,
        )


async def create_ingestion_server(settings: IngestionSettings, deps: Dependencies) -> ServiceParts:
    """Build the ingestion server bound to ``settings.grpc_port`` (0 → a free port).

    With a service-token secret, share grants and profile time zones come from identity and stored
    documents from the documents service; without one, reads are the owner's only, every user is
    in UTC and only uploaded files can be imported.
    """
    channels: list[grpc.aio.Channel] = []
    checker: ShareGrantChecker | None = None
    time_zones: TimeZoneLookup | None = None
    documents: DocumentReader | None = None
    credentials = ServiceCredentials.of(settings)
    if credentials is not None:
        if settings.identity_target:
            identity = create_channel(settings.identity_target)
            channels.append(identity)
            checker = RemoteShareGrantChecker(identity, credentials)
            time_zones = IdentityTimeZones(identity, credentials)
        if settings.documents_target:
            documents_channel = create_channel(settings.documents_target)
            channels.append(documents_channel)
            documents = RemoteDocumentReader(documents_channel, credentials)
    app = IngestionApp.assemble(
        deps.db,
        page_tokens=page_tokens_from(settings),
        spool_dir=Path(settings.import_spool_dir),
        import_stall_timeout=timedelta(seconds=settings.import_stall_seconds),
        checker=checker,
        time_zones=time_zones,
        documents=documents,
    )
    # Import files arrive as large client streams.
    parts = await create_service_server(
        settings,
        deps,
        register=app.register,
        service_names=SERVICE_NAMES,
        server_options=BOUNDED_RECEIVE_OPTIONS,
    )

    async def close() -> None:
        await app.close()
        for channel in channels:
            await channel.close()

    relay = OutboxRelay(
        deps.db,
        deps.redis,
        schema=SCHEMA,
        streams=StreamNames.of("ingestion", settings),
    )
    return replace(
        parts,
        background=[*parts.background, relay.run, app.runner.keep_resuming],
        on_stop=[*parts.on_stop, close],
    )
